"""SYNC_TO_CLOUDINARY: tags and verdicts pushed to assets through pycloudinary.

The memory backend answers the analyses; pycloudinary talks to the loopback
fake of Cloudinary's Upload and Admin APIs (``upload_prefix``); tasks run
in-process.
"""

from __future__ import annotations

import cloudinary
import pytest

from django_cloudinary_analysis import services
from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.writeback import cloudinary_sync
from django_cloudinary_analysis.writeback.models import CloudinarySync
from tests.models import CloudPhoto, TaggedPhoto
from tests.support.fake_cloudinary import FakeCloudinary
from tests.support.writeback import cloudinary_image, labels, run

pytestmark = pytest.mark.django_db

__all__ = ["run"]  # the fixture

PUBLIC_ID = "samples/cat"


@pytest.fixture(scope="module")
def server():
    with FakeCloudinary() as fake:
        yield fake


@pytest.fixture
def fake(server, settings):
    """The fake, emptied, with pycloudinary and the setting pointed at it."""
    server.reset()
    saved = dict(cloudinary.config().__dict__)
    cloudinary.config(
        cloud_name=server.cloud_name,
        api_key=server.api_key,
        api_secret=server.api_secret,
        upload_prefix=server.url,
    )
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        # the worker asks the same Admin API for the asset's etag
        "CLOUD_NAME": server.cloud_name,
        "API_KEY": server.api_key,
        "API_SECRET": server.api_secret,
        "SYNC_TO_CLOUDINARY": {"tags": True, "moderation": True, "tag_prefix": "ai:"},
        "RETRY_BACKOFF": 0.0,
        "MAX_ATTEMPTS": 3,
    }
    yield server
    cloudinary.config().__dict__.clear()
    cloudinary.config().__dict__.update(saved)


def upload(run, public_id: str = PUBLIC_ID) -> CloudPhoto:
    return run(CloudPhoto.objects.create, image=cloudinary_image(public_id))


def syncs(kind: str | None = None) -> list[tuple[str, str]]:
    qs = CloudinarySync.objects.order_by("pk")
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.values_list("kind", "status"))


def test_tags_and_the_verdict_reach_a_moderated_asset(fake, run):
    asset = fake.add_asset(PUBLIC_ID, tags=["from-the-editor"], moderation="pending")
    labels(("Cat", 0.95), ("rug", 0.4))
    photo = upload(run)
    assert asset.tags == ["from-the-editor", "ai:cat"]
    assert asset.moderation == "approved"  # the automatic verdict
    assert syncs() == [("tags", "synced"), ("moderation", "synced")]
    tags_sync = CloudinarySync.objects.get(kind="tags")
    assert tags_sync.tags_added == ["ai:cat"]
    assert tags_sync.analysis.analysis_type == "google_tagging"
    assert CloudinarySync.objects.get(kind="moderation").decision == (
        photo.moderation_history.first()
    )


def test_a_human_decision_is_pushed_too(fake, run):
    asset = fake.add_asset(PUBLIC_ID, moderation="pending")
    photo = upload(run)
    run(services.reject, photo, note="not for the homepage")
    assert asset.moderation == "rejected"
    assert syncs("moderation") == [("moderation", "synced")] * 2
    assert fake.count("update") == 2


def test_an_asset_without_manual_moderation_gets_tags_only(fake, run):
    asset = fake.add_asset(PUBLIC_ID)
    labels(("cat", 0.9))
    upload(run)
    assert asset.tags == ["ai:cat"]
    assert syncs() == [("tags", "synced"), ("moderation", "not_applicable")]
    sync = CloudinarySync.objects.get(kind="moderation")
    assert sync.error_code == "no_manual_moderation"
    assert "manual moderation" in sync.error_message
    assert fake.count("update") == 0


def test_the_app_removes_only_prefixed_tags_it_added(fake, run):
    asset = fake.add_asset(PUBLIC_ID, tags=["ai:hand-made", "rug"])
    labels(("cat", 0.9), ("rug", 0.9))
    photo = upload(run)
    assert asset.tags == ["ai:hand-made", "rug", "ai:cat", "ai:rug"]
    labels(("dog", 0.9))
    run(photo.analyze, force=True)
    assert asset.tags == ["ai:hand-made", "rug", "ai:dog"]
    assert CloudinarySync.objects.filter(kind="tags").first().tags_removed == [
        "ai:cat",
        "ai:rug",
    ]


def test_an_apps_tag_removed_in_the_media_library_is_not_pushed_again(fake, run):
    asset = fake.add_asset(PUBLIC_ID)
    labels(("cat", 0.9), ("rug", 0.9))
    photo = upload(run)
    asset.tags.remove("ai:rug")  # an editor removed it in the Media Library
    run(photo.analyze, force=True)
    assert asset.tags == ["ai:cat"]


