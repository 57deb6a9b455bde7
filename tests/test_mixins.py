"""The abstract model (mixins.py): its save, its queryset and its accessors.

``save()`` reads no file and calls no API: it writes rows and leaves the work
for after the commit. The queryset filters and the accessors read the app's
rows for the object they belong to, whatever its primary key type.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses
from django.apps import apps
from django.contrib.auth.models import User
from django.core.files.storage import FileSystemStorage

from django_cloudinary_analysis import services
from django_cloudinary_analysis.exceptions import AuthError
from django_cloudinary_analysis.mixins import AnalyzedMedia, media_models
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationStatus,
)
from tests.models import (
    Article,
    CloudPhoto,
    OwnedPhoto,
    Photo,
    PlainPhoto,
    SlugPhoto,
    TaggedPhoto,
    UUIDPhoto,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Any:
    """Create an object and run what its commit queued (eager tasks)."""

    def create(model: type = Photo, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return model.objects.create(**kwargs)

    return create


def test_save_reads_no_file_and_calls_no_api(
    django_capture_on_commit_callbacks: Any,
    image_file: Any,
    memory_backend: Any,
    monkeypatch: Any,
) -> None:
    photo = Photo(title="new")
    photo.image.save("p.png", image_file(), save=False)  # the upload, stored first

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("save() opened a stored file")

    monkeypatch.setattr(FileSystemStorage, "open", no_reading)
    monkeypatch.setattr(FileSystemStorage, "size", no_reading)
    # Any HTTP request made through requests fails the test.
    with (
        responses.RequestsMock() as no_network,
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        photo.save()
        photo.title = "renamed"
        photo.save()
    assert len(no_network.calls) == 0
    assert memory_backend.calls == []
    assert len(callbacks) == 1  # one publish, for the new file only
    assert photo.analyses.count() == 3


def test_a_new_object_starts_pending(image_file: Any) -> None:
    photo = Photo.objects.create(image=image_file())
    assert Photo.objects.get(pk=photo.pk).moderation_status == ModerationStatus.PENDING
    assert not Photo._meta.get_field("moderation_status").editable


def test_a_loaded_object_remembers_its_stored_file_names(
    committed: Any, image_file: Any
) -> None:
    article = committed(Article, cover=image_file("c.png", 1))
    loaded = Article.objects.get(pk=article.pk)
    assert loaded._analysis_snapshot == {"cover": "covers/c.png", "thumbnail": ""}
    assert Article.objects.only("cover").get(pk=article.pk)._analysis_snapshot == {
        "cover": "covers/c.png"
    }


# -- a save without a new file leaves the stored verdict alone (_do_update) --


def test_saving_the_created_instance_keeps_the_workers_verdict(image_file: Any) -> None:
    photo = Photo.objects.create(image=image_file())
    for analysis in photo.analyses.all():  # the worker, after the commit
        services.run(analysis.pk)
    assert Photo.objects.get(pk=photo.pk).moderation_status == ModerationStatus.APPROVED

    photo.title = "edited"
    photo.save()  # the instance still says "pending" in memory

    assert Photo.objects.get(pk=photo.pk).moderation_status == ModerationStatus.APPROVED
    assert list(Photo.objects.approved()) == [photo]
    assert Photo.objects.get(pk=photo.pk).title == "edited"


def test_a_copy_loaded_before_a_rejection_does_not_undo_it(
    committed: Any, image_file: Any
) -> None:
    reviewer = User.objects.create_user("rita")
    photo = committed(image=image_file())
    stale = Photo.objects.get(pk=photo.pk)
    assert stale.moderation_status == ModerationStatus.APPROVED

    services.reject(Photo.objects.get(pk=photo.pk), reviewer, "not here")
    stale.title = "later edit"
    stale.save()

    assert (
        Photo.objects.get(pk=photo.pk).moderation_status
        == ModerationStatus.REJECTED
        == photo.moderation_history.first().status
    )


def test_the_verdict_filters(committed: Any, image_file: Any) -> None:
    rows = {
        status: committed(image=image_file(f"{status}.png", n))
        for n, status in enumerate(ModerationStatus.values)
    }
    for status, photo in rows.items():
        Photo.objects.filter(pk=photo.pk).update(moderation_status=status)

    def pks(qs: Any) -> set[Any]:
        return set(qs.values_list("pk", flat=True))

    assert pks(Photo.objects.approved()) == {rows["approved"].pk}
    assert pks(Photo.objects.rejected()) == {rows["rejected"].pk}
    assert pks(Photo.objects.needs_review()) == {rows["review"].pk}
    assert pks(Photo.objects.pending_review()) == {
        rows["pending"].pk,
        rows["review"].pk,
    }


@pytest.mark.parametrize(
    ("model", "key"),
    [(Photo, {}), (UUIDPhoto, {}), (SlugPhoto, {"slug": "sunny-day"})],
    ids=["integer", "uuid", "text"],
)
def test_tagged_finds_objects_by_tag_whatever_their_key(
    committed: Any, image_file: Any, memory_backend: Any, model: type, key: Any
) -> None:
    memory_backend.set_result(
        "google_tagging",
        {"label_annotations": {"labels": [{"label": "Red Fox", "score": 0.8}]}},
    )
    fox = committed(model, image=image_file("fox.png", 1), **key)
    memory_backend.set_result(
        "google_tagging",
        {"label_annotations": {"labels": [{"label": "Owl", "score": 0.9}]}},
    )
    committed(model, image=image_file("owl.png", 2), **({"slug": "owl"} if key else {}))
    # Another model's fox is not this model's.
    committed(Photo if model is not Photo else UUIDPhoto, image=image_file("x.png", 3))

    assert list(model.objects.tagged("red fox")) == [fox]
    assert list(model.objects.tagged("Red Fox", min_confidence=0.8)) == [fox]
    assert list(model.objects.tagged("red fox", min_confidence=0.81)) == []


def test_analyze_schedules_the_asked_types_after_the_commit(
    committed: Any,
    django_capture_on_commit_callbacks: Any,
    image_file: Any,
    memory_backend: Any,
) -> None:
    photo = committed(image=image_file())
    calls = len(memory_backend.calls)

    # Everything already succeeded: without force there is nothing to redo.
    with django_capture_on_commit_callbacks(execute=True):
        assert photo.analyze() == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = photo.analyze(force=True, types=["image_quality"])
    assert [(a.field_name, a.analysis_type) for a in again] == [
        ("image", "image_quality")
    ]
    assert len(memory_backend.calls) == calls  # not before the commit
    for callback in callbacks:
        callback()
    assert [c.analysis_type for c in memory_backend.calls[calls:]] == ["image_quality"]
    assert Analysis.objects.get(pk=again[0].pk).status == AnalysisStatus.SUCCEEDED


def test_analyze_one_field_of_several(committed: Any, image_file: Any) -> None:
    article = committed(
        Article, cover=image_file("c.png", 1), thumbnail=image_file("t.png", 2)
    )
    again = article.analyze(force=True, fields=["cover"])
    assert {(a.field_name, a.analysis_type) for a in again} == {
        ("cover", "ai_vision_moderation"),
        ("cover", "ai_vision_tagging"),
    }


def test_accessors_read_this_objects_rows_only(
    committed: Any, image_file: Any, memory_backend: Any
) -> None:
    mine = committed(image=image_file("a.png", 1))
    other = committed(image=image_file("b.png", 2))

    for obj in (mine, other):
        assert {a.object_id for a in obj.analyses} == {str(obj.pk)}
        assert {t.object_id for t in obj.media_tags} == {str(obj.pk)}
        assert {d.object_id for d in obj.moderation_history} == {str(obj.pk)}
    # Newest first: the latest decision is the current verdict.
    decisions = list(mine.moderation_history)
    assert decisions[0].status == Photo.objects.get(pk=mine.pk).moderation_status


def test_latest_results_are_the_newest_succeeded_per_field_and_type(
    committed: Any,
    django_capture_on_commit_callbacks: Any,
    image_file: Any,
    memory_backend: Any,
) -> None:
    photo = committed(image=image_file())
    first = photo.latest_results()
    assert set(first) == {
        ("image", "google_tagging"),
        ("image", "ai_vision_moderation"),
        ("image", "image_quality"),
    }
    # A second run that fails leaves the first result the latest...
    memory_backend.set_error(
        "image_quality", AuthError("add-on off", status_code=403, code="Q_403")
    )
    with django_capture_on_commit_callbacks(execute=True):
        [failed] = photo.analyze(force=True, types=["image_quality"])
    assert Analysis.objects.get(pk=failed.pk).status == AnalysisStatus.FAILED
    latest = photo.latest_results()
    assert latest[("image", "image_quality")] == first[("image", "image_quality")]
    # ...a second run that succeeds replaces it.
    memory_backend.errors.clear()
    with django_capture_on_commit_callbacks(execute=True):
        [rerun] = photo.analyze(force=True, types=["image_quality"])
    assert photo.latest_results()[("image", "image_quality")].pk == rerun.pk
    assert latest[("image", "google_tagging")] == first[("image", "google_tagging")]


def test_media_models_are_the_concrete_models_with_the_mixin() -> None:
    found = media_models()
    assert set(found) == {
        Photo,
        UUIDPhoto,
        SlugPhoto,
        Article,
        TaggedPhoto,
        CloudPhoto,
        OwnedPhoto,
    }
    assert PlainPhoto not in found
    assert all(issubclass(m, AnalyzedMedia) for m in found)
    assert media_models(app_configs=[apps.get_app_config("auth")]) == []
    assert set(media_models(app_configs=[apps.get_app_config("tests")])) == set(found)
