"""The Celery app the integration tests' worker runs (``celery -A tests.celery_app``).

Configured from Django settings (``CELERY_*``) like a site's app, then from the
environment, so a worker subprocess started by ``tests.support.servers`` gets
its broker and leaves eager mode without touching ``tests/settings.py``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")

# The environment wins over tests/settings.py, which defaults to eager mode
# for the in-process unit tests; a worker must really consume from the broker.
if os.environ.get("CELERY_BROKER_URL"):
    app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
if os.environ.get("CELERY_RESULT_BACKEND"):
    app.conf.result_backend = os.environ["CELERY_RESULT_BACKEND"]
if "CELERY_TASK_ALWAYS_EAGER" in os.environ:
    app.conf.task_always_eager = os.environ["CELERY_TASK_ALWAYS_EAGER"] in (
        "1",
        "true",
        "True",
    )

# Finds django_cloudinary_analysis.tasks (and any other installed app's tasks
# module) lazily; an app without one is skipped, not an error.
app.autodiscover_tasks()


@app.task(name="tests.ping")
def ping(value: str = "pong") -> str:
    """Return ``value``: proves a worker consumes from the broker and replies."""
    return value


@app.task(name="tests.worker_pid")
def worker_pid() -> int:
    """Return the pid of the pool process that ran the task."""
    return os.getpid()
