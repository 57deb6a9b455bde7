"""The per-decision query behind the dashboard's figures about decisions.

For each decision: its local day, its decisive ground, the next decision on
the object (an appeal's review step aside) and whether it is still the
current, queued verdict; ``aggregate`` sums them per day, model, verdict,
who decided and ground. ``summaries`` runs it over past days once and
stores the sums; the dashboard runs it live over the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import (
    Case,
    CharField,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce, Concat, TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_cloudinary_analysis.accountability.models import (
    Appeal,
)
from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus

QUEUE_STATUSES = (ModerationStatus.PENDING, ModerationStatus.REVIEW)
VERDICTS = (ModerationStatus.APPROVED, ModerationStatus.REJECTED)


# -- the per-decision query -------------------------------------------------------


@dataclass
class Row:
    """Decisions of one day, model, verdict, decider and ground, summed."""

    day: date
    content_type_id: int
    status: str
    decided_by_kind: str
    g_type: str
    g_rule: str
    g_detail: str
    in_period: bool
    decisions: int
    reviewed: int
    overturned: int
    queued: int
    queued_since: datetime | None


def _later() -> Any:
    """Decisions on the same object after the outer one, in time order."""
    return ModerationDecision.objects.filter(
        content_type=OuterRef("content_type"), object_id=OuterRef("object_id")
    ).filter(
        Q(decided_at__gt=OuterRef("decided_at"))
        | Q(decided_at=OuterRef("decided_at"), pk__gt=OuterRef("pk"))
    )


#: What ``aggregate`` groups the per-decision rows by (their first columns).
GROUP_KEYS = (
    "f_day",
    "content_type_id",
    "status",
    "decided_by_kind",
    "g_type",
    "g_rule",
    "g_detail",
    "f_in_period",
)


def _facts(where: Q, period: tuple[datetime, datetime] | None, tz: tzinfo | None):  # type: ignore[no-untyped-def]
    """One row per decision matching ``where`` with what the figures need.

    ``next_code`` is "decided_by_kind:status" of the next decision on the object (an
    appeal's review step skipped), for automatic approvals and rejections
    only; ``queued`` is 1 for a pending or review verdict that is still the
    object's newest decision.
    """
    auto_verdict = Q(
        decided_by_kind=ModerationDecision.DecidedByKind.AUTO, status__in=VERDICTS
    )
    steps = Appeal.objects.filter(review_decision=OuterRef("pk"))
    following = (
        _later()
        .exclude(Exists(steps))
        .order_by("decided_at", "pk")
        .annotate(
            code=Concat(
                "decided_by_kind", Value(":"), "status", output_field=CharField()
            )
        )
        .values("code")[:1]
    )
    first = KeyTransform(0, "reasons")

    def ground(*keys: str) -> Case:
        return Case(
            When(
                auto_verdict,
                then=Coalesce(
                    *(KeyTextTransform(k, first) for k in keys),
                    Value(""),
                    output_field=CharField(),
                ),
            ),
            default=Value(""),
            output_field=CharField(),
        )

    in_period: Any = Value(1)
    if period is not None:
        in_period = Case(
            When(decided_at__gte=period[0], decided_at__lte=period[1], then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        )
    return (
        ModerationDecision.objects.filter(where)
        .annotate(
            f_day=TruncDate("decided_at", tzinfo=tz),
            g_type=ground("type"),
            g_rule=ground("rule"),
            g_detail=ground("question", "label"),
            f_in_period=in_period,
            next_code=Case(
                When(auto_verdict, then=Subquery(following)),
                default=Value(""),
                output_field=CharField(),
            ),
            own_code=Concat(Value("human:"), "status", output_field=CharField()),
            f_queued=Case(
                When(Q(status__in=QUEUE_STATUSES) & ~Exists(_later()), then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
        .values(
            *GROUP_KEYS,
            "decided_at",
            "next_code",
            "own_code",
            "f_queued",
        )
        .order_by()
    )


def aggregate(
    where: Q,
    period: tuple[datetime, datetime] | None = None,
    tz: tzinfo | None = None,
) -> list[Row]:
    """Sum the decisions matching ``where`` per day, model, verdict and ground.

    One query: the per-decision rows (``_facts``) grouped in SQL.
    """
    facts = _facts(where, period, tz)
    inner, params = facts.query.sql_with_params()
    db = connections[facts.db]
    q = db.ops.quote_name
    keys = ", ".join(map(q, GROUP_KEYS))
    reviewed = f"{q('next_code')} LIKE %s"
    # A fence: without it PostgreSQL pulls the per-decision rows up into the
    # grouping and runs the next-decision subquery once per reference (three
    # times per decision), then sorts every decision on disk to group them.
    no_limit = db.ops.no_limit_value()
    fence = " OFFSET 0" if no_limit is None else f" LIMIT {int(no_limit)} OFFSET 0"
    # Only quoted constant names and Django's compiled SQL are interpolated;
    # every value is a parameter.
    sql = (
        f"SELECT {keys}, COUNT(*),"  # noqa: S608
        f" SUM(CASE WHEN {reviewed} THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {reviewed} AND {q('next_code')} <> {q('own_code')}"
        " THEN 1 ELSE 0 END),"
        f" SUM({q('f_queued')}),"
        f" MIN(CASE WHEN {q('f_queued')} = 1 THEN {q('decided_at')} END)"
        f" FROM ({inner}{fence}) facts GROUP BY {keys}"
    )
    human = f"{ModerationDecision.DecidedByKind.HUMAN}:%"
    with db.cursor() as cur:
        cur.execute(sql, (human, human, *params))
        return [
            Row(
                _date(r[0]),
                r[1],
                r[2],
                r[3],
                r[4] or "",
                r[5] or "",
                r[6] or "",
                bool(r[7]),
                int(r[8]),
                int(r[9] or 0),
                int(r[10] or 0),
                int(r[11] or 0),
                _datetime(r[12]),
            )
            for r in cur.fetchall()
        ]


@contextmanager
def without_jit(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the enclosed queries in a transaction with PostgreSQL's JIT off.

    The per-decision subqueries make the planner's cost estimate high enough
    to JIT-compile the query: 2.3 s of compiling for 0.1 s of work on 1M
    decisions (``SET LOCAL`` ends with the transaction).
    """
    with transaction.atomic(using=using):
        db = connections[using]
        if db.vendor == "postgresql":
            with db.cursor() as cur:
                cur.execute("SET LOCAL jit = off")
        yield


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = parse_date(str(value))
    assert parsed is not None, value
    return parsed


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))  # SQLite returns text
    assert parsed is not None, value
    if settings.USE_TZ and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed
