from __future__ import annotations

from django.apps import AppConfig


class GalleryConfig(AppConfig):
    """The example gallery app."""

    name = "gallery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Fill offline alt text from OCR (see ``gallery.receivers``)."""
        from django_cloudinary_analysis.signals import analysis_finished
        from gallery import receivers

        analysis_finished.connect(
            receivers.alt_text_from_ocr, dispatch_uid="gallery.alt_text_from_ocr"
        )
