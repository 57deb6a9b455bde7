"""Admin for analyses, tags and verdicts, the review queue, and a ModelAdmin mixin.

Everything the pipeline stores is read-only here: results are never edited
by hand. Changes go through :mod:`django_cloudinary_analysis.services`
(re-run, approve, reject, release). Changelists load what their columns need
for the whole page at once (objects, tags, verdict history), so they run a
constant number of queries whatever the page size.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.contenttypes.admin import GenericTabularInline
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    Case,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.timezone import localtime
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis import services
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.mixins import analysis_config, content_type_for
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.sources import is_cloudinary_resource

if TYPE_CHECKING:
    from django.contrib.admin.sites import AdminSite
    from django.db.models import Model

logger = logging.getLogger(__name__)

REVIEW_PERMISSION = "cloudinary_analysis.review_media"
REANALYZE_PERMISSION = "cloudinary_analysis.reanalyze_media"

#: The query-string parameter that switches the decision list between the
#: review queue (current verdicts) and the full history.
VIEW_PARAM = "view"
VIEW_HISTORY = "history"

CSS = "cloudinary_analysis/admin.css"
EMPTY = "–"

ObjectKey = tuple[int, str]


# -- rendering helpers --------------------------------------------------------


def verdict_badge_label(status: str) -> str:
    """The translated name of a verdict (the raw value if unknown)."""
    try:
        return str(ModerationStatus(status).label)
    except ValueError:
        return status


def source_label(source: str) -> str:
    """The translated name of a decision's source (the raw value if unknown)."""
    try:
        return str(ModerationDecision.Source(source).label)
    except ValueError:
        return source


def acting_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The user a decision is recorded for."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) else None


def verdict_badge(status: str) -> SafeString:
    """A coloured badge for a moderation verdict."""
    try:
        label = ModerationStatus(status).label
    except ValueError:
        return format_html('<span class="dca-badge">{}</span>', status or EMPTY)
    return format_html('<span class="dca-badge dca-badge--{}">{}</span>', status, label)


def analysis_status_badge(analysis: Analysis, *, reason_chars: int = 120) -> SafeString:
    """A coloured badge for an analysis status, followed by the reason if any."""
    try:
        label = AnalysisStatus(analysis.status).label
        css = analysis.status
    except ValueError:
        label, css = analysis.status, "unknown"
    badge = format_html('<span class="dca-badge dca-badge--{}">{}</span>', css, label)
    if not analysis.error_message:
        return badge
    return format_html(
        '{} <span class="dca-reason" title="{}">{}</span>',
        badge,
        analysis.error_message,
        Truncator(analysis.error_message).chars(reason_chars),
    )


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in an escaped ``<pre>`` block."""
    if value is None:
        return format_html("{}", EMPTY)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="dca-json">{}</pre>', text)


def describe_reason(reason: Any) -> str:
    """One line of plain text for one entry of a decision's ``reasons``."""
    if not isinstance(reason, dict):
        return str(reason)
    rule = reason.get("rule")
    where = reason.get("field") or ""
    question = {"question": reason.get("question", "?")}
    if rule == "question_yes":
        text = gettext("answered yes: %(question)s") % question
    elif rule == "question_unknown":
        text = gettext("unsure: %(question)s") % question
    elif rule == "label":
        confidence = reason.get("confidence")
        text = gettext("label %(label)s") % {"label": reason.get("label", "?")}
        if confidence is not None:
            text += f" ({float(confidence):.2f})"
    elif rule == "analysis_not_succeeded":
        text = gettext("%(type)s %(status)s: %(reason)s") % {
            "type": reason.get("type", "?"),
            "status": reason.get("status", "?"),
            "reason": reason.get("reason") or gettext("no reason given"),
        }
    elif rule == "content_changed":
        text = gettext("new content in %(fields)s") % {
            "fields": ", ".join(map(str, reason.get("fields") or [])) or "?"
        }
        where = ""
    elif rule == "human":
        text = gettext("decided by a person")
    elif rule == "released":
        text = gettext("released to the automatic policy")
    elif rule == "all_clear":
        text = gettext("every moderation check passed")
    elif rule == "no_moderation_analyses":
        text = gettext("no moderation analysis configured")
    else:
        extras = ", ".join(
            f"{key}={value}" for key, value in reason.items() if key != "rule"
        )
        text = f"{rule}: {extras}" if extras else str(rule)
    return f"{text} ({where})" if where else text


