"""A model configured with an unknown analysis type and too many extras."""

from __future__ import annotations

from django.db import models

from django_cloudinary_analysis.mixins import AnalyzedMedia

#: One more rejection question than the API's ten-item limit.
TOO_MANY_QUESTIONS = [f"Does the image show thing {n}?" for n in range(11)]


class BadConfigPhoto(AnalyzedMedia):
    """Names a type that does not exist and sends eleven questions."""

    image = models.ImageField(upload_to="bad/")

    class AnalysisMeta:
        fields = ["image"]
        analyses = [
            "google_taging",
            ("ai_vision_moderation", {"rejection_questions": TOO_MANY_QUESTIONS}),
        ]

    class Meta:
        app_label = "badapp"
