"""SYNC_TO_CLOUDINARY through a real worker, pycloudinary and a loopback
stand-in for Cloudinary's Upload and Admin APIs (``upload_prefix``).

A worker of its own consumes the ``writeback`` queue with the write-back
settings; the test process saves and decides, the worker analyses (fake
Analyze API) and pushes (fake Cloudinary). Covers 429 and 5xx (retried with
backoff), a missing asset, an asset without manual moderation and a decision
made twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import Analysis
from django_cloudinary_analysis.tasks import sync_to_cloudinary
from django_cloudinary_analysis.writeback.models import CloudinarySync, WrittenValue
from tests.integration.conftest import It
from tests.integration.harness import wait_for
from tests.integration.writeback_settings import SYNC_TO_CLOUDINARY
from tests.models import CloudPhoto
from tests.support.fake_cloudinary import FakeCloudinary
from tests.support.servers import CeleryWorker
from tests.support.writeback import cloudinary_image

pytestmark = pytest.mark.integration

QUEUE = "writeback"
SETTINGS = "tests.integration.writeback_settings"
#: google_tagging's sample labels at or above the default 0.7.
PUSHED = ["ai:cat", "ai:felidae", "ai:small to medium-sized cats", "ai:whiskers"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloudinary]:
    """Yield the fake Cloudinary, serving from threads of this process."""
    with FakeCloudinary() as fake:
        yield fake


@pytest.fixture(scope="module")
def sync_worker(stack, cloud) -> Iterator[CeleryWorker]:  # type: ignore[no-untyped-def]
    """Yield a worker with the write-back settings on its own queue."""
    worker = stack.start_worker(
        "writeback",
        queue=QUEUE,
        concurrency=2,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        CLOUDINARY_URL=cloud.cloudinary_url,
    )
    yield worker
    worker.stop(timeout=10)
    stack.workers.remove(worker)


@pytest.fixture
def sync(it: It, cloud: FakeCloudinary, sync_worker, settings):  # type: ignore[no-untyped-def]
    """Send this test's work to the write-back worker; clean up its rows."""
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "QUEUE": QUEUE,
        "SYNC_TO_CLOUDINARY": SYNC_TO_CLOUDINARY,
    }
    cloud.reset()
    yield cloud
    # Before the suite's own clean-up, which deletes analyses without cascading.
    for model in (CloudinarySync, WrittenValue, CloudPhoto):
        qs = model._default_manager.all()
        qs._raw_delete(qs.db)


def upload(public_id: str) -> CloudPhoto:
    with transaction.atomic():
        return CloudPhoto.objects.create(image=cloudinary_image(public_id))


def wait_synced(it: It, worker: CeleryWorker, expect: int) -> dict[str, str]:
    """Wait until ``expect`` syncs exist and none is unfinished."""

    def done() -> bool:
        rows = CloudinarySync.objects.values_list("status", flat=True)
        return len(rows) >= expect and not any(
            s in ("pending", "running", "retrying") for s in rows
        )

    wait_for(
        done,
        timeout=90,
        what="Cloudinary syncs",
        workers=[worker],
        describe=lambda: list(CloudinarySync.objects.values_list("kind", "status")),
    )
    return {f"{s.kind}:{s.public_id}": s.status for s in CloudinarySync.objects.all()}


