"""Scheduling: which analyses an object's files need, queued after commit;
recovery of lost messages."""

from __future__ import annotations

import copy
import enum
import functools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from django_cloudinary_analysis.backends.base import get_backend
from django_cloudinary_analysis.conf import SETTING_NAME, app_settings
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.options import (
    analysis_plan,
    content_type_for,
    stored_name,
)
from django_cloudinary_analysis.services.dispatch import enqueue_or_record, enqueue_poll
from django_cloudinary_analysis.services.verdicts import _record_decision

if TYPE_CHECKING:
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Model

logger = logging.getLogger(__name__)


class Rerun(str, enum.Enum):
    """How scheduling treats (field, type, params) combinations already analysed.

    ``force=True`` (``schedule``, ``AnalyzedMedia.analyze``, the admin and the
    API) means :attr:`ALL`; without it :attr:`UNSUCCESSFUL`.
    """

    #: Only combinations never analysed for this file.
    MISSING = "missing"
    #: Only those whose newest analysis failed or was skipped.
    FAILED = "failed"
    #: Missing, failed or skipped.
    UNSUCCESSFUL = "unsuccessful"
    #: Everything, and never reuse an earlier result (force).
    ALL = "all"

    def __str__(self) -> str:
        return str(self.value)


# The names callers used before the enum; each is the member itself.
RERUN_MISSING = Rerun.MISSING
RERUN_FAILED = Rerun.FAILED
RERUN_UNSUCCESSFUL = Rerun.UNSUCCESSFUL
RERUN_ALL = Rerun.ALL


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
        rerun=Rerun.ALL if force else Rerun.UNSUCCESSFUL,
    )


def schedule_many(
    objs: Sequence[Model],
    *,
    fields: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    rerun: Rerun | str = Rerun.UNSUCCESSFUL,
    new_content: bool = False,
    dry_run: bool = False,
) -> list[Analysis]:
    """Create queued Analysis rows for ``objs`` and enqueue them on commit.

    Runs a constant number of queries whatever the number of objects: one to
    read what exists (skipped when ``new_content``), one multi-row INSERT.
    A ``rerun`` that is not a :class:`Rerun` value raises ``ValueError``.
    """
    rows = _planned_rows(objs, fields, types, Rerun(rerun), new_content)
    if not rows:
        return []
    ct = content_type_for(type(objs[0]))
    if dry_run:
        return [_instance(row, ct) for row in rows]
    now = timezone.now()
    ids = _insert_and_enqueue(rows, now)
    created = []
    for row, pk in zip(rows, ids, strict=True):
        analysis = _instance(row, ct, pk=pk, created_at=now)
        analysis._state.adding = False
        analysis._state.db = Analysis.objects.db
        created.append(analysis)
    return created


def _instance(row: dict[str, Any], ct: ContentType, **extra: Any) -> Analysis:
    values = {name: value for name, value in row.items() if name != "content_type_id"}
    # The params are the model's plan, shared by its saves: a copy each.
    values["params"] = copy.deepcopy(values["params"])
    return Analysis(content_type=ct, **values, **extra)


def _insert_and_enqueue(rows: list[dict[str, Any]], now: datetime) -> list[int]:
    """Insert the queued rows; publish one message for them on commit."""
    ids = Analysis.objects.insert_queued_values(rows, now=now)
    transaction.on_commit(lambda: enqueue_or_record(ids))
    return ids


def _planned_rows(
    objs: Sequence[Model],
    fields: Iterable[str] | None,
    types: Iterable[str] | None,
    rerun: Rerun,
    new_content: bool,
) -> list[dict[str, Any]]:
    """The values of each analysis to queue (``{attname: value}``)."""
    if not objs:
        return []
    model = type(objs[0])
    plan = analysis_plan(model)
    ct_id = content_type_for(model).pk
    field_filter = set(fields) if fields is not None else None
    type_filter = set(types) if types is not None else None
    backend_name = _backend_name()

    latest: dict[tuple[str, str, str, str, str], str] = {}
    if not new_content and rerun != Rerun.ALL:
        existing = (
            Analysis.objects.filter(
                content_type_id=ct_id, object_id__in=[str(o.pk) for o in objs]
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
        for oid, fname, file_name, atype, phash, status in existing:
            latest[(oid, fname, file_name, atype, phash)] = status  # newest wins

    unsuccessful = {AnalysisStatus.FAILED, AnalysisStatus.SKIPPED}
    allow_reuse = rerun != Rerun.ALL
    rows: list[dict[str, Any]] = []
    for obj in objs:
        oid = str(obj.pk)
        for field_name, planned in plan.items():
            if field_filter is not None and field_name not in field_filter:
                continue
            file_name = stored_name(getattr(obj, field_name, None))
            if not file_name:
                continue
            for spec in planned:
                if type_filter is not None and spec.type not in type_filter:
                    continue
                if latest:
                    status = latest.get(
                        (oid, field_name, file_name, spec.type, spec.params_hash)
                    )
                else:
                    status = None
                if rerun == Rerun.MISSING and status is not None:
                    continue
                if rerun == Rerun.FAILED and status not in unsuccessful:
                    continue
                if (
                    rerun == Rerun.UNSUCCESSFUL
                    and status is not None
                    and status not in unsuccessful
                ):
                    continue
                rows.append(
                    {
                        "content_type_id": ct_id,
                        "object_id": oid,
                        "field_name": field_name,
                        "file_name": file_name,
                        "analysis_type": spec.type,
                        "params": spec.params,
                        "params_hash": spec.params_hash,
                        "backend": backend_name,
                        "allow_reuse": allow_reuse,
                    }
                )
    return rows


@functools.cache
def _backend_name() -> str:
    """The configured backend's name (built once per settings)."""
    return get_backend().name


def _forget_backend(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        _backend_name.cache_clear()


setting_changed.connect(_forget_backend, dispatch_uid="cloudinary_analysis.backend")


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
    if not created:
        _reset_verdict(obj, fields, previous_status, status_written)
    return schedule_many([obj], fields=fields, new_content=True)


def queue_new_content(
    obj: Model,
    fields: Sequence[str],
    *,
    previous_status: str,
    status_written: bool,
    created: bool = False,
) -> int:
    """:func:`content_changed` for the save receiver: the same rows, the
    same message, no ``Analysis`` instances built; returns how many it queued.
    """
    if not created:
        _reset_verdict(obj, fields, previous_status, status_written)
    rows = _planned_rows([obj], fields, None, Rerun.UNSUCCESSFUL, True)
    if rows:
        _insert_and_enqueue(rows, timezone.now())
    return len(rows)


def _reset_verdict(
    obj: Model, fields: Sequence[str], previous_status: str, status_written: bool
) -> None:
    _record_decision(
        obj,
        ModerationStatus.PENDING,
        previous=previous_status,
        decided_by_kind=ModerationDecision.DecidedByKind.SYSTEM,
        reasons=[{"rule": "content_changed", "fields": list(fields)}],
        note="new content in " + ", ".join(fields),
        write_status=not status_written,
    )


def forget(obj: Model) -> None:
    """Delete every analysis, tag and decision of a deleted object."""
    ct = content_type_for(obj)
    oid = str(obj.pk)
    MediaTag.objects.filter(content_type=ct, object_id=oid).delete()
    Analysis.objects.filter(content_type=ct, object_id=oid).delete()
    ModerationDecision.objects.filter(content_type=ct, object_id=oid).delete()
