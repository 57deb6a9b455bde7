"""Celery tasks: thin wrappers around services (``@shared_task`` only)."""

from __future__ import annotations

import logging

from celery import shared_task

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import Analysis, AnalysisStatus

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="cloudinary_analysis.run_analysis",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # attempts are bounded by MAX_ATTEMPTS in services
)
def run_analysis(self, analysis_id: int) -> str:  # type: ignore[no-untyped-def]
    """Run one analysis; come back later when services asks for a retry."""
    outcome = services.run(analysis_id, task_id=self.request.id or "")
    if outcome.retry_in is None:
        return outcome.status
    if self.request.is_eager and outcome.status == "quota_blocked":
        # In-process tasks cannot wait for a quota reset without blocking the
        # request: leave a visible reason instead of spinning.
        Analysis.objects.filter(pk=analysis_id, status=AnalysisStatus.RETRYING).update(
            status=AnalysisStatus.FAILED,
            error_code="quota_exhausted",
            error_message="the add-on quota is exhausted; run it again after the "
            "reset (tasks run in-process, so nothing waits for it)",
        )
        return "failed"
    raise self.retry(countdown=outcome.retry_in)


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
