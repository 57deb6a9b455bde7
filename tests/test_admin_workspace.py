"""The review workspace (admin/workspace.py, admin/workspace_data.py).

Through real requests with the test client: claims, decisions without
script (form posts) and with it (JSON), undo, bulk, filters, permissions and
the query count. The keyboard and the blur are tested in a real browser
(tests/test_admin_browser.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_cloudinary_analysis.admin.workspace import WorkspaceView
from django_cloudinary_analysis.models import (
    Analysis,
    ModerationDecision,
    ModerationStatus,
    ReviewClaim,
)
from tests.models import Photo, SlugPhoto, UUIDPhoto
from tests.support.admin import QUEUE_URL, bulk_media, count_queries, messages_of

pytestmark = pytest.mark.django_db

REVIEWER = (
    "cloudinary_analysis.view_moderationdecision",
    "cloudinary_analysis.review_media",
)
URL = "admin:cloudinary_analysis_moderationdecision_workspace"


def url(name: str = "") -> str:
    return reverse(URL + (f"_{name}" if name else ""))


def key_of(obj: Any) -> str:
    return f"{ContentType.objects.get_for_model(obj).pk}:{obj.pk}"


def shown_keys(response: Any) -> list[str]:
    return [item["key"] for item in response.context["items"]]


def open_items(n: int) -> list[Any]:
    """``n`` photos whose current verdict needs review (bulk_media: odd ones)."""
    return [p for p in bulk_media(Photo, 2 * n) if p.moderation_status == "review"]


def test_workspace_claims_a_batch_per_reviewer_without_overlap(
    staff_client: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WorkspaceView, "batch_size", 4)
    photos = open_items(10)
    first, second = staff_client(*REVIEWER), staff_client(*REVIEWER)
    mine = shown_keys(first.get(url()))
    theirs = shown_keys(second.get(url()))
    assert len(mine) == len(theirs) == 4
    assert not set(mine) & set(theirs)
    # Open items come oldest first; reopening keeps the same claims.
    assert mine == [key_of(p) for p in photos[:4]]
    assert shown_keys(first.get(url())) == mine
    page = first.get(url()).content.decode()
    assert "editor2" in page  # the queue shows who holds what
    # Each item's history says who decided (bulk_media: the file, then the policy).
    assert "<td>content changed</td>" in page and "<td>automatic</td>" in page


def test_form_post_decides_releases_the_claim_and_comes_back(
    staff_client: Callable[..., Client],
) -> None:
    (photo, *_rest) = open_items(2)
    client = staff_client(*REVIEWER)
    client.get(url())
    response = client.post(
        url("decide"),
        {"key": key_of(photo), "verdict": "reject", "note": "weapon", "next": url()},
    )
    assert response.status_code == 302 and response["Location"] == url()
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(photo).first()
    assert (decision.note, decision.decided_by.username) == ("weapon", "editor1")
    assert not ReviewClaim.objects.filter(object_id=str(photo.pk)).exists()
    assert f"{photo} is now rejected." in messages_of(client.get(url()))


def test_json_decide_refuses_an_item_held_by_another_and_undo_restores(
    staff_client: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
    uploaded: Any,
) -> None:
    monkeypatch.setattr(WorkspaceView, "batch_size", 1)
    # Through the pipeline: undo hands an automatic verdict back to the policy.
    first_photo, _second_photo = uploaded(Photo), uploaded(Photo)
    first, second = staff_client(*REVIEWER), staff_client(*REVIEWER)
    first.get(url())
    second.get(url())
    json = {"HTTP_ACCEPT": "application/json"}
    refused = second.post(
        url("decide"), {"key": key_of(first_photo), "verdict": "approve"}, **json
    )
    assert refused.status_code == 409 and "editor1" in refused.json()["message"]
    done = first.post(
        url("decide"), {"key": key_of(first_photo), "verdict": "approve"}, **json
    )
    assert done.json()["ok"] and done.json()["status"] == "approved"
    undone = first.post(
        url("undo"),
        {"key": key_of(first_photo), "decision": done.json()["decision"]},
        **json,
    )
    assert undone.json() == {
        "ok": True,
        "status": "review",
        "message": f"Undone: {first_photo} is back to “needs review”.",
    }
    first_photo.refresh_from_db()
    assert first_photo.moderation_status == ModerationStatus.REVIEW
    # Undo claims the item back for its reviewer.
    assert (
        ReviewClaim.objects.get(object_id=str(first_photo.pk)).claimed_by.username
        == "editor1"
    )


def test_bulk_decides_selected_items_with_one_note_and_approves_the_clean_ones(
    staff_client: Callable[..., Client],
) -> None:
    photos = open_items(5)
    # The last one got a "yes": it is never approved as "clean", even if posted.
    Analysis.objects.filter(
        object_id=str(photos[4].pk), analysis_type="ai_vision_moderation"
    ).update(result={"answers": {"Violence?": "yes"}})
    client = staff_client(*REVIEWER)
    page = client.get(url())
    assert page.context["clean_keys"] == [key_of(p) for p in photos[:4]]
    client.post(
        url("bulk"),
        {"verdict": "reject", "keys": [key_of(p) for p in photos[:2]], "note": "spam"},
    )
    notes = {
        d.object_id: d.note
        for d in ModerationDecision.objects.filter(
            decided_by_kind="human", status="rejected"
        )
    }
    assert notes == {str(p.pk): "spam" for p in photos[:2]}
    client.post(
        url("bulk"),
        {"verdict": "approve_clean", "clean_keys": [key_of(p) for p in photos[2:]]},
    )
    statuses = Photo.objects.filter(pk__in=[p.pk for p in photos]).order_by("pk")
    assert [p.moderation_status for p in statuses] == [
        "rejected",
        "rejected",
        "approved",
        "approved",
        "review",
    ]


def test_viewer_without_review_permission_sees_no_controls_and_claims_nothing(
    staff_client: Callable[..., Client],
) -> None:
    (photo, *_rest) = open_items(2)
    viewer = staff_client("cloudinary_analysis.view_moderationdecision")
    page = viewer.get(url())
    assert page.status_code == 200 and shown_keys(page)
    content = page.content.decode()
    assert 'class="dca-decide"' not in content and 'id="dca-bulk"' not in content
    assert not ReviewClaim.objects.exists()
    refused = viewer.post(url("decide"), {"key": key_of(photo), "verdict": "approve"})
    assert refused.status_code == 403
    assert staff_client().get(url()).status_code == 403  # no view permission


def test_filters_by_model_reason_age_band_and_reviewer(
    staff_client: Callable[..., Client],
) -> None:
    photos = open_items(2)
    (uuid_photo,) = [
        p for p in bulk_media(UUIDPhoto, 2) if p.moderation_status == "review"
    ]
    ModerationDecision.objects.filter(object_id=str(photos[0].pk)).update(
        reasons=[{"rule": "label", "label": "Gun", "confidence": 0.9}],
        decided_at=timezone.now() - timedelta(days=2),
    )
    client = staff_client(*REVIEWER)
    photo_ct = ContentType.objects.get_for_model(Photo).pk

    def keys(**query: Any) -> set[str]:
        overview = client.get(url(), query).context["overview"]
        return {item["label"] for item in overview}

    assert keys(model=photo_ct) == {key_of(p) for p in photos}
    assert (
        keys(reason="label")
        == keys(band="high")
        == keys(age="1d")
        == {key_of(photos[0])}
    )
    assert keys(band="low") == set()
    assert keys(reason="question_unknown") == {key_of(photos[1]), key_of(uuid_photo)}
    me = client.get(url()).context["request"].user
    assert keys(reviewer=me.pk) == {key_of(p) for p in [*photos, uuid_photo]}


def test_queue_changelist_shows_claims_and_links_the_workspace(
    staff_client: Callable[..., Client],
) -> None:
    open_items(1)
    client = staff_client(*REVIEWER)
    client.get(url())
    content = client.get(reverse(QUEUE_URL)).content.decode()
    assert url() in content
    assert "editor1 until" in content


def test_workspace_runs_constant_queries(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WorkspaceView, "batch_size", 1000)
    counts = {}
    for n in (10, 100):
        ModerationDecision.objects.all().delete()
        for i in range(n):  # three key types
            bulk_media((Photo, UUIDPhoto, SlugPhoto)[i % 3], 2, start=1000 * n + 2 * i)
        admin_client.get(url())  # claims, warms caches
        counts[n], response = count_queries(admin_client, url())
        assert len(response.context["items"]) == n
    assert counts[10] == counts[100], counts
