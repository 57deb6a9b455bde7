"""Celery tasks: thin wrappers around services (``@shared_task`` only)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from django_cloudinary_analysis import services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="cloudinary_analysis.run_analysis",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # attempts are bounded by MAX_ATTEMPTS in services
)
def run_analysis(self, analysis_id: int) -> Any:  # type: ignore[no-untyped-def]
    """Run one analysis; come back later when services asks for a retry."""
    eager = bool(self.request.is_eager)
    outcome = services.run(
        analysis_id, task_id=self.request.id or "", can_wait=not eager
    )
    if outcome.retry_in is None:
        return outcome.status
    if eager:
        # In-process, Celery re-applies a returned Retry at once; a raised one
        # would escape into the caller's request when eager errors propagate.
        return self.retry(countdown=outcome.retry_in, throw=False)
    raise self.retry(countdown=outcome.retry_in)


#: How many of a ``dispatch_analyses`` message's analyses its task runs
#: itself, after fanning the others out as one ``run_analysis`` task each:
#: one task fewer per message than fanning them all out, and the others
#: still run beside it on other worker processes (a save's analyses run in
#: parallel, as before). More would run them one after another.
RUN_IN_TASK = 1


@shared_task(
    bind=True,
    name="cloudinary_analysis.dispatch_analyses",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def dispatch_analyses(self, analysis_ids: list[int]) -> int:  # type: ignore[no-untyped-def]
    """Fan one commit's analyses out, and run the first one(s) here.

    Each analysis is still its own claim (``services.run``): a redelivery
    after the worker died takes over the ones this task had claimed (same
    task id), finds nothing to do for the finished ones, and the fanned-out
    ones are claimed once whatever the number of their messages. One that
    asks to come back later gets its own ``run_analysis`` message.
    """
    ids = list(analysis_ids)
    here, others = ids[:RUN_IN_TASK], ids[RUN_IN_TASK:]
    if others:
        # A refused publish is recorded on the analyses for recover_stuck.
        services.enqueue_or_record(others, fan_out=False)
    eager = bool(self.request.is_eager)
    services.run_each(here, task_id=self.request.id or "", can_wait=not eager)
    return len(ids)


@shared_task(
    bind=True,
    name="cloudinary_analysis.poll_remote",
    acks_late=True,
    ignore_result=True,
    max_retries=None,
)
def poll_remote(self, analysis_id: int) -> str:  # type: ignore[no-untyped-def]
    """Check an async analysis's remote status until it ends or is overdue."""
    outcome = services.poll(analysis_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(
    bind=True,
    name="cloudinary_analysis.sync_to_cloudinary",
    acks_late=True,
    ignore_result=True,
    max_retries=None,  # attempts are bounded by MAX_ATTEMPTS in the sync
)
def sync_to_cloudinary(self, sync_id: int) -> str:  # type: ignore[no-untyped-def]
    """Push one analysis's tags or one decision's verdict to Cloudinary."""
    from django_cloudinary_analysis.writeback import cloudinary_sync

    outcome = cloudinary_sync.run(sync_id)
    if outcome.retry_in is None:
        return outcome.status
    if self.request.is_eager:
        return self.retry(countdown=outcome.retry_in, throw=False)  # type: ignore[no-any-return]
    raise self.retry(countdown=outcome.retry_in)


@shared_task(name="cloudinary_analysis.recover_stuck", ignore_result=True)
def recover_stuck() -> dict[str, int]:
    """Queue again the analyses, pushes and emails whose message was lost or
    whose worker died (add it to Celery beat)."""
    from django_cloudinary_analysis import recovery

    return recovery.recover_stuck()


@shared_task(
    bind=True,
    name="cloudinary_analysis.send_uploader_notification",
    acks_late=True,
    ignore_result=True,
    max_retries=None,  # attempts are bounded by NOTIFY_MAX_ATTEMPTS
)
def send_uploader_notification(self, notification_id: int) -> str:  # type: ignore[no-untyped-def]
    """Email an uploader their statement of reasons or their appeal's answer."""
    from django_cloudinary_analysis.accountability import notify

    outcome = notify.deliver(notification_id)
    if outcome.retry_in is None:
        return outcome.status
    if self.request.is_eager:
        return self.retry(countdown=outcome.retry_in, throw=False)
    raise self.retry(countdown=outcome.retry_in)
