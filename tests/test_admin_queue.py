"""The review queue and history, and its bulk actions (admin/queue.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import django
import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import NoReverseMatch, path, reverse

from django_cloudinary_analysis import services
from django_cloudinary_analysis.accountability import appeals
from django_cloudinary_analysis.models import (
    ModerationDecision,
    ModerationStatus,
)
from tests.models import OwnedPhoto, Photo, SlugPhoto, UUIDPhoto
from tests.support.accountability import image, reject_automatically, user
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


# -- accountability in the queue --------------------------------------------------


def appealed_photo(capture: Any, memory_backend: Any) -> Any:
    """An owned photo the policy rejected, appealed by its uploader."""
    owner = user("uploader")
    reject_automatically(memory_backend, "Does the image contain weapons?")
    with capture(execute=True):
        photo = OwnedPhoto.objects.create(owner=owner, image=image(seed=77))
    appeals.open_appeal(photo, owner, "It is a film still.")
    return photo


def test_queue_marks_and_filters_appeals(
    admin_client: Client,
    uploaded: Any,
    memory_backend: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    other = uploaded(Photo, "review")
    photo = appealed_photo(django_capture_on_commit_callbacks, memory_backend)
    url = reverse(QUEUE_URL)

    response = admin_client.get(url)
    marked = {r.object_id: r.is_appeal for r in rows_of(response)}
    assert marked == {str(photo.pk): True, str(other.pk): False}
    assert re.search(
        r'dca-badge--appeal" title="It is a film still.">appeal<',
        response.content.decode(),
    )
    appealed = rows_of(admin_client.get(url, {"appeal": "yes"}))
    assert [r.object_id for r in appealed] == [str(photo.pk)]
    assert appealed[0].appeal_note == "It is a film still."
    others = rows_of(admin_client.get(url, {"appeal": "no"}))
    assert [r.object_id for r in others] == [str(other.pk)]


def test_queue_exports_the_selected_decisions(
    admin_client: Client, uploaded: Any
) -> None:
    photo, skipped = uploaded(Photo, "review"), uploaded(Photo, "approved")
    decision = ModerationDecision.objects.for_object(photo).first()
    url = reverse(QUEUE_URL)
    assert {"export_csv", "export_jsonl"} <= action_choices(admin_client.get(url))

    response = run_action(admin_client, url, "export_csv", [decision.pk])
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2  # the header and the one selected decision
    assert str(decision.pk) in lines[1] and str(skipped.pk) not in lines[1:]

    response = run_action(admin_client, url, "export_jsonl", [decision.pk])
    (row,) = [
        json.loads(line) for line in b"".join(response.streaming_content).splitlines()
    ]
    assert row["object_id"] == str(photo.pk)


@pytest.mark.urls("tests.support.accountability")
def test_the_queue_and_the_app_index_link_the_dashboard(admin_client: Client) -> None:
    dashboard = reverse("cloudinary_analysis:dashboard")
    queue = admin_client.get(reverse(QUEUE_URL)).content.decode()
    assert f'href="{dashboard}" class="dca-dashboard-link"' in queue
    index = admin_client.get(
        reverse("admin:app_list", args=["cloudinary_analysis"])
    ).content.decode()
    assert f'href="{dashboard}" class="dca-dashboard-link"' in index
    assert admin_client.get(dashboard).status_code == 200


#: A site that mounts the admin but not the app's URLs.
urlpatterns = [path("admin/", admin.site.urls)]


@pytest.mark.urls(__name__)
def test_no_dashboard_link_without_the_apps_urls(admin_client: Client) -> None:
    with pytest.raises(NoReverseMatch):
        reverse("cloudinary_analysis:dashboard")
    queue = admin_client.get(reverse(QUEUE_URL))
    assert queue.status_code == 200
    assert "dca-dashboard-link" not in queue.content.decode()
    index = admin_client.get(reverse("admin:app_list", args=["cloudinary_analysis"]))
    assert "dca-dashboard-link" not in index.content.decode()