def test_tags_and_verdicts_reach_the_asset_despite_429_and_5xx(
    it: It, sync: FakeCloudinary, sync_worker: CeleryWorker
) -> None:
    asset = sync.add_asset("samples/cat", tags=["editor-pick"], moderation="pending")
    # Faults on the sync's own endpoints: the worker's etag look-up (the
    # content key) calls ``resource`` too, in parallel with other analyses.
    sync.fail_next("tags", 429)
    sync.fail_next("tags", 503)
    photo = upload("samples/cat")

    states = wait_synced(it, sync_worker, expect=2)
    assert states == {
        "tags:samples/cat": "synced",
        "moderation:samples/cat": "synced",
    }
    assert asset.tags == ["editor-pick", *PUSHED]
    photo.refresh_from_db()
    # The sample moderation answers "yes" to a default question: rejected.
    assert photo.moderation_status == asset.moderation == "rejected"
    assert sync.count("tags", 429) == 1 and sync.count("tags", 503) == 1
    assert sum(CloudinarySync.objects.values_list("attempts", flat=True)) == 4

    # A moderator's decision, made twice: the second finds nothing to change.
    services.approve(photo, note="fine for the gallery")
    wait_synced(it, sync_worker, expect=3)
    services.approve(photo, note="really fine")
    assert asset.moderation == "approved"
    updates = sync.count("update")
    # A finished push delivered again does nothing either.
    for row in CloudinarySync.objects.all():
        sync_to_cloudinary.apply_async((row.pk,), queue=QUEUE)
    pushed = CloudinarySync.objects.filter(kind="moderation", status="synced")
    assert pushed.count() == 2
    wait_for(
        lambda: sync_worker.log_text().count("'noop'") >= 3,
        timeout=30,
        what="the repeated deliveries",
        workers=[sync_worker],
    )
    assert sync.count("update") == updates == 2
    assert asset.tags == ["editor-pick", *PUSHED]
    assert asset.moderation == "approved"
    it.figure(
        f"cloudinary sync: {len(sync.calls)} calls, "
        f"{sync.count(status=200)} answered 200, tags {asset.tags}"
    )


def test_a_missing_asset_and_a_lasting_5xx_fail_with_their_reasons(
    it: It, sync: FakeCloudinary, sync_worker: CeleryWorker
) -> None:
    # A missing asset has no etag and no bytes: its analyses are skipped with
    # the reason (the sync's own 404 path, an asset deleted after its analysis,
    # is tested in tests/test_writeback_cloudinary_sync.py).
    gone = upload("samples/gone")
    wait_for(
        lambda: (
            not Analysis.objects.filter(
                object_id=str(gone.pk), status__in=["queued", "running"]
            ).exists()
        ),
        timeout=60,
        what="the missing asset's analyses",
        workers=[sync_worker],
    )
    skipped = Analysis.objects.filter(object_id=str(gone.pk))
    assert set(skipped.values_list("status", flat=True)) == {"skipped"}
    assert all("samples/gone" in a.error_message for a in skipped)
    # Its verdict (review: nothing could be analysed) has no counterpart on
    # Cloudinary: recorded as such, nothing pushed.
    wait_synced(it, sync_worker, expect=1)
    rows = CloudinarySync.objects.filter(public_id="samples/gone")
    assert set(rows.values_list("status", flat=True)) == {"not_applicable"}
    assert sync.count("tags") == sync.count("update") == 0

    sync.add_asset("samples/down", moderation="pending")
    sync.fail_next("tags", 500, count=100)
    sync.fail_next("update", 500, count=100)
    upload("samples/down")
    wait_synced(it, sync_worker, expect=3)
    down = CloudinarySync.objects.filter(public_id="samples/down")
    assert set(down.values_list("status", "error_code", "attempts")) == {
        ("failed", "server_error", 5)
    }
    assert all("gave up after 5 attempts" in r.error_message for r in down)
    assert sync.count("tags", 500) + sync.count("update", 500) == 10
    assert sync.count("tags", 200) == sync.count("update", 200) == 0


def test_an_asset_without_manual_moderation_gets_tags_only(
    it: It, sync: FakeCloudinary, sync_worker: CeleryWorker
) -> None:
    asset = sync.add_asset("samples/plain")
    upload("samples/plain")
    states = wait_synced(it, sync_worker, expect=2)
    assert states == {
        "tags:samples/plain": "synced",
        "moderation:samples/plain": "not_applicable",
    }
    assert asset.tags == PUSHED
    assert sync.count("update") == 0
