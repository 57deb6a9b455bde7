"""The one orchestration layer: schedule, run, apply results, decide.

Receivers, tasks, admin actions, API views, webhooks and the management
command call these functions and nothing else; only this module talks to
backends.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Exists, F, Q
from django.utils import timezone

from django_cloudinary_analysis import analyses as registry
from django_cloudinary_analysis import payloads, signals
from django_cloudinary_analysis.backends.base import get_backend
from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    QuotaLimit,
    RetryPolicy,
    parse_limits,
)
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    RateLimitError,
    UnexpectedResponse,
    UnknownAnalysisType,
)
from django_cloudinary_analysis.mixins import (
    AnalysisSpec,
    analysis_config,
    content_type_for,
    stored_name,
)
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
    QuotaState,
    params_hash,
)
from django_cloudinary_analysis.moderation import get_policy
from django_cloudinary_analysis.sources import content_key, get_resolver

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Model

logger = logging.getLogger(__name__)

#: How scheduling treats (field, type, extras) combinations already analysed.
RERUN_MISSING = "missing"  # only combinations never analysed for this file
RERUN_FAILED = "failed"  # only those whose newest analysis failed or was skipped
RERUN_UNSUCCESSFUL = "unsuccessful"  # missing, failed or skipped
RERUN_ALL = "all"  # everything, and never reuse an earlier result (force)


#: Seconds a copy waits before looking for the result of its in-flight twin.
DUPLICATE_WAIT = 2.0

#: ``scheme://user:password@`` in a broker error: keep the password out.
_SECRET_IN_URL = re.compile(r"(\w+://[^:/@\s]*):[^@\s]*@")


@dataclass(frozen=True)
class RunOutcome:
    """What ``run`` or ``poll`` did; ``retry_in`` asks the task to come back."""

    status: str
    retry_in: float | None = None


# -- scheduling -------------------------------------------------------------


def effective_params(spec: AnalysisSpec) -> dict[str, Any]:
    """The extras sent for ``spec``, with site defaults filled in."""
    params = dict(spec.params)
    if spec.type == "ai_vision_moderation" and not params.get("rejection_questions"):
        params["rejection_questions"] = list(app_settings.REJECTION_QUESTIONS)
    return params


def schedule(
    obj: Model,
    *,
    fields: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    force: bool = False,
) -> list[Analysis]:
    """Queue analyses of one object that have not succeeded for its files."""
    return schedule_many(
        [obj],
        fields=fields,
        types=types,
        rerun=RERUN_ALL if force else RERUN_UNSUCCESSFUL,
    )


def schedule_many(
    objs: Sequence[Model],
    *,
    fields: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    rerun: str = RERUN_UNSUCCESSFUL,
    new_content: bool = False,
    dry_run: bool = False,
) -> list[Analysis]:
    """Create queued Analysis rows for ``objs`` and enqueue them on commit.

    Runs a constant number of queries whatever the number of objects: one to
    read what exists (skipped when ``new_content``), one ``bulk_create``.
    """
    if not objs:
        return []
    model = type(objs[0])
    config = analysis_config(model)
    ct = content_type_for(model)
    field_filter = set(fields) if fields is not None else None
    type_filter = set(types) if types is not None else None
    backend_name = get_backend().name

    latest: dict[tuple[str, str, str, str, str], str] = {}
    if not new_content and rerun != RERUN_ALL:
        rows = (
            Analysis.objects.filter(
                content_type=ct, object_id__in=[str(o.pk) for o in objs]
            )
            .exclude(status=AnalysisStatus.CANCELLED)
            .order_by("created_at", "pk")
            .values_list(
                "object_id",
                "field_name",
                "file_name",
                "analysis_type",
                "params_hash",
                "status",
            )
        )
        for oid, fname, file_name, atype, phash, status in rows:
            latest[(oid, fname, file_name, atype, phash)] = status  # newest wins

    unsuccessful = {AnalysisStatus.FAILED, AnalysisStatus.SKIPPED}
    planned: list[Analysis] = []
    for obj in objs:
        oid = str(obj.pk)
        for field_name, specs in config.items():
            if field_filter is not None and field_name not in field_filter:
                continue
            file_name = stored_name(getattr(obj, field_name, None))
            if not file_name:
                continue
            for spec in specs:
                if type_filter is not None and spec.type not in type_filter:
                    continue
                params = effective_params(spec)
                phash = params_hash(params)
                status = latest.get((oid, field_name, file_name, spec.type, phash))
                if rerun == RERUN_MISSING and status is not None:
                    continue
                if rerun == RERUN_FAILED and status not in unsuccessful:
                    continue
                if (
                    rerun == RERUN_UNSUCCESSFUL
                    and status is not None
                    and status not in unsuccessful
                ):
                    continue
                planned.append(
                    Analysis(
                        content_type=ct,
                        object_id=oid,
                        field_name=field_name,
                        file_name=file_name,
                        analysis_type=spec.type,
                        params=params,
                        params_hash=phash,
                        backend=backend_name,
                        allow_reuse=rerun != RERUN_ALL,
                    )
                )
    if dry_run or not planned:
        return planned
    created = Analysis.objects.bulk_create(planned)
    ids = [a.pk for a in created]
    transaction.on_commit(lambda: enqueue_or_record(ids))
    return created


def enqueue_or_record(analysis_ids: Sequence[int], *, fan_out: bool = True) -> bool:
    """Enqueue; when the broker refuses, log it and record it on the analyses.

    Runs after the commit: raising would fail a request whose data is saved.
    The analyses stay ``queued`` with the reason ``enqueue_failed`` until
    ``recover_stuck`` (the periodic task or ``analyze_media --stuck``)
    queues them again.
    """
    from kombu.exceptions import OperationalError

    from django_cloudinary_analysis.tasks import run_analysis

    try:
        enqueue(analysis_ids, fan_out=fan_out)
    except Exception as exc:
        if run_analysis.app.conf.task_always_eager and not isinstance(
            exc, OperationalError
        ):
            raise  # in-process, this is the task's own error, not the broker's
        reason = _SECRET_IN_URL.sub(r"\1***@", f"{type(exc).__name__}: {exc}")[:500]
        logger.error(
            "%d analyses could not be queued (%s); recover_stuck queues them again",
            len(analysis_ids),
            reason,
            extra={"analysis_ids": list(analysis_ids)},
        )
        Analysis.objects.filter(
            pk__in=list(analysis_ids), status=AnalysisStatus.QUEUED
        ).update(
            error_code="enqueue_failed",
            error_message=f"the task could not be queued ({reason}); the "
            "recover_stuck task or `analyze_media --stuck` queues it again",
        )
        return False
    return True


def recover_stuck(
    *, queued_after: float | None = None, running_after: float | None = None
) -> dict[str, int]:
    """Queue again the analyses whose message was lost; return counts by status.

    ``queued``: not claimed ``queued_after`` seconds (STUCK_AFTER) after they
    were created, or at once when their publish failed. ``running`` /
    ``retrying``: claimed by a worker that gave no news for
    ``running_after`` seconds (RUNNING_TIMEOUT), put back to ``queued``.
    ``waiting``: past the async deadline, polled so they end as overdue.
    The claim is a conditional UPDATE, so a message that survives beside the
    new one finds nothing to claim: nothing is paid twice.
    """
    now = timezone.now()
    if queued_after is None:
        queued_after = app_settings.STUCK_AFTER
    if running_after is None:
        running_after = app_settings.RUNNING_TIMEOUT
    queued_cutoff = now - timedelta(seconds=queued_after)
    running_cutoff = now - timedelta(seconds=running_after)
    retry_cutoff = running_cutoff - timedelta(seconds=app_settings.RETRY_BACKOFF_MAX)
    stuck = Analysis.objects.filter(
        Q(status=AnalysisStatus.QUEUED)
        & (Q(created_at__lte=queued_cutoff) | Q(error_code="enqueue_failed"))
    )
    queued = list(stuck.values_list("pk", flat=True))
    lost = Analysis.objects.filter(
        Q(status=AnalysisStatus.RUNNING, started_at__lte=running_cutoff)
        | Q(status=AnalysisStatus.RETRYING, started_at__lte=retry_cutoff)
    )
    taken = list(lost.values_list("pk", "status"))
    counts = {"queued": len(queued), "running": 0, "retrying": 0, "waiting": 0}
    for analysis_id, status in taken:
        # Conditional: a worker that answers meanwhile keeps its analysis.
        if (
            Analysis.objects.filter(
                pk=analysis_id, status=status, started_at__lte=running_cutoff
            )
            .exclude(status=AnalysisStatus.RETRYING, started_at__gt=retry_cutoff)
            .update(
                status=AnalysisStatus.QUEUED,
                error_code="worker_lost",
                error_message=f"no news from its worker for {running_after:.0f} s; "
                "queued again by recover_stuck",
            )
        ):
            counts[status] += 1
            queued.append(analysis_id)
    if queued:
        transaction.on_commit(lambda: enqueue_or_record(queued))
    overdue = now - timedelta(seconds=app_settings.ASYNC_DEADLINE + queued_after)
    waiting = list(
        Analysis.objects.filter(
            status=AnalysisStatus.WAITING, started_at__lte=overdue
        ).values_list("pk", flat=True)
    )
    for analysis_id in waiting:
        transaction.on_commit(lambda i=analysis_id: enqueue_poll(i, countdown=0))  # type: ignore[misc]
    counts["waiting"] = len(waiting)
    if any(counts.values()):
        logger.warning("recover_stuck queued analyses again: %s", counts)
    return counts


def enqueue(analysis_ids: Iterable[int], *, fan_out: bool = True) -> None:
    """Send the analyses to the workers, one ``run_analysis`` task each.

    One task per analysis keeps retries and parallelism per analysis. From
    the web process (``fan_out``), several ids travel as one
    ``dispatch_analyses`` message that a worker fans out, so a save pays for
    one publish whatever the number of analyses. Messages published together
    share a producer and, where kombu can batch (5.7+, Redis), one round trip.
    """
    from django_cloudinary_analysis.tasks import dispatch_analyses, run_analysis

    ids = list(analysis_ids)
    options = {"queue": app_settings.QUEUE} if app_settings.QUEUE else {}
    eager = run_analysis.app.conf.task_always_eager
    if fan_out and len(ids) > 1 and not eager:
        dispatch_analyses.apply_async((ids,), **options)
        return
    if eager:
        for analysis_id in ids:
            run_analysis.apply_async((analysis_id,), **options)
        return
    with run_analysis.app.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)
        with batch() if batch is not None else contextlib.nullcontext():
            for analysis_id in ids:
                run_analysis.apply_async((analysis_id,), producer=producer, **options)


def content_changed(
    obj: Model,
    fields: Sequence[str],
    *,
    previous_status: str,
    status_written: bool,
    created: bool = False,
) -> list[Analysis]:
    """React to new files on ``obj``: reset its verdict and queue analyses.

    Called after the object's row was saved; ``status_written`` says whether
    that save already wrote ``moderation_status = pending``. A new object has
    no verdict to reset, so nothing is recorded for it.
    """
    if created:
        return schedule_many([obj], fields=fields, new_content=True)
    note = "new content in " + ", ".join(fields)
    _record_decision(
        obj,
        ModerationStatus.PENDING,
        previous=previous_status,
        source=ModerationDecision.Source.SYSTEM,
        reasons=[{"rule": "content_changed", "fields": list(fields)}],
        note=note,
        write_status=not status_written,
    )
    return schedule_many([obj], fields=fields, new_content=True)


def forget(obj: Model) -> None:
    """Delete every analysis, tag and decision of a deleted object."""
    ct = content_type_for(obj)
    oid = str(obj.pk)
    MediaTag.objects.filter(content_type=ct, object_id=oid).delete()
    Analysis.objects.filter(content_type=ct, object_id=oid).delete()
    ModerationDecision.objects.filter(content_type=ct, object_id=oid).delete()


# -- running ----------------------------------------------------------------


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


def _load_object(analysis: Analysis) -> Model | None:
    model = analysis.content_type.model_class()
    if model is None:
        return None
    return model._default_manager.filter(pk=analysis.object_id).first()


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
        registry.get(analysis.analysis_type)
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


def _notification_url(analysis_type: str, backend: Any) -> str | None:
    if analysis_type not in app_settings.async_types or not backend.supports_async:
        return None
    if not registry.get(analysis_type).async_allowed:
        return None
    return app_settings.WEBHOOK_URL or None


def _sibling_content_key(analysis: Analysis) -> str:
    """Reuse a digest another analysis of the same file already computed."""
    return (
        Analysis.objects.filter(
            content_type_id=analysis.content_type_id,
            object_id=analysis.object_id,
            field_name=analysis.field_name,
            file_name=analysis.file_name,
        )
        .exclude(content_key="")
        .values_list("content_key", flat=True)
        .first()
        or ""
    )


def _reusable(analysis: Analysis) -> Analysis | None:
    return (
        Analysis.objects.filter(
            content_key=analysis.content_key,
            analysis_type=analysis.analysis_type,
            params_hash=analysis.params_hash,
            status=AnalysisStatus.SUCCEEDED,
        )
        .exclude(pk=analysis.pk)
        .order_by("-finished_at", "-pk")
        .first()
    )


def _lead_or_follow(analysis: Analysis) -> int | None:
    """Become the one analysis sending this content, or name the one that is.

    Copies of one file uploaded together would each be billed. Storing the
    content key marks the sender; it is stored only when no other analysis of
    the same content, type and extras is in flight, in one conditional UPDATE
    (and, on PostgreSQL, under an advisory lock on the key), so of two copies
    looking at the same moment exactly one sends and the other waits to reuse
    its result.
    """
    now = timezone.now()
    # A lead that has said nothing for TWIN_LEASE seconds is presumed dead; one
    # waiting for its webhook holds until the async deadline.
    lease = now - timedelta(seconds=app_settings.TWIN_LEASE)
    recent = now - timedelta(seconds=app_settings.ASYNC_DEADLINE)
    twins = (
        Analysis.objects.filter(
            content_key=analysis.content_key,
            analysis_type=analysis.analysis_type,
            params_hash=analysis.params_hash,
        )
        .filter(
            Q(status=AnalysisStatus.RUNNING, started_at__gte=lease)
            | Q(status=AnalysisStatus.WAITING, started_at__gte=recent)
            # one that finished since the caller looked for a result to reuse
            | Q(status=AnalysisStatus.SUCCEEDED)
        )
        .exclude(pk=analysis.pk)
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            lock = "|".join(
                (analysis.content_key, analysis.analysis_type, analysis.params_hash)
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock])
        led = (
            Analysis.objects.filter(pk=analysis.pk)
            .filter(~Exists(twins))
            .update(content_key=analysis.content_key)
        )
    if led:
        return None
    twin = twins.values_list("pk", flat=True).first()
    if twin is None:  # it finished in between: send, or reuse next time
        Analysis.objects.filter(pk=analysis.pk).update(content_key=analysis.content_key)
    return twin


def _reuse(analysis: Analysis, donor: Analysis, obj: Model) -> RunOutcome:
    donor_tags = list(donor.tags.all())
    with transaction.atomic():
        _lock_object(obj)
        updated = Analysis.objects.filter(
            pk=analysis.pk, status=AnalysisStatus.RUNNING
        ).update(
            status=AnalysisStatus.SUCCEEDED,
            result=donor.result,
            raw=payloads.reused_raw(donor.raw, analysis.file_name),
            request_id=donor.request_id,
            reused_from=donor,
            # Any surviving copy can then be reused once the donor is deleted.
            content_key=analysis.content_key,
            finished_at=timezone.now(),
            error_code="",
            error_message="",
        )
        if updated:
            _replace_tags(
                analysis,
                [
                    MediaTag(
                        name=t.name,
                        label=t.label,
                        confidence=t.confidence,
                        source=t.source,
                        box=t.box,
                    )
                    for t in donor_tags
                ],
            )
            analysis.refresh_from_db()
            update_verdict(obj)
            _after_commit_finished(analysis)
    logger.info(
        "analysis %s reused the result of %s",
        analysis.pk,
        donor.pk,
        extra={"analysis_id": analysis.pk},
    )
    return RunOutcome("reused")


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
    kind = registry.get(analysis.analysis_type)
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
        MediaTag(
            name=t.name[:255],
            label=str(t.label)[:255],
            confidence=t.confidence,
            source=t.source or analysis.analysis_type,
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
    with transaction.atomic():
        if obj is not None:
            _lock_object(obj)
        updated = Analysis.objects.filter(
            pk=analysis.pk, status__in=list(from_statuses)
        ).update(
            status=AnalysisStatus.SUCCEEDED,
            result=summary,
            raw=result.raw if app_settings.STORE_RAW else None,
            request_id=(result.request_id or "")[:100],
            finished_at=timezone.now(),
            error_code="",
            error_message="",
        )
        if not updated:
            return False
        _replace_tags(analysis, tags)
        record_limits(result.limits)
        analysis.refresh_from_db()
        if obj is not None:
            update_verdict(obj)
        _after_commit_finished(analysis)
    return True


def _replace_tags(analysis: Analysis, tags: list[MediaTag]) -> None:
    MediaTag.objects.filter(
        content_type_id=analysis.content_type_id,
        object_id=analysis.object_id,
        field_name=analysis.field_name,
        analysis__analysis_type=analysis.analysis_type,
    ).delete()
    for tag in tags:
        tag.analysis_id = analysis.pk
        tag.content_type_id = analysis.content_type_id
        tag.object_id = analysis.object_id
        tag.field_name = analysis.field_name
    MediaTag.objects.bulk_create(tags)


def _lock_object(obj: Model) -> None:
    """Serialise verdict updates per object (a row lock where supported)."""
    type(obj)._default_manager.select_for_update().filter(pk=obj.pk).values_list(
        "pk", flat=True
    ).first()


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
            error_code=exc.code[:100],
            error_message=f"{exc} (attempt {analysis.attempts}, retrying in "
            f"{delay:.0f} s)",
            request_id=(exc.request_id or "")[:100],
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
    with transaction.atomic():
        if obj is not None:
            _lock_object(obj)
        fields: dict[str, Any] = {
            "status": status,
            "error_code": code[:100],
            "error_message": message,
            "finished_at": timezone.now(),
        }
        if request_id:
            fields["request_id"] = request_id[:100]
        updated = Analysis.objects.filter(
            pk=analysis.pk, status__in=list(from_statuses)
        ).update(**fields)
        if not updated:
            return RunOutcome("noop")
        analysis.refresh_from_db()
        if obj is not None and status != AnalysisStatus.CANCELLED:
            update_verdict(obj)
        _after_commit_finished(analysis)
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


# -- quotas -----------------------------------------------------------------


def quota_blocked_until(analysis_type: str) -> datetime | None:
    """When the quota this type spends is exhausted, the time it resets."""
    feature = registry.get(analysis_type).quota_feature
    if not feature:
        return None
    return (
        QuotaState.objects.filter(feature=feature, blocked_until__gt=timezone.now())
        .values_list("blocked_until", flat=True)
        .first()
    )


def record_limits(
    limits: Sequence[QuotaLimit] | None, blocked_hint: float | None = None
) -> None:
    """Remember exhausted quotas so no worker calls them before the reset."""
    for limit in payloads.quota_limits(limits):
        if not limit.type or limit.remaining is None or limit.remaining > 0:
            continue
        until = limit.reset_time
        if until is None and blocked_hint is not None:
            until = timezone.now() + timedelta(seconds=blocked_hint)
        if until is None or until <= timezone.now():
            continue
        QuotaState.objects.update_or_create(
            feature=limit.type,
            defaults={
                "remaining": limit.remaining,
                "limit": limit.limit,
                "blocked_until": until,
            },
        )
        logger.warning(
            "quota %s exhausted until %s",
            limit.type,
            until.isoformat(),
            extra={"quota_feature": limit.type},
        )


def _defer(analysis: Analysis, code: str, reason: str, delay: float) -> RunOutcome:
    """Put a claimed analysis back for later; waiting is not an attempt."""
    Analysis.objects.filter(pk=analysis.pk, status=AnalysisStatus.RUNNING).update(
        status=AnalysisStatus.RETRYING,
        attempts=F("attempts") - 1,
        error_code=code,
        error_message=reason,
    )
    return RunOutcome(code, retry_in=delay)


# -- async analyses -----------------------------------------------------------


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


def enqueue_poll(analysis_id: int, countdown: float | None = None) -> None:
    """Check the remote task once the poll interval (or ``countdown``) passed."""
    from django_cloudinary_analysis.tasks import poll_remote

    options = {"queue": app_settings.QUEUE} if app_settings.QUEUE else {}
    if countdown is None:
        countdown = app_settings.ASYNC_POLL_INTERVAL
    poll_remote.apply_async((analysis_id,), countdown=countdown, **options)


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
    try:
        status = get_backend().get_task_status(analysis.remote_task_id)
    except AnalysisError as exc:
        if exc.retryable and not overdue:
            return RunOutcome("poll_error", retry_in=app_settings.ASYNC_POLL_INTERVAL)
        if exc.retryable:
            # The deadline holds during an outage too: never wait for ever.
            return _finish(
                analysis,
                AnalysisStatus.FAILED,
                code="overdue",
                message=f"no result arrived within {app_settings.ASYNC_DEADLINE} s "
                f"(remote status unknown: {exc})",
                obj=_load_object(analysis),
                from_statuses=(AnalysisStatus.WAITING,),
            )
        return _finish(
            analysis,
            AnalysisStatus.FAILED,
            code=exc.code,
            message=f"the remote task cannot be checked: {exc}",
            obj=_load_object(analysis),
            from_statuses=(AnalysisStatus.WAITING,),
        )
    if status.status == "failed":
        return _finish(
            analysis,
            AnalysisStatus.FAILED,
            code="remote_task_failed",
            message="the API reports the analysis task failed",
            obj=_load_object(analysis),
            from_statuses=(AnalysisStatus.WAITING,),
        )
    if overdue:
        return _finish(
            analysis,
            AnalysisStatus.FAILED,
            code="overdue",
            message=(
                f"no result arrived within {app_settings.ASYNC_DEADLINE} s "
                f"(remote status {status.status!r})"
            ),
            obj=_load_object(analysis),
            from_statuses=(AnalysisStatus.WAITING,),
        )
    return RunOutcome("waiting", retry_in=app_settings.ASYNC_POLL_INTERVAL)


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


def apply_notification(payload: dict[str, Any]) -> str:
    """Apply a verified webhook body; return what happened (for the log).

    Outcomes: ``applied``, ``failed`` (an error notification), ``duplicate``
    (already final), ``unknown`` (no such task), ``ignored`` (another type).
    """
    if payload.get("notification_type") != "analyze":
        return "ignored"
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return "ignored"
    analysis = (
        Analysis.objects.select_related("content_type")
        .filter(remote_task_id=task_id)
        .first()
    )
    if analysis is None:
        return "unknown"
    if analysis.status != AnalysisStatus.WAITING:
        return "duplicate"
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
        return "cancelled"
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
        return "failed"
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
        return "failed"
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
    return "applied" if applied else "duplicate"


# -- moderation ---------------------------------------------------------------


def current_analyses(obj: Model) -> list[Analysis]:
    """The newest analysis per (field, type) for the object's current files."""
    names = {
        field: stored_name(getattr(obj, field, None))
        for field in analysis_config(type(obj))
    }
    seen: set[tuple[str, str]] = set()
    current = []
    rows = (
        Analysis.objects.for_object(obj)
        .exclude(status=AnalysisStatus.CANCELLED)
        .prefetch_related("tags")
    )
    for analysis in rows:  # newest first
        if names.get(analysis.field_name) != analysis.file_name:
            continue
        key = (analysis.field_name, analysis.analysis_type)
        if key in seen:
            continue
        seen.add(key)
        current.append(analysis)
    return current


def update_verdict(obj: Model) -> ModerationDecision | None:
    """Recompute the automatic verdict unless a human decision pins it.

    A human verdict standing on identical content comes first (see
    ``_standing_human_decision``).
    """
    latest = ModerationDecision.objects.for_object(obj).first()
    if latest is not None and latest.pins_verdict:
        return None
    analyses = current_analyses(obj)
    followed = _follow_human_decision(obj, analyses, latest)
    if followed is not None:
        return followed
    verdict = get_policy().decide(analyses)
    if verdict is None:
        return None
    old = latest.status if latest is not None else obj.moderation_status  # type: ignore[attr-defined]
    if latest is not None and old == verdict.status:
        return None
    return _record_decision(
        obj,
        verdict.status,
        previous=old,
        source=ModerationDecision.Source.AUTO,
        reasons=verdict.reasons,
    )


def verdict_content_key(analyses: Iterable[Analysis]) -> str:
    """The content a verdict on these analyses judges ("" while unknown).

    One file: its content key. Several: a digest of their keys in field
    order. Unknown until a worker computed the key of every file.
    """
    keys: dict[str, str] = {}
    for analysis in analyses:
        keys.setdefault(analysis.field_name, "")
        if analysis.content_key:
            keys[analysis.field_name] = analysis.content_key
    if not keys or not all(keys.values()):
        return ""
    if len(keys) == 1:
        return next(iter(keys.values()))
    joined = "\n".join(f"{name}={key}" for name, key in sorted(keys.items()))
    return "files:" + params_hash({"keys": joined})


