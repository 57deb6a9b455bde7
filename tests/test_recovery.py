"""recover_stuck brings back every kind of lost work, not only analyses.

A Cloudinary push and an uploader email live on rows and travel as messages,
like analyses: a broker that refuses the publish, or a worker killed in the
middle, must leave a row that ``recover_stuck`` sends again, once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from kombu.exceptions import OperationalError

from django_cloudinary_analysis import recovery, tasks
from django_cloudinary_analysis.accountability import notify
from django_cloudinary_analysis.models import Notification, NotificationStatus
from django_cloudinary_analysis.services.dispatch import registered_task
from django_cloudinary_analysis.writeback.models import CloudinarySync, SyncStatus
from tests.support.writeback import labels, run
from tests.test_accountability_statements import notify_on, upload
from tests.test_accountability_statements import user as uploader
from tests.test_writeback_cloudinary_sync import PUBLIC_ID, fake, server
from tests.test_writeback_cloudinary_sync import upload as upload_to_cloudinary

pytestmark = pytest.mark.django_db

__all__ = ["fake", "notify_on", "run", "server", "upload"]  # fixtures

LONG_AGO = timezone.now() - timedelta(days=1)


@pytest.fixture
def refusing_broker(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Publishing a push or an email fails as when Redis is down."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to localhost:6379.")

    for name in (notify.NOTIFY_TASK, "cloudinary_analysis.sync_to_cloudinary"):
        monkeypatch.setattr(registered_task(name), "apply_async", refuse)
    return monkeypatch


def recover(django_capture_on_commit_callbacks: Any) -> dict[str, int]:
    with django_capture_on_commit_callbacks(execute=True):
        return tasks.recover_stuck.delay().get()  # type: ignore[no-any-return]


def test_a_push_whose_worker_died_is_run_again(
    fake: Any, run: Any, django_capture_on_commit_callbacks: Any
) -> None:
    asset = fake.add_asset(PUBLIC_ID, tags=["editor"], moderation="pending")
    labels(("Cat", 0.95))
    upload_to_cloudinary(run)
    # The worker died after its claim; whether its call reached Cloudinary
    # is unknown, and running the push again changes only what differs.
    CloudinarySync.objects.filter(kind="tags").update(
        status=SyncStatus.RUNNING, claimed_at=LONG_AGO, finished_at=None
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        counts = recovery.recover_stuck()
    assert (counts["syncs_claimed"], counts["syncs_queued"]) == (1, 0)
    row = CloudinarySync.objects.get(kind="tags")
    assert (row.status, row.error_code) == (SyncStatus.RETRYING, "worker_lost")
    assert "no news from its worker" in row.error_message
    for callback in callbacks:
        callback()

    assert CloudinarySync.objects.get(kind="tags").status == SyncStatus.SYNCED
    assert asset.tags == ["editor", "ai:cat"]
    assert recover(django_capture_on_commit_callbacks)["syncs_claimed"] == 0


def test_a_running_push_with_recent_news_is_left_alone(fake: Any, run: Any) -> None:
    fake.add_asset(PUBLIC_ID, moderation="pending")
    labels(("Cat", 0.95))
    upload_to_cloudinary(run)
    CloudinarySync.objects.update(status=SyncStatus.RUNNING, claimed_at=timezone.now())

    counts = recovery.recover_stuck()
    assert (counts["syncs_claimed"], counts["syncs_queued"]) == (0, 0)
    assert set(CloudinarySync.objects.values_list("status", flat=True)) == {
        SyncStatus.RUNNING
    }


def test_a_push_the_broker_refused_waits_pending_then_is_sent_once(
    fake: Any,
    run: Any,
    refusing_broker: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    asset = fake.add_asset(PUBLIC_ID, tags=["editor"], moderation="pending")
    labels(("Cat", 0.95))
    upload_to_cloudinary(run)  # the upload itself succeeds
    assert set(CloudinarySync.objects.values_list("status", flat=True)) == {
        SyncStatus.PENDING
    }
    # Too recent: its message may still be on the way.
    assert recovery.recover_stuck()["syncs_queued"] == 0

    refusing_broker.undo()
    CloudinarySync.objects.update(created_at=LONG_AGO)
    assert recover(django_capture_on_commit_callbacks)["syncs_queued"] == 2
    assert set(CloudinarySync.objects.values_list("status", flat=True)) == {
        SyncStatus.SYNCED
    }
    assert asset.tags == ["editor", "ai:cat"]
    assert asset.moderation == "approved"
    assert recover(django_capture_on_commit_callbacks)["syncs_queued"] == 0


def test_an_email_is_claimed_so_two_messages_send_it_once(
    upload: Any, notify_on: Any, refusing_broker: pytest.MonkeyPatch
) -> None:
    upload(uploader("ann"))
    row = Notification.objects.get()
    assert row.status == NotificationStatus.PENDING and mail.outbox == []

    assert notify.deliver(row.pk).status == NotificationStatus.SENT
    assert notify.deliver(row.pk).status == NotificationStatus.SENT
    assert len(mail.outbox) == 1


def test_an_email_lost_with_its_worker_or_its_message_is_sent_again(
    upload: Any,
    notify_on: Any,
    refusing_broker: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    upload(uploader("ann"))
    upload(uploader("bob"))
    lost_worker, lost_message = Notification.objects.order_by("pk")
    Notification.objects.filter(pk=lost_worker.pk).update(
        status=NotificationStatus.SENDING, claimed_at=LONG_AGO
    )
    Notification.objects.filter(pk=lost_message.pk).update(created_at=LONG_AGO)
    refusing_broker.undo()

    counts = recover(django_capture_on_commit_callbacks)
    assert (counts["notifications_claimed"], counts["notifications_queued"]) == (1, 1)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert set(Notification.objects.values_list("status", flat=True)) == {
        NotificationStatus.SENT
    }
    counts = recover(django_capture_on_commit_callbacks)
    assert (counts["notifications_claimed"], counts["notifications_queued"]) == (0, 0)
    assert len(mail.outbox) == 2


def test_the_command_reports_every_kind(refusing_broker: Any, capsys: Any) -> None:
    call_command("analyze_media", "--stuck")
    out = capsys.readouterr().out
    assert (
        "Cloudinary pushes: 0 pending, 0 running. Emails: 0 pending, 0 sending." in out
    )
