"""The Cloudinary sync state in the admin: listed with reasons, retried by action."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from django_cloudinary_analysis.writeback.models import CloudinarySync
from tests.models import CloudPhoto

pytestmark = pytest.mark.django_db

URL = reverse("admin:cloudinary_analysis_cloudinarysync_changelist")


def make(status: str, **fields) -> CloudinarySync:
    return CloudinarySync.objects.create(
        kind="tags",
        content_type=ContentType.objects.get_for_model(CloudPhoto),
        object_id="1",
        field_name="image",
        public_id=f"samples/{status}",
        resource_type="image",
        delivery_type="upload",
        status=status,
        **fields,
    )


def test_the_changelist_shows_status_and_reason(admin_client):
    make("failed", error_code="asset_missing", error_message="gone")
    make("synced")
    response = admin_client.get(URL, {"status__exact": "failed"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "samples/failed" in text and "asset_missing" in text
    assert "samples/synced" not in text


def test_syncs_cannot_be_added_or_edited_by_hand(admin_client):
    sync = make("failed")
    assert admin_client.get(URL + "add/").status_code == 403
    change = reverse("admin:cloudinary_analysis_cloudinarysync_change", args=[sync.pk])
    response = admin_client.post(change, {"status": "synced"})
    sync.refresh_from_db()
    assert sync.status == "failed"
    assert response.status_code in (200, 302, 403)


def test_retry_requeues_failed_syncs_only(admin_client, monkeypatch):
    from django_cloudinary_analysis.writeback import cloudinary_sync

    sent = []
    monkeypatch.setattr(cloudinary_sync, "enqueue", sent.append)
    failed = make("failed", attempts=5, error_code="server_error")
    synced = make("synced")
    response = admin_client.post(
        URL,
        {"action": "retry", "_selected_action": [failed.pk, synced.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 sync(s) queued again." in response.content.decode()
    assert sent == [failed.pk]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    synced.refresh_from_db()
    assert synced.status == "synced"
