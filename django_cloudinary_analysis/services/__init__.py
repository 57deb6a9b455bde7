"""The one orchestration layer: schedule, run, apply results, decide.

Receivers, tasks, admin actions, API views, webhooks and the management
command call these functions and nothing else; only this package talks to
backends. Its modules, each importing only those below it (no circle):

* ``verdicts`` — the automatic verdict, human decisions, following content;
  ``quota`` — rate-limit answers; ``dispatch`` — publishing to Celery;
* ``results`` — storing a result or an error, retries and deferrals;
* ``reuse`` — content dedup; ``remote`` — webhooks and polling;
* ``running`` — one run from claim to finish;
* ``scheduling`` — which analyses a save needs, and recovery.

Callers use the names re-exported here: ``services.schedule(...)``.
"""

from __future__ import annotations

from django_cloudinary_analysis.options import effective_params
from django_cloudinary_analysis.services.dispatch import (
    enqueue,
    enqueue_or_record,
    enqueue_poll,
)
from django_cloudinary_analysis.services.quota import (
    quota_blocked_until,
    record_limits,
)
from django_cloudinary_analysis.services.remote import (
    NotificationOutcome,
    apply_notification,
    async_call_in_flight,
    poll,
)
from django_cloudinary_analysis.services.results import (
    RunOutcome,
    apply_result,
    retry_delay,
)
from django_cloudinary_analysis.services.running import run, run_each
from django_cloudinary_analysis.services.scheduling import (
    RERUN_ALL,
    RERUN_FAILED,
    RERUN_MISSING,
    RERUN_UNSUCCESSFUL,
    Rerun,
    content_changed,
    forget,
    recover_stuck,
    schedule,
    schedule_many,
)
from django_cloudinary_analysis.services.verdicts import (
    _lock_object,
    approve,
    current_analyses,
    current_analyses_many,
    reject,
    release,
    send_to_review,
    update_verdict,
    verdict_content_key,
)

__all__ = [
    "RERUN_ALL",
    "RERUN_FAILED",
    "RERUN_MISSING",
    "RERUN_UNSUCCESSFUL",
    "NotificationOutcome",
    "Rerun",
    "RunOutcome",
    "_lock_object",
    "apply_notification",
    "apply_result",
    "approve",
    "async_call_in_flight",
    "content_changed",
    "current_analyses",
    "current_analyses_many",
    "effective_params",
    "enqueue",
    "enqueue_or_record",
    "enqueue_poll",
    "forget",
    "poll",
    "quota_blocked_until",
    "record_limits",
    "recover_stuck",
    "reject",
    "release",
    "retry_delay",
    "run",
    "run_each",
    "schedule",
    "schedule_many",
    "send_to_review",
    "update_verdict",
    "verdict_content_key",
]