def test_pushing_again_changes_nothing(fake, run):
    asset = fake.add_asset(PUBLIC_ID, moderation="pending")
    labels(("cat", 0.9))
    photo = upload(run)
    calls = fake.count("tags") + fake.count("update")
    run(photo.analyze, force=True)  # same labels, same verdict
    assert asset.tags == ["ai:cat"]
    assert fake.count("tags") + fake.count("update") == calls
    # A repeated delivery of a finished push does nothing at all.
    before = len(fake.calls)
    sync = CloudinarySync.objects.filter(kind="tags").first()
    assert cloudinary_sync.run(sync.pk).status == "noop"
    assert len(fake.calls) == before


def test_429_and_5xx_are_retried_with_their_reason_kept_until_it_works(fake, run):
    asset = fake.add_asset(PUBLIC_ID)
    labels(("cat", 0.9))
    fake.fail_next("resource", 429, after=1)
    fake.fail_next("tags", 502)
    upload(run)
    assert asset.tags == ["ai:cat"]
    sync = CloudinarySync.objects.get(kind="tags")
    assert (sync.status, sync.attempts) == ("synced", 3)
    assert fake.count("resource", 429) == 1 and fake.count("tags", 502) == 1


def test_a_server_error_that_lasts_fails_with_its_reason(fake, run):
    fake.add_asset(PUBLIC_ID)
    labels(("cat", 0.9))
    fake.fail_next("resource", 500, count=10, after=1)
    upload(run)
    sync = CloudinarySync.objects.get(kind="tags")
    assert (sync.status, sync.attempts, sync.error_code) == (
        "failed",
        3,
        "server_error",
    )
    assert "gave up after 3 attempts" in sync.error_message
    assert "Error 500" in sync.error_message
    # The verdict's push failed the same way: three attempts each.
    assert syncs() == [("tags", "failed"), ("moderation", "failed")]
    assert fake.count("resource", 500) == 6


def test_a_missing_asset_fails_at_once_with_its_reason(fake, run):
    # Deleted on Cloudinary between the analysis (which read its etag) and
    # the sync: the Admin API answers 404 from then on.
    fake.add_asset("samples/gone")
    fake.fail_next("resource", 404, count=10, after=1)
    labels(("cat", 0.9))
    upload(run, "samples/gone")
    sync = CloudinarySync.objects.get(kind="tags")
    assert (sync.status, sync.attempts, sync.error_code) == (
        "failed",
        1,
        "asset_missing",
    )
    assert "samples/gone" in sync.error_message
    assert fake.count("tags") == 0


def test_an_older_decision_does_not_override_a_newer_one(fake, run):
    asset = fake.add_asset(PUBLIC_ID, moderation="pending")
    photo = upload(run)
    services.reject(photo)  # not run: its push waits
    run(services.approve, photo)
    first = CloudinarySync.objects.filter(kind="moderation").order_by("pk")
    assert asset.moderation == "approved"
    for sync in first:
        cloudinary_sync.run(sync.pk)
    assert asset.moderation == "approved"


def test_files_not_on_cloudinary_are_left_alone(fake, run, image_file):
    labels(("cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    run(services.approve, photo)
    assert CloudinarySync.objects.count() == 0
    assert fake.calls == []


def test_nothing_is_pushed_when_the_setting_is_off(fake, run, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "SYNC_TO_CLOUDINARY": None,
    }
    fake.add_asset(PUBLIC_ID, moderation="pending")
    upload(run)
    assert CloudinarySync.objects.count() == 0
    assert [c.endpoint for c in fake.calls] == ["resource"]  # the etag look-up


def test_review_verdicts_are_recorded_as_having_no_counterpart(fake, run):
    fake.add_asset(PUBLIC_ID, moderation="pending")
    MemoryBackend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": "q", "value": "unknown"}], "model_version": 1},
    )
    upload(run)
    photo = CloudPhoto.objects.get()
    assert photo.moderation_status == "review"
    sync = CloudinarySync.objects.get(kind="moderation")
    assert (sync.status, sync.error_code) == ("not_applicable", "no_counterpart")
    assert fake.count("update") == 0


def test_django_cloudinary_storage_files_are_recognised():
    class MediaCloudinaryStorage:
        def _get_resource_type(self, name):
            return "image"

    MediaCloudinaryStorage.__module__ = "cloudinary_storage.storage"

    class FieldFile:
        name = "media/photos/cat_x1y2"
        storage = MediaCloudinaryStorage()

    class Obj:
        image = FieldFile()

    asset = cloudinary_sync.asset_for(Obj(), "image")
    assert asset == cloudinary_sync.Asset("media/photos/cat_x1y2", "image", "upload")


def test_no_labels_to_push_spares_the_admin_api(fake, run, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "SYNC_TO_CLOUDINARY": {"moderation": False},
    }
    fake.add_asset(PUBLIC_ID)
    labels(("cat", 0.3))
    upload(run)
    assert syncs() == [("tags", "synced")]
    assert [c.endpoint for c in fake.calls] == ["resource"]  # the etag look-up
