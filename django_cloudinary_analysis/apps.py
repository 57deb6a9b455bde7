from __future__ import annotations

from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class CloudinaryAnalysisConfig(AppConfig):
    """Register system checks and connect the save/delete and write-back receivers."""

    name = "django_cloudinary_analysis"
    label = "cloudinary_analysis"
    verbose_name = _("Cloudinary analysis")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks, which services publish by name.
        from django_cloudinary_analysis import (
            checks,
            receivers,
            tasks,  # noqa: F401
            writeback,
        )

        checks.register()
        receivers.connect()
        writeback.connect()

        from django_cloudinary_analysis.accountability import receivers as account

        account.connect()
        if apps.is_installed("django.contrib.admin"):
            from django_cloudinary_analysis.accountability import admin

            admin.register()
