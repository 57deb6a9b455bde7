"""App config of the bench-only app."""

from __future__ import annotations

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    """Models without migrations: ``migrate --run-syncdb`` creates their tables."""

    name = "bench.benchapp"
    label = "benchapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the hand-written receiver and register its task."""
        import os

        from bench.benchapp import handwritten  # noqa: F401

        # The pipeline benchmark's fan-out sides: a worker whose dispatch task
        # runs none (as before issue 13) or all of a save's analyses itself.
        share = os.environ.get("DCA_BENCH_RUN_IN_TASK")
        if share is not None:
            from django_cloudinary_analysis import tasks

            tasks.RUN_IN_TASK = int(share)
        if os.environ.get("DCA_BENCH_OVERLAP"):
            from bench.benchapp import overlap

            overlap.install()
