"""The per-object review page (admin/views.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from django_cloudinary_analysis import moderation
from django_cloudinary_analysis.models import (
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.moderation import short_key
from tests.models import Photo, SlugPhoto, UUIDPhoto
from tests.support.admin import (
    QUEUE_URL,
    messages_of,
    review_url,
)

pytestmark = pytest.mark.django_db


def test_review_page_rejects_with_a_note(admin_client: Client, uploaded: Any) -> None:
    photo = uploaded(Photo, "review", title="beach")
    url = review_url(photo)
    page = admin_client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "beach" in content
    assert 'value="reject"' in content and 'value="approve"' in content
    assert "unsure: Does the image contain violence?" in content

    response = admin_client.post(url, {"verdict": "reject", "note": "shows a weapon"})
    assert response.status_code == 302
    assert response.url.startswith(reverse(QUEUE_URL))
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(photo).first()
    assert decision.decided_by_kind == ModerationDecision.DecidedByKind.HUMAN
    assert decision.note == "shows a weapon"
    assert decision.decided_by.username == "admin"
    assert "beach is now rejected." in messages_of(admin_client.get(response.url))
    # The history says who decided: the kind, and the person for a human one.
    assert "<td>human · admin</td>" in admin_client.get(url).content.decode()

    # A human verdict can be released back to the policy.
    admin_client.post(url, {"verdict": "release", "note": ""})
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    assert (
        ModerationDecision.objects.for_object(photo).first().decided_by_kind == "auto"
    )


def test_review_page_works_for_uuid_and_string_keys(
    admin_client: Client, uploaded: Any
) -> None:
    for obj in (
        uploaded(UUIDPhoto, "review"),
        uploaded(SlugPhoto, "review", slug="a-b"),
    ):
        response = admin_client.post(review_url(obj), {"verdict": "approve"})
        assert response.status_code == 302
        obj.refresh_from_db()
        assert obj.moderation_status == ModerationStatus.APPROVED


def test_review_page_needs_the_review_permission(
    staff_client: Callable[..., Client], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    viewer = staff_client("cloudinary_analysis.view_moderationdecision")
    page = viewer.get(review_url(photo))
    assert page.status_code == 200
    assert 'value="reject"' not in page.content.decode()
    response = viewer.post(review_url(photo), {"verdict": "reject", "note": "no"})
    assert response.status_code == 403
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    assert staff_client().get(review_url(photo)).status_code == 403


def test_review_page_refuses_unmoderated_models_and_missing_objects(
    admin_client: Client, uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    user_ct = ContentType.objects.get_for_model(get_user_model())
    url = reverse(
        "admin:cloudinary_analysis_moderationdecision_review", args=[user_ct.pk, 1]
    )
    assert admin_client.get(url).status_code == 404
    ct = ContentType.objects.get_for_model(Photo)
    for missing in (photo.pk + 100, "not-a-number"):
        url = reverse(
            "admin:cloudinary_analysis_moderationdecision_review", args=[ct.pk, missing]
        )
        assert admin_client.get(url).status_code == 404


def test_a_followed_decision_says_where_it_came_from(
    admin_client: Client, uploaded: Any, image_file: Any
) -> None:
    original = uploaded(Photo, "review", image=image_file("a.png", seed=500))
    admin_client.post(review_url(original), {"verdict": "reject", "note": "no"})
    rejection = ModerationDecision.objects.for_object(original).first()

    copy = uploaded(Photo, "review", image=image_file("again.png", seed=500))

    followed = ModerationDecision.objects.for_object(copy).first()
    assert followed.follows_id == rejection.pk
    ct = ContentType.objects.get_for_model(Photo)
    words = (
        f"follows decision #{rejection.pk} (rejected) by admin on "
        f"{ct} #{original.pk}, identical content"
    )
    short = short_key(followed.content_key)
    assert short.endswith("…") and len(short) < len(followed.content_key)

    page = admin_client.get(review_url(copy)).content.decode()
    assert f"{words} ({short})" in page
    assert 'id="dca-follows"' in page and review_url(original) in page

    queue = admin_client.get(reverse(QUEUE_URL)).content.decode()
    assert f"{words} ({short})" in queue
    change = reverse(
        "admin:cloudinary_analysis_moderationdecision_change", args=[followed.pk]
    )
    detail = admin_client.get(change).content.decode()
    assert short in detail and review_url(original) in detail

    # The object's own change page lists its verdict history the same way.
    photo_change = reverse("admin:tests_photo_change", args=[copy.pk])
    assert words in admin_client.get(photo_change).content.decode()


def test_the_followed_wording_without_the_decision_at_hand() -> None:
    reason = {
        "rule": "follows_content",
        "decision": 7,
        "status": "approved",
        "object": "3:12",
        "by": 5,
        "content_key": "sha256:" + "ab" * 32,
    }
    assert moderation.describe(reason) == (
        "follows decision #7 (approved) by user #5 on 3:12, identical content "
        "(sha256:abababababab…)"
    )
