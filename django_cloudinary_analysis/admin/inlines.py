"""Read-only inlines of an object's analyses, tags and verdicts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.db.models import QuerySet
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.admin.changelists import NoHandEdits
from django_cloudinary_analysis.admin.display import (
    FOLLOWS_RELATED,
    DecisionColumns,
    analysis_status_badge,
)
from django_cloudinary_analysis.models import Analysis, MediaTag, ModerationDecision

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest


class ReadOnlyGenericInline(NoHandEdits, GenericTabularInline):
    """A generic inline keyed on the app's text ``object_id``; view only."""

    ct_field = "content_type"
    ct_fk_field = "object_id"
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(  # type: ignore[override]
        self, request: HttpRequest, obj: Model | None
    ) -> bool:
        """Rows come from the pipeline."""
        return False


class AnalysisInline(ReadOnlyGenericInline):
    """The object's analyses, newest first."""

    model = Analysis
    fields = (
        "field_name",
        "analysis_type",
        "status_display",
        "backend",
        "attempts",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields
    show_change_link = True
    classes = ("collapse",)

    @admin.display(description=_("status"))
    def status_display(self, obj: Analysis) -> SafeString:
        """Status badge with the reason of a failure or skip."""
        return analysis_status_badge(obj)


class MediaTagInline(ReadOnlyGenericInline):
    """The object's tags, most confident first."""

    model = MediaTag
    fields = ("label", "name", "confidence", "analysis_type", "field_name")
    readonly_fields = fields
    classes = ("collapse",)


class ModerationDecisionInline(DecisionColumns, ReadOnlyGenericInline):
    """The object's verdict history, newest first."""

    model = ModerationDecision
    fields = (
        "verdict_display",
        "decided_by_kind",
        "decided_by",
        "reasons_display",
        "note",
        "decided_at",
    )
    readonly_fields = fields
    verbose_name_plural = _("verdict history")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Fetch the deciding users with the decisions."""
        return (
            super().get_queryset(request).select_related("decided_by", *FOLLOWS_RELATED)
        )
