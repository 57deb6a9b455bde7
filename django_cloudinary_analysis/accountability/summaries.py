"""Per-day summaries of decisions: the dashboard reads a year in milliseconds.

What the dashboard shows about decisions (how many per day, verdict and who
decided; overturn rates; the queue) comes from one per-decision query
(``aggregate``): for each decision its local day, its decisive ground, the
next decision on the object (an appeal's review step aside) and whether it
is still the current, queued verdict. Run over the raw rows it is exact but
reads every decision of the period.

Past days are summed once into ``DashboardCount`` rows (one per day, model,
verdict, who decided and ground) and read from there:

- days before yesterday (in the default time zone) are summarised lazily,
  on the first dashboard view that needs them; today and yesterday are
  always read live, so decisions being written never touch a summary row;
- a write that changes a past day's figures gives its ``DashboardDay`` a
  new ``version`` in the writer's own transaction (receivers below): saving
  or deleting a decision touches its own day and the days of the object's
  two previous decisions (whose "next decision" or "current" status it
  changes); linking an appeal's review step touches the days before the
  step. A day whose ``checked`` version differs is summarised again;
- a summary is stored with a fill token and becomes current only by a
  conditional update (``version`` unchanged since it was read), so a write
  that commits while a summary is computed is never lost: the day is read
  live until the next fill.

Writes that bypass model signals (``QuerySet.update()`` of decisions, raw
SQL) must call ``forget()`` (or ``touch()`` with the days they changed).
Summaries are kept in the default time zone only: a request in another
active time zone reads everything live (exact, slower).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.db.models import (
    F,
    Min,
    Q,
)
from django.utils import timezone

from django_cloudinary_analysis.accountability.decision_facts import (
    QUEUE_STATUSES,
    VERDICTS,
    Row,
    aggregate,
    without_jit,
)
from django_cloudinary_analysis.accountability.models import (
    Appeal,
    DashboardCount,
    DashboardDay,
)
from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus

__all__ = ["QUEUE_STATUSES", "VERDICTS", "Row", "aggregate", "without_jit"]

#: Days before the cutoff (today minus this) are summarised; later ones read live.
LIVE_DAYS = 1
#: A fill's rows that never became current are removed after this long.
ABANDONED_FILL = timedelta(hours=1)
#: Days whose summaries one conditional UPDATE validates (bounded parameters).
CHUNK = 300


# -- days -------------------------------------------------------------------------


def usable() -> bool:
    """Whether summaries apply: aware datetimes, the default time zone active."""
    return bool(settings.USE_TZ) and (
        timezone.get_current_timezone_name() == timezone.get_default_timezone_name()
    )


def local_day(at: datetime) -> date:
    """The day of ``at`` in the default time zone."""
    return timezone.localtime(at, timezone.get_default_timezone()).date()


def day_start(day: date) -> datetime:
    """Midnight starting ``day`` in the current time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def cutoff() -> date:
    """The first day read live (today minus ``LIVE_DAYS``)."""
    return timezone.localdate() - timedelta(days=LIVE_DAYS)


def intervals(days: Iterable[date]) -> Iterator[tuple[date, date]]:
    """Runs of consecutive days, as (first, last)."""
    run: list[date] = []
    for day in sorted(set(days)):
        if run and day != run[-1] + timedelta(days=1):
            yield run[0], run[-1]
            run = []
        run.append(day)
    if run:
        yield run[0], run[-1]


def days_q(days: Iterable[date]) -> Q:
    """Decisions made on any of ``days`` (a range per run of days)."""
    return reduce(
        operator.or_,
        (
            Q(decided_at__gte=day_start(a), decided_at__lt=day_start(b + timedelta(1)))
            for a, b in intervals(days)
        ),
        Q(pk__in=[]),
    )


def _token() -> str:
    return uuid.uuid4().hex


# -- writers ----------------------------------------------------------------------


def touch(days: Iterable[date]) -> None:
    """Mark past ``days`` as changed: their summaries are computed again.

    Runs in the caller's transaction; today's date is never summarised.
    """
    if not settings.USE_TZ:
        return
    today = local_day(timezone.now())
    past = sorted({d for d in days if d < today})
    if past:
        DashboardDay.objects.bulk_create(
            [DashboardDay(day=d, version=_token()) for d in past],
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["version"],
        )


def forget() -> None:
    """Drop every summary (after changing decisions without model signals)."""
    DashboardDay.objects.all().delete()


def touch_around(decision: ModerationDecision, *also: datetime | None) -> None:
    """Touch the days ``decision`` changes: its own and its two predecessors'."""
    at = decision.decided_at
    if at is None or not settings.USE_TZ:
        return
    newest = getattr(decision, "newest_before", ...)
    if newest is None or (
        newest is not ... and newest.status != ModerationStatus.REVIEW
    ):
        # A new decision whose predecessor services read under the object's
        # lock: only an appeal's review step makes the one before it matter.
        touch(local_day(t) for t in (at, *also, newest and newest.decided_at) if t)
        return
    earlier = (
        ModerationDecision.objects.filter(
            content_type_id=decision.content_type_id, object_id=decision.object_id
        )
        .filter(Q(decided_at__lt=at) | Q(decided_at=at, pk__lt=decision.pk))
        .order_by("-decided_at", "-pk")
        .values_list("decided_at", flat=True)[:2]
    )
    touch(local_day(t) for t in (at, *also, *earlier) if t is not None)


