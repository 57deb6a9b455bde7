"""Admin registration of the gallery models, with the app's admin mixin."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.admin import AnalyzedMediaAdmin
from gallery.models import Photo, Product


@admin.register(Photo)
class PhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """Photos with thumbnail, verdict, tags, the analyses inlines and actions."""

    list_display = [
        "title",
        "analysis_thumbnail",
        "moderation_badge",
        "top_tags",
        "alt_text",
        "taggit_tags",
        "uploaded_at",
    ]
    search_fields = ["title", "alt_text"]
    list_filter = ["tags"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Photo]:
        """Fetch the taggit tags of the page in one query."""
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description=_("tags (taggit)"))
    def taggit_tags(self, obj: Photo) -> str:
        """The photo's taggit tags: written back by the app, or by a person."""
        return ", ".join(sorted(tag.name for tag in obj.tags.all())) or "–"


@admin.register(Product)
class ProductAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """Products: both images are analysed, each with its own list."""

    list_display = ["name", "analysis_thumbnail", "moderation_badge", "top_tags"]
    search_fields = ["name"]
