"""Models of the test app: the mixin on integer, UUID and string keys."""

from __future__ import annotations

import uuid

from cloudinary.models import CloudinaryField
from django.db import models
from taggit.managers import TaggableManager

from django_cloudinary_analysis.mixins import AnalyzedMedia


class Photo(AnalyzedMedia):
    """The common case: one image field, integer key."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="photos/", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["google_tagging", "ai_vision_moderation", "image_quality"]

    def __str__(self) -> str:
        return self.title or f"photo {self.pk}"


class UUIDPhoto(AnalyzedMedia):
    """UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.ImageField(upload_to="uuid/", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["google_tagging", "ai_vision_moderation"]


class SlugPhoto(AnalyzedMedia):
    """String primary key."""

    slug = models.SlugField(primary_key=True, max_length=50)
    image = models.ImageField(upload_to="slug/", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["google_tagging", "ai_vision_moderation"]


class Article(AnalyzedMedia):
    """Two image fields with different analyses and extras."""

    title = models.CharField(max_length=100, blank=True)
    cover = models.ImageField(upload_to="covers/", blank=True)
    thumbnail = models.ImageField(upload_to="thumbs/", blank=True)

    class AnalysisMeta:
        fields = {
            "cover": [
                "ai_vision_moderation",
                (
                    "ai_vision_tagging",
                    {
                        "tag_definitions": [
                            {"name": "cat", "description": "Is there a cat?"}
                        ]
                    },
                ),
            ],
            "thumbnail": ["image_quality"],
        }


class PlainPhoto(models.Model):
    """The same shape without the mixin (benchmarks compare the two)."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="plain/", blank=True)

    def __str__(self) -> str:
        return self.title or f"plain photo {self.pk}"


class TaggedPhoto(AnalyzedMedia):
    """Write-back: caption to alt text, labels to django-taggit tags."""

    title = models.CharField(max_length=100, blank=True)
    image = models.ImageField(upload_to="tagged/", blank=True)
    alt_text = models.CharField(max_length=60, blank=True)
    tags = TaggableManager(blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["captioning", "google_tagging", "coco", "ai_vision_moderation"]
        alt_text_field = "alt_text"
        tags_field = "tags"

    def __str__(self) -> str:
        return self.title or f"tagged photo {self.pk}"


class CloudPhoto(AnalyzedMedia):
    """Write-back: an image stored on Cloudinary (pycloudinary's field)."""

    title = models.CharField(max_length=100, blank=True)
    image = CloudinaryField("image", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["google_tagging", "ai_vision_moderation"]

    def __str__(self) -> str:
        return self.title or f"cloud photo {self.pk}"


class OwnedPhoto(AnalyzedMedia):
    """An upload with an uploader (statements of reasons and appeals)."""

    owner = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL
    )
    image = models.ImageField(upload_to="owned/", blank=True)

    class AnalysisMeta:
        fields = ["image"]
        analyses = ["ai_vision_moderation"]
        owner_field = "owner"

    def __str__(self) -> str:
        return f"owned photo {self.pk}"