def reasons_html(reasons: Any, limit: int | None = None) -> SafeString:
    """A decision's reasons as an escaped list."""
    items = list(reasons) if isinstance(reasons, (list, tuple)) else [reasons]
    items = [r for r in items if r]
    if not items:
        return format_html("{}", EMPTY)
    shown = items if limit is None else items[:limit]
    lines = [(describe_reason(r),) for r in shown]
    if len(items) > len(shown):
        more = len(items) - len(shown)
        lines.append((ngettext("and %d more", "and %d more", more) % more,))
    return format_html(
        '<ul class="dca-reasons">{}</ul>', format_html_join("", "<li>{}</li>", lines)
    )


def thumbnail_url(obj: Model, size: int = 64) -> str | None:
    """The URL of the first configured image field that holds a file."""
    for name in analysis_config(type(obj)):
        value = getattr(obj, name, None)
        if not value:
            continue
        if is_cloudinary_resource(value):
            try:
                return str(
                    value.build_url(
                        secure=True, width=size * 2, height=size * 2, crop="fill"
                    )
                )
            except Exception:  # noqa: S112 - a broken asset has no thumbnail
                continue
        try:
            return str(value.url)
        except Exception:  # noqa: S112 - storages raise anything from url()
            continue
    return None


def thumbnail_html(obj: Model | None, size: int = 64) -> SafeString:
    """A lazy ``<img>`` of the object's first image, or a dash."""
    url = thumbnail_url(obj, size) if obj is not None else None
    if not url:
        return format_html("{}", EMPTY)
    return format_html(
        '<img class="dca-thumb" src="{}" alt="" loading="lazy" width="{}" height="{}">',
        url,
        size,
        size,
    )


def tags_html(tags: Sequence[tuple[str, float | None]]) -> SafeString:
    """Tag chips with their confidence."""
    if not tags:
        return format_html("{}", EMPTY)
    return format_html_join(
        " ",
        '<span class="dca-tag" title="{}">{}</span>',
        (
            (f"{confidence:.2f}" if confidence is not None else "", label)
            for label, confidence in tags
        ),
    )


# -- bulk loading -------------------------------------------------------------


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


def admin_change_url(
    admin_site: AdminSite, request: HttpRequest, obj: Model
) -> str | None:
    """The object's change page on ``admin_site``, if the user may open it."""
    model_admin = admin_site._registry.get(type(obj))
    # Model-level, as Django's own changelist links: object-level checks
    # could query once per row.
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return None
    opts = obj._meta
    try:
        return reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[quote(obj.pk)],
        )
    except NoReverseMatch:
        return None


def object_link(obj: Any) -> SafeString:
    """Link a changelist row's object (loaded by ``decorate_results``)."""
    target = getattr(obj, "_dca_object", None)
    if target is None:
        return format_html(
            '{} <span class="dca-muted">#{} {}</span>',
            obj.content_type,
            obj.object_id,
            gettext("(deleted)"),
        )
    url = getattr(obj, "_dca_object_url", None)
    if url:
        return format_html('<a href="{}">{}</a>', url, target)
    return format_html("{}", target)


class DecoratedChangeList(ChangeList):
    """A ChangeList that lets its ModelAdmin load data for the whole page."""

    def get_results(self, request: HttpRequest) -> None:
        """Fetch the page, then hand its rows to ``decorate_results``."""
        super().get_results(request)
        model_admin: Any = self.model_admin
        # list() fills the queryset's cache: the template iterates the same rows.
        model_admin.decorate_results(request, list(self.result_list))


class DecoratedResultsMixin:
    """Attach the generic objects of a page of rows in one query per model."""

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


class _NoHandEdits:
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


class ReadOnlyAdmin(_NoHandEdits, admin.ModelAdmin):
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

    @property
    def media(self) -> forms.Media:
        """The admin's media plus the badge and thumbnail styles."""
        return super().media + forms.Media(css={"all": [CSS]})


# -- forms ----------------------------------------------------------------------


class NoteForm(forms.Form):
    """The note a reviewer leaves with a decision."""

    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Stored with the decision and shown in the verdict history."),
    )


