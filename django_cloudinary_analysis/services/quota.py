"""Quotas: the API's rate-limit answers, recorded and honoured."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

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


def quota_blocked_until(analysis_type: str) -> datetime | None:
    """When the quota this type spends is exhausted, the time it resets."""
    feature = analysis_types.get(analysis_type).quota_feature
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
