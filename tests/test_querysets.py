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

    querysets._forget_loaders()
    yield querysets._LOADERS
    querysets._forget_loaders()


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


def _use_visible_manager(monkeypatch: Any) -> Any:
    """Make Photo's default manager one with a filter (a parameter) of its
    own: only titles starting with "visible"."""
    from django.db import models

    class Visible(models.Manager):
        def get_queryset(self) -> Any:
            return super().get_queryset().filter(title__startswith="visible")

    manager = Visible()
    manager.model = Photo
    monkeypatch.setattr(Photo._meta, "default_manager", manager)
    return manager


def test_load_object_compiles_every_time_for_a_manager_with_its_own_filter(
    analysed: Any, image_file: Any, fresh_loaders: Any, monkeypatch: Any
) -> None:
    from django_cloudinary_analysis.querysets import load_object

    hidden = analysed(Photo, title="hidden", image=image_file("h.png", 1))
    shown = analysed(Photo, title="visible", image=image_file("v.png", 2))
    manager = _use_visible_manager(monkeypatch)

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


# -- first_row: the verdict's lock-and-read statement, compiled once -----------


def _decide(obj: Any, status: str, kind: str = "auto", key: str = "") -> None:
    from django.contrib.contenttypes.models import ContentType

    ModerationDecision.objects.create(
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        status=status,
        decided_by_kind=kind,
        content_key=key,
    )


@pytest.mark.parametrize("model", [Photo, SlugPhoto, "uuid"])
def test_first_row_reads_what_the_orm_reads(
    model: Any, analysed: Any, image_file: Any, fresh_loaders: Any
) -> None:
    from django.db import transaction

    from django_cloudinary_analysis.querysets import _TEMPLATES, first_row
    from django_cloudinary_analysis.services.verdicts import _lock_query
    from tests.models import UUIDPhoto

    def make(i: int) -> Any:
        if model is SlugPhoto:
            return analysed(SlugPhoto, slug=f"s{i}", image=image_file(f"s{i}.png", i))
        kind = UUIDPhoto if model == "uuid" else Photo
        return analysed(kind, image=image_file(f"p{i}.png", i))

    objs = [make(i) for i in range(3)]
    ModerationDecision.objects.all().delete()
    key = Analysis.objects.for_object(objs[1]).exclude(content_key="")[0].content_key
    _decide(objs[1], "approved")
    _decide(objs[1], "rejected", "human", key)  # on a key of its own analyses
    _decide(objs[2], "rejected", "human", "sha256:other")  # on no key of its own

    def orm(obj: Any) -> Any:
        return _lock_query(obj, str(obj.pk)).first()

    with transaction.atomic():
        for _ in range(2):  # compiled, then reused
            assert [first_row(_lock_query, o) for o in objs] == [orm(o) for o in objs]
    rows = [orm(o) for o in objs]
    assert rows[0] == (None, None, None, None, False)
    assert rows[1][1:3] == ("rejected", "human") and rows[1][4] is True
    assert rows[2][4] is False
    assert any(template is not None for template in _TEMPLATES.values())


def test_first_row_compiles_every_time_for_a_manager_with_its_own_filter(
    analysed: Any, image_file: Any, fresh_loaders: Any, monkeypatch: Any
) -> None:
    from django.db import transaction

    from django_cloudinary_analysis.querysets import _TEMPLATES, first_row
    from django_cloudinary_analysis.services.verdicts import _lock_query

    hidden = analysed(Photo, title="hidden", image=image_file("h.png", 1))
    manager = _use_visible_manager(monkeypatch)
    with transaction.atomic():
        assert first_row(_lock_query, hidden) is None
        assert first_row(_lock_query, hidden) is None
    assert _TEMPLATES[(_lock_query, manager, "default")] is None


@pytest.mark.parametrize("model", [Photo, SlugPhoto, Article])
def test_object_rows_reads_what_the_orm_reads(
    model: Any, analysed: Any, image_file: Any, fresh_loaders: Any
) -> None:
    from django_cloudinary_analysis.querysets import _ROWS, object_rows
    from django_cloudinary_analysis.services.verdicts import _analyses_query

    field = "cover" if model is Article else "image"
    extra = {"slug": "s"} if model is SlugPhoto else {}
    objs = [
        analysed(model, **extra, **{field: image_file(f"r{i}.png", i)})
        for i in range(1)
    ] + [analysed(Photo, image=image_file("other.png", 9))]
    Analysis.objects.filter(pk__in=[1, 3]).update(
        result={"answers": {"q": True}}, raw={"deep": [1, {"x": "ü"}]}, status="failed"
    )
    for _ in range(2):  # compiled, then reused
        for obj in objs:
            rows = object_rows(_analyses_query, obj)
            expected = list(_analyses_query(obj, str(obj.pk)))
            assert [_values(a) for a in rows] == [_values(a) for a in expected]
            assert rows and all(a._state.db == "default" for a in rows)
    assert all(template is not None for template in _ROWS.values())


def test_object_rows_compiles_every_time_what_it_cannot_keep(
    analysed: Any, image_file: Any, fresh_loaders: Any
) -> None:
    from django.db.models import Count

    from django_cloudinary_analysis.querysets import _ROWS, object_rows

    def annotated(obj: Any, object_id: str) -> Any:
        return Analysis.objects.filter(object_id=object_id).annotate(n=Count("tags"))

    photo = analysed(Photo, image=image_file("a.png", 1))
    assert len(object_rows(annotated, photo)) == 3
    assert len(object_rows(annotated, photo)) == 3
    assert _ROWS[(annotated, Photo)] is None