class ReviewForm(NoteForm):
    """Approve, reject or release one object."""

    APPROVE = "approve"
    REJECT = "reject"
    RELEASE = "release"

    verdict = forms.ChoiceField(
        choices=[
            (APPROVE, _("Approve")),
            (REJECT, _("Reject")),
            (RELEASE, _("Let the policy decide")),
        ],
        widget=forms.HiddenInput,
    )


class ReanalyzeForm(forms.Form):
    """Which configured analyses to run again, and whether to force them."""

    types = forms.MultipleChoiceField(
        label=_("Analyses"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The analyses configured for this model."),
    )
    force = forms.BooleanField(
        label=_("Force"),
        required=False,
        help_text=_(
            "Run again even when an analysis already succeeded for the current "
            "file, and do not reuse an earlier result for the same content."
        ),
    )

    def __init__(
        self, *args: Any, type_choices: Sequence[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = list(type_choices)
        field.initial = [value for value, _label in type_choices]


def type_choices(model: type[Model]) -> list[tuple[str, str]]:
    """The analysis types configured for ``model``, labelled with their fields."""
    fields_by_type: dict[str, list[str]] = {}
    for field_name, specs in analysis_config(model).items():
        for spec in specs:
            fields_by_type.setdefault(spec.type, [])
            if field_name not in fields_by_type[spec.type]:
                fields_by_type[spec.type].append(field_name)
    return [
        (name, f"{name} ({', '.join(fields)})")
        for name, fields in fields_by_type.items()
    ]


# -- action helpers shared by the app's admins and the mixin -------------------


def _confirmation_context(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    title: str,
    objects: Sequence[Model],
    form: forms.Form,
) -> dict[str, Any]:
    opts = model_admin.model._meta
    changelist_url = reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
    )
    preserved = model_admin.get_preserved_filters(request)
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected_pks": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "objects": objects,
        "form": form,
        "media": model_admin.media + form.media,
        "cancel_url": add_preserved_filters(
            {"preserved_filters": preserved, "opts": opts}, changelist_url
        ),
    }


def decide_objects(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Model],
    verdict: str,
    note: str = "",
) -> int:
    """Approve or reject each object through services; report the counts."""
    decide: Callable[..., Any] = (
        services.approve if verdict == ReviewForm.APPROVE else services.reject
    )
    done = 0
    for obj in objects:
        try:
            decide(obj, user=acting_user(request), note=note)
        except AnalysisError as exc:
            logger.warning(
                "admin %s of %r failed: %s",
                verdict,
                obj,
                exc,
                extra={"object_id": str(obj.pk)},
            )
            model_admin.message_user(
                request,
                gettext("%(object)s could not be updated: %(error)s")
                % {"object": obj, "error": exc},
                messages.ERROR,
            )
        else:
            done += 1
    if verdict == ReviewForm.APPROVE:
        text = ngettext(
            "Approved %(count)d object.", "Approved %(count)d objects.", done
        )
    else:
        text = ngettext(
            "Rejected %(count)d object.", "Rejected %(count)d objects.", done
        )
    model_admin.message_user(
        request, text % {"count": done}, messages.SUCCESS if done else messages.WARNING
    )
    return done


def reject_with_note(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    objects: Sequence[Model],
    action: str,
) -> TemplateResponse | None:
    """Ask for a note on an intermediate page, then reject the objects."""
    if request.POST.get("post"):
        form = NoteForm(request.POST)
        if form.is_valid():
            decide_objects(
                model_admin,
                request,
                objects,
                ReviewForm.REJECT,
                form.cleaned_data["note"],
            )
            return None
    else:
        form = NoteForm()
    context = _confirmation_context(
        model_admin,
        request,
        queryset,
        action=action,
        title=gettext("Reject media"),
        objects=objects,
        form=form,
    )
    return TemplateResponse(
        request, "admin/cloudinary_analysis/reject_confirmation.html", context
    )


# -- the app's models -----------------------------------------------------------


