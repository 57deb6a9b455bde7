"""Content dedup: reuse a succeeded result of identical content, or wait
for a twin in flight."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from django_cloudinary_analysis import payloads
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
)
from django_cloudinary_analysis.services.results import (
    RunOutcome,
    _defer,
    store,
)
from django_cloudinary_analysis.sources import content_key

if TYPE_CHECKING:
    from django.db.models import Model

    from django_cloudinary_analysis.sources import Media

logger = logging.getLogger(__name__)


#: Seconds a copy waits before looking for the result of its in-flight twin.
DUPLICATE_WAIT = 2.0


def dedup(
    analysis: Analysis, media: Media, obj: Model, *, can_wait: bool
) -> RunOutcome | None:
    """Reuse a result of identical content, or wait for a twin in flight;
    ``None`` when this analysis must call the API itself.

    The content key comes from another analysis of the same file when one
    computed it (``claim`` returns it), else from the file. The common case,
    new content, costs one conditional UPDATE: becoming the lead.
    """
    if not app_settings.DEDUP:
        return None
    analysis.content_key = (
        analysis.content_key or analysis.sibling_key or content_key(media)
    )
    if not analysis.allow_reuse:
        # Sent whatever exists (force); copies in flight wait for it.
        Analysis.objects.filter(pk=analysis.pk).update(content_key=analysis.content_key)
        return None
    if not can_wait:
        donor = _reusable(analysis)
        return _reuse(analysis, donor, obj) if donor is not None else None
    twin = _lead_or_follow(analysis)
    if twin is None:
        return None
    donor = _reusable(analysis)  # a twin that succeeded, or just finished
    if donor is not None:
        return _reuse(analysis, donor, obj)
    return _defer(
        analysis,
        "duplicate_in_flight",
        f"waiting for analysis {twin} of the same content"
        if twin
        else "waiting for another analysis of the same content",
        DUPLICATE_WAIT,
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
    content key on a running analysis marks the sender: one conditional
    UPDATE, stored only when no other analysis of the same content, type and
    extras is in flight or succeeded. The partial unique index
    ``dca_analysis_one_sender`` admits one running or waiting sender per
    (content key, type, extras), so of two copies storing it at the same
    moment the database refuses the second, which waits to reuse the
    first's result. Returns the twin's id (one that succeeded counts), or
    None when this analysis leads.
    """
    now = timezone.now()
    # A lead that has said nothing for TWIN_LEASE seconds is presumed dead; one
    # waiting for its webhook holds until the async deadline.
    lease = now - timedelta(seconds=app_settings.TWIN_LEASE)
    recent = now - timedelta(seconds=app_settings.ASYNC_DEADLINE)
    if _try_lead(analysis, lease, recent):
        return None
    same = Analysis.objects.filter(
        content_key=analysis.content_key,
        analysis_type=analysis.analysis_type,
        params_hash=analysis.params_hash,
    ).exclude(pk=analysis.pk)
    # A silent lead past its lease still holds the index: release it, once.
    silent = same.filter(allow_reuse=True).filter(
        Q(status=AnalysisStatus.RUNNING, started_at__lt=lease)
        | Q(status=AnalysisStatus.WAITING, started_at__lt=recent)
    )
    if silent.update(content_key="") and _try_lead(analysis, lease, recent):
        return None
    twin = (
        same.filter(
            Q(status=AnalysisStatus.RUNNING, started_at__gte=lease)
            | Q(status=AnalysisStatus.WAITING, started_at__gte=recent)
            # one that finished since the caller looked for a result to reuse
            | Q(status=AnalysisStatus.SUCCEEDED)
        )
        .values_list("pk", flat=True)
        .first()
    )
    if twin is None and _try_lead(analysis, lease, recent):
        return None  # it ended in between without a result
    return twin if twin is not None else 0


def _try_lead(analysis: Analysis, lease: datetime, recent: datetime) -> bool:
    try:
        if connection.in_atomic_block:  # a test's transaction: keep it usable
            with transaction.atomic():
                return Analysis.objects.elect(analysis, lease=lease, deadline=recent)
        return Analysis.objects.elect(analysis, lease=lease, deadline=recent)
    except IntegrityError:  # another copy stored it first
        return False


def _reuse(analysis: Analysis, donor: Analysis, obj: Model) -> RunOutcome:
    tags = list(donor.tags.all())  # copied by value into new rows
    fields = {
        "status": AnalysisStatus.SUCCEEDED,
        "result": donor.result,
        "raw": payloads.reused_raw(donor.raw, analysis.file_name),
        "request_id": donor.request_id,
        "reused_from": donor,
        # Any surviving copy can then be reused once the donor is deleted.
        "content_key": analysis.content_key,
        "finished_at": timezone.now(),
        "error_code": "",
        "error_message": "",
    }
    store(analysis, fields, obj=obj, from_statuses=(AnalysisStatus.RUNNING,), tags=tags)
    logger.info(
        "analysis %s reused the result of %s",
        analysis.pk,
        donor.pk,
        extra={"analysis_id": analysis.pk},
    )
    return RunOutcome("reused")
