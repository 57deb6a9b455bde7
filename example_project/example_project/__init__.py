"""The example site; loads its Celery app so ``@shared_task`` binds to it."""

from __future__ import annotations

from example_project.celery import app as celery_app

__all__ = ["celery_app"]
