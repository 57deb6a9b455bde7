"""The review queue: current verdicts across every mixin model, and the history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.accountability.admin import EXPORT_ACTIONS
from django_cloudinary_analysis.accountability.appeals import annotate_queue
from django_cloudinary_analysis.admin.actions import (
    ReviewForm,
    decide_objects,
    reject_with_note,
)
from django_cloudinary_analysis.admin.changelists import (
    ObjectKey,
    ReadOnlyAdmin,
    load_objects,
)
from django_cloudinary_analysis.admin.display import (
    EMPTY,
    FOLLOWS_RELATED,
    QUEUE_RANK,
    DecisionColumns,
    decided_by_kind_label,
    is_sensitive,
    object_link,
    pretty_json,
    thumbnail_html,
    verdict_badge,
)
from django_cloudinary_analysis.admin.views import ReviewView
from django_cloudinary_analysis.admin.workspace import (
    BulkView,
    DecideView,
    UndoView,
    WorkspaceView,
)
from django_cloudinary_analysis.models import ModerationDecision
from django_cloudinary_analysis.moderation import short_key
from django_cloudinary_analysis.review import held_by

if TYPE_CHECKING:
    from django.db.models import Model

#: The query-string parameter that switches the decision list between the
#: review queue (current verdicts) and the full history.
VIEW_PARAM = "view"
VIEW_HISTORY = "history"


class QueueViewFilter(admin.SimpleListFilter):
    """Current verdicts (the review queue, the default) or the full history."""

    title = _("queue or history")
    parameter_name = VIEW_PARAM

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[Any, Any]]:
        """The two views."""
        return [
            (None, _("Review queue (current verdicts)")),
            (VIEW_HISTORY, _("Full history")),
        ]

    def choices(self, changelist: ChangeList) -> Iterator[Any]:
        """Offer the two views and no "All": the queue is the default."""
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup} if lookup else {},
                    [] if lookup else [self.parameter_name],
                ),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Keep only the newest decision per object, unless history is asked."""
        if self.value() == VIEW_HISTORY:
            return queryset
        return queryset.current()  # type: ignore[attr-defined,no-any-return]


