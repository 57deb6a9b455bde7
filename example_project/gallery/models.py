"""Models of the example: one image field, and two with their own analyses."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from taggit.managers import TaggableManager

from django_cloudinary_analysis.mixins import AnalyzedMedia


class Photo(AnalyzedMedia):
    """A photo analysed on upload with every analysis in ``AnalysisMeta``."""

    title = models.CharField(_("title"), max_length=200)
    image = models.ImageField(_("image"), upload_to="photos/")
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    alt_text = models.CharField(_("alt text"), max_length=200, blank=True)
    tags = TaggableManager(blank=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("photo")
        verbose_name_plural = _("photos")

    class AnalysisMeta:
        fields = ["image"]
        # The first four run offline (google_tagging with the example's
        # ImageNet model); captioning needs Cloudinary, so the local backend
        # marks it skipped ("not available offline").
        analyses = [
            "image_quality",
            "ai_vision_moderation",
            "cld_text",
            "google_tagging",
            "captioning",
        ]
        # Write-back: the caption becomes the alt text (offline there is no
        # caption; gallery/receivers.py fills it from the text read, marked as
        # such) and confident labels become taggit tags. A person's edits stay.
        alt_text_field = "alt_text"
        tags_field = "tags"

    def __str__(self) -> str:
        return self.title


PRODUCT_QUESTIONS = [
    "Does the image contain nudity or sexual content?",
    "Is a brand logo or trademark visible?",
]


class Product(AnalyzedMedia):
    """A product with two images, each with its own analyses."""

    name = models.CharField(_("name"), max_length=200)
    photo = models.ImageField(_("photo"), upload_to="products/")
    label_image = models.ImageField(
        _("label image"),
        upload_to="products/labels/",
        blank=True,
        help_text=_("A picture of the product's label; its text is read."),
    )

    class Meta:
        ordering = ["pk"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    class AnalysisMeta:
        fields = {
            "photo": [
                # The second question is one the offline model cannot answer:
                # it says "unknown", and the policy sends the product to a
                # person (with Cloudinary, the API answers it).
                (
                    "ai_vision_moderation",
                    {"rejection_questions": PRODUCT_QUESTIONS},
                ),
                "image_quality",
                "google_tagging",
            ],
            "label_image": ["cld_text", "image_quality"],
        }

    def __str__(self) -> str:
        return self.name
