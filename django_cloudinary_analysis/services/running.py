"""Running one analysis: claim it, then reuse a result, or call the backend
and either wait for the remote task or finish."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from django_cloudinary_analysis import analysis_types, payloads
from django_cloudinary_analysis.backends.base import get_backend
from django_cloudinary_analysis.client import (
    Accepted,
)
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    UnknownAnalysisType,
)
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
)
from django_cloudinary_analysis.options import (
    stored_name,
)
from django_cloudinary_analysis.services import dispatch
from django_cloudinary_analysis.services.quota import quota_blocked_until
from django_cloudinary_analysis.services.remote import (
    _notification_url,
    _wait_for_webhook,
)
from django_cloudinary_analysis.services.results import (
    RunOutcome,
    _defer,
    _finish,
    _handle_error,
    _load_object,
    apply_result,
)
from django_cloudinary_analysis.services.reuse import dedup
from django_cloudinary_analysis.sources import get_resolver

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger(__name__)


def run(analysis_id: int, *, task_id: str = "", can_wait: bool = True) -> RunOutcome:
    """Claim one analysis and take it as far as it goes (worker side).

    ``can_wait`` says whether the caller can come back later (a worker can; an
    in-process eager task cannot): without it, a quota block fails the
    analysis with its reason and a duplicate in flight is not waited for.
    """
    analysis = _claim(analysis_id, task_id)
    if analysis is None:
        logger.info(
            "analysis %s: nothing to claim (done, claimed elsewhere or deleted)",
            analysis_id,
            extra={"analysis_id": analysis_id},
        )
        return RunOutcome("noop")
    try:
        return _run_claimed(analysis, can_wait=can_wait)
    except Exception as exc:
        # A bug or an unexpected library error: never leave the row running.
        logger.exception(
            "analysis %s crashed", analysis_id, extra={"analysis_id": analysis_id}
        )
        _finish(
            analysis,
            AnalysisStatus.FAILED,
            code="internal_error",
            message=f"{type(exc).__name__}: {exc}",
        )
        raise


def run_each(analysis_ids: Iterable[int], *, task_id: str, can_wait: bool) -> None:
    """``run`` each analysis in turn, as one task (``dispatch_analyses``).

    One that asks to come back later gets its own ``run_analysis`` message
    (a refused publish leaves the row retrying, which ``recover_stuck``
    queues again). One that crashes is recorded by ``run`` and the others
    still run; the first crash is raised at the end.
    """
    crash: Exception | None = None
    for analysis_id in analysis_ids:
        try:
            outcome = run(analysis_id, task_id=task_id, can_wait=can_wait)
        except Exception as exc:  # recorded on the analysis; run the others
            crash = crash or exc
            continue
        if outcome.retry_in is not None:
            dispatch.publish(
                dispatch.RUN_ANALYSIS, analysis_id, countdown=outcome.retry_in
            )
    if crash is not None:
        raise crash


def _claim(analysis_id: int, task_id: str) -> Analysis | None:
    """The claim is a conditional UPDATE: a second delivery of the same work
    finds nothing to claim, except the redelivery of the very message whose
    worker died mid-run (same Celery task id), which may take it over."""
    analysis = Analysis.objects.claim(
        analysis_id,
        task_id=task_id,
        statuses=(AnalysisStatus.QUEUED, AnalysisStatus.RETRYING),
    )
    if analysis is None and task_id:
        analysis = Analysis.objects.claim(
            analysis_id,
            task_id=task_id,
            statuses=(AnalysisStatus.RUNNING,),
            same_task=True,
        )
        if analysis is not None:
            logger.warning(
                "analysis %s: redelivered after its worker was lost; taking over",
                analysis_id,
                extra={"analysis_id": analysis_id},
            )
    return analysis


def _run_claimed(analysis: Analysis, *, can_wait: bool) -> RunOutcome:
    obj = _load_object(analysis)
    backend = get_backend()
    refusal = _refusal(analysis, obj, backend)
    if refusal is not None:
        status, code, message = refusal
        return _finish(analysis, status, code=code, message=message, obj=obj)
    assert obj is not None  # _refusal cancels an analysis of a deleted object
    paused = _quota_pause(analysis, obj, can_wait=can_wait)
    if paused is not None:
        return paused
    try:
        media = get_resolver()(obj, analysis.field_name)
        reused_or_deferred = dedup(analysis, media, obj, can_wait=can_wait)
        if reused_or_deferred is not None:
            return reused_or_deferred
        result = backend.analyze(
            analysis.analysis_type,
            media,
            dict(analysis.params),
            notification_url=_notification_url(analysis.analysis_type, backend),
        )
        result = payloads.checked_answer(result)
    except AnalysisError as exc:
        return _handle_error(analysis, exc, obj)
    if isinstance(result, Accepted):
        return _wait_for_webhook(analysis, result)
    apply_result(analysis, result, obj=obj)
    return RunOutcome(AnalysisStatus.SUCCEEDED)


def _refusal(
    analysis: Analysis, obj: Model | None, backend: Any
) -> tuple[Any, str, str] | None:
    """Why this analysis ends before any call: (status, code, message)."""
    if obj is None:
        return (
            AnalysisStatus.CANCELLED,
            "object_deleted",
            "the object was deleted before the analysis ran",
        )
    current = stored_name(getattr(obj, analysis.field_name, None))
    if current != analysis.file_name:
        return (
            AnalysisStatus.CANCELLED,
            "content_replaced",
            f"the file was replaced ({analysis.file_name!r} → {current!r})",
        )
    try:
        analysis_types.get(analysis.analysis_type)
    except UnknownAnalysisType as exc:  # a row written by hand or an old release
        return AnalysisStatus.FAILED, exc.code, str(exc)
    if not backend.supports(analysis.analysis_type):
        return (
            AnalysisStatus.SKIPPED,
            "unsupported",
            backend.unsupported_reason(analysis.analysis_type),
        )
    return None


def _quota_pause(
    analysis: Analysis, obj: Model, *, can_wait: bool
) -> RunOutcome | None:
    """An exhausted quota: wait for its reset, or fail when nothing can wait."""
    blocked_until = quota_blocked_until(analysis.analysis_type)
    if blocked_until is None:
        return None
    reason = f"the add-on quota is exhausted until {blocked_until.isoformat()}"
    if not can_wait:
        return _finish(
            analysis,
            AnalysisStatus.FAILED,
            code="quota_exhausted",
            message=f"{reason}; tasks run in-process, so nothing waits for "
            "the reset: run it again afterwards",
            obj=obj,
        )
    delay = max((blocked_until - timezone.now()).total_seconds(), 1.0)
    return _defer(analysis, "quota_exhausted", reason, delay)
