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
        from bench.benchapp import handwritten  # noqa: F401
