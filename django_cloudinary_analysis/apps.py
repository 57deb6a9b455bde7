from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CloudinaryAnalysisConfig(AppConfig):
    """Register system checks and connect the save/delete and write-back receivers."""

    name = "django_cloudinary_analysis"
    label = "cloudinary_analysis"
    verbose_name = _("Cloudinary analysis")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_cloudinary_analysis import checks, receivers, writeback

        checks.register()
        receivers.connect()
        writeback.connect()
