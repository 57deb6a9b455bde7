"""The generic lookups every table of the app shares (querysets.py).

Rows point at a site's objects by (content type, object id as text): the
same id under two models, or two ids of one model, must never mix.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_cloudinary_analysis.models import Analysis, ModerationDecision
from tests.models import Article, Photo, SlugPhoto

pytestmark = pytest.mark.django_db


@pytest.fixture
def analysed(django_capture_on_commit_callbacks: Any, image_file: Any) -> Any:
    def create(model: type, **fields: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return model.objects.create(**fields)

    return create


def test_for_object_keeps_the_same_id_of_two_models_apart(
    analysed: Any, image_file: Any
) -> None:
    photo = analysed(Photo, image=image_file("p.png", 1))
    article = analysed(Article, cover=image_file("a.png", 2))
    assert photo.pk == article.pk  # both first of their table: the same "1"

    photo_rows = Analysis.objects.for_object(photo)
    article_rows = Analysis.objects.for_object(article)
    assert {a.analysis_type for a in photo_rows} == {
        "google_tagging",
        "ai_vision_moderation",
        "image_quality",
    }
    assert {a.analysis_type for a in article_rows} == {
        "ai_vision_moderation",
        "ai_vision_tagging",
    }
    assert not set(photo_rows) & set(article_rows)


def test_for_object_matches_text_keys_exactly(analysed: Any, image_file: Any) -> None:
    short = analysed(SlugPhoto, slug="cat", image=image_file("c.png", 1))
    longer = analysed(SlugPhoto, slug="cats", image=image_file("d.png", 2))
    assert {d.object_id for d in ModerationDecision.objects.for_object(short)} == {
        "cat"
    }
    assert {d.object_id for d in ModerationDecision.objects.for_object(longer)} == {
        "cats"
    }


def test_for_model_takes_every_object_of_one_model(
    analysed: Any, image_file: Any
) -> None:
    photos = [analysed(Photo, image=image_file(f"{n}.png", n)) for n in range(2)]
    analysed(Article, cover=image_file("a.png", 9))
    rows = Analysis.objects.for_model(Photo)
    assert {a.object_id for a in rows} == {str(p.pk) for p in photos}
    assert rows.count() == 6


# -- load_object: the worker's load of one object by primary key --------------


def _values(obj: Any) -> list[Any]:
    return [getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields]


@pytest.fixture
def fresh_loaders() -> Any:
    from django_cloudinary_analysis import querysets

    querysets._LOADERS.clear()
    yield querysets._LOADERS
    querysets._LOADERS.clear()


@pytest.mark.parametrize("model", [Photo, SlugPhoto, "uuid", Analysis])
def test_load_object_reads_what_the_orm_reads(
    model: Any, analysed: Any, image_file: Any, fresh_loaders: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_cloudinary_analysis.querysets import load_object
    from tests.models import UUIDPhoto

    photos = [
        analysed(SlugPhoto, slug=f"s{i}", image=image_file(f"s{i}.png", i))
        if model is SlugPhoto
        else analysed(
            UUIDPhoto if model == "uuid" else Photo, image=image_file(f"p{i}.png", i)
        )
        for i in range(3)
    ]
    Analysis.objects.filter(pk__in=[1, 2]).update(
        result={"answers": {"x": [1, 2.5, None]}}, raw={"n": "ü"}
    )
    objects = list(Analysis.objects.all()[:3]) if model is Analysis else photos
    model = type(objects[0])
    with CaptureQueriesContext(connection) as captured:
        loaded = [load_object(model, str(obj.pk)) for obj in objects]
    assert (model._default_manager, "default") in fresh_loaders  # compiled once
    assert [_values(o) for o in loaded] == [
        _values(model.objects.get(pk=obj.pk)) for obj in objects
    ]
    assert all(not o._state.adding and o._state.db == "default" for o in loaded)
    assert len(captured) == len(objects)  # one statement each
    assert len({q["sql"].split(" WHERE ")[0] for q in captured}) == 1


def test_load_object_finds_nothing_for_a_missing_or_refuses_a_bad_key(
    fresh_loaders: Any,
) -> None:
    from django_cloudinary_analysis.querysets import load_object

    assert load_object(Photo, "404") is None  # compiles
    assert load_object(Photo, "405") is None  # reuses
    with pytest.raises(ValueError, match="expected a number"):
        load_object(Photo, "not-a-number")


def test_load_object_compiles_every_time_for_a_manager_with_its_own_filter(
    analysed: Any, image_file: Any, fresh_loaders: Any, monkeypatch: Any
) -> None:
    from django.db import models

    from django_cloudinary_analysis.querysets import load_object

    class Visible(models.Manager):
        def get_queryset(self) -> Any:
            return super().get_queryset().filter(title__startswith="visible")

    hidden = analysed(Photo, title="hidden", image=image_file("h.png", 1))
    shown = analysed(Photo, title="visible", image=image_file("v.png", 2))
    manager = Visible()
    manager.model = Photo
    monkeypatch.setattr(Photo._meta, "default_manager", manager)

    for _ in range(2):
        assert load_object(Photo, str(hidden.pk)) is None
        assert _values(load_object(Photo, str(shown.pk))) == _values(
            Photo.objects.get(pk=shown.pk)
        )
    assert fresh_loaders[(manager, "default")] is None


def test_a_settings_change_forgets_the_compiled_loads(fresh_loaders: Any) -> None:
    from django.test import override_settings

    from django_cloudinary_analysis.querysets import load_object

    load_object(Photo, "1")
    assert fresh_loaders
    with override_settings(USE_TZ=True):
        assert not fresh_loaders
