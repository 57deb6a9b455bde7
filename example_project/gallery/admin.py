"""Admin registration of the gallery models."""

from __future__ import annotations

from django.contrib import admin

from gallery.models import Photo, Product


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    """Photos with their moderation status."""

    list_display = ["title", "image", "moderation_status", "uploaded_at"]
    list_filter = ["moderation_status"]
    search_fields = ["title"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    """Products with their moderation status."""

    list_display = ["name", "photo", "label_image", "moderation_status"]
    list_filter = ["moderation_status"]
    search_fields = ["name"]
