"""The save path: the plan is worked out once per model and forgotten when
the settings change; the receiver queues the same rows as ``schedule_many``;
the one message it publishes shows its ids without Celery's ``saferepr``."""

from __future__ import annotations

from typing import Any

import pytest
from celery.utils.saferepr import saferepr
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.conf import DEFAULT_REJECTION_QUESTIONS
from django_cloudinary_analysis.models import Analysis, AnalysisStatus, params_hash
from django_cloudinary_analysis.options import analysis_plan
from django_cloudinary_analysis.services.dispatch import (
    DISPATCH_ANALYSES,
    _publish_options,
    registered_task,
)
from tests.models import Article, Photo

pytestmark = pytest.mark.django_db


class OtherBackend(MemoryBackend):
    """The memory backend under another name (what rows record)."""

    name = "other"


def _queue(image_file: Any, capture: Any, seed: int = 1) -> Photo:
    with capture(execute=False):
        return Photo.objects.create(image=image_file(f"p{seed}.png", seed))


def _moderation(photo: Photo) -> Analysis:
    return photo.analyses.get(analysis_type="ai_vision_moderation")


def test_new_rejection_questions_reach_the_next_save(
    settings: Any, image_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = _moderation(_queue(image_file, django_capture_on_commit_callbacks, 1))
    assert first.params == {"rejection_questions": list(DEFAULT_REJECTION_QUESTIONS)}
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "REJECTION_QUESTIONS": ["Is there a cat?"],
    }
    second = _moderation(_queue(image_file, django_capture_on_commit_callbacks, 2))
    assert second.params == {"rejection_questions": ["Is there a cat?"]}
    assert second.params_hash == params_hash(second.params) != first.params_hash


def test_another_backend_is_recorded_from_the_next_save(
    settings: Any, image_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = _queue(image_file, django_capture_on_commit_callbacks, 1)
    assert set(first.analyses.values_list("backend", flat=True)) == {"memory"}
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": OtherBackend,
    }
    second = _queue(image_file, django_capture_on_commit_callbacks, 2)
    assert set(second.analyses.values_list("backend", flat=True)) == {"other"}


def test_the_plan_is_kept_until_the_settings_change(settings: Any) -> None:
    plan = analysis_plan(Photo)
    assert analysis_plan(Photo) is plan
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS}
    assert analysis_plan(Photo) is not plan
    # Another setting leaves it alone.
    kept = analysis_plan(Photo)
    settings.USE_TZ = settings.USE_TZ
    assert analysis_plan(Photo) is kept


def test_a_returned_analysis_has_its_own_params(
    image_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = _queue(image_file, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        (mine,) = services.schedule(photo, types=["ai_vision_moderation"], force=True)
    mine.params["rejection_questions"].append("changed in memory")
    mine.params["extra"] = 1
    with django_capture_on_commit_callbacks(execute=False):
        (again,) = services.schedule(photo, types=["ai_vision_moderation"], force=True)
    assert again.params == {"rejection_questions": list(DEFAULT_REJECTION_QUESTIONS)}
    dry = services.schedule_many(
        [photo], types=["ai_vision_moderation"], rerun="all", dry_run=True
    )
    assert [a.params for a in dry] == [again.params]
    # As before: the instances carry their content type (no query to read it).
    with CaptureQueriesContext(connection) as queries:
        assert {a.content_type.model for a in [mine, again, *dry]} == {"photo"}
    assert len(queries) == 0


def test_the_receiver_queues_what_schedule_many_plans(
    image_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The save path builds no instances but writes the same rows."""
    fields = [
        "field_name",
        "file_name",
        "analysis_type",
        "params",
        "params_hash",
        "backend",
        "allow_reuse",
        "status",
        "attempts",
        "error_code",
        "task_id",
        "content_key",
        "result",
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        article = Article.objects.create(
            cover=image_file("c.png", 1), thumbnail=image_file("t.png", 2)
        )
    assert len(callbacks) == 1
    saved = sorted(
        tuple(getattr(a, f) for f in fields)
        for a in Analysis.objects.for_object(article)
    )
    planned = sorted(
        tuple(getattr(a, f) for f in fields)
        for a in services.schedule_many([article], new_content=True, dry_run=True)
    )
    assert saved == planned
    assert [row[2] for row in saved] == [
        "ai_vision_moderation",
        "ai_vision_tagging",
        "image_quality",
    ]


@pytest.mark.parametrize("returning", [True, False])
def test_insert_queued_values_fills_in_the_defaults(
    monkeypatch: Any, photo_ct: Any, returning: bool
) -> None:
    monkeypatch.setattr(
        type(connection.features), "can_return_rows_from_bulk_insert", returning
    )
    now = timezone.now()
    rows = [
        {
            "content_type_id": photo_ct.pk,
            "object_id": str(n),
            "field_name": "image",
            "file_name": f"{n}.png",
            "analysis_type": "google_tagging",
            "params": {"n": n},
            "params_hash": params_hash({"n": n}),
        }
        for n in (1, 2)
    ]
    ids = Analysis.objects.insert_queued_values(rows, now=now)
    stored = [Analysis.objects.get(pk=pk) for pk in ids]
    assert [(a.object_id, a.params) for a in stored] == [
        ("1", {"n": 1}),
        ("2", {"n": 2}),
    ]
    for analysis in stored:
        assert analysis.status == AnalysisStatus.QUEUED
        assert (analysis.attempts, analysis.error_code, analysis.backend) == (0, "", "")
        assert analysis.allow_reuse is True
        assert analysis.result is None
    if returning:  # bulk_create's auto_now_add sets its own time
        assert {a.created_at for a in stored} == {now}
    assert Analysis.objects.insert_queued_values([]) == []


@pytest.fixture
def photo_ct() -> Any:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(Photo)


class Recorder:
    """Stands in for a task's ``apply_async``: keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, args: tuple[Any, ...], **options: Any) -> None:
        self.calls.append((args, options))


def test_a_save_publishes_one_message_showing_its_ids(
    monkeypatch: Any, image_file: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The message's ``argsrepr`` is the ids' ``repr`` (Celery's ``saferepr``
    shows the same text, at a cost a save notices)."""
    recorder = Recorder()
    task = registered_task(DISPATCH_ANALYSES)
    monkeypatch.setattr(task, "apply_async", recorder, raising=False)
    monkeypatch.setitem(task.app.conf, "task_always_eager", False)  # a worker's
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())
    ids = sorted(photo.analyses.values_list("pk", flat=True))
    ((args, options),) = recorder.calls
    assert sorted(args[0]) == ids and len(ids) == 3
    assert options["argsrepr"] == saferepr(args) == repr(args)
    assert options["kwargsrepr"] == "{}"
    assert "queue" not in options


def test_a_long_argsrepr_is_cut_where_celery_cuts_it(settings: Any) -> None:
    task = registered_task(DISPATCH_ANALYSES)
    ids = list(range(10_000))
    options = _publish_options(task, (ids,))
    limit = task.app.amqp.argsrepr_maxsize
    assert len(options["argsrepr"]) == limit
    assert options["argsrepr"].startswith("([0, 1, 2,")
    assert options["argsrepr"].endswith("...")
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "QUEUE": "media"}
    assert _publish_options(task, (1,)) == {
        "argsrepr": "(1,)",
        "kwargsrepr": "{}",
        "queue": "media",
    }