@admin.register(Analysis)
class AnalysisAdmin(DecoratedResultsMixin, ReadOnlyAdmin):
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

    def has_reanalyze_permission(self, request: HttpRequest) -> bool:
        """Re-running costs API quota: it needs its own permission."""
        return request.user.has_perm(REANALYZE_PERMISSION)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Analysis | None:
        """Load the analysis with its object, for the detail page."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.decorate_results(request, [obj])
        return obj

    @admin.display(description=_("object"), ordering="object_id")
    def object_display(self, obj: Analysis) -> SafeString:
        """The analysed object, linked to its change page."""
        return object_link(obj)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Analysis) -> SafeString:
        """Status badge with the reason of a failure or skip."""
        return analysis_status_badge(obj)

    @admin.display(description=_("parameters"))
    def params_display(self, obj: Analysis) -> SafeString:
        """The extras sent, as JSON."""
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
        if obj.reused_from_id is None:
            return format_html("{}", EMPTY)
        url = reverse(
            f"{self.admin_site.name}:cloudinary_analysis_analysis_change",
            args=[obj.reused_from_id],
        )
        return format_html('<a href="{}">#{}</a>', url, obj.reused_from_id)

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
        queued = missing = unconfigured = failed = 0
        for ct_id, oid, field_name, analysis_type in sorted(wanted):
            obj = objects.get((ct_id, oid))
            if obj is None:
                missing += 1
                continue
            try:
                created = services.schedule(
                    obj, types=[analysis_type], fields=[field_name], force=True
                )
            except AnalysisError as exc:
                failed += 1
                self.message_user(
                    request,
                    gettext("%(object)s could not be re-analysed: %(error)s")
                    % {"object": obj, "error": exc},
                    messages.ERROR,
                )
                continue
            if created:
                queued += len(created)
            else:
                unconfigured += 1
        self.message_user(
            request,
            ngettext("Queued %(count)d analysis.", "Queued %(count)d analyses.", queued)
            % {"count": queued},
            messages.SUCCESS if queued else messages.WARNING,
        )
        if missing:
            self.message_user(
                request,
                ngettext(
                    "%(count)d analysis belongs to a deleted object and was skipped.",
                    "%(count)d analyses belong to deleted objects and were skipped.",
                    missing,
                )
                % {"count": missing},
                messages.WARNING,
            )
        if unconfigured:
            self.message_user(
                request,
                ngettext(
                    "%(count)d analysis was not queued: its type is no longer "
                    "configured for the field, or the field holds no file.",
                    "%(count)d analyses were not queued: their type is no longer "
                    "configured for the field, or the field holds no file.",
                    unconfigured,
                )
                % {"count": unconfigured},
                messages.WARNING,
            )


@admin.register(MediaTag)
class MediaTagAdmin(DecoratedResultsMixin, ReadOnlyAdmin):
    """Normalised tags, read-only."""

    list_display = (
        "name",
        "label",
        "confidence_display",
        "source",
        "object_display",
        "field_name",
        "analysis_display",
    )
    list_filter = ("source", ("content_type", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "label")
    search_help_text = _("Tag name or label.")
    list_select_related = ("content_type",)
    fields = (
        "name",
        "label",
        "confidence",
        "source",
        "object_display",
        "content_type",
        "object_id",
        "field_name",
        "analysis_display",
        "box_display",
    )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> MediaTag | None:
        """Load the tag with its object, for the detail page."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.decorate_results(request, [obj])
        return obj

    @admin.display(description=_("confidence"), ordering="confidence")
    def confidence_display(self, obj: MediaTag) -> str:
        """The confidence with two decimals."""
        return EMPTY if obj.confidence is None else f"{obj.confidence:.2f}"

    @admin.display(description=_("object"), ordering="object_id")
    def object_display(self, obj: MediaTag) -> SafeString:
        """The tagged object, linked to its change page."""
        return object_link(obj)

    @admin.display(description=_("analysis"), ordering="analysis")
    def analysis_display(self, obj: MediaTag) -> SafeString:
        """Link the analysis that found the tag."""
        url = reverse(
            f"{self.admin_site.name}:cloudinary_analysis_analysis_change",
            args=[obj.analysis_id],
        )
        return format_html('<a href="{}">#{}</a>', url, obj.analysis_id)

    @admin.display(description=_("bounding box"))
    def box_display(self, obj: MediaTag) -> SafeString:
        """The bounding box, as JSON."""
        return pretty_json(obj.box)