def _follow_human_decision(
    obj: Model, analyses: list[Analysis], latest: ModerationDecision | None
) -> ModerationDecision | None:
    """Apply the human verdict standing on the same content, if there is one.

    Not after a reviewer released this object's current content: then the
    policy decides.
    """
    key = verdict_content_key(analyses)
    if not key:
        return None
    if latest is not None and _released_since_new_content(obj):
        return None
    origin = _standing_human_decision(obj, key)
    if origin is None:
        return None
    reviewer = origin.decided_by
    who = reviewer.get_username() if reviewer is not None else "a reviewer"
    return _record_decision(
        obj,
        origin.status,
        previous=latest.status if latest is not None else obj.moderation_status,  # type: ignore[attr-defined]
        source=ModerationDecision.Source.HUMAN,
        reasons=[
            {
                "rule": "follows_content",
                "decision": origin.pk,
                "status": origin.status,
                "object": f"{origin.content_type_id}:{origin.object_id}",
                "by": getattr(reviewer, "pk", None),
                "content_key": key,
            }
        ],
        note=f"follows decision {origin.pk} ({origin.status} by {who}) "
        "on identical content",
        user=reviewer,
        content_key=key,
        follows=origin,
    )


def _released_since_new_content(obj: Model) -> bool:
    for decision in ModerationDecision.objects.for_object(obj).only(
        "source", "reasons"
    ):  # newest first
        if decision.source == ModerationDecision.Source.SYSTEM:
            return False
        if any(r.get("rule") == "released" for r in decision.reasons or ()):
            return True
    return False


