"""Reviewer claims and undo (review.py)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from django_cloudinary_analysis import review
from django_cloudinary_analysis.models import (
    ModerationDecision,
    ModerationStatus,
    ReviewClaim,
)
from tests.models import Photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def users(db: Any) -> list[Any]:
    model = get_user_model()
    return [model.objects.create_user(f"reviewer{i}") for i in range(3)]


def keys(n: int) -> list[tuple[int, str]]:
    ct = ContentType.objects.get_for_model(Photo)
    return [(ct.pk, str(i)) for i in range(1, n + 1)]


def test_a_claimed_item_is_not_claimed_by_another_until_it_expires(
    users: list[Any],
) -> None:
    first, second, _third = users
    assert review.claim(first, keys(3)) == keys(3)
    assert review.claim(second, keys(4)) == keys(4)[3:]
    # The holder extends its own claim.
    assert review.claim(first, keys(1)) == keys(1)
    ReviewClaim.objects.filter(claimed_by=first).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert review.claim(second, keys(2)) == keys(2)
    assert set(
        ReviewClaim.objects.filter(claimed_by=second).values_list(
            "object_id", flat=True
        )
    ) == {"1", "2", "4"}


def test_release_drops_only_the_users_own_claim(users: list[Any]) -> None:
    first, second, _third = users
    review.claim(first, keys(1))
    review.release_claim(second, keys(1)[0])
    assert ReviewClaim.objects.count() == 1
    review.release_claim(first, keys(1)[0])
    assert ReviewClaim.objects.count() == 0


@pytest.mark.parametrize("seed", range(5))
def test_claims_never_overlap(users: list[Any], seed: int) -> None:
    """Whatever the order of claims and expiries (a model of who holds what,
    walked with a fixed seed): one holder per item, the one the model says."""
    rng = random.Random(seed)
    steps = [
        (rng.randrange(3), rng.randrange(1, 6), rng.random() < 0.2) for _ in range(40)
    ]
    holders: dict[tuple[int, str], int] = {}
    for who, item, expire in steps:
        key = keys(item)[-1]
        if expire:
            ReviewClaim.objects.filter(content_type_id=key[0], object_id=key[1]).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
            holders.pop(key, None)
        won = review.claim(users[who], [key])
        if key in holders and holders[key] != users[who].pk:
            assert won == []
        else:
            assert won == [key]
            holders[key] = users[who].pk
    live = ReviewClaim.objects.live()
    assert {(c.content_type_id, c.object_id): c.claimed_by_id for c in live} == holders


def test_undo_restores_the_previous_verdict_within_the_window(
    users: list[Any], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    reviewer = users[0]
    decision = review.decide(
        photo,
        "reject",
        user=reviewer,
        key=(ContentType.objects.get_for_model(Photo).pk, str(photo.pk)),
    )
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REJECTED
    with pytest.raises(review.UndoRefused):
        review.undo(photo, decision.pk, user=users[1])  # not yours
    review.undo(photo, decision.pk, user=reviewer)
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    history = list(ModerationDecision.objects.for_object(photo))
    assert [d.status for d in history[:2]] == ["review", "rejected"]
    with pytest.raises(review.UndoRefused):  # superseded by the undo itself
        review.undo(photo, decision.pk, user=reviewer)


def test_undo_restores_an_earlier_human_verdict_and_refuses_late(
    users: list[Any], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    reviewer = users[0]
    key = (ContentType.objects.get_for_model(Photo).pk, str(photo.pk))
    review.decide(photo, "approve", user=reviewer, key=key)
    second = review.decide(photo, "reject", user=reviewer, key=key)
    review.undo(photo, second.pk, user=reviewer)
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED
    latest = ModerationDecision.objects.for_object(photo).first()
    assert latest.decided_by_kind == ModerationDecision.DecidedByKind.HUMAN
    ModerationDecision.objects.filter(pk=latest.pk).update(
        decided_at=timezone.now() - review.UNDO_WINDOW - timedelta(seconds=1)
    )
    with pytest.raises(review.UndoRefused):
        review.undo(photo, latest.pk, user=reviewer)
