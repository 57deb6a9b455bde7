"""AnalysisMeta.tags_field: labels become django-taggit tags, a person's stay."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from taggit.models import Tag

from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.exceptions import ServerError
from django_cloudinary_analysis.models import MediaTag
from django_cloudinary_analysis.writeback import tags as writeback_tags
from django_cloudinary_analysis.writeback.models import WrittenValue
from tests.models import TaggedPhoto
from tests.support.writeback import labels, run

pytestmark = pytest.mark.django_db

__all__ = ["run"]  # the fixture


@pytest.fixture
def tag_settings(settings):
    def apply(**values):
        settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, **values}

    return apply


def names(photo: TaggedPhoto) -> list[str]:
    return sorted(TaggedPhoto.objects.get(pk=photo.pk).tags.names())


def test_confident_labels_become_taggit_tags(run, image_file):
    labels(("Cat", 0.95), ("Whiskers", 0.7), ("Dog", 0.69))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert names(photo) == ["cat", "whiskers"]
    assert list(TaggedPhoto.objects.filter(tags__name="cat")) == [photo]
    assert not TaggedPhoto.objects.filter(tags__name="dog").exists()


def test_the_threshold_and_the_map_come_from_settings(run, image_file, tag_settings):
    tag_settings(
        TAG_WRITE_MIN_CONFIDENCE=0.5,
        TAG_MAP={"Kitten": "cat", "WHISKERS": None, "Domestic_Shorthair": "Cat"},
    )
    labels(
        ("kitten", 0.9), ("whiskers", 0.9), ("domestic shorthair", 0.8), ("rug", 0.6)
    )
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert names(photo) == ["Cat", "cat", "rug"]


def test_a_persons_tags_are_never_removed(run, image_file):
    labels(("cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.tags.add("office", "cat-lovers")
    labels(("dog", 0.9))
    run(photo.analyze, force=True)
    assert names(photo) == ["cat-lovers", "dog", "office"]


def test_a_tag_the_person_also_added_is_theirs(run, image_file):
    labels(("dog", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.tags.add("cat")  # a person's tag before the app ever proposed it
    labels(("cat", 0.9))
    run(photo.analyze, force=True)
    labels(("dog", 0.9))
    run(photo.analyze, force=True)
    assert names(photo) == ["cat", "dog"]


def test_an_apps_tag_a_person_removed_is_not_added_again(run, image_file):
    labels(("cat", 0.9), ("rug", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.tags.remove("rug")
    run(photo.analyze, force=True)
    assert names(photo) == ["cat"]
    record = WrittenValue.objects.get(target="taggit", value="rug")
    assert record.withdrawn


def test_a_forced_reanalysis_reconciles(run, image_file):
    labels(("cat", 0.9), ("rug", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    labels(("cat", 0.9), ("sofa", 0.8))
    run(photo.analyze, force=True)
    assert names(photo) == ["cat", "sofa"]
    assert sorted(
        WrittenValue.objects.filter(target="taggit").values_list("value", flat=True)
    ) == ["cat", "sofa"]


def test_a_new_file_replaces_the_apps_tags(run, image_file):
    labels(("cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.tags.add("mine")
    photo.refresh_from_db()
    labels(("bicycle", 0.9))
    photo.image = image_file("bike.png", seed=3)
    run(photo.save)
    assert names(photo) == ["bicycle", "mine"]


def test_a_new_file_whose_tagging_failed_drops_the_old_files_tags(run, image_file):
    labels(("cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.refresh_from_db()
    MemoryBackend.set_error("google_tagging", ServerError("down", status_code=500))
    photo.image = image_file("bike.png", seed=3)
    run(photo.save)
    assert names(photo) == []


def test_detection_labels_join_the_tags(run, image_file):
    labels(("cat", 0.9))
    MemoryBackend.set_result(
        "coco",
        {"tags": {"couch": [{"confidence": 0.88}], "remote": [{"confidence": 0.2}]}},
    )
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert names(photo) == ["cat", "couch"]


def test_existing_tags_are_reused_and_names_differing_in_case_get_free_slugs(
    run, image_file, tag_settings
):
    Tag.objects.create(name="cat")
    tag_settings(TAG_MAP={"big cat": "Cat"})
    labels(("cat", 0.9), ("big cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert names(photo) == ["Cat", "cat"]
    assert Tag.objects.filter(name__iexact="cat").count() == 2
    assert len(set(Tag.objects.values_list("slug", flat=True))) == Tag.objects.count()


def _reconcile_queries(photo: TaggedPhoto) -> int:
    ct = ContentType.objects.get_for_model(TaggedPhoto)
    with CaptureQueriesContext(connection) as queries:
        writeback_tags.reconcile(TaggedPhoto, str(photo.pk), "tags", ct.pk)
    return len(queries)


@pytest.mark.parametrize("step", ["add", "remove"])
def test_queries_per_object_do_not_grow_with_the_number_of_tags(
    run, image_file, settings, step
):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }
    counts = {}
    for size in (1, 20):
        photo = TaggedPhoto.objects.create(image=image_file(f"{size}.png", seed=size))
        wanted = [f"label {size} {n}" for n in range(size)]
        labels(*[(name, 0.9) for name in wanted])
        run(photo.analyze)
        assert names(photo) == sorted(wanted)
        if step == "remove":
            # The content no longer has them (as if re-analysed).
            MediaTag.objects.for_object(photo).update(confidence=0.1)
            wanted = []
        else:
            # Neither the tags nor their Tag rows exist: all are created.
            Tag.objects.filter(name__in=wanted).delete()
            WrittenValue.objects.filter(target="taggit").delete()
        counts[size] = _reconcile_queries(photo)
        assert names(photo) == sorted(wanted)
    assert counts[1] == counts[20], counts
    assert counts[20] <= 12, counts


def test_an_apps_tag_a_person_removed_and_added_again_is_theirs(run, image_file):
    labels(("cat", 0.9))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.tags.remove("cat")
    photo.tags.add("cat")  # now the person's
    labels(("dog", 0.9))
    run(photo.analyze, force=True)
    assert names(photo) == ["cat", "dog"]