def _standing_human_decision(obj: Model, key: str) -> ModerationDecision | None:
    """The human verdict on content ``key`` that still stands on another object.

    It stands while it is the newest decision of its object (a new file, a
    release or a later decision ends it). A rejection wins over an approval;
    approvals count unless HUMAN_APPROVAL_FOLLOWS_CONTENT is off.
    """
    statuses = [ModerationStatus.REJECTED]
    if app_settings.HUMAN_APPROVAL_FOLLOWS_CONTENT:
        statuses.append(ModerationStatus.APPROVED)
    candidates = (
        ModerationDecision.objects.filter(
            content_key=key,
            source=ModerationDecision.Source.HUMAN,
            status__in=statuses,
        )
        .exclude(content_type=content_type_for(obj), object_id=str(obj.pk))
        .select_related("decided_by")
        .order_by("-decided_at", "-pk")
    )
    found: ModerationDecision | None = None
    for candidate in candidates[:50]:
        newest = (
            ModerationDecision.objects.filter(
                content_type_id=candidate.content_type_id,
                object_id=candidate.object_id,
            )
            .values_list("pk", flat=True)
            .first()
        )
        if newest != candidate.pk:
            continue
        if candidate.status == ModerationStatus.REJECTED:
            return candidate
        found = found or candidate
    return found


