"""Reviewer claims and undo, for the admin's review workspace.

A claim says "this reviewer is looking at this object until then". Opening
the workspace claims the next open items for a few minutes, with one
conditional UPDATE per item (the row changes hands only if it is free or
expired), so two reviewers never hold the same item. A decision releases the
claim. Decisions themselves go through :mod:`django_cloudinary_analysis.services`
(approve, reject, release); undo is a new decision that restores the
previous one, so the history keeps both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.exceptions import (
    UndoRefused,
)
from django_cloudinary_analysis.models import (
    ModerationDecision,
    ModerationStatus,
    ReviewClaim,
)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.db.models import Model

logger = logging.getLogger(__name__)

#: How long a claim holds an item for its reviewer.
CLAIM_TTL = timedelta(minutes=5)
#: How long after a decision its reviewer may undo it.
UNDO_WINDOW = timedelta(seconds=60)

ObjectKey = tuple[int, str]


def claim(
    user: AbstractBaseUser, keys: Iterable[ObjectKey], ttl: timedelta = CLAIM_TTL
) -> list[ObjectKey]:
    """Claim each (content type id, object id) that is free; return those won.

    An item is free when nobody holds it, its claim expired, or ``user``
    already holds it (the claim is then extended). Safe under concurrency:
    the change of hands is a conditional UPDATE, a first claim an INSERT
    that the unique constraint lets only one reviewer win.
    """
    now = timezone.now()
    won: list[ObjectKey] = []
    for ct_id, object_id in keys:
        taken = ReviewClaim.objects.filter(
            content_type_id=ct_id, object_id=object_id
        ).filter(Q(claimed_by=user) | Q(expires_at__lte=now))
        if taken.update(claimed_by=user, claimed_at=now, expires_at=now + ttl):
            won.append((ct_id, object_id))
            continue
        try:
            with transaction.atomic():
                ReviewClaim.objects.create(
                    content_type_id=ct_id,
                    object_id=object_id,
                    claimed_by=user,
                    claimed_at=now,
                    expires_at=now + ttl,
                )
        except IntegrityError:
            continue  # someone else holds it
        won.append((ct_id, object_id))
    return won


def extend_claims(user: AbstractBaseUser, ttl: timedelta = CLAIM_TTL) -> int:
    """Extend every live claim ``user`` holds (one UPDATE); return how many."""
    now = timezone.now()
    return ReviewClaim.objects.filter(claimed_by=user, expires_at__gt=now).update(
        expires_at=now + ttl
    )


def release_claim(user: AbstractBaseUser | None, key: ObjectKey) -> None:
    """Drop ``user``'s claim on one item (others' claims stay)."""
    ct_id, object_id = key
    ReviewClaim.objects.filter(
        content_type_id=ct_id, object_id=object_id, claimed_by=user
    ).delete()


def held_by(keys: Sequence[ObjectKey]) -> dict[ObjectKey, ReviewClaim]:
    """The live claims on ``keys``, with their reviewers, in one query."""
    if not keys:
        return {}
    where = Q(pk__in=[])
    for ct_id, object_id in keys:
        where |= Q(content_type_id=ct_id, object_id=object_id)
    claims = ReviewClaim.objects.live().filter(where).select_related("claimed_by")
    return {(c.content_type_id, c.object_id): c for c in claims}


def decide(
    obj: Model,
    verdict: str,
    *,
    user: AbstractBaseUser | None,
    note: str = "",
    key: ObjectKey,
) -> ModerationDecision | None:
    """Approve, reject or release ``obj`` through services; release the claim."""
    action: Any = {
        "approve": services.approve,
        "reject": services.reject,
        "release": services.release,
    }[verdict]
    decision = action(obj, user=user, note=note)
    release_claim(user, key)
    return decision  # type: ignore[no-any-return]


def undo(
    obj: Model,
    decision_id: int,
    *,
    user: AbstractBaseUser,
    window: timedelta = UNDO_WINDOW,
) -> ModerationDecision | None:
    """Restore the verdict before ``user``'s decision ``decision_id`` on ``obj``.

    Only the newest decision on the object, made by ``user`` within
    ``window``, can be undone. A previous human verdict is decided again by
    ``user``; an automatic one is handed back to the policy (release).
    """
    history = list(ModerationDecision.objects.for_object(obj)[:2])
    if not history or history[0].pk != decision_id:
        raise UndoRefused("a newer decision was made on this object")
    last = history[0]
    if (
        last.decided_by_id != user.pk
        or last.decided_by_kind != ModerationDecision.DecidedByKind.HUMAN
    ):
        raise UndoRefused("only your own decisions can be undone")
    if last.decided_at < timezone.now() - window:
        raise UndoRefused("the time to undo this decision has passed")
    note = f"undo of decision #{last.pk}"
    previous = history[1] if len(history) > 1 else None
    if previous is not None and previous.pins_verdict:
        if previous.status == ModerationStatus.APPROVED:
            return services.approve(obj, user=user, note=note)
        if previous.status == ModerationStatus.REJECTED:
            return services.reject(obj, user=user, note=note)
    return services.release(obj, user=user, note=note)
