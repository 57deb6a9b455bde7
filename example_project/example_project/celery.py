"""The example's Celery app: ``celery -A example_project worker -l info``.

Configuration comes from Django settings prefixed ``CELERY_``; without
``CELERY_BROKER_URL`` the settings run tasks in-process and no worker is needed.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Finds django_cloudinary_analysis.tasks (and any gallery/tasks.py).
app.autodiscover_tasks()
