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

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from django_cloudinary_analysis.accountability import summaries
from django_cloudinary_analysis.accountability.models import Appeal, AppealStatus
from django_cloudinary_analysis.accountability.summaries import VERDICTS
from django_cloudinary_analysis.models import (
    Analysis,
    ModerationDecision,
    QuotaState,
)


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
    """Run the dashboard's queries (a fixed number, whatever the data).

    The decisions' figures come from the per-day summaries for whole past
    days and from the raw rows for the rest (``summaries``): the same
    per-decision query either way, so both give the same numbers.
    """
    board = Dashboard(filters=filters, days=_days(filters))
    summary = summaries.prepare()
    with summaries.without_jit():
        _decisions(board, summary)
        _activity(board)
    return board


def _decisions(board: Dashboard, summary: summaries.Summary | None) -> None:
    """Decisions per day, the queue and the overturn rates."""
    filters = board.filters
    ct = filters.content_type_id
    of_model = Q() if ct is None else Q(content_type_id=ct)
    period = Q(decided_at__gte=filters.since, decided_at__lte=filters.until)
    stored: list[dict[str, Any]] = []
    queued_before: dict[str, Any] = {"n": 0, "oldest": None}
    if summary is None:
        live = Q()  # every decision: the queue is not bound to the period
    else:
        # Whole days of the period before the cutoff come from the summaries;
        # the period's partial first and last days, the days from the cutoff
        # on and any day changed during the fill are read live.
        first, last = _whole_days(filters, summary.cutoff)
        live_from = summaries.day_start(summary.cutoff)
        live = Q(decided_at__gte=live_from)
        if first > last:
            if filters.since < live_from:
                live |= period
        else:
            live |= Q(
                decided_at__gte=filters.since,
                decided_at__lt=summaries.day_start(first),
            )
            tail = summaries.day_start(last + timedelta(days=1))
            if tail < live_from:  # the period ends before the live days
                live |= Q(decided_at__gte=tail, decided_at__lte=filters.until)
            counts = summary.counts().filter(
                of_model, summary__day__gte=first, summary__day__lte=last
            )
            stored = list(
                counts.values(
                    "summary__day",
                    "status",
                    "decided_by_kind",
                    "g_type",
                    "g_rule",
                    "g_detail",
                )
                .annotate(
                    n=Sum("decisions"), rev=Sum("reviewed"), over=Sum("overturned")
                )
                .order_by()
            )
        if summary.stale:
            live |= summaries.days_q(summary.stale)
        queued_before = (
            summary.counts()
            .filter(of_model, queued__gt=0)
            .aggregate(n=Coalesce(Sum("queued"), 0), oldest=Min("queued_since"))
        )
    rows = summaries.aggregate(
        live & of_model,
        (filters.since, filters.until),
        timezone.get_current_timezone() if settings.USE_TZ else None,
    )
    in_period = [
        {
            "day": r.day,
            "status": r.status,
            "decided_by_kind": r.decided_by_kind,
            "g_type": r.g_type,
            "g_rule": r.g_rule,
            "g_detail": r.g_detail,
            "n": r.decisions,
            "rev": r.reviewed,
            "over": r.overturned,
        }
        for r in rows
        if r.in_period
    ]
    for row in stored:
        row["day"] = row.pop("summary__day")
    decided = stored + in_period

    # 1. decisions per day by verdict, and per kind of decider
    board.decisions_by_day = _series(decided, board.days, "status", "n")
    by_kind: dict[str, int] = defaultdict(int)
    for row in decided:
        by_kind[row["decided_by_kind"]] += row["n"]
    board.decisions_by_kind = dict(sorted(by_kind.items()))

    # 2. the queue now: current verdicts (newest decision per object) awaiting review
    # (live rows of summarised days, the period's partial days, are counted
    # in the summaries already)
    unsummarised = [
        r
        for r in rows
        if summary is None or r.day >= summary.cutoff or r.day in summary.stale
    ]
    board.queue_size = queued_before["n"] + sum(r.queued for r in unsummarised)
    oldest = [queued_before["oldest"], *(r.queued_since for r in unsummarised)]
    board.queue_oldest = min((t for t in oldest if t is not None), default=None)

    # 3. overturns
    board.overturn_by_rule, board.overturn_by_type = overturns(decided)


def _activity(board: Dashboard) -> None:
    """Appeals, API calls and quotas."""
    filters = board.filters
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
    calls = list(
        analyses.annotate(day=TruncDate("created_at"))
        .values("day", "analysis_type")
        .annotate(
            calls=Coalesce(Sum("attempts", filter=Q(reused_from__isnull=True)), 0),
            saved=Count("pk", filter=Q(reused_from__isnull=False)),
        )
        .order_by()
    )
    board.calls_by_day = _series(calls, board.days, "analysis_type", "calls")
    saved: dict[str, int] = defaultdict(int)
    for row in calls:
        saved[row["analysis_type"]] += row["saved"]
        board.calls_total += row["calls"]
    board.saved_by_type = {k: v for k, v in sorted(saved.items()) if v}
    board.saved_total = sum(saved.values())

    # 6. quotas
    board.quotas = list(QuotaState.objects.order_by("feature"))


def _whole_days(filters: Filters, cutoff: date) -> tuple[date, date]:
    """The first and last whole days of the period before ``cutoff``."""
    first = timezone.localdate(filters.since)
    if summaries.day_start(first) < filters.since:
        first += timedelta(days=1)
    last = timezone.localdate(filters.until)
    if summaries.day_start(last + timedelta(days=1)) > filters.until + timedelta(
        microseconds=1
    ):
        last -= timedelta(days=1)
    return first, min(last, cutoff - timedelta(days=1))


def overturns(
    decided: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Overturn rates of automatic verdicts, per policy rule and per type.

    An automatic approval or rejection is *reviewed* when the next decision
    on the object (an appeal's own "review" step aside) is a person's, and
    *overturned* when that person decided otherwise; the grounds are the
    verdict's first reason. ``decided`` are the period's summed rows.
    """
    grouped: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in decided:
        if row["decided_by_kind"] != ModerationDecision.DecidedByKind.AUTO or row[
            "status"
        ] not in (VERDICTS):
            continue
        key = (row["g_type"], row["g_rule"], row["g_detail"], row["status"])
        agg = grouped.setdefault(
            key,
            dict(
                zip(("g_type", "g_rule", "g_detail", "status"), key, strict=True),
                total=0,
                reviewed=0,
                overturned=0,
            ),
        )
        agg["total"] += row["n"]
        agg["reviewed"] += row["rev"]
        agg["overturned"] += row["over"]
    by_rule = [_rate(row) for _key, row in sorted(grouped.items())]
    by_type: dict[str, dict[str, Any]] = {}
    for row in by_rule:
        agg = by_type.setdefault(
            row["g_type"],
            {"g_type": row["g_type"], "total": 0, "reviewed": 0, "overturned": 0},
        )
        for total in ("total", "reviewed", "overturned"):
            agg[total] += row[total]
    by_rule.sort(key=lambda r: (-r["rate"], -r["total"]))
    return by_rule, sorted(
        (_rate(r) for r in by_type.values()), key=lambda r: (-r["rate"], r["g_type"])
    )


def _rate(row: dict[str, Any]) -> dict[str, Any]:
    row["rate"] = row["overturned"] / row["reviewed"] if row["reviewed"] else 0.0
    return row
