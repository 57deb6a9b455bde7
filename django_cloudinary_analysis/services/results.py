"""What ends a run: a result, its tags and the verdict stored; errors,
retries and deferrals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from django_cloudinary_analysis import analysis_types, signals
from django_cloudinary_analysis.client import (
    AnalysisResult,
    QuotaLimit,
    RetryPolicy,
)
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    RateLimitError,
)
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
)
from django_cloudinary_analysis.payloads import clean_text
from django_cloudinary_analysis.querysets import load_object
from django_cloudinary_analysis.services.quota import record_limits
from django_cloudinary_analysis.services.verdicts import feeds_verdict, update_verdict

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    """What ``run`` or ``poll`` did; ``retry_in`` asks the task to come back."""

    status: str
    retry_in: float | None = None


def _load_object(analysis: Analysis) -> Model | None:
    # The content type from Django's per-process cache, kept on the analysis
    # for the receivers of analysis_finished.
    analysis.content_type = ContentType.objects.get_for_id(analysis.content_type_id)
    model = analysis.content_type.model_class()
    if model is None:
        return None
    return load_object(model, analysis.object_id)


def apply_result(
    analysis: Analysis,
    result: AnalysisResult,
    *,
    obj: Model | None = None,
    from_statuses: Sequence[str] = (AnalysisStatus.RUNNING, AnalysisStatus.WAITING),  # type: ignore[assignment]
) -> bool:
    """Store a result, its tags and the new verdict in one transaction.

    Idempotent: returns False (and changes nothing) when the analysis is no
    longer in one of ``from_statuses``, e.g. on a repeated webhook.
    """
    kind = analysis_types.get(analysis.analysis_type)
    try:
        normalised = kind.normalise(result.analysis, analysis.params)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return (
            _finish(
                analysis,
                AnalysisStatus.FAILED,
                code="malformed_result",
                message=f"the API's answer could not be read: {exc}",
                obj=obj,
                from_statuses=from_statuses,
            ).status
            == AnalysisStatus.FAILED
        )
    if obj is None:
        obj = _load_object(analysis)
    threshold = app_settings.TAG_MIN_CONFIDENCE or 0.0
    tags = [
        analysis_types.TagData(
            name=t.name[:255],
            label=str(t.label)[:255],
            confidence=t.confidence,
            analysis_type=t.analysis_type or analysis.analysis_type,
            box=t.box,
        )
        for t in normalised.tags
        if t.confidence is None or t.confidence >= threshold
    ]
    summary = {
        "answers": normalised.answers,
        "responses": normalised.responses,
        "caption": normalised.caption,
        "quality": (
            {
                "word": normalised.quality.word,
                "score": normalised.quality.score,
                "confidence": normalised.quality.confidence,
            }
            if normalised.quality
            else None
        ),
    }
    fields: dict[str, Any] = {
        "status": AnalysisStatus.SUCCEEDED,
        "result": summary,
        "raw": result.raw if app_settings.STORE_RAW else None,
        "request_id": (result.request_id or "")[:100],
        "finished_at": timezone.now(),
        "error_code": "",
        "error_message": "",
    }
    if analysis.content_key:
        fields["content_key"] = analysis.content_key
    return store(
        analysis,
        fields,
        obj=obj,
        from_statuses=from_statuses,
        tags=tags,
        limits=result.limits,
    )


def store(
    analysis: Analysis,
    fields: dict[str, Any],
    *,
    obj: Model | None,
    from_statuses: Sequence[str],
    tags: Sequence[analysis_types.TagData | MediaTag] | None = None,
    limits: Sequence[QuotaLimit] | None = None,
) -> bool:
    """End a run in one transaction: the row's final ``fields`` (one
    conditional UPDATE), its tags, exhausted quotas and, when the type bears
    on it, the verdict. False (nothing written) when the row is no longer in
    one of ``from_statuses``.

    Without a verdict to decide the transaction is left out where one
    statement does: the UPDATE alone, or on PostgreSQL the UPDATE and the
    tags in one statement.
    """
    fields = {**fields}
    replace_tags = bool(tags) or (tags is not None and analysis.had_tags)
    decide = (
        obj is not None
        and fields["status"] != AnalysisStatus.CANCELLED
        and feeds_verdict(type(obj), analysis.analysis_type)
    )
    if not decide and not replace_tags:
        done = Analysis.objects.finish(analysis.pk, from_statuses, **fields)
    elif not decide and connection.vendor == "postgresql":
        done = Analysis.objects.finish_with_tags(
            analysis, from_statuses, fields, tags or []
        )
    else:
        return _store_in_transaction(
            analysis,
            fields,
            obj if decide else None,
            from_statuses,
            tags if replace_tags else None,
            limits,
        )
    if done:
        for name, value in fields.items():
            setattr(analysis, name, value)
        record_limits(limits)
        _after_commit_finished(analysis)
    return done


def _store_in_transaction(
    analysis: Analysis,
    fields: dict[str, Any],
    obj: Model | None,
    from_statuses: Sequence[str],
    tags: Sequence[analysis_types.TagData | MediaTag] | None,
    limits: Sequence[QuotaLimit] | None,
) -> bool:
    """The general case: the row, its tags, quotas and (with ``obj``, the
    verdict's object) the verdict in one transaction."""
    with transaction.atomic():
        if tags is not None and connection.vendor == "postgresql":
            done = Analysis.objects.finish_with_tags(
                analysis, from_statuses, fields, tags
            )
        else:
            done = Analysis.objects.finish(analysis.pk, from_statuses, **fields)
            if done and tags is not None:
                MediaTag.objects.replace(analysis, tags)
        if not done:
            return False
        for name, value in fields.items():
            setattr(analysis, name, value)
        record_limits(limits)
        if obj is not None:
            update_verdict(obj)
        _after_commit_finished(analysis)
    return True


def _handle_error(analysis: Analysis, exc: AnalysisError, obj: Model) -> RunOutcome:
    if isinstance(exc, RateLimitError):
        record_limits(exc.limits, blocked_hint=exc.retry_after)
    if exc.status == AnalysisStatus.SKIPPED:
        return _finish(
            analysis, AnalysisStatus.SKIPPED, code=exc.code, message=str(exc), obj=obj
        )
    if exc.retryable and analysis.attempts < app_settings.MAX_ATTEMPTS:
        delay = retry_delay(analysis.attempts, exc.retry_after)
        Analysis.objects.filter(pk=analysis.pk, status=AnalysisStatus.RUNNING).update(
            status=AnalysisStatus.RETRYING,
            error_code=clean_text(exc.code)[:100],
            error_message=clean_text(
                f"{exc} (attempt {analysis.attempts}, retrying in {delay:.0f} s)"
            ),
            request_id=clean_text(exc.request_id or "")[:100],
        )
        logger.info(
            "analysis %s: %s, retry in %.1f s",
            analysis.pk,
            exc.code,
            delay,
            extra={"analysis_id": analysis.pk, "error_code": exc.code},
        )
        return RunOutcome(AnalysisStatus.RETRYING, retry_in=delay)
    message = str(exc)
    if exc.retryable:
        message += f" (gave up after {analysis.attempts} attempts)"
    return _finish(
        analysis,
        AnalysisStatus.FAILED,
        code=exc.code,
        message=message,
        obj=obj,
        request_id=exc.request_id,
    )


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: backoff with jitter, or the server's
    ``retry_after`` when it asks for longer, never above RETRY_BACKOFF_MAX."""
    cap = float(app_settings.RETRY_BACKOFF_MAX)
    policy = RetryPolicy(base=float(app_settings.RETRY_BACKOFF), cap=cap)
    hint = AnalysisError(retry_after=retry_after) if retry_after is not None else None
    return min(policy.delay(attempt, hint), cap)


def _finish(
    analysis: Analysis,
    status: str,
    *,
    code: str = "",
    message: str = "",
    obj: Model | None = None,
    request_id: str | None = None,
    from_statuses: Sequence[str] = (AnalysisStatus.RUNNING,),  # type: ignore[assignment]
) -> RunOutcome:
    """Put an analysis in a final state with a reason, then re-decide."""
    # The API's words may hold what no text column stores (NUL, a lone
    # surrogate): the failure must keep its reason, not crash on it.
    message = clean_text(message)
    fields: dict[str, Any] = {
        "status": status,
        "error_code": clean_text(code)[:100],
        "error_message": message,
        "finished_at": timezone.now(),
    }
    if request_id:
        fields["request_id"] = clean_text(request_id)[:100]
    if not store(analysis, fields, obj=obj, from_statuses=from_statuses):
        return RunOutcome("noop")
    log = logger.warning if status == AnalysisStatus.FAILED else logger.info
    log(
        "analysis %s %s: %s",
        analysis.pk,
        status,
        message,
        extra={"analysis_id": analysis.pk, "error_code": code},
    )
    return RunOutcome(status)


def _after_commit_finished(analysis: Analysis) -> None:
    transaction.on_commit(
        lambda: signals.analysis_finished.send(sender=Analysis, analysis=analysis)
    )


def _defer(analysis: Analysis, code: str, reason: str, delay: float) -> RunOutcome:
    """Put a claimed analysis back for later; waiting is not an attempt."""
    Analysis.objects.filter(pk=analysis.pk, status=AnalysisStatus.RUNNING).update(
        status=AnalysisStatus.RETRYING,
        attempts=F("attempts") - 1,
        error_code=clean_text(code)[:100],
        error_message=clean_text(reason),
    )
    return RunOutcome(code, retry_in=delay)