def _record_decision(
    obj: Model,
    status: str,
    *,
    previous: str,
    source: str,
    reasons: list[dict[str, Any]] | None = None,
    note: str = "",
    user: AbstractBaseUser | None = None,
    write_status: bool = True,
    content_key: str = "",
    follows: ModerationDecision | None = None,
) -> ModerationDecision:
    decision = ModerationDecision.objects.create(
        content_type=content_type_for(obj),
        object_id=str(obj.pk),
        status=status,
        previous_status=previous,
        source=source,
        decided_by=user if user is not None and user.is_authenticated else None,
        reasons=reasons or [],
        note=note,
        content_key=content_key,
        follows=follows,
    )
    if write_status:
        type(obj)._default_manager.filter(pk=obj.pk).update(moderation_status=status)
    obj.moderation_status = status  # type: ignore[attr-defined]
    if previous != status:
        transaction.on_commit(
            lambda: signals.moderation_changed.send(
                sender=type(obj),
                instance=obj,
                old=previous,
                new=status,
                decision=decision,
            )
        )
    return decision


def approve(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Approve ``obj`` by hand; the verdict stands until its content changes."""
    return _human_decision(obj, ModerationStatus.APPROVED, user, note)


def reject(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Reject ``obj`` by hand; the verdict stands until its content changes."""
    return _human_decision(obj, ModerationStatus.REJECTED, user, note)


def send_to_review(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Put ``obj`` in the review queue by hand ("review", pinned like a verdict).

    No automatic verdict replaces it; the next approval or rejection does.
    """
    return _human_decision(obj, ModerationStatus.REVIEW, user, note)


def _human_decision(
    obj: Model, status: str, user: AbstractBaseUser | None, note: str
) -> ModerationDecision:
    with transaction.atomic():
        _lock_object(obj)
        previous = (
            type(obj)
            ._default_manager.filter(pk=obj.pk)
            .values_list("moderation_status", flat=True)
            .first()
        ) or ModerationStatus.PENDING
        return _record_decision(
            obj,
            status,
            previous=previous,
            source=ModerationDecision.Source.HUMAN,
            reasons=[{"rule": "human"}],
            note=note,
            user=user,
            # Later uploads of the same content follow this verdict.
            content_key=verdict_content_key(current_analyses(obj)),
        )


def release(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision | None:
    """Drop a human pin and let the policy decide again from the results."""
    with transaction.atomic():
        _lock_object(obj)
        previous = obj.moderation_status  # type: ignore[attr-defined]
        verdict = get_policy().decide(current_analyses(obj))
        status = verdict.status if verdict is not None else ModerationStatus.PENDING
        return _record_decision(
            obj,
            status,
            previous=previous,
            source=ModerationDecision.Source.AUTO,
            reasons=(verdict.reasons if verdict else [])
            + [{"rule": "released", "by": getattr(user, "pk", None)}],
            note=note,
            user=user,
        )
