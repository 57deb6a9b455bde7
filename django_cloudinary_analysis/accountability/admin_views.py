"""Staff pages: the accountability dashboard and the audit export download.

Routed in the app's ``urls.py`` (``cloudinary_analysis:dashboard`` and
``cloudinary_analysis:export``); they use the admin's look and require staff.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.accountability import charts, dashboard, export
from django_cloudinary_analysis.mixins import AnalyzedMedia
from django_cloudinary_analysis.models import ModerationStatus

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from django.http.response import HttpResponseBase

EXPORT_PERMISSION = "cloudinary_analysis.view_moderationdecision"


def media_content_types() -> list[tuple[int, str]]:
    """(content type id, verbose name) of every model using the mixin."""
    models = [
        m
        for m in apps.get_models()
        if issubclass(m, AnalyzedMedia) and not m._meta.abstract
    ]
    types = ContentType.objects.get_for_models(*models)
    return sorted(
        ((types[m].pk, str(m._meta.verbose_name_plural).capitalize()) for m in models),
        key=lambda item: item[1],
    )


class PeriodForm(forms.Form):
    """Date range and model filter shared by the dashboard and the export."""

    since = forms.DateField(label=_("From"), required=False)
    until = forms.DateField(label=_("To"), required=False)
    model = forms.TypedChoiceField(
        label=_("Model"), required=False, coerce=int, empty_value=None
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", _("All models")), *media_content_types()]  # type: ignore[attr-defined]

    def filters(self) -> dashboard.Filters:
        """The period asked for; the last 30 days by default."""
        data = self.cleaned_data if self.is_valid() else {}
        until_day = data.get("until") or timezone.localdate()
        since_day = data.get("since") or until_day - timedelta(days=29)
        if since_day > until_day:
            since_day, until_day = until_day, since_day
        tz = timezone.get_current_timezone()
        return dashboard.Filters(
            since=timezone.make_aware(datetime.combine(since_day, time.min), tz),
            until=timezone.make_aware(datetime.combine(until_day, time.max), tz),
            content_type_id=data.get("model"),
        )


def _status_labels() -> dict[str, str]:
    return {s.value: str(s.label) for s in ModerationStatus.__members__.values()}


@staff_member_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Decisions, queue, overturn rates, appeals, API calls and quotas."""
    form = PeriodForm(request.GET or None)
    filters = form.filters()
    board = dashboard.build(filters)
    rule_rows = [
        (
            " · ".join(
                p for p in (r["g_type"], r["g_rule"], r["g_detail"], r["status"]) if p
            ),
            r["rate"],
            f"{r['rate']:.0%} ({r['overturned']}/{r['reviewed']} of {r['total']})",
        )
        for r in board.overturn_by_rule
    ]
    type_rows = [
        (
            r["g_type"] or str(_("(no analysis type)")),
            r["rate"],
            f"{r['rate']:.0%} ({r['overturned']}/{r['reviewed']} of {r['total']})",
        )
        for r in board.overturn_by_type
    ]
    appeal_rows = [(k, float(v), str(v)) for k, v in board.appeals.items()]
    context = {
        **admin.site.each_context(request),
        "title": _("Moderation accountability"),
        "form": form,
        "board": board,
        "since": filters.since,
        "until": filters.until,
        "export_query": request.GET.urlencode(),
        "charts": {
            "decisions": charts.stacked_bars(
                str(_("Decisions per day")),
                board.days,
                board.decisions_by_day,
                _status_labels(),
            ),
            "calls": charts.stacked_bars(
                str(_("API calls per day")), board.days, board.calls_by_day
            ),
            "by_type": charts.hbars(
                str(_("Overturn rate per analysis type")), type_rows, maximum=1.0
            ),
            "by_rule": charts.hbars(
                str(_("Overturn rate per policy rule")), rule_rows, maximum=1.0
            ),
            "appeals": charts.hbars(str(_("Appeals by outcome")), appeal_rows),
        },
    }
    return render(
        request, "admin/cloudinary_analysis/accountability/dashboard.html", context
    )


@staff_member_required
def export_view(request: HttpRequest) -> HttpResponseBase:
    """Download the decisions of the period as CSV or JSON Lines."""
    if not request.user.has_perm(EXPORT_PERMISSION):  # type: ignore[union-attr]
        raise PermissionDenied
    fmt = request.GET.get("format", "csv")
    if fmt not in export.FORMATS:
        return HttpResponseBadRequest("format must be csv or jsonl")
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    bounded = form.cleaned_data.get("since") or form.cleaned_data.get("until")
    filters = form.filters() if bounded else None
    model = form.cleaned_data.get("model")
    rows = export.decisions(
        since=filters.since if filters else None,
        until=filters.until if filters else None,
        content_type_ids=[model] if model else None,
    )
    return export.streaming_response(rows, fmt)
