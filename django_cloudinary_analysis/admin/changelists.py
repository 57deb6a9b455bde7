"""Read-only changelists of analyses and tags, and the page-at-once loading.

Changelists load what their columns need for the whole page at once
(objects, tags, verdict history), so they run a constant number of queries
whatever the page size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.admin.actions import schedule_and_report
from django_cloudinary_analysis.admin.display import (
    EMPTY,
    MediaAdminBase,
    admin_change_url,
    analysis_status_badge,
    object_link,
    pretty_json,
    tags_html,
)
from django_cloudinary_analysis.models import Analysis, MediaTag

if TYPE_CHECKING:
    from django.contrib.admin.sites import AdminSite
    from django.db.models import Model
    from django.http import HttpRequest

ObjectKey = tuple[int, str]


def load_objects(keys: Iterable[ObjectKey]) -> dict[ObjectKey, Model]:
    """Load the objects behind (content type id, object id) pairs.

    One query per content type, whatever the number of objects; ids that do
    not fit the model's key and objects that no longer exist are left out.
    """
    wanted: dict[int, set[str]] = defaultdict(set)
    for ct_id, object_id in keys:
        wanted[ct_id].add(object_id)
    loaded: dict[ObjectKey, Model] = {}
    for ct_id, object_ids in wanted.items():
        model = ContentType.objects.get_for_id(ct_id).model_class()
        if model is None:
            continue
        pk_field = model._meta.pk
        assert pk_field is not None
        pks = []
        for object_id in object_ids:
            try:
                pks.append(pk_field.to_python(object_id))
            except ValidationError:
                continue
        if not pks:
            continue
        for obj in model._default_manager.filter(pk__in=pks):
            loaded[(ct_id, str(obj.pk))] = obj
    return loaded


class DecoratedChangeList(ChangeList):
    """A ChangeList that lets its ModelAdmin load data for the whole page."""

    def get_results(self, request: HttpRequest) -> None:
        """Fetch the page, then hand its rows to ``decorate_results``."""
        super().get_results(request)
        model_admin: Any = self.model_admin
        # list() fills the queryset's cache: the template iterates the same rows.
        model_admin.decorate_results(request, list(self.result_list))


class DecoratedResultsMixin:
    """Rows keyed by (content type, object id): load their objects per page."""

    admin_site: AdminSite

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Use the ChangeList that calls ``decorate_results``."""
        return DecoratedChangeList

    def decorate_results(self, request: HttpRequest, rows: list[Any]) -> None:
        """Load each row's object and the URL of its change page."""
        objects = load_objects((r.content_type_id, r.object_id) for r in rows)
        urls: dict[ObjectKey, str | None] = {}
        for key, obj in objects.items():
            urls[key] = admin_change_url(self.admin_site, request, obj)
        for row in rows:
            key = (row.content_type_id, row.object_id)
            row._dca_object = objects.get(key)
            row._dca_object_url = urls.get(key)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        """Load the row with its object, for the detail page."""
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is not None:
            self.decorate_results(request, [obj])
        return obj

    @admin.display(description=_("object"), ordering="object_id")
    def object_display(self, obj: Any) -> SafeString:
        """The row's object, linked to its change page."""
        return object_link(obj)


class NoHandEdits:
    """Results are written by the pipeline only: never changed or deleted."""

    def has_change_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        """Results are not edited by hand."""
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        """Deleting results would leave verdicts without their evidence."""
        return False


class ReadOnlyAdmin(
    DecoratedResultsMixin, MediaAdminBase, NoHandEdits, admin.ModelAdmin
):
    """Results are written by the pipeline only: no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows come from the pipeline."""
        return False

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> list[str]:
        """Every field shown is read-only."""
        if self.fieldsets:
            return flatten_fieldsets(self.fieldsets)
        return flatten_fieldsets([(None, {"fields": self.fields or ()})])


def analysis_link(admin_site: AdminSite, pk: int | None) -> SafeString:
    """Link one analysis's change page (a dash for none)."""
    if pk is None:
        return format_html("{}", EMPTY)
    url = reverse(f"{admin_site.name}:cloudinary_analysis_analysis_change", args=[pk])
    return format_html('<a href="{}">#{}</a>', url, pk)