class AppealFilter(admin.SimpleListFilter):
    """Rows waiting because the uploader appealed a rejection."""

    title = _("appeal")
    parameter_name = "appeal"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[Any, Any]]:
        """Appeals only, or everything but appeals."""
        return [("yes", _("Open appeals")), ("no", _("No appeal"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Filter on ``is_appeal`` (annotated by the admin's queryset)."""
        if self.value() in ("yes", "no"):
            return queryset.filter(is_appeal=self.value() == "yes")
        return queryset


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(DecisionColumns, ReadOnlyAdmin):
    """The review queue (one row per object, open ones first) and the history.

    Works across every model using ``AnalyzedMedia``: a row is the newest
    decision on an object; "Full history" shows every decision. Reviewers
    approve or reject from the list (bulk) or the per-object review page.
    """

    list_display = (
        "thumbnail_display",
        "queue_object_display",
        "verdict_display",
        "review_display",
        "reasons_display",
        "history_display",
        "decider_display",
        "claim_display",
        "decided_at",
    )
    list_display_links = ("decided_at",)
    list_filter = (
        QueueViewFilter,
        AppealFilter,
        "status",
        "decided_by_kind",
        ("content_type", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=object_id", "note")
    search_help_text = _("Object id or note.")
    list_select_related = ("content_type", "decided_by", *FOLLOWS_RELATED)
    actions = ("approve_selected", "reject_selected", *EXPORT_ACTIONS)
    fields = (
        "object_display",
        "content_type",
        "object_id",
        "verdict_display",
        "previous_status",
        "decided_by_kind",
        "decided_by",
        "reasons_display",
        "follows_display",
        "content_key_display",
        "note",
        "decided_at",
        "review_display",
        "reasons_json",
    )
    thumbnail_size = 64
    history_limit = 6
    reasons_limit = 3
    review_view_class = ReviewView

    def get_ordering(self, request: HttpRequest) -> tuple[Any, ...]:
        """The queue puts open verdicts first; the history is newest first."""
        if request.GET.get(VIEW_PARAM) == VIEW_HISTORY:
            return ("-decided_at", "-pk")
        return (QUEUE_RANK.asc(), "-decided_at", "-pk")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Mark the rows that are open appeals, in the same statement."""
        return annotate_queue(super().get_queryset(request))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Title the list after the view it shows; link the workspace and dashboard."""
        history = request.GET.get(VIEW_PARAM) == VIEW_HISTORY
        try:
            dashboard_url: str | None = reverse("cloudinary_analysis:dashboard")
        except NoReverseMatch:  # the site did not include the app's URLs
            dashboard_url = None
        extra_context = {
            "title": _("Moderation history") if history else _("Review queue"),
            "workspace_url": reverse(
                f"{self.admin_site.name}:cloudinary_analysis_moderationdecision_workspace"
            ),
            "dashboard_url": dashboard_url,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[Any]:
        """Add the per-object review page in front of the default URLs."""
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        view = self.review_view_class.as_view(model_admin=self)
        workspace: list[tuple[str, Any, str]] = [
            ("workspace/", WorkspaceView, "workspace"),
            ("workspace/decide/", DecideView, "workspace_decide"),
            ("workspace/undo/", UndoView, "workspace_undo"),
            ("workspace/bulk/", BulkView, "workspace_bulk"),
        ]
        return [
            path(
                "review/<int:content_type_id>/<path:object_id>/",
                self.admin_site.admin_view(view),
                name=f"{prefix}_review",
            ),
            *(
                path(
                    route,
                    self.admin_site.admin_view(cls.as_view(model_admin=self)),
                    name=f"{prefix}_{name}",
                )
                for route, cls, name in workspace
            ),
            *super().get_urls(),
        ]

    def changelist_url(self, request: HttpRequest) -> str:
        """The queue, with the filters the user came from."""
        opts = self.model._meta
        return add_preserved_filters(
            {"preserved_filters": self.get_preserved_filters(request), "opts": opts},
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
            ),
        )

    def decorate_results(self, request: HttpRequest, rows: list[Any]) -> None:
        """Load objects and every decision on them, in one query per model."""
        super().decorate_results(request, rows)
        by_ct: dict[int, set[str]] = defaultdict(set)
        for row in rows:
            by_ct[row.content_type_id].add(row.object_id)
        history: dict[ObjectKey, list[tuple[str, str, Any]]] = defaultdict(list)
        if by_ct:
            where = Q()
            for ct_id, object_ids in by_ct.items():
                where |= Q(content_type_id=ct_id, object_id__in=sorted(object_ids))
            decisions = (
                ModerationDecision.objects.filter(where)
                .order_by("decided_at", "pk")
                .values_list(
                    "content_type_id",
                    "object_id",
                    "status",
                    "decided_by_kind",
                    "decided_at",
                )
            )
            for ct_id, oid, status, kind, decided_at in decisions:
                history[(ct_id, oid)].append((status, kind, decided_at))
        preserved = self.get_preserved_filters(request)
        claims = held_by([(r.content_type_id, r.object_id) for r in rows])
        for row in rows:
            row._dca_claim = claims.get((row.content_type_id, row.object_id))
            row._dca_history = history.get((row.content_type_id, row.object_id), [])
            row._dca_preserved_filters = preserved

    # -- columns --

    @admin.display(description=_("image"))
    def thumbnail_display(self, obj: ModerationDecision) -> SafeString:
        """The object's first image."""
        return thumbnail_html(
            getattr(obj, "_dca_object", None),
            self.thumbnail_size,
            sensitive=is_sensitive(obj.status, obj.reasons),
        )

    @admin.display(description=_("verdict"), ordering=QUEUE_RANK)
    def verdict_display(self, obj: ModerationDecision) -> SafeString:
        """The verdict badge, and an "appeal" badge with the uploader's note."""
        badge = verdict_badge(obj.status)
        if not getattr(obj, "is_appeal", False):
            return badge
        return format_html(
            '{} <span class="dca-badge dca-badge--appeal" title="{}">{}</span>',
            badge,
            getattr(obj, "appeal_note", "") or "",
            gettext("appeal"),
        )

    @admin.display(description=_("object"), ordering="object_id")
    def queue_object_display(self, obj: ModerationDecision) -> SafeString:
        """The moderated object, linked, with its content type."""
        return format_html(
            '{}<br><span class="dca-muted">{}</span>',
            object_link(obj),
            obj.content_type,
        )

    @admin.display(description=_("decided by"), ordering="decided_by_kind")
    def decider_display(self, obj: ModerationDecision) -> str:
        """Who decided: the policy, a content change, or a person (named)."""
        if obj.decided_by is None:
            return decided_by_kind_label(obj.decided_by_kind)
        return f"{decided_by_kind_label(obj.decided_by_kind)} · {obj.decided_by}"

    @admin.display(description=_("being reviewed by"))
    def claim_display(self, obj: ModerationDecision) -> str:
        """Who holds the object in the review workspace, and until when."""
        claim = getattr(obj, "_dca_claim", None)
        if claim is None:
            return EMPTY
        return gettext("%(user)s until %(time)s") % {
            "user": claim.claimed_by,
            "time": date_format(localtime(claim.expires_at), "TIME_FORMAT"),
        }

    @admin.display(description=_("follows"))
    def follows_display(self, obj: ModerationDecision) -> SafeString:
        """The decision on identical content this one applies, linked."""
        origin = obj.follows
        if origin is None:
            return format_html("{}", EMPTY)
        return format_html(
            '<a href="{}">#{}</a> {} {}',
            self.review_url(origin.content_type_id, origin.object_id),
            origin.pk,
            verdict_badge(origin.status),
            origin.decided_by or "",
        )

    @admin.display(description=_("content key"))
    def content_key_display(self, obj: ModerationDecision) -> str:
        """The content the verdict was given on, shortened."""
        return short_key(obj.content_key) if obj.content_key else EMPTY

    @admin.display(description=_("reasons (JSON)"))
    def reasons_json(self, obj: ModerationDecision) -> SafeString:
        """The reasons as stored."""
        return pretty_json(obj.reasons)

    @admin.display(description=_("verdict history"))
    def history_display(self, obj: ModerationDecision) -> SafeString:
        """The object's verdicts, oldest first, with a link to all of them."""
        history = getattr(obj, "_dca_history", [])
        shown = history[-self.history_limit :]
        trail = format_html_join(
            format_html(' <span class="dca-muted">{}</span> ', "→"),
            '<span class="dca-history-item" title="{} · {}">{}</span>',
            (
                (
                    decided_by_kind_label(kind),
                    date_format(localtime(decided_at), "SHORT_DATETIME_FORMAT"),
                    verdict_badge(status),
                )
                for status, kind, decided_at in shown
            ),
        )
        changelist = reverse(
            f"{self.admin_site.name}:cloudinary_analysis_moderationdecision_changelist"
        )
        query = urlencode(
            {
                VIEW_PARAM: VIEW_HISTORY,
                "content_type__id__exact": obj.content_type_id,
                "object_id__exact": obj.object_id,
            }
        )
        url = f"{changelist}?{query}"
        more = "… " if len(history) > len(shown) else ""
        return format_html(
            '<span class="dca-history">{}{}</span><br><a href="{}">{}</a>',
            more,
            trail,
            url,
            ngettext("%d decision", "%d decisions", len(history)) % len(history),
        )

    @admin.display(description=_("review"))
    def review_display(self, obj: ModerationDecision) -> SafeString:
        """A button to the object's review page."""
        if getattr(obj, "_dca_object", None) is None:
            return format_html("{}", EMPTY)
        url = self.review_url(obj.content_type_id, obj.object_id)
        url = add_preserved_filters(
            {
                "preserved_filters": getattr(obj, "_dca_preserved_filters", ""),
                "opts": self.model._meta,
            },
            url,
        )
        return format_html(
            '<a class="button dca-review-button" href="{}">{}</a>',
            url,
            gettext("Review"),
        )

    def review_url(self, content_type_id: int, object_id: str) -> str:
        """The URL of one object's review page."""
        opts = self.model._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_review",
            args=[content_type_id, quote(object_id)],
        )

    # -- actions --

    def objects_of(self, queryset: QuerySet) -> list[Model]:
        """The objects behind the selected decisions, each once."""
        keys = set(queryset.order_by().values_list("content_type_id", "object_id"))
        objects = load_objects(keys)
        return [objects[key] for key in sorted(keys) if key in objects]

    @admin.action(description=_("Approve the selected objects"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Approve the objects of the selected decisions."""
        decide_objects(self, request, self.objects_of(queryset), ReviewForm.APPROVE)

    @admin.action(description=_("Reject the selected objects…"), permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Ask for a note, then reject the objects of the selected decisions."""
        return reject_with_note(
            self, request, queryset, self.objects_of(queryset), "reject_selected"
        )
