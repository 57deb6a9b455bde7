"""Admin for the accountability tables, and the audit export as admin actions.

``register()`` (called from the app's ``ready()``) registers appeals,
statements and notifications with the default admin site. The decision
admin gets the export through ``EXPORT_ACTIONS`` (add them to its
``actions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.accountability import export
from django_cloudinary_analysis.accountability.models import (
    Appeal,
    Notification,
    StatementOfReasons,
)

if TYPE_CHECKING:
    from django.http import HttpRequest
    from django.http.response import HttpResponseBase


@admin.action(description=_("Export selected decisions as CSV"))
def export_csv(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponseBase:
    """Stream the selected decisions as CSV."""
    return export.streaming_response(export.decisions(queryset=queryset), "csv")


@admin.action(description=_("Export selected decisions as JSON Lines"))
def export_jsonl(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponseBase:
    """Stream the selected decisions as JSON Lines."""
    return export.streaming_response(export.decisions(queryset=queryset), "jsonl")


#: For the decision admin's ``actions``.
EXPORT_ACTIONS = (export_csv, export_jsonl)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the app, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows come from decisions and appeals."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are evidence: read only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are evidence: kept."""
        return False


class AppealAdmin(ReadOnlyAdmin):
    """Appeals with their outcomes; open ones first in the filter."""

    list_display = (
        "__str__",
        "content_type",
        "object_id",
        "appellant",
        "status",
        "created_at",
        "closed_at",
    )
    list_filter = ("status", "content_type", "created_at")
    list_select_related = ("content_type", "appellant")
    search_fields = ("object_id", "note")
    date_hierarchy = "created_at"


class StatementAdmin(ReadOnlyAdmin):
    """Statements of reasons as stored."""

    list_display = ("__str__", "owner", "automated", "appealable", "created_at")
    list_filter = ("automated", "appealable")
    list_select_related = ("owner",)


class NotificationAdmin(ReadOnlyAdmin):
    """Emails to uploaders, failures visible with their reason."""

    list_display = (
        "__str__",
        "kind",
        "email",
        "status",
        "attempts",
        "error",
        "sent_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("email",)


def register(site: admin.AdminSite | None = None) -> None:
    """Register the accountability admins (once)."""
    site = site or admin.site
    for model, model_admin in (
        (Appeal, AppealAdmin),
        (StatementOfReasons, StatementAdmin),
        (Notification, NotificationAdmin),
    ):
        if not site.is_registered(model):
            site.register(model, model_admin)
