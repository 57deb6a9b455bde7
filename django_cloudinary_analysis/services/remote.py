"""Async analyses: waiting for a webhook, polling, applying notifications."""

from __future__ import annotations

import enum
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from django_cloudinary_analysis import analysis_types
from django_cloudinary_analysis.backends.base import get_backend
from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    parse_limits,
)
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    UnexpectedResponse,
)
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
)
from django_cloudinary_analysis.options import (
    stored_name,
)
from django_cloudinary_analysis.services.dispatch import enqueue_poll
from django_cloudinary_analysis.services.results import (
    RunOutcome,
    _finish,
    _load_object,
    apply_result,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def _notification_url(analysis_type: str, backend: Any) -> str | None:
    if analysis_type not in app_settings.async_types or not backend.supports_async:
        return None
    if not analysis_types.get(analysis_type).async_allowed:
        return None
    return app_settings.WEBHOOK_URL or None


def _wait_for_webhook(analysis: Analysis, accepted: Accepted) -> RunOutcome:
    Analysis.objects.filter(pk=analysis.pk, status=AnalysisStatus.RUNNING).update(
        status=AnalysisStatus.WAITING,
        remote_task_id=accepted.task_id,
        request_id=(accepted.request_id or "")[:100],
        error_code="",  # a retried attempt's reason no longer applies
        error_message="",
    )
    transaction.on_commit(lambda: enqueue_poll(analysis.pk))
    return RunOutcome(AnalysisStatus.WAITING)


def poll(analysis_id: int) -> RunOutcome:
    """Check a waiting analysis's remote task: fail it if failed or overdue."""
    analysis = (
        Analysis.objects.select_related("content_type")
        .filter(pk=analysis_id, status=AnalysisStatus.WAITING)
        .first()
    )
    if analysis is None or not analysis.remote_task_id:
        return RunOutcome("noop")
    started = analysis.started_at or analysis.created_at
    overdue = timezone.now() - started > timedelta(seconds=app_settings.ASYNC_DEADLINE)
    failure = _poll_failure(analysis.remote_task_id, overdue)
    if failure is None:
        return RunOutcome("waiting", retry_in=app_settings.ASYNC_POLL_INTERVAL)
    code, message = failure
    if not code:  # a passing outage: ask again later
        return RunOutcome("poll_error", retry_in=app_settings.ASYNC_POLL_INTERVAL)
    return _finish(
        analysis,
        AnalysisStatus.FAILED,
        code=code,
        message=message,
        obj=_load_object(analysis),
        from_statuses=(AnalysisStatus.WAITING,),
    )


def _poll_failure(remote_task_id: str, overdue: bool) -> tuple[str, str] | None:
    """Why a waiting analysis fails now, as (code, reason); None while it may
    still succeed; ("", reason) for an outage to ride out."""
    deadline = app_settings.ASYNC_DEADLINE
    try:
        status = get_backend().get_task_status(remote_task_id)
    except AnalysisError as exc:
        if exc.retryable and not overdue:
            return "", str(exc)
        if exc.retryable:
            # The deadline holds during an outage too: never wait for ever.
            return (
                "overdue",
                f"no result arrived within {deadline} s (remote status unknown: {exc})",
            )
        return exc.code, f"the remote task cannot be checked: {exc}"
    if status.status == "failed":
        return "remote_task_failed", "the API reports the analysis task failed"
    if overdue:
        return (
            "overdue",
            f"no result arrived within {deadline} s (remote status {status.status!r})",
        )
    return None


def async_call_in_flight() -> bool:
    """Whether a worker is sending an async analysis whose task id is unknown."""
    return (
        Analysis.objects.filter(
            status=AnalysisStatus.RUNNING,
            remote_task_id__isnull=True,
            analysis_type__in=sorted(app_settings.async_types),
        )
        .only("pk")
        .exists()
    )


class NotificationOutcome(str, enum.Enum):
    """What a verified webhook body did (the view logs it and answers it)."""

    APPLIED = "applied"  # the result is stored
    FAILED = "failed"  # an error notification, or one without a result
    DUPLICATE = "duplicate"  # the analysis was already final
    CANCELLED = "cancelled"  # the object or its file changed meanwhile
    UNKNOWN = "unknown"  # no such task (yet)
    IGNORED = "ignored"  # another notification type, or no task id

    def __str__(self) -> str:
        return str(self.value)


def apply_notification(payload: dict[str, Any]) -> NotificationOutcome:
    """Apply a verified webhook body; return what happened (for the log).

    The outcomes are the members of :class:`NotificationOutcome`.
    """
    if payload.get("notification_type") != "analyze":
        return NotificationOutcome.IGNORED
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return NotificationOutcome.IGNORED
    analysis = (
        Analysis.objects.select_related("content_type")
        .filter(remote_task_id=task_id)
        .first()
    )
    if analysis is None:
        return NotificationOutcome.UNKNOWN
    if analysis.status != AnalysisStatus.WAITING:
        return NotificationOutcome.DUPLICATE
    obj = _load_object(analysis)
    if obj is None or stored_name(getattr(obj, analysis.field_name, None)) != (
        analysis.file_name
    ):
        _finish(
            analysis,
            AnalysisStatus.CANCELLED,
            code="object_deleted" if obj is None else "content_replaced",
            message="the object or its file changed while the analysis ran",
            from_statuses=(AnalysisStatus.WAITING,),
        )
        return NotificationOutcome.CANCELLED
    error = payload.get("error")
    if error:
        if isinstance(error, dict):
            detail = error.get("message") or error.get("code") or "unknown error"
            code = str(error.get("code") or "remote_error")
        else:
            detail, code = str(error), "remote_error"
        _finish(
            analysis,
            AnalysisStatus.FAILED,
            code=code,
            message=f"the API reports: {detail} (HTTP {payload.get('http_status')})",
            obj=obj,
            request_id=payload.get("request_id"),
            from_statuses=(AnalysisStatus.WAITING,),
        )
        return NotificationOutcome.FAILED
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("analysis"), dict):
        exc = UnexpectedResponse("the notification carries no data.analysis object")
        _finish(
            analysis,
            AnalysisStatus.FAILED,
            code=exc.code,
            message=str(exc),
            obj=obj,
            from_statuses=(AnalysisStatus.WAITING,),
        )
        return NotificationOutcome.FAILED
    result = AnalysisResult(
        analysis_type=analysis.analysis_type,
        analysis=data["analysis"],
        entity=data.get("entity"),
        request_id=payload.get("request_id"),
        limits=parse_limits(payload.get("limits")),
        raw=payload,
    )
    applied = apply_result(
        analysis, result, obj=obj, from_statuses=(AnalysisStatus.WAITING,)
    )
    return NotificationOutcome.APPLIED if applied else NotificationOutcome.DUPLICATE
