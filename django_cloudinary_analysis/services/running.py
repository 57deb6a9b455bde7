"""Running one analysis: claim it, then reuse a result, or call the backend
and either wait for the remote task or finish."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db.models import F
from django.utils import timezone

from django_cloudinary_analysis import analysis_types, payloads
from django_cloudinary_analysis.backends.base import get_backend
from django_cloudinary_analysis.client import (
    Accepted,
)
from django_cloudinary_analysis.conf import app_settings
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
from django_cloudinary_analysis.services.reuse import (
    DUPLICATE_WAIT,
    _lead_or_follow,
    _reusable,
    _reuse,
    _sibling_content_key,
)
from django_cloudinary_analysis.sources import content_key, get_resolver

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def run(analysis_id: int, *, task_id: str = "", can_wait: bool = True) -> RunOutcome:
    """Claim one analysis and take it as far as it goes (worker side).

    ``can_wait`` says whether the caller can come back later (a worker can; an
    in-process eager task cannot): without it, a quota block fails the
    analysis with its reason and a duplicate in flight is not waited for.

    The claim is a conditional UPDATE: a second delivery of the same work
    finds nothing to claim, except the redelivery of the very message whose
    worker died mid-run (same Celery task id), which may take it over.
    """
    now = timezone.now()
    claimable = Analysis.objects.filter(
        pk=analysis_id,
        status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RETRYING],
    )
    claimed = claimable.update(
        status=AnalysisStatus.RUNNING,
        started_at=now,
        attempts=F("attempts") + 1,
        task_id=task_id,
    )
    if not claimed and task_id:
        claimed = Analysis.objects.filter(
            pk=analysis_id, status=AnalysisStatus.RUNNING, task_id=task_id
        ).update(started_at=now, attempts=F("attempts") + 1)
        if claimed:
            logger.warning(
                "analysis %s: redelivered after its worker was lost; taking over",
                analysis_id,
                extra={"analysis_id": analysis_id},
            )
    if not claimed:
        logger.info(
            "analysis %s: nothing to claim (done, claimed elsewhere or deleted)",
            analysis_id,
            extra={"analysis_id": analysis_id},
        )
        return RunOutcome("noop")
    analysis = Analysis.objects.select_related("content_type").get(pk=analysis_id)
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


def _run_claimed(analysis: Analysis, *, can_wait: bool) -> RunOutcome:
    obj = _load_object(analysis)
    if obj is None:
        return _finish(
            analysis,
            AnalysisStatus.CANCELLED,
            code="object_deleted",
            message="the object was deleted before the analysis ran",
        )
    current = stored_name(getattr(obj, analysis.field_name, None))
    if current != analysis.file_name:
        return _finish(
            analysis,
            AnalysisStatus.CANCELLED,
            code="content_replaced",
            message=f"the file was replaced ({analysis.file_name!r} → {current!r})",
            obj=obj,
        )
    try:
        analysis_types.get(analysis.analysis_type)
    except UnknownAnalysisType as exc:  # a row written by hand or an old release
        return _finish(
            analysis, AnalysisStatus.FAILED, code=exc.code, message=str(exc), obj=obj
        )
    backend = get_backend()
    if not backend.supports(analysis.analysis_type):
        return _finish(
            analysis,
            AnalysisStatus.SKIPPED,
            code="unsupported",
            message=backend.unsupported_reason(analysis.analysis_type),
            obj=obj,
        )
    blocked_until = quota_blocked_until(analysis.analysis_type)
    if blocked_until is not None:
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

    try:
        media = get_resolver()(obj, analysis.field_name)
        if app_settings.DEDUP:
            key = analysis.content_key or _sibling_content_key(analysis)
            if not key:
                key = content_key(media)
            analysis.content_key = key
            twin = None
            if analysis.allow_reuse:
                donor = _reusable(analysis)
                if donor is not None:
                    return _reuse(analysis, donor, obj)
            if analysis.allow_reuse and can_wait:
                twin = _lead_or_follow(analysis)
            else:
                Analysis.objects.filter(pk=analysis.pk).update(content_key=key)
            if twin is not None:
                donor = _reusable(analysis)  # the twin may have just finished
                if donor is not None:
                    return _reuse(analysis, donor, obj)
                return _defer(
                    analysis,
                    "duplicate_in_flight",
                    f"waiting for analysis {twin} of the same content",
                    DUPLICATE_WAIT,
                )
        notification_url = _notification_url(analysis.analysis_type, backend)
        result = backend.analyze(
            analysis.analysis_type,
            media,
            dict(analysis.params),
            notification_url=notification_url,
        )
        result = payloads.checked_answer(result)
    except AnalysisError as exc:
        return _handle_error(analysis, exc, obj)

    if isinstance(result, Accepted):
        return _wait_for_webhook(analysis, result)
    apply_result(analysis, result, obj=obj)
    return RunOutcome(AnalysisStatus.SUCCEEDED)
