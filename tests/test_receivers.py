"""The model signal receivers (receivers.py): which models, what a save queues.

A save compares stored file names, resets the verdict when a file is new and
queues the analyses for after the commit; fixtures (raw saves) are loaded as
they are; a deletion removes the object's rows. Everything runs on the test
database with the memory backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models.signals import post_delete, post_save, pre_save

from django_cloudinary_analysis import receivers
from django_cloudinary_analysis.mixins import media_models
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from tests.models import Article, Photo, PlainPhoto

pytestmark = pytest.mark.django_db


def connected(signal: Any, model: type, suffix: str) -> int:
    """How many of the app's receivers ``signal`` holds for ``model``."""
    uid = f"{receivers.DISPATCH_PREFIX}:{model._meta.label_lower}:{suffix}"
    return sum(1 for entry in signal.receivers if entry[0][0] == uid)


# tests/test_mixins.py checks which models media_models() finds.
@pytest.mark.parametrize("model", media_models(proxies=True))
def test_every_model_with_the_mixin_is_connected_once(model: type) -> None:
    receivers.connect()  # again: dispatch_uid keeps it to one receiver each
    assert connected(pre_save, model, "pre") == 1
    assert connected(post_save, model, "post") == 1
    assert connected(post_delete, model, "del") == 1


def test_a_model_without_the_mixin_is_left_alone(
    django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    assert connected(post_save, PlainPhoto, "post") == 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        PlainPhoto.objects.create(image=image_file())
    assert callbacks == []
    assert not Analysis.objects.exists()


def test_a_new_file_is_analysed_only_once_the_transaction_commits(
    django_capture_on_commit_callbacks: Any, image_file: Any, memory_backend: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        photo = Photo.objects.create(image=image_file())
    # Rows are written with the save, the work waits for the commit.
    assert set(photo.analyses.values_list("status", flat=True)) == {
        AnalysisStatus.QUEUED
    }
    assert memory_backend.calls == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert set(photo.analyses.values_list("status", flat=True)) == {
        AnalysisStatus.SUCCEEDED
    }


def test_a_rolled_back_save_queues_nothing(
    django_capture_on_commit_callbacks: Any, image_file: Any, memory_backend: Any
) -> None:
    from django.db import transaction

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        Photo.objects.create(image=image_file())
        raise RuntimeError("the view failed after the save")
    assert callbacks == []
    assert not Analysis.objects.exists()
    assert memory_backend.calls == []


def test_a_new_file_resets_the_verdict_in_the_row_the_save_writes(
    django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file("a.png", 1))
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED

    photo.image = image_file("b.png", 2)
    with django_capture_on_commit_callbacks(execute=False):
        photo.save()

    stored = Photo.objects.get(pk=photo.pk)
    assert stored.moderation_status == ModerationStatus.PENDING
    change = stored.moderation_history.first()
    assert change is not None
    assert (change.previous_status, change.status) == (
        ModerationStatus.APPROVED,
        ModerationStatus.PENDING,
    )
    assert change.reasons == [{"rule": "content_changed", "fields": ["image"]}]


def test_only_the_field_with_a_new_file_is_analysed_again(
    django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(
            cover=image_file("c.png", 1), thumbnail=image_file("t.png", 2)
        )
    before = {a.pk for a in article.analyses}
    article.thumbnail = image_file("t2.png", 3)
    with django_capture_on_commit_callbacks(execute=True):
        article.save()
    new = [a for a in article.analyses if a.pk not in before]
    assert {(a.field_name, a.analysis_type) for a in new} == {
        ("thumbnail", "image_quality")
    }


def test_a_file_left_out_of_update_fields_is_still_new_at_the_next_save(
    django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file("a.png", 1))
    photo = Photo.objects.get(pk=photo.pk)
    photo.image = image_file("b.png", 2)
    photo.title = "renamed"
    with django_capture_on_commit_callbacks(execute=True):
        photo.save(update_fields=["title"])  # the file is not written
    assert photo.analyses.count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        photo.save()  # now it is
    assert photo.analyses.count() == 6
    assert set(photo.analyses.values_list("file_name", flat=True)) == {
        "photos/a.png",
        "photos/b.png",
    }


def test_a_deferred_file_field_is_not_taken_for_a_new_file(
    django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())
    deferred = Photo.objects.only("title").get(pk=photo.pk)
    deferred.title = "renamed"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deferred.save()
    assert callbacks == []
    assert photo.analyses.count() == 3


def test_fixtures_load_as_they_are(
    tmp_path: Path, django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    fixture = tmp_path / "photos.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "tests.photo",
                    "pk": 41,
                    "fields": {
                        "title": "from a fixture",
                        "image": "photos/fixture.png",
                        "moderation_status": "rejected",
                    },
                }
            ]
        )
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("loaddata", str(fixture), verbosity=0)
    # Nothing analysed, nothing queued, and the fixture's verdict is the one stored.
    assert callbacks == []
    assert not Analysis.objects.exists()
    assert memory_backend.calls == []
    assert Photo.objects.get(pk=41).moderation_status == ModerationStatus.REJECTED


def test_auto_analyze_off_queues_nothing_and_keeps_the_verdict(
    django_capture_on_commit_callbacks: Any, image_file: Any, settings: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file("a.png", 1))
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }
    photo.image = image_file("b.png", 2)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        photo.save()
    assert callbacks == []
    assert photo.analyses.count() == 3
    assert Photo.objects.get(pk=photo.pk).moderation_status == ModerationStatus.APPROVED


@pytest.mark.parametrize("bulk", [False, True], ids=["instance", "queryset"])
def test_deleting_removes_the_objects_rows_and_no_one_elses(
    django_capture_on_commit_callbacks: Any, image_file: Any, bulk: bool
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        gone = Photo.objects.create(image=image_file("a.png", 1))
        kept = Photo.objects.create(image=image_file("b.png", 2))
    if bulk:
        Photo.objects.filter(pk=gone.pk).delete()
    else:
        gone.delete()
    for model in (Analysis, MediaTag, ModerationDecision):
        assert set(model.objects.values_list("object_id", flat=True)) == {str(kept.pk)}
