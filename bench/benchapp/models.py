"""Two models of the same shape, with and without the mixin."""

from __future__ import annotations

from django.db import models

from django_cloudinary_analysis.mixins import AnalyzedMedia


class MediaPhoto(AnalyzedMedia):
    """An image analysed on upload: tagging and moderation (two types)."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="bench/", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["google_tagging", "ai_vision_moderation"]

    def __str__(self) -> str:
        return self.title or f"photo {self.pk}"


class PlainPhoto(models.Model):
    """The same model without the mixin: what a site has before installing us."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="bench/", blank=True)

    def __str__(self) -> str:
        return self.title or f"photo {self.pk}"


class HandPhoto(models.Model):
    """What a team writes instead of installing the app (``handwritten.py``):
    the API's answer stored as JSON on the row."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="bench/", blank=True)
    analysis = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return self.title or f"photo {self.pk}"