#: Open verdicts first: "needs review", then "pending", then the decided ones.
QUEUE_RANK = Case(
    When(status=ModerationStatus.REVIEW, then=Value(0)),
    When(status=ModerationStatus.PENDING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


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
        newer = ModerationDecision.objects.filter(
            content_type=OuterRef("content_type"), object_id=OuterRef("object_id")
        ).filter(
            Q(decided_at__gt=OuterRef("decided_at"))
            | Q(decided_at=OuterRef("decided_at"), pk__gt=OuterRef("pk"))
        )
        return queryset.filter(~Exists(newer))


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(DecoratedResultsMixin, ReadOnlyAdmin):
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
        "decided_at",
    )
    list_display_links = ("decided_at",)
    list_filter = (
        QueueViewFilter,
        "status",
        "source",
        ("content_type", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=object_id", "note")
    search_help_text = _("Object id or note.")
    list_select_related = ("content_type", "decided_by")
    actions = ("approve_selected", "reject_selected")
    fields = (
        "object_display",
        "content_type",
        "object_id",
        "verdict_display",
        "previous_status",
        "source",
        "decided_by",
        "reasons_display",
        "note",
        "decided_at",
        "review_display",
        "reasons_json",
    )
    thumbnail_size = 64
    history_limit = 6

    def has_review_permission(self, request: HttpRequest) -> bool:
        """Approving and rejecting needs its own permission."""
        return request.user.has_perm(REVIEW_PERMISSION)

    def get_ordering(self, request: HttpRequest) -> tuple[Any, ...]:
        """The queue puts open verdicts first; the history is newest first."""
        if request.GET.get(VIEW_PARAM) == VIEW_HISTORY:
            return ("-decided_at", "-pk")
        return (QUEUE_RANK.asc(), "-decided_at", "-pk")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Title the list after the view it shows."""
        history = request.GET.get(VIEW_PARAM) == VIEW_HISTORY
        extra_context = {
            "title": _("Moderation history") if history else _("Review queue"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[Any]:
        """Add the per-object review page in front of the default URLs."""
        opts = self.model._meta
        return [
            path(
                "review/<int:content_type_id>/<path:object_id>/",
                self.admin_site.admin_view(self.review_view),
                name=f"{opts.app_label}_{opts.model_name}_review",
            ),
            *super().get_urls(),
        ]

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> ModerationDecision | None:
        """Load the decision with its object, for the detail page."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            self.decorate_results(request, [obj])
        return obj

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
                    "content_type_id", "object_id", "status", "source", "decided_at"
                )
            )
            for ct_id, oid, status, source, decided_at in decisions:
                history[(ct_id, oid)].append((status, source, decided_at))
        preserved = self.get_preserved_filters(request)
        for row in rows:
            row._dca_history = history.get((row.content_type_id, row.object_id), [])
            row._dca_preserved_filters = preserved

    # -- columns --

    @admin.display(description=_("image"))
    def thumbnail_display(self, obj: ModerationDecision) -> SafeString:
        """The object's first image."""
        return thumbnail_html(getattr(obj, "_dca_object", None), self.thumbnail_size)

    @admin.display(description=_("object"), ordering="object_id")
    def object_display(self, obj: ModerationDecision) -> SafeString:
        """The moderated object, linked to its change page."""
        return object_link(obj)

    @admin.display(description=_("object"), ordering="object_id")
    def queue_object_display(self, obj: ModerationDecision) -> SafeString:
        """The moderated object, linked, with its content type."""
        return format_html(
            '{}<br><span class="dca-muted">{}</span>',
            object_link(obj),
            obj.content_type,
        )

    @admin.display(description=_("decided by"), ordering="source")
    def decider_display(self, obj: ModerationDecision) -> str:
        """Who decided: the policy, a content change, or a person (named)."""
        if obj.decided_by is None:
            return source_label(obj.source)
        return f"{source_label(obj.source)} · {obj.decided_by}"

    @admin.display(description=_("verdict"), ordering=QUEUE_RANK)
    def verdict_display(self, obj: ModerationDecision) -> SafeString:
        """The verdict as a coloured badge."""
        return verdict_badge(obj.status)

    @admin.display(description=_("reasons"))
    def reasons_display(self, obj: ModerationDecision) -> SafeString:
        """Why the verdict was reached."""
        return reasons_html(obj.reasons, limit=3)

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
                    source_label(source),
                    date_format(localtime(decided_at), "SHORT_DATETIME_FORMAT"),
                    verdict_badge(status),
                )
                for status, source, decided_at in shown
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

    def _objects_of(self, queryset: QuerySet) -> list[Model]:
        keys = set(queryset.order_by().values_list("content_type_id", "object_id"))
        objects = load_objects(keys)
        return [objects[key] for key in sorted(keys) if key in objects]

    @admin.action(description=_("Approve the selected objects"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Approve the objects of the selected decisions."""
        decide_objects(self, request, self._objects_of(queryset), ReviewForm.APPROVE)

    @admin.action(description=_("Reject the selected objects…"), permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Ask for a note, then reject the objects of the selected decisions."""
        return reject_with_note(
            self, request, queryset, self._objects_of(queryset), "reject_selected"
        )

    # -- the review page --

    def review_view(
        self, request: HttpRequest, content_type_id: int, object_id: str
    ) -> HttpResponse:
        """Show one object's image, reasons, analyses and history; decide."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            content_type = ContentType.objects.get_for_id(content_type_id)
        except ContentType.DoesNotExist:
            raise Http404(gettext("No such content type.")) from None
        object_id = unquote(object_id)
        model = content_type.model_class()
        if model is None or "moderation_status" not in {
            f.name for f in model._meta.concrete_fields
        }:
            raise Http404(gettext("This kind of object is not moderated."))
        obj = load_objects([(content_type.pk, object_id)]).get(
            (content_type.pk, object_id)
        )
        if obj is None:
            raise Http404(gettext("The object no longer exists."))
        can_review = self.has_review_permission(request)
        opts = self.model._meta
        preserved = self.get_preserved_filters(request)
        changelist_url = add_preserved_filters(
            {"preserved_filters": preserved, "opts": opts},
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
            ),
        )
        if request.method == "POST":
            if not can_review:
                raise PermissionDenied
            form = ReviewForm(request.POST)
            if form.is_valid():
                self._apply_review(request, obj, form.cleaned_data)
                return HttpResponseRedirect(changelist_url)
        else:
            form = ReviewForm()

        history = list(
            ModerationDecision.objects.filter(
                content_type=content_type, object_id=object_id
            ).select_related("decided_by")
        )
        analyses = services.current_analyses(obj)
        tags = list(
            MediaTag.objects.filter(
                content_type=content_type, object_id=object_id
            ).values_list("label", "confidence")[:30]
        )
        current = history[0] if history else None
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Review %(object)s") % {"object": obj},
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "object": obj,
            "object_url": admin_change_url(self.admin_site, request, obj),
            "content_type": content_type,
            "thumbnail": thumbnail_html(obj, 240),
            "verdict": verdict_badge(
                current.status
                if current
                else str(getattr(obj, "moderation_status", ""))
            ),
            "current": current,
            "current_reasons": reasons_html(current.reasons if current else []),
            "pinned": bool(current and current.pins_verdict),
            "history": [
                {
                    "decision": d,
                    "badge": verdict_badge(d.status),
                    "reasons": reasons_html(d.reasons),
                }
                for d in history
            ],
            "analyses": [
                {
                    "analysis": a,
                    "status": analysis_status_badge(a),
                    "url": self._analysis_url(request, a),
                }
                for a in analyses
            ],
            "tags": tags_html(tags),
            "form": form,
            "can_review": can_review,
            "changelist_url": changelist_url,
            "media": self.media,
            "verdicts": ReviewForm,
        }
        return TemplateResponse(
            request, "admin/cloudinary_analysis/review.html", context
        )

    def _analysis_url(self, request: HttpRequest, analysis: Analysis) -> str | None:
        model_admin = self.admin_site._registry.get(Analysis)
        if model_admin is None or not model_admin.has_view_permission(request):
            return None
        return reverse(
            f"{self.admin_site.name}:cloudinary_analysis_analysis_change",
            args=[analysis.pk],
        )

    def _apply_review(
        self, request: HttpRequest, obj: Model, data: dict[str, Any]
    ) -> None:
        verdict, note = data["verdict"], data["note"]
        user = acting_user(request)
        try:
            if verdict == ReviewForm.RELEASE:
                services.release(obj, user=user, note=note)
            elif verdict == ReviewForm.APPROVE:
                services.approve(obj, user=user, note=note)
            else:
                services.reject(obj, user=user, note=note)
        except AnalysisError as exc:
            self.message_user(
                request,
                gettext("%(object)s could not be updated: %(error)s")
                % {"object": obj, "error": exc},
                messages.ERROR,
            )
            return
        obj.refresh_from_db(fields=["moderation_status"])
        status = getattr(obj, "moderation_status", "")
        self.message_user(
            request,
            gettext("%(object)s is now %(verdict)s.")
            % {"object": obj, "verdict": verdict_badge_label(status)},
            messages.SUCCESS,
        )


# -- inlines for the site's change pages -----------------------------------------


class ReadOnlyGenericInline(_NoHandEdits, GenericTabularInline):
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
    fields = ("label", "name", "confidence", "source", "field_name")
    readonly_fields = fields
    classes = ("collapse",)


class ModerationDecisionInline(ReadOnlyGenericInline):
    """The object's verdict history, newest first."""

    model = ModerationDecision
    fields = (
        "verdict_display",
        "source",
        "decided_by",
        "reasons_display",
        "note",
        "decided_at",
    )
    readonly_fields = fields
    verbose_name_plural = _("verdict history")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Fetch the deciding users with the decisions."""
        return super().get_queryset(request).select_related("decided_by")

    @admin.display(description=_("verdict"))
    def verdict_display(self, obj: ModerationDecision) -> SafeString:
        """The verdict as a coloured badge."""
        return verdict_badge(obj.status)

    @admin.display(description=_("reasons"))
    def reasons_display(self, obj: ModerationDecision) -> SafeString:
        """Why the verdict was reached."""
        return reasons_html(obj.reasons)


# -- the mixin for sites' ModelAdmins ----------------------------------------------


class AnalyzedMediaAdmin:
    """Columns, a filter, inlines and actions for models using ``AnalyzedMedia``.

    Use it before ``ModelAdmin``::

        @admin.register(Photo)
        class PhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
            list_display = ["title", "analysis_thumbnail", "moderation_badge",
                            "top_tags"]

    It adds the actions (re-analyse, approve, reject), a ``moderation_status``
    list filter and read-only inlines of analyses, tags and verdicts; the
    columns are opt-in through ``list_display`` (the default shows them all).
    """

    list_display: Sequence[Any] = (
        "__str__",
        "analysis_thumbnail",
        "moderation_badge",
        "top_tags",
    )
    #: How many tags the ``top_tags`` column shows.
    top_tags_count = 5
    #: Width and height of the ``analysis_thumbnail`` column, in CSS pixels.
    thumbnail_size = 64
    #: The read-only inlines appended on the change page.
    analysis_inlines: Sequence[type[admin.options.InlineModelAdmin]] = (
        AnalysisInline,
        MediaTagInline,
        ModerationDecisionInline,
    )
    analysis_actions = ("reanalyze_selected", "approve_selected", "reject_selected")

    model: type[Model]
    admin_site: AdminSite
    actions: Sequence[Any] | None

    def __init__(self, model: type[Model], admin_site: AdminSite) -> None:
        super().__init__(model, admin_site)  # type: ignore[call-arg]
        # Add ours to the site's own actions; ``actions = None`` turns all off.
        if self.actions is not None:
            own = list(self.actions)
            self.actions = own + [a for a in self.analysis_actions if a not in own]

    @property
    def media(self) -> forms.Media:
        """The admin's media plus the badge and thumbnail styles."""
        return super().media + forms.Media(css={"all": [CSS]})  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        """The site's filters plus one on the moderation status."""
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        if "moderation_status" not in filters:
            filters.append("moderation_status")
        return filters

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list[Any]:
        """The site's inlines plus analyses, tags and verdicts on change pages."""
        inlines = list(super().get_inlines(request, obj))  # type: ignore[misc]
        if obj is not None:
            inlines.extend(i for i in self.analysis_inlines if i not in inlines)
        return inlines

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Use the ChangeList that loads each page's tags in one query."""
        return DecoratedChangeList

    def decorate_results(self, request: HttpRequest, rows: list[Any]) -> None:
        """Load the top tags of every object on the page in one query."""
        if not rows:
            return
        limit = self.top_tags_count
        # Rank per object in the database so a page never pulls every tag;
        # a little headroom covers names found by several analyses.
        ranked = (
            MediaTag.objects.filter(
                content_type=content_type_for(self.model),
                object_id__in=[str(row.pk) for row in rows],
            )
            .annotate(
                _rank=Window(
                    RowNumber(),
                    partition_by=[F("object_id")],
                    order_by=[F("confidence").desc(nulls_last=True), F("name").asc()],
                )
            )
            .filter(_rank__lte=limit * 3)
            .order_by("object_id", "_rank")
            .values_list("object_id", "name", "label", "confidence")
        )
        tops: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        seen: dict[str, set[str]] = defaultdict(set)
        for object_id, name, label, confidence in ranked:
            if name in seen[object_id] or len(tops[object_id]) >= limit:
                continue
            seen[object_id].add(name)
            tops[object_id].append((label, confidence))
        for row in rows:
            row._dca_top_tags = tops.get(str(row.pk), [])

    # -- permissions --

    def has_review_permission(self, request: HttpRequest) -> bool:
        """Approving and rejecting needs ``cloudinary_analysis.review_media``."""
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_reanalyze_permission(self, request: HttpRequest) -> bool:
        """Re-running needs ``cloudinary_analysis.reanalyze_media``."""
        return request.user.has_perm(REANALYZE_PERMISSION)

    # -- columns --

    @admin.display(description=_("image"))
    def analysis_thumbnail(self, obj: Model) -> SafeString:
        """The first configured image, lazily loaded."""
        return thumbnail_html(obj, self.thumbnail_size)

    @admin.display(description=_("verdict"), ordering="moderation_status")
    def moderation_badge(self, obj: Model) -> SafeString:
        """The moderation verdict as a coloured badge."""
        return verdict_badge(getattr(obj, "moderation_status", ""))

    @admin.display(description=_("top tags"))
    def top_tags(self, obj: Model) -> SafeString:
        """The most confident tags (loaded for the whole page at once)."""
        tags = getattr(obj, "_dca_top_tags", None)
        if tags is None:  # outside a changelist: one query for this object
            tags = list(
                MediaTag.objects.for_object(obj).values_list("label", "confidence")[
                    : self.top_tags_count
                ]
            )
        return tags_html(tags)

    # -- actions --

    @admin.action(
        description=_("Re-analyse the selected objects…"), permissions=["reanalyze"]
    )
    def reanalyze_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Pick analysis types and force on an intermediate page, then schedule."""
        choices = type_choices(self.model)
        if request.POST.get("post"):
            form = ReanalyzeForm(request.POST, type_choices=choices)
            if form.is_valid():
                self._reanalyze(
                    request,
                    queryset,
                    form.cleaned_data["types"],
                    form.cleaned_data["force"],
                )
                return None
        else:
            form = ReanalyzeForm(type_choices=choices)
        context = _confirmation_context(
            self,  # type: ignore[arg-type]
            request,
            queryset,
            action="reanalyze_selected",
            title=gettext("Re-analyse media"),
            objects=list(queryset),
            form=form,
        )
        return TemplateResponse(
            request, "admin/cloudinary_analysis/reanalyze_confirmation.html", context
        )

    def _reanalyze(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        types: list[str],
        force: bool,
    ) -> None:
        queued = objects = 0
        for obj in queryset:
            try:
                created = services.schedule(obj, types=types, force=force)
            except AnalysisError as exc:
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    gettext("%(object)s could not be re-analysed: %(error)s")
                    % {"object": obj, "error": exc},
                    messages.ERROR,
                )
                continue
            if created:
                queued += len(created)
                objects += 1
        if queued:
            text = ngettext(
                "Queued %(count)d analysis of %(objects)d object.",
                "Queued %(count)d analyses of %(objects)d objects.",
                queued,
            )
            self.message_user(  # type: ignore[attr-defined]
                request, text % {"count": queued, "objects": objects}, messages.SUCCESS
            )
        else:
            self.message_user(  # type: ignore[attr-defined]
                request,
                gettext(
                    "Nothing to re-run: the chosen analyses already succeeded for "
                    "the current files. Tick “Force” to run them again."
                ),
                messages.WARNING,
            )

    @admin.action(description=_("Approve the selected objects"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Approve each selected object by hand."""
        decide_objects(self, request, list(queryset), ReviewForm.APPROVE)  # type: ignore[arg-type]

    @admin.action(description=_("Reject the selected objects…"), permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Ask for a note on an intermediate page, then reject each object."""
        return reject_with_note(
            self,  # type: ignore[arg-type]
            request,
            queryset,
            list(queryset),
            "reject_selected",
        )