def decision_pre_save(sender: Any, instance: ModerationDecision, **kw: Any) -> None:
    """Remember the stored time of a decision being changed."""
    if instance.pk is not None and not instance._state.adding:
        instance._dca_stored_at = (  # type: ignore[attr-defined]
            ModerationDecision.objects.filter(pk=instance.pk)
            .values_list("decided_at", flat=True)
            .first()
        )


def decision_changed(sender: Any, instance: ModerationDecision, **kw: Any) -> None:
    """A decision was saved or deleted: touch the days it changes."""
    touch_around(instance, getattr(instance, "_dca_stored_at", None))


def appeal_changed(sender: Any, instance: Appeal, **kw: Any) -> None:
    """An appeal's review step is skipped when judging: touch the days before it."""
    if instance.review_decision_id is None:
        return
    step = ModerationDecision.objects.filter(pk=instance.review_decision_id).first()
    if step is not None:
        touch_around(step)


def connect() -> None:
    """Connect the receivers (idempotent)."""
    from django.db.models.signals import post_delete, post_save, pre_save

    uid = "cloudinary_analysis.accountability.summaries"
    pre_save.connect(decision_pre_save, sender=ModerationDecision, dispatch_uid=uid)
    post_save.connect(decision_changed, sender=ModerationDecision, dispatch_uid=uid)
    post_delete.connect(decision_changed, sender=ModerationDecision, dispatch_uid=uid)
    post_save.connect(appeal_changed, sender=Appeal, dispatch_uid=uid)
    post_delete.connect(appeal_changed, sender=Appeal, dispatch_uid=uid)


# -- readers ----------------------------------------------------------------------


@dataclass
class Summary:
    """Which days the dashboard may read from the summaries."""

    first: date  # the oldest decision's day
    cutoff: date  # days from here on are read live
    stale: set[date] = field(default_factory=set)  # and these too

    def counts(self) -> Any:
        """The current summary rows of the summarised days."""
        rows = DashboardCount.objects.filter(
            fill=F("summary__fill"),
            summary__day__gte=self.first,
            summary__day__lt=self.cutoff,
        )
        if self.stale:
            rows = rows.exclude(summary__day__in=sorted(self.stale))
        return rows


def prepare() -> Summary | None:
    """Summarise the past days not summarised yet (or changed since).

    Returns None when summaries do not apply (``usable()``). Two queries
    when nothing is missing; a fill adds about eight.
    """
    return summarise()[0]


def summarise() -> tuple[Summary | None, int]:
    """``prepare()``, and how many days it summed."""
    if not usable():
        return None, 0
    end = cutoff()
    oldest = ModerationDecision.objects.aggregate(m=Min("decided_at"))["m"]
    if oldest is None:
        return Summary(end, end), 0
    first = local_day(oldest)
    known = {
        day: (version, checked)
        for day, version, checked in DashboardDay.objects.filter(
            day__gte=first, day__lt=end
        ).values_list("day", "version", "checked")
    }
    need = [
        first + timedelta(days=n)
        for n in range((end - first).days)
        if (v := known.get(first + timedelta(days=n))) is None or v[0] != v[1]
    ]
    stale = fill(need) if need else set()
    return Summary(first, end, stale), len(need)


def fill(days: list[date]) -> set[date]:
    """Summarise ``days`` (past days of the default time zone).

    Returns the days a concurrent write changed meanwhile: their summaries
    stay unchecked and the caller reads them live.
    """
    first, last = min(days), max(days)
    DashboardDay.objects.bulk_create(
        [DashboardDay(day=d, version=_token()) for d in days], ignore_conflicts=True
    )
    wanted = set(days)
    read = {
        day: (pk, version)
        for day, pk, version in DashboardDay.objects.filter(
            day__gte=first, day__lte=last
        ).values_list("day", "pk", "version")
        if day in wanted
    }
    token = _token()
    with without_jit():
        rows = aggregate(days_q(days), tz=timezone.get_default_timezone())
    DashboardCount.objects.bulk_create(
        [
            DashboardCount(
                summary_id=read[row.day][0],
                fill=token,
                content_type_id=row.content_type_id,
                status=row.status,
                decided_by_kind=row.decided_by_kind,
                g_type=row.g_type,
                g_rule=row.g_rule,
                g_detail=row.g_detail,
                decisions=row.decisions,
                reviewed=row.reviewed,
                overturned=row.overturned,
                queued=row.queued,
                queued_since=row.queued_since,
            )
            for row in rows
            if row.day in read
        ],
        batch_size=500,
    )
    # Current only if no write changed the day since its version was read.
    items = sorted(read.items())
    for n in range(0, len(items), CHUNK):
        DashboardDay.objects.filter(
            reduce(
                operator.or_,
                (Q(pk=pk, version=v) for _day, (pk, v) in items[n : n + CHUNK]),
            )
        ).update(checked=F("version"), fill=token)
    DashboardCount.objects.filter(
        summary__day__gte=first,
        summary__day__lte=last,
        created_at__lt=timezone.now() - ABANDONED_FILL,
    ).exclude(fill=F("summary__fill")).delete()
    return {
        day
        for day, version, checked in DashboardDay.objects.filter(
            day__gte=first, day__lte=last
        ).values_list("day", "version", "checked")
        if day in wanted and version != checked
    }
