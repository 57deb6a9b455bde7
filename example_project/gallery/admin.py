"""Admin registration of the gallery models, with the app's admin mixin."""

from __future__ import annotations

from django.contrib import admin

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
        "uploaded_at",
    ]
    search_fields = ["title"]


@admin.register(Product)
class ProductAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """Products: both images are analysed, each with its own list."""

    list_display = ["name", "analysis_thumbnail", "moderation_badge", "top_tags"]
    search_fields = ["name"]
