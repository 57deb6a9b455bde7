"""Admin for the Cloudinary sync state: read-only, with a retry action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.writeback.models import CloudinarySync, SyncStatus


@admin.register(CloudinarySync)
class CloudinarySyncAdmin(admin.ModelAdmin):
    """Every push to Cloudinary with its status and reason."""

    list_display = (
        "public_id",
        "kind",
        "status",
        "moderation_status",
        "attempts",
        "error_code",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("public_id", "object_id", "error_message")
    date_hierarchy = "created_at"
    actions = ["retry"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Every field: the state is written by the workers only."""
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Syncs are made by the app, never by hand."""
        return False

    @admin.action(description=_("Retry the selected failed syncs"))
    def retry(self, request: HttpRequest, queryset: QuerySet[CloudinarySync]) -> None:
        """Put failed syncs back in the queue."""
        from django_cloudinary_analysis.writeback.cloudinary_sync import enqueue

        ids = list(
            queryset.filter(status=SyncStatus.FAILED).values_list("pk", flat=True)
        )
        CloudinarySync.objects.filter(pk__in=ids).update(
            status=SyncStatus.PENDING, attempts=0, finished_at=None
        )
        for sync_id in ids:
            enqueue(sync_id)
        self.message_user(
            request, _("%(count)d sync(s) queued again.") % {"count": len(ids)}
        )
