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
