"""The actions' shared helpers (admin/actions.py): scheduling and its report.

The actions themselves are tested through real requests beside the admin
that offers them (test_admin_changelists, test_admin_queue, test_admin_mixin).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.test import RequestFactory

from django_cloudinary_analysis import services
from django_cloudinary_analysis.admin.actions import schedule_and_report, type_choices
from django_cloudinary_analysis.exceptions import AnalysisError
from tests.models import Article, Photo

pytestmark = pytest.mark.django_db


class Recorder:
    """Stands in for a ModelAdmin: keeps what ``message_user`` was told."""

    def __init__(self) -> None:
        self.told: list[tuple[int, str]] = []

    def message_user(self, request: Any, text: str, level: int = messages.INFO) -> None:
        self.told.append((level, text))


def run(monkeypatch: pytest.MonkeyPatch, outcomes: dict[int, Any], jobs: Any) -> Any:
    def schedule(obj: Any, **options: Any) -> list[Any]:
        outcome = outcomes[obj.pk]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(services, "schedule", schedule)
    recorder = Recorder()
    queued = schedule_and_report(recorder, RequestFactory().get("/"), jobs)
    return queued, recorder.told


def test_reports_queued_idle_missing_and_failed_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = (Photo(pk=i, title=str(i)) for i in (1, 2, 3))
    queued, told = run(
        monkeypatch,
        {1: ["x", "y"], 2: [], 3: AnalysisError("no backend")},
        [(a, {}), (a, {}), (b, {}), (c, {}), (None, {})],
    )
    assert queued == 4
    assert told == [
        (messages.ERROR, "3 could not be re-analysed: no backend"),
        (messages.SUCCESS, "Queued 4 analyses of 1 object."),
        (
            messages.WARNING,
            "1 selection queued nothing: it already succeeded for the current "
            "file, is no longer configured, or the field holds no file.",
        ),
        (
            messages.WARNING,
            "1 analysis belongs to a deleted object and was skipped.",
        ),
    ]


def test_nothing_queued_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    queued, told = run(monkeypatch, {1: []}, [(Photo(pk=1), {"force": False})])
    assert queued == 0
    assert [level for level, _text in told] == [messages.WARNING]
    assert told[0][1].startswith("Nothing to re-run")


def test_type_choices_name_the_fields_of_each_type() -> None:
    assert type_choices(Article) == [
        ("ai_vision_moderation", "ai_vision_moderation (cover)"),
        ("ai_vision_tagging", "ai_vision_tagging (cover)"),
        ("image_quality", "image_quality (thumbnail)"),
    ]
