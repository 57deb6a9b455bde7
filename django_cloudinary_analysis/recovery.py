"""Queue again the work whose message was lost or whose worker died.

Three kinds of work live on rows and travel to the workers as messages:
analyses, pushes to Cloudinary (:class:`CloudinarySync`) and emails to
uploaders (:class:`Notification`). A message lost in a broker outage, or a
worker killed in the middle, leaves its row unfinished. :func:`recover_stuck`
(the ``recover_stuck`` task for Celery beat, and ``analyze_media --stuck``)
sends them again. Every row is claimed by a conditional UPDATE before its
work starts, so a message that turns up beside the new one finds nothing to
do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.accountability.models import (
    Notification,
    NotificationStatus,
)
from django_cloudinary_analysis.accountability.notify import NOTIFY_TASK
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.services.dispatch import publish
from django_cloudinary_analysis.writeback.cloudinary_sync import SYNC_TASK
from django_cloudinary_analysis.writeback.models import CloudinarySync, SyncStatus


@dataclass(frozen=True)
class Ledger:
    """A model whose rows are work for one task, and its statuses."""

    model: type[Model]
    task: str
    pending: str
    claimed: str
    retrying: str
    reason: Callable[[str], dict[str, Any]]


SYNCS = Ledger(
    CloudinarySync,
    SYNC_TASK,
    SyncStatus.PENDING,
    SyncStatus.RUNNING,
    SyncStatus.RETRYING,
    lambda text: {"error_code": "worker_lost", "error_message": text},
)
NOTIFICATIONS = Ledger(
    Notification,
    NOTIFY_TASK,
    NotificationStatus.PENDING,
    NotificationStatus.SENDING,
    NotificationStatus.RETRYING,
    lambda text: {"error": text},
)


def recover_stuck() -> dict[str, int]:
    """Queue again every kind of lost work; return counts by kind and status.

    Analyses as :func:`services.recover_stuck` counts them (``queued``,
    ``running``, ``retrying``, ``waiting``), then ``syncs_*`` and
    ``notifications_*``: ``*_queued`` were pending for ``STUCK_AFTER``
    seconds (or retrying that long past their backoff), ``*_claimed`` were
    claimed by a worker that gave no news for ``RUNNING_TIMEOUT`` seconds.
    """
    counts = services.recover_stuck()
    now = timezone.now()
    for prefix, ledger in (("syncs", SYNCS), ("notifications", NOTIFICATIONS)):
        queued, claimed = _recover(ledger, now)
        counts[f"{prefix}_queued"] = queued
        counts[f"{prefix}_claimed"] = claimed
    return counts


def _recover(ledger: Ledger, now: datetime) -> tuple[int, int]:
    stuck = now - timedelta(seconds=app_settings.STUCK_AFTER)
    silent = now - timedelta(seconds=app_settings.RUNNING_TIMEOUT)
    past_backoff = stuck - timedelta(seconds=app_settings.RETRY_BACKOFF_MAX)
    rows = ledger.model._default_manager.annotate(
        touched=Coalesce("claimed_at", "created_at")
    )
    lost = list(
        rows.filter(status=ledger.claimed, touched__lte=silent).values_list(
            "pk", flat=True
        )
    )
    # Conditional: a worker that answers meanwhile keeps its row.
    revived = ledger.model._default_manager.filter(
        pk__in=lost, status=ledger.claimed
    ).update(
        status=ledger.retrying,
        **ledger.reason(
            f"no news from its worker for {app_settings.RUNNING_TIMEOUT:.0f} s; "
            "queued again by recover_stuck"
        ),
    )
    waiting = list(
        rows.filter(
            Q(status=ledger.pending, created_at__lte=stuck)
            | Q(status=ledger.retrying, touched__lte=past_backoff)
        )
        .exclude(pk__in=lost)
        .values_list("pk", flat=True)
    )
    ids = lost + waiting
    if ids:
        transaction.on_commit(lambda: [publish(ledger.task, pk) for pk in ids])
    return len(waiting), revived
