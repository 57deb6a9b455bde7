"""The dashboard's numbers, aggregated in SQL: a fixed number of queries
whatever the number of decisions.

- decisions per day by verdict and by who decided;
- the review queue: its size and the age of its oldest item;
- how often people overturn automatic verdicts, per analysis type and per
  policy rule (the decisive ground: the first reason of the verdict);
- appeals and their outcomes;
- API calls per analysis type and day, calls saved by reuse, and quotas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Lead, TruncDate
from django.utils import timezone

from django_cloudinary_analysis.accountability.models import Appeal, AppealStatus
from django_cloudinary_analysis.models import (
    Analysis,
    ModerationDecision,
    ModerationStatus,
    QuotaState,
)

QUEUE_STATUSES = (ModerationStatus.PENDING, ModerationStatus.REVIEW)
VERDICTS = (ModerationStatus.APPROVED, ModerationStatus.REJECTED)


@dataclass
class Filters:
    """The period ``[since, until]`` and, optionally, one model's content type."""

    since: datetime
    until: datetime
    content_type_id: int | None = None

    @classmethod
    def last_days(cls, days: int = 30, content_type_id: int | None = None) -> Filters:
        """The last ``days`` days up to now."""
        now = timezone.now()
        return cls(now - timedelta(days=days), now, content_type_id)

    def decisions(self) -> QuerySet[ModerationDecision]:
        """Decisions in the period (and model)."""
        qs = ModerationDecision.objects.filter(
            decided_at__gte=self.since, decided_at__lte=self.until
        )
        if self.content_type_id is not None:
            qs = qs.filter(content_type_id=self.content_type_id)
        return qs


@dataclass
class Dashboard:
    """Everything the page shows."""

    filters: Filters
    days: list[date] = field(default_factory=list)
    decisions_by_day: dict[str, list[int]] = field(default_factory=dict)
    decisions_by_kind: dict[str, int] = field(default_factory=dict)
    queue_size: int = 0
    queue_oldest: datetime | None = None
    overturn_by_rule: list[dict[str, Any]] = field(default_factory=list)
    overturn_by_type: list[dict[str, Any]] = field(default_factory=list)
    appeals: dict[str, int] = field(default_factory=dict)
    calls_by_day: dict[str, list[int]] = field(default_factory=dict)
    calls_total: int = 0
    saved_total: int = 0
    saved_by_type: dict[str, int] = field(default_factory=dict)
    quotas: list[QuotaState] = field(default_factory=list)

    @property
    def queue_age(self) -> timedelta | None:
        """How long the oldest queued item has waited."""
        if self.queue_oldest is None:
            return None
        return timezone.now() - self.queue_oldest


def _days(filters: Filters) -> list[date]:
    first = timezone.localdate(filters.since)
    last = timezone.localdate(filters.until)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _series(
    rows: Iterable[dict[str, Any]], days: list[date], key: str, value: str
) -> dict[str, list[int]]:
    index = {day: n for n, day in enumerate(days)}
    series: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    for row in rows:
        day = row["day"]
        if isinstance(day, datetime):
            day = day.date()
        if day in index:
            series[row[key]][index[day]] += row[value] or 0
    return dict(sorted(series.items()))


