"""Admin of the test app: ModelAdmins using the AnalyzedMediaAdmin mixin."""

from __future__ import annotations

from django.contrib import admin

from django_cloudinary_analysis.admin import AnalyzedMediaAdmin
from tests.models import Article, Photo, SlugPhoto, UUIDPhoto


@admin.register(Photo)
class PhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """Integer key: the site's own columns plus the mixin's."""

    list_display = (
        "title",
        "analysis_thumbnail",
        "moderation_badge",
        "top_tags",
    )
    search_fields = ("title",)


@admin.register(UUIDPhoto)
class UUIDPhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """UUID key, the mixin's default columns."""


@admin.register(SlugPhoto)
class SlugPhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """String key."""

    list_display = ("slug", "analysis_thumbnail", "moderation_badge", "top_tags")


@admin.register(Article)
class ArticleAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
    """Two image fields; a site action of its own beside the mixin's."""

    list_display = ("title", "analysis_thumbnail", "moderation_badge", "top_tags")
    actions = ("mark_untitled",)

    @admin.action(description="Clear the title")
    def mark_untitled(self, request, queryset):  # type: ignore[no-untyped-def]
        """A site's own action, kept beside the mixin's."""
        queryset.update(title="")
