"""Audit export: every decision as CSV or JSON Lines, streamed.

Rows come from one query read with ``iterator(chunk_size=...)`` (a
server-side cursor on PostgreSQL) and are written one line at a time, so
memory stays flat however many decisions there are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_cloudinary_analysis.models import Analysis, ModerationDecision

FORMATS = ("csv", "jsonl")
CHUNK_SIZE = 2000

#: Output columns, in order.
COLUMNS = (
    "decision_id",
    "decided_at",
    "content_type",
    "object_id",
    "content_key",
    "decision",
    "previous",
    "decided_by",
    "automated",
    "reviewer",
    "reasons",
    "note",
    "appeal_status",
    "appealed_at",
    "appeal_note",
    "appeal_closed_at",
)


def parse_moment(value: str | None, *, end: bool = False) -> datetime | None:
    """Read an ISO date or datetime; a bare date means its start (or its end)."""
    if not value:
        return None
    try:
        day = parse_date(value)
        moment = parse_datetime(value) if day is None else None
    except ValueError:  # well formed but impossible, e.g. 2026-02-30
        day = moment = None
    if day is not None:
        moment = datetime.combine(day, time.max if end else time.min)
    if moment is None:
        raise ValueError(f"not an ISO date or datetime: {value!r}")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def decisions(
    since: datetime | None = None,
    until: datetime | None = None,
    content_type_ids: Iterable[int] | None = None,
    queryset: QuerySet[ModerationDecision] | None = None,
) -> QuerySet[Any]:
    """The export's rows as tuples in ``COLUMNS`` order (one query)."""
    qs = queryset if queryset is not None else ModerationDecision.objects.all()
    if since is not None:
        qs = qs.filter(decided_at__gte=since)
    if until is not None:
        qs = qs.filter(decided_at__lte=until)
    if content_type_ids is not None:
        qs = qs.filter(content_type__in=list(content_type_ids))
    content_key = (
        Analysis.objects.filter(
            content_type=OuterRef("content_type"),
            object_id=OuterRef("object_id"),
            created_at__lte=OuterRef("decided_at"),
        )
        .exclude(content_key="")
        .order_by("-created_at", "-pk")
        .values("content_key")[:1]
    )
    username = f"decided_by__{get_user_model().USERNAME_FIELD}"
    return (
        qs.annotate(_content_key=Subquery(content_key))
        .order_by("decided_at", "pk")
        .values_list(
            "pk",
            "decided_at",
            "content_type__app_label",
            "content_type__model",
            "object_id",
            "_content_key",
            "status",
            "previous_status",
            "decided_by_kind",
            username,
            "reasons",
            "note",
            "appeal__status",
            "appeal__created_at",
            "appeal__note",
            "appeal__closed_at",
        )
    )


def records(rows: QuerySet[Any]) -> Iterator[dict[str, Any]]:
    """Each row as a dict in ``COLUMNS`` order, JSON-ready."""
    for (
        pk,
        decided_at,
        app_label,
        model,
        object_id,
        content_key,
        status,
        previous,
        kind,
        reviewer,
        reasons,
        note,
        appeal_status,
        appealed_at,
        appeal_note,
        appeal_closed_at,
    ) in rows.iterator(chunk_size=CHUNK_SIZE):
        yield {
            "decision_id": pk,
            "decided_at": _iso(decided_at),
            "content_type": f"{app_label}.{model}",
            "object_id": object_id,
            "content_key": content_key or "",
            "decision": status,
            "previous": previous,
            "decided_by": kind,
            "automated": kind != ModerationDecision.DecidedByKind.HUMAN,
            "reviewer": reviewer or "",
            "reasons": reasons if reasons is not None else [],
            "note": note,
            "appeal_status": appeal_status or "",
            "appealed_at": _iso(appealed_at),
            "appeal_note": appeal_note or "",
            "appeal_closed_at": _iso(appeal_closed_at),
        }


def _iso(value: datetime | date | None) -> str:
    return value.isoformat() if value is not None else ""


class _Line:
    """A file-like object whose ``write`` hands the text back (for csv)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: QuerySet[Any]) -> Iterator[str]:
    """The header, then one CSV line per decision (reasons as JSON text)."""
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for record in records(rows):
        record["reasons"] = json.dumps(record["reasons"], separators=(",", ":"))
        record["automated"] = "true" if record["automated"] else "false"
        yield writer.writerow([_csv_safe(record[c]) for c in COLUMNS])


def _csv_safe(value: Any) -> Any:
    # Free text starting with = + - @ is a formula to spreadsheet programs.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def jsonl_lines(rows: QuerySet[Any]) -> Iterator[str]:
    """One JSON object per decision and line."""
    for record in records(rows):
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def lines(rows: QuerySet[Any], fmt: str) -> Iterator[str]:
    """The export in ``fmt`` (``csv`` or ``jsonl``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    return csv_lines(rows) if fmt == "csv" else jsonl_lines(rows)


def streaming_response(rows: QuerySet[Any], fmt: str) -> StreamingHttpResponse:
    """An attachment download of the export, produced while it is sent."""
    content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    response = StreamingHttpResponse(
        lines(rows, fmt), content_type=f"{content_type}; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="moderation-decisions-{stamp}.{fmt}"'
    )
    return response