def build(filters: Filters) -> Dashboard:
    """Run the dashboard's queries (seven, whatever the data)."""
    board = Dashboard(filters=filters, days=_days(filters))
    decisions = filters.decisions()

    # 1. decisions per day by verdict, and per kind of decider (decided_by_kind)
    rows = list(
        decisions.annotate(day=TruncDate("decided_at"))
        .values("day", "status", "decided_by_kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    board.decisions_by_day = _series(rows, board.days, "status", "n")
    by_kind: dict[str, int] = defaultdict(int)
    for row in rows:
        by_kind[row["decided_by_kind"]] += row["n"]
    board.decisions_by_kind = dict(by_kind)

    # 2. the queue now: current verdicts (newest decision per object) awaiting review
    newer = ModerationDecision.objects.filter(
        content_type=OuterRef("content_type"),
        object_id=OuterRef("object_id"),
    ).filter(
        Q(decided_at__gt=OuterRef("decided_at"))
        | Q(decided_at=OuterRef("decided_at"), pk__gt=OuterRef("pk"))
    )
    queue = ModerationDecision.objects.filter(status__in=QUEUE_STATUSES).exclude(
        Exists(newer)
    )
    if filters.content_type_id is not None:
        queue = queue.filter(content_type_id=filters.content_type_id)
    totals = queue.aggregate(n=Count("pk"), oldest=Min("decided_at"))
    board.queue_size, board.queue_oldest = totals["n"], totals["oldest"]

    # 3. overturns
    board.overturn_by_rule, board.overturn_by_type = overturns(filters)

    # 4. appeals by outcome
    appeals = Appeal.objects.filter(
        created_at__gte=filters.since, created_at__lte=filters.until
    )
    if filters.content_type_id is not None:
        appeals = appeals.filter(content_type_id=filters.content_type_id)
    counts = dict(
        appeals.values_list("status").annotate(n=Count("pk")).order_by()  # type: ignore[arg-type]
    )
    outcomes = AppealStatus.__members__.values()
    board.appeals = {s.value: counts.get(s.value, 0) for s in outcomes}

    # 5. API calls per type and day; calls saved by reuse
    analyses = Analysis.objects.filter(
        created_at__gte=filters.since, created_at__lte=filters.until
    )
    if filters.content_type_id is not None:
        analyses = analyses.filter(content_type_id=filters.content_type_id)
    rows = list(
        analyses.annotate(day=TruncDate("created_at"))
        .values("day", "analysis_type")
        .annotate(
            calls=Coalesce(Sum("attempts", filter=Q(reused_from__isnull=True)), 0),
            saved=Count("pk", filter=Q(reused_from__isnull=False)),
        )
        .order_by()
    )
    board.calls_by_day = _series(rows, board.days, "analysis_type", "calls")
    saved: dict[str, int] = defaultdict(int)
    for row in rows:
        saved[row["analysis_type"]] += row["saved"]
        board.calls_total += row["calls"]
    board.saved_by_type = {k: v for k, v in sorted(saved.items()) if v}
    board.saved_total = sum(saved.values())

    # 6. quotas
    board.quotas = list(QuotaState.objects.order_by("feature"))
    return board


def overturns(filters: Filters) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Overturn rates of automatic verdicts, per policy rule and per type.

    An automatic approval or rejection is *reviewed* when the next decision
    on the object (an appeal's own "review" step aside) is a person's, and
    *overturned* when that person decided otherwise. One query: the grounds
    are grouped over the automatic verdicts; which of them were reviewed or
    overturned comes from one narrow window (``LEAD``) over each object's
    decisions in time order, read as a (hashed) subquery.
    """
    appeal_steps = Appeal.objects.filter(review_decision__isnull=False).values(
        "review_decision"
    )
    order = [F("decided_at").asc(), F("pk").asc()]
    partition = [F("content_type_id"), F("object_id")]
    window = (
        ModerationDecision.objects.filter(decided_at__gte=filters.since)
        .filter(
            Q(content_type_id=filters.content_type_id)
            if filters.content_type_id is not None
            else Q()
        )
        .exclude(pk__in=appeal_steps)
        .annotate(
            d_id=F("pk"),
            d_kind=F("decided_by_kind"),
            d_status=F("status"),
            next_kind=Window(
                Lead("decided_by_kind"), partition_by=partition, order_by=order
            ),
            next_status=Window(Lead("status"), partition_by=partition, order_by=order),
        )
        .values("d_id", "d_kind", "d_status", "next_kind", "next_status")
        .order_by()
    )
    window_sql, window_params = window.query.sql_with_params()
    quote = connections[window.db].ops.quote_name
    d_id, d_kind, d_status, next_kind, next_status = map(
        quote, ("d_id", "d_kind", "d_status", "next_kind", "next_status")
    )
    # Only quoted constant names and Django's compiled SQL are interpolated;
    # every value is a parameter.
    auto_then_human = (
        ModerationDecision.DecidedByKind.AUTO,
        ModerationDecision.DecidedByKind.HUMAN,
    )
    judged = RawSQL(  # noqa: S611
        f"SELECT {d_id} FROM ({window_sql}) t"  # noqa: S608
        f" WHERE {d_kind} = %s AND {next_kind} = %s",
        (*window_params, *auto_then_human),
    )
    changed = RawSQL(  # noqa: S611
        f"SELECT {d_id} FROM ({window_sql}) t"  # noqa: S608
        f" WHERE {d_kind} = %s AND {next_kind} = %s"
        f" AND {next_status} <> {d_status}",
        (*window_params, *auto_then_human),
    )
    first = KeyTransform(0, "reasons")
    rows = (
        filters.decisions()
        .filter(
            decided_by_kind=ModerationDecision.DecidedByKind.AUTO, status__in=VERDICTS
        )
        .annotate(
            g_type=Coalesce(
                KeyTextTransform("type", first), Value(""), output_field=CharField()
            ),
            g_rule=Coalesce(
                KeyTextTransform("rule", first), Value(""), output_field=CharField()
            ),
            g_detail=Coalesce(
                KeyTextTransform("question", first),
                KeyTextTransform("label", first),
                Value(""),
                output_field=CharField(),
            ),
        )
        .values("g_type", "g_rule", "g_detail", "status")
        .annotate(
            total=Count("pk"),
            reviewed=Count("pk", filter=Q(pk__in=judged)),
            overturned=Count("pk", filter=Q(pk__in=changed)),
        )
        .order_by("g_type", "g_rule", "g_detail", "status")
    )
    by_rule = [_rate(dict(row)) for row in rows]
    by_type: dict[str, dict[str, Any]] = {}
    for row in by_rule:
        agg = by_type.setdefault(
            row["g_type"],
            {"g_type": row["g_type"], "total": 0, "reviewed": 0, "overturned": 0},
        )
        for key in ("total", "reviewed", "overturned"):
            agg[key] += row[key]
    by_rule.sort(key=lambda r: (-r["rate"], -r["total"]))
    return by_rule, sorted(
        (_rate(r) for r in by_type.values()), key=lambda r: (-r["rate"], r["g_type"])
    )


def _rate(row: dict[str, Any]) -> dict[str, Any]:
    row["rate"] = row["overturned"] / row["reviewed"] if row["reviewed"] else 0.0
    return row
