"""The review queue and history, and its bulk actions (admin/queue.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import django
import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import (
    ModerationDecision,
    ModerationStatus,
)
from tests.models import Photo, SlugPhoto, UUIDPhoto
from tests.support.admin import (
    QUEUE_URL,
    action_choices,
    bulk_media,
    change_url,
    confirm_action,
    messages_of,
    review_url,
    rows_of,
    run_action,
)

pytestmark = pytest.mark.django_db

# -- the review queue ------------------------------------------------------------


def test_queue_lists_current_verdicts_open_ones_first(
    admin_client: Client, uploaded: Any
) -> None:
    approved = uploaded(Photo, "approved", title="fine")
    review = uploaded(UUIDPhoto, "review")
    rejected = uploaded(SlugPhoto, "rejected", slug="bad")
    services.release(review, note="looked again")  # a second verdict in its trail
    response = admin_client.get(reverse(QUEUE_URL))
    assert response.status_code == 200
    rows = rows_of(response)
    # One row per object (its newest decision), "needs review" first.
    assert (rows[0].object_id, rows[0].status) == (
        str(review.pk),
        ModerationStatus.REVIEW,
    )
    assert {r.object_id for r in rows} == {
        str(approved.pk),
        str(review.pk),
        str(rejected.pk),
    }
    content = response.content.decode()
    assert response.context["title"] == "Review queue"
    assert 'loading="lazy"' in content
    assert "unsure: Does the image contain violence? (image)" in content
    assert review_url(review) in content
    assert "2 decisions" in content  # review, then review again on release
    # The history trail is markup, not escaped markup.
    assert "&lt;span" not in content
    trail = re.search(
        r'<td class="field-history_display">(.*?)</td>', content, re.S
    ).group(1)
    assert trail.count('class="dca-history-item"') == 2
    assert trail.count("dca-badge--review") == 2

    history = admin_client.get(reverse(QUEUE_URL), {"view": "history"})
    assert history.context["title"] == "Moderation history"
    assert len(rows_of(history)) == ModerationDecision.objects.count() == 4

    if django.VERSION >= (5, 0):  # facet counts are new in Django 5.0
        with_counts = admin_client.get(reverse(QUEUE_URL), {"_facets": "True"})
        assert with_counts.status_code == 200
        assert len(rows_of(with_counts)) == 3

    only_review = admin_client.get(reverse(QUEUE_URL), {"status__exact": "review"})
    assert [r.object_id for r in rows_of(only_review)] == [str(review.pk)]


def test_queue_escapes_reasons(admin_client: Client) -> None:
    (photo,) = bulk_media(Photo, 1)
    ModerationDecision.objects.create(
        content_type=ContentType.objects.get_for_model(Photo),
        object_id=str(photo.pk),
        status=ModerationStatus.REVIEW,
        reasons=[{"rule": "question_unknown", "question": "<script>x()</script>"}],
    )
    content = admin_client.get(reverse(QUEUE_URL)).content.decode()
    assert "<script>x()" not in content
    assert "unsure: &lt;script&gt;x()&lt;/script&gt;" in content


def test_queue_bulk_approve_and_reject_across_models(
    admin_client: Client, uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    uuid_photo = uploaded(UUIDPhoto, "review")
    slug_photo = uploaded(SlugPhoto, "review", slug="slug-one")
    url = reverse(QUEUE_URL)
    rows = {r.object_id: r.pk for r in rows_of(admin_client.get(url))}

    response = run_action(
        admin_client,
        url,
        "approve_selected",
        [rows[str(photo.pk)], rows[str(uuid_photo.pk)]],
    )
    assert response.status_code == 302
    assert "Approved 2 objects." in messages_of(admin_client.get(url))
    for obj in (photo, uuid_photo):
        obj.refresh_from_db()
        assert obj.moderation_status == ModerationStatus.APPROVED

    page = run_action(admin_client, url, "reject_selected", [rows[str(slug_photo.pk)]])
    assert page.status_code == 200
    assert b'name="note"' in page.content
    assert str(slug_photo).encode() in page.content
    response = confirm_action(
        admin_client,
        url,
        "reject_selected",
        [rows[str(slug_photo.pk)]],
        note="not ours",
    )
    assert response.status_code == 302
    slug_photo.refresh_from_db()
    assert slug_photo.moderation_status == ModerationStatus.REJECTED
    assert ModerationDecision.objects.for_object(slug_photo).first().note == "not ours"


def test_queue_actions_need_the_review_permission(
    staff_client: Callable[..., Client], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    url = reverse(QUEUE_URL)
    viewer = staff_client("cloudinary_analysis.view_moderationdecision")
    response = viewer.get(url)
    assert not action_choices(response) & {"approve_selected", "reject_selected"}
    decision = rows_of(response)[0]
    run_action(viewer, url, "approve_selected", [decision.pk])
    confirm_action(viewer, url, "reject_selected", [decision.pk], note="x")
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW

    reviewer = staff_client(
        "cloudinary_analysis.view_moderationdecision",
        "cloudinary_analysis.review_media",
    )
    assert {"approve_selected", "reject_selected"} <= action_choices(reviewer.get(url))


def test_decisions_are_read_only(admin_client: Client, uploaded: Any) -> None:
    photo = uploaded(Photo, "review")
    decision = ModerationDecision.objects.for_object(photo).first()
    page = admin_client.get(change_url(decision))
    assert page.status_code == 200
    assert review_url(photo) in page.content.decode()
    assert admin_client.post(change_url(decision), {"note": "x"}).status_code == 403
    delete = reverse(
        "admin:cloudinary_analysis_moderationdecision_delete", args=[decision.pk]
    )
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