@admin.register(Analysis)
class AnalysisAdmin(ReadOnlyAdmin):
    """Every analysis run, read-only, with an action to run some again."""

    list_display = (
        "analysis_type",
        "object_display",
        "field_name",
        "status_display",
        "backend",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = (
        "status",
        "analysis_type",
        "backend",
        ("content_type", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=object_id", "^request_id", "^remote_task_id")
    search_help_text = _("Object id, request id or remote task id.")
    list_select_related = ("content_type",)
    date_hierarchy = "created_at"
    actions = ("rerun_selected",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "object_display",
                    "content_type",
                    "object_id",
                    "field_name",
                    "file_name",
                    "analysis_type",
                    "params_display",
                    "status_display",
                    "error_code",
                )
            },
        ),
        (_("Result"), {"fields": ("result_display", "tags_display")}),
        (
            _("Run"),
            {
                "fields": (
                    "backend",
                    "attempts",
                    "request_id",
                    "remote_task_id",
                    "task_id",
                    "allow_reuse",
                    "content_key",
                    "reused_from_display",
                    "created_at",
                    "started_at",
                    "finished_at",
                )
            },
        ),
        (_("Raw response"), {"fields": ("raw_display",), "classes": ("collapse",)}),
    )

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Analysis) -> SafeString:
        """Status badge with the reason of a failure or skip."""
        return analysis_status_badge(obj)

    @admin.display(description=_("parameters"))
    def params_display(self, obj: Analysis) -> SafeString:
        """The params sent, as JSON."""
        return pretty_json(obj.params)

    @admin.display(description=_("result"))
    def result_display(self, obj: Analysis) -> SafeString:
        """The normalised result, as JSON."""
        return pretty_json(obj.result)

    @admin.display(description=_("raw response"))
    def raw_display(self, obj: Analysis) -> SafeString:
        """The API's response as received, as JSON."""
        return pretty_json(obj.raw)

    @admin.display(description=_("tags"))
    def tags_display(self, obj: Analysis) -> SafeString:
        """The tags this analysis produced."""
        return tags_html([(t.label, t.confidence) for t in obj.tags.all()])

    @admin.display(description=_("reused from"))
    def reused_from_display(self, obj: Analysis) -> SafeString:
        """Link the analysis whose result was copied."""
        return analysis_link(self.admin_site, obj.reused_from_id)

    @admin.action(
        description=_("Re-run the selected analyses (force)"),
        permissions=["reanalyze"],
    )
    def rerun_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Schedule each selected (object, field, type) again, forced."""
        wanted = set(
            queryset.order_by().values_list(
                "content_type_id", "object_id", "field_name", "analysis_type"
            )
        )
        objects = load_objects((ct_id, oid) for ct_id, oid, _f, _t in wanted)
        schedule_and_report(
            self,
            request,
            (
                (
                    objects.get((ct_id, oid)),
                    {"types": [analysis_type], "fields": [field_name], "force": True},
                )
                for ct_id, oid, field_name, analysis_type in sorted(wanted)
            ),
        )


@admin.register(MediaTag)
class MediaTagAdmin(ReadOnlyAdmin):
    """Normalised tags, read-only."""

    list_display = (
        "name",
        "label",
        "confidence_display",
        "analysis_type",
        "object_display",
        "field_name",
        "analysis_display",
    )
    list_filter = ("analysis_type", ("content_type", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "label")
    search_help_text = _("Tag name or label.")
    list_select_related = ("content_type",)
    fields = (
        "name",
        "label",
        "confidence",
        "analysis_type",
        "object_display",
        "content_type",
        "object_id",
        "field_name",
        "analysis_display",
        "box_display",
    )

    @admin.display(description=_("confidence"), ordering="confidence")
    def confidence_display(self, obj: MediaTag) -> str:
        """The confidence with two decimals."""
        return EMPTY if obj.confidence is None else f"{obj.confidence:.2f}"

    @admin.display(description=_("analysis"), ordering="analysis")
    def analysis_display(self, obj: MediaTag) -> SafeString:
        """Link the analysis that found the tag."""
        return analysis_link(self.admin_site, obj.analysis_id)

    @admin.display(description=_("bounding box"))
    def box_display(self, obj: MediaTag) -> SafeString:
        """The bounding box, as JSON."""
        return pretty_json(obj.box)
