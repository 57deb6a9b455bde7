"""Quotas: the API's rate-limit answers, recorded and honoured."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.utils import timezone

from django_cloudinary_analysis import analysis_types, payloads
from django_cloudinary_analysis.client import (
    QuotaLimit,
)
from django_cloudinary_analysis.models import (
    QuotaState,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


#: Seconds a worker trusts "this quota is not exhausted" without reading the
#: row again. With a shared cache (the site's CACHES) a 429 recorded by one
#: worker reaches the others at once; with a per-process cache each worker
#: learns it from the row within this time (or from its own 429).
QUOTA_CACHE_SECONDS = 1.0

_OPEN = "open"


def _cache_key(feature: str) -> str:
    return f"cloudinary_analysis:quota:{feature}"


def quota_blocked_until(analysis_type: str) -> datetime | None:
    """When the quota this type spends is exhausted, the time it resets.

    Read from Django's cache; the ``QuotaState`` row stays the source of
    truth: it is read when the cache knows nothing or says "blocked" (so a
    row moved back by hand or by a reset ends the pause at once).
    """
    feature = analysis_types.get(analysis_type).quota_feature
    if not feature:
        return None
    if cache.get(_cache_key(feature)) == _OPEN:
        return None
    until = (
        QuotaState.objects.filter(feature=feature, blocked_until__gt=timezone.now())
        .values_list("blocked_until", flat=True)
        .first()
    )
    if until is None:
        cache.set(_cache_key(feature), _OPEN, QUOTA_CACHE_SECONDS)
    else:
        _remember_block(feature, until)
    return until


def _remember_block(feature: str, until: datetime) -> None:
    seconds = (until - timezone.now()).total_seconds()
    if seconds > 0:
        cache.set(_cache_key(feature), until.isoformat(), seconds)


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
        _remember_block(limit.type, until)
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
