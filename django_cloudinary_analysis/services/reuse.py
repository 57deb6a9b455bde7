"""Content dedup: reuse a succeeded result of identical content, or wait
for a twin in flight."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Exists, Q
from django.utils import timezone

from django_cloudinary_analysis import payloads
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
)
from django_cloudinary_analysis.services.results import (
    RunOutcome,
    _after_commit_finished,
    _replace_tags,
)
from django_cloudinary_analysis.services.verdicts import _lock_object, update_verdict

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger(__name__)


#: Seconds a copy waits before looking for the result of its in-flight twin.
DUPLICATE_WAIT = 2.0


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
                        analysis_type=t.analysis_type,
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
