"""The app's signals (signals.py): sent after the commit, with what they document.

``analysis_finished`` and ``moderation_changed`` are the hooks a site builds
on; the accountability signals are tested with statements and appeals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from django_cloudinary_analysis import services, signals
from django_cloudinary_analysis.models import Analysis, ModerationDecision
from tests.models import Photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Everything the two signals sent during the test, by signal."""
    sent: dict[str, list[dict[str, Any]]] = {"finished": [], "changed": []}

    def on_finished(**kw: Any) -> None:
        sent["finished"].append(kw)

    def on_changed(**kw: Any) -> None:
        sent["changed"].append(kw)

    signals.analysis_finished.connect(on_finished)
    signals.moderation_changed.connect(on_changed)
    yield sent
    signals.analysis_finished.disconnect(on_finished)
    signals.moderation_changed.disconnect(on_changed)


def test_signals_fire_after_commit(
    django_capture_on_commit_callbacks: Any, image_file: Any, heard: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        Photo.objects.create(image=image_file())
    assert sorted(kw["analysis"].analysis_type for kw in heard["finished"]) == [
        "ai_vision_moderation",
        "google_tagging",
        "image_quality",
    ]
    assert [(kw["sender"], kw["old"], kw["new"]) for kw in heard["changed"]] == [
        (Photo, "pending", "approved")
    ]


def test_nothing_is_sent_before_the_commit(
    django_capture_on_commit_callbacks: Any, image_file: Any, heard: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as published:
        photo = Photo.objects.create(image=image_file())
    with django_capture_on_commit_callbacks(execute=False) as sent:
        for callback in published:
            callback()  # the tasks run, inside a transaction of their own
    assert heard == {"finished": [], "changed": []}
    for callback in sent:
        callback()
    assert {kw["analysis"].pk for kw in heard["finished"]} == set(
        photo.analyses.values_list("pk", flat=True)
    )
    assert [kw["new"] for kw in heard["changed"]] == ["approved"]


def test_a_human_decision_is_sent_with_its_row(
    image_file: Any, heard: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())
    reviewer = User.objects.create_user("rita")
    heard["changed"].clear()
    with django_capture_on_commit_callbacks(execute=True):
        decision = services.reject(photo, reviewer, note="no")
    [kw] = heard["changed"]
    assert kw["sender"] is Photo
    assert kw["instance"].pk == photo.pk
    assert (kw["old"], kw["new"]) == ("approved", "rejected")
    assert (
        kw["decision"]
        == decision
        == ModerationDecision.objects.for_object(photo).first()
    )
    assert kw["decision"].decided_by == reviewer
    assert all(kw["sender"] is Analysis for kw in heard["finished"])
