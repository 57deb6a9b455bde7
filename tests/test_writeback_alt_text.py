"""AnalysisMeta.alt_text_field: captions written where a person has not typed."""

from __future__ import annotations

import pytest
from django.db.models.signals import post_save, pre_save

from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.exceptions import ServerError
from django_cloudinary_analysis.writeback.alt_text import truncate_words
from django_cloudinary_analysis.writeback.models import WrittenValue
from tests.models import TaggedPhoto
from tests.support.writeback import run

pytestmark = pytest.mark.django_db

__all__ = ["run"]  # the fixture


def caption(text: str) -> None:
    MemoryBackend.set_result("captioning", {"data": {"caption": text}})


def written(photo: TaggedPhoto):
    return WrittenValue.objects.for_object(photo).filter(target="alt_text")


def alt(photo: TaggedPhoto) -> str:
    return TaggedPhoto.objects.values_list("alt_text", flat=True).get(pk=photo.pk)


def test_caption_fills_a_blank_alt_text(run, image_file):
    caption("A cat sitting on a table")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert alt(photo) == "A cat sitting on a table"
    record = written(photo).get()
    assert (record.target, record.field_name, record.value) == (
        "alt_text",
        "alt_text",
        "A cat sitting on a table",
    )


def test_a_persons_alt_text_is_never_overwritten(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.refresh_from_db()
    photo.alt_text = "Our office cat, Miso"
    photo.save()
    caption("A dog")
    run(photo.analyze, force=True)
    assert alt(photo) == "Our office cat, Miso"
    # A new file does not overwrite it either.
    photo.refresh_from_db()
    photo.image = image_file("other.png", seed=4)
    run(photo.save)
    assert alt(photo) == "Our office cat, Miso"


def test_text_typed_before_the_first_caption_is_kept(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file(), alt_text="Miso")
    assert alt(photo) == "Miso"
    assert not written(photo).exists()


def test_a_new_files_caption_replaces_the_apps_old_one(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    photo.refresh_from_db()
    caption("A red bicycle")
    photo.image = image_file("bike.png", seed=9)
    run(photo.save)
    assert alt(photo) == "A red bicycle"
    assert written(photo).get().value == "A red bicycle"


def test_a_forced_reanalysis_updates_the_apps_caption(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    caption("A grey cat")
    run(photo.analyze, force=True)
    assert alt(photo) == "A grey cat"


def test_a_cleared_alt_text_is_filled_again(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    TaggedPhoto.objects.filter(pk=photo.pk).update(alt_text="")
    run(photo.analyze, force=True)
    assert alt(photo) == "A cat"


def test_long_captions_are_cut_between_words(run, image_file):
    words = "A very long caption about a cat sitting on a wooden kitchen table at dusk"
    caption(words)
    photo = run(TaggedPhoto.objects.create, image=image_file())
    written = alt(photo)
    max_length = TaggedPhoto._meta.get_field("alt_text").max_length
    assert len(words) > max_length >= len(written)
    assert words.startswith(written)
    assert words[len(written)] == " "


def test_the_write_sends_no_save_signals(run, image_file):
    caption("A cat")
    photo = run(TaggedPhoto.objects.create, image=image_file())
    seen = []

    def receiver(sender, **kwargs):
        seen.append(sender)

    pre_save.connect(receiver, sender=TaggedPhoto)
    post_save.connect(receiver, sender=TaggedPhoto)
    try:
        caption("A grey cat")
        run(photo.analyze, force=True)
    finally:
        pre_save.disconnect(receiver, sender=TaggedPhoto)
        post_save.disconnect(receiver, sender=TaggedPhoto)
    assert alt(photo) == "A grey cat"
    assert seen == []


def test_a_failed_captioning_changes_nothing(run, image_file):
    MemoryBackend.set_error("captioning", ServerError("down", status_code=500))
    photo = run(TaggedPhoto.objects.create, image=image_file())
    assert alt(photo) == ""
    assert photo.analyses.get(analysis_type="captioning").status == "failed"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("A cat on a mat", None, "A cat on a mat"),
        ("A cat on a mat", 14, "A cat on a mat"),
        ("A cat on a mat", 9, "A cat on"),
        ("A cat on a mat", 8, "A cat on"),
        ("A cat on a mat", 7, "A cat"),
        ("A cat, on a mat", 6, "A cat"),
        ("Supercalifragilistic", 5, "Super"),
    ],
)
def test_truncate_words(text, limit, expected):
    assert truncate_words(text, limit) == expected
