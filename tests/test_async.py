"""Async analyses end to end: 202 → waiting → webhook or poll → final status."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
import responses
from celery.exceptions import Retry
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.tasks import poll_remote
from tests.models import Article, Photo
from tests.support.api_samples import (
    sample_accepted,
    sample_error,
    sample_response,
    sample_webhook,
)

pytestmark = pytest.mark.django_db

API = "https://api.cloudinary.com/v2/analysis/demo-cloud"
SECRET = "tests-api-secret-value"  # tests/settings.py's API_SECRET
WEBHOOK_URL = "https://www.example.com/cloudinary-analysis/webhook/"
TASK_ID = "053f4bde" + "a1b2c3d4e5f60718" * 12  # 200 characters
DEADLINE = 3600


def sign(body: bytes, *, algorithm: str = "sha1") -> dict[str, str]:
    """Return the headers Cloudinary would send with ``body``."""
    stamp = str(int(time.time()))
    digest = hashlib.new(algorithm, body + stamp.encode() + SECRET.encode())
    return {"HTTP_X_CLD_SIGNATURE": digest.hexdigest(), "HTTP_X_CLD_TIMESTAMP": stamp}


def deliver(client: Any, payload: dict[str, Any]) -> Any:
    body = json.dumps(payload).encode()
    return client.post(
        "/cloudinary-analysis/webhook/",
        data=body,
        content_type="application/json",
        **sign(body),
    )


@pytest.fixture
def cloudinary(settings: Any) -> Any:
    """The Cloudinary backend with moderation async, HTTP mocked."""
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend",
        "ASYNC_TYPES": ["ai_vision_moderation"],
        "WEBHOOK_URL": WEBHOOK_URL,
        "ASYNC_DEADLINE": DEADLINE,
        "DEDUP": False,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


def mock_sync(mocked: Any, *types: str) -> None:
    for analysis_type in types:
        mocked.post(
            f"{API}/analyze/{analysis_type}", json=sample_response(analysis_type)
        )


def mock_accepted(mocked: Any, analysis_type: str, task_id: str) -> None:
    mocked.post(
        f"{API}/analyze/{analysis_type}", status=202, json=sample_accepted(task_id)
    )


def mock_task(mocked: Any, task_id: str, status: str = "pending", **kw: Any) -> Any:
    url = f"{API}/tasks/{task_id}"
    if "json" not in kw:
        kw["json"] = sample_accepted(task_id, status)
    return mocked.get(url, **kw)


def task_calls(mocked: Any) -> list[Any]:
    return [c for c in mocked.calls if "/tasks/" in c.request.url]


@pytest.fixture
def waiting_photo(
    cloudinary: Any, image_file: Any, django_capture_on_commit_callbacks: Any
) -> tuple[Photo, Analysis]:
    """A saved photo whose moderation went async and awaits its webhook."""
    mock_sync(cloudinary, "google_tagging", "image_quality")
    mock_accepted(cloudinary, "ai_vision_moderation", TASK_ID)
    # The poll task runs at once when Celery is eager: still pending.
    mock_task(cloudinary, TASK_ID, "pending")
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())
    analysis = Analysis.objects.get(
        object_id=str(photo.pk), analysis_type="ai_vision_moderation"
    )
    return photo, analysis


# -- sending ----------------------------------------------------------------


def test_async_type_is_sent_with_async_and_notification_url(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    photo, analysis = waiting_photo

    sent = {
        c.request.url.rsplit("/", 1)[-1]: json.loads(c.request.body)
        for c in cloudinary.calls
        if c.request.method == "POST"
    }
    assert set(sent) == {"google_tagging", "image_quality", "ai_vision_moderation"}
    moderation = sent["ai_vision_moderation"]
    assert moderation["async"] is True
    assert moderation["notification_url"] == WEBHOOK_URL
    assert moderation["source"]["uri"].startswith("https://media.example.com/")
    assert moderation["rejection_questions"] == analysis.params["rejection_questions"]
    for sync_type in ("google_tagging", "image_quality"):
        assert "async" not in sent[sync_type]
        assert "notification_url" not in sent[sync_type]

    assert analysis.status == AnalysisStatus.WAITING
    assert analysis.remote_task_id == TASK_ID
    assert len(analysis.remote_task_id) == 200
    assert analysis.finished_at is None
    others = Analysis.objects.for_object(photo).exclude(pk=analysis.pk)
    assert {a.status for a in others} == {AnalysisStatus.SUCCEEDED}
    # Moderation has not answered yet: no verdict.
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.PENDING


def test_waiting_schedules_a_status_poll(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo

    calls = task_calls(cloudinary)
    assert len(calls) == 1
    assert calls[0].request.method == "GET"
    assert calls[0].request.url == f"{API}/tasks/{TASK_ID}"
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.WAITING  # pending within deadline


def test_types_not_listed_stay_synchronous(
    cloudinary: Any,
    image_file: Any,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "ASYNC_TYPES": [],
    }
    mock_sync(cloudinary, "google_tagging", "image_quality", "ai_vision_moderation")

    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())

    bodies = [json.loads(c.request.body) for c in cloudinary.calls]
    assert all("async" not in b for b in bodies)
    assert {a.status for a in Analysis.objects.for_object(photo)} == {
        AnalysisStatus.SUCCEEDED
    }


def test_waiting_clears_the_reason_of_a_retried_attempt(
    cloudinary: Any,
    image_file: Any,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "RETRY_BACKOFF": 0.0,
        "RETRY_BACKOFF_MAX": 0.0,
    }
    mock_sync(cloudinary, "google_tagging", "image_quality")
    url = f"{API}/analyze/ai_vision_moderation"
    cloudinary.post(url, status=503, body="<html>busy</html>")
    cloudinary.post(url, status=202, json=sample_accepted(TASK_ID))
    mock_task(cloudinary, TASK_ID)

    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image_file())

    analysis = Analysis.objects.for_object(photo).get(
        analysis_type="ai_vision_moderation"
    )
    assert analysis.status == AnalysisStatus.WAITING
    assert analysis.attempts == 2
    assert (analysis.error_code, analysis.error_message) == ("", "")


# -- the webhook completes it -----------------------------------------------


def test_signed_delivery_completes_the_analysis(
    client: Any,
    cloudinary: Any,
    waiting_photo: tuple[Photo, Analysis],
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo, analysis = waiting_photo
    payload = sample_webhook("ai_vision_moderation", TASK_ID, analysis.params)
    payload["data"]["analysis"]["responses"] = [
        {"prompt": q, "value": "no"} for q in analysis.params["rejection_questions"]
    ]
    finished: list[Analysis] = []

    from django_cloudinary_analysis import signals

    def on_finished(sender: Any, analysis: Analysis, **kw: Any) -> None:
        finished.append(analysis)

    signals.analysis_finished.connect(on_finished)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(client, payload)
    finally:
        signals.analysis_finished.disconnect(on_finished)

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.SUCCEEDED
    assert analysis.result["answers"] == {
        q: "no" for q in analysis.params["rejection_questions"]
    }
    assert analysis.request_id == payload["request_id"]
    assert analysis.raw == payload
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED
    assert ModerationDecision.objects.for_object(photo).first().status == (
        ModerationStatus.APPROVED
    )
    # The synchronous google_tagging tags are there too.
    assert MediaTag.objects.for_object(photo).filter(name="cat").exists()
    assert [a.pk for a in finished] == [analysis.pk]


def test_signed_delivery_with_a_yes_rejects(
    client: Any, cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    photo, analysis = waiting_photo
    payload = sample_webhook("ai_vision_moderation", TASK_ID, analysis.params)
    payload["data"]["analysis"]["responses"][0]["value"] = "yes"

    assert deliver(client, payload).json() == {"status": "applied"}

    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REJECTED


def test_async_tagging_delivers_tags(
    client: Any,
    cloudinary: Any,
    settings: Any,
    image_file: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "ASYNC_TYPES": ["ai_vision_tagging"],
    }
    task_id = "7" * 180
    mock_sync(cloudinary, "ai_vision_moderation", "image_quality")
    mock_accepted(cloudinary, "ai_vision_tagging", task_id)
    mock_task(cloudinary, task_id, "processing")
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(
            cover=image_file("cover.png"), thumbnail=image_file("thumb.png", seed=2)
        )
    tagging = Analysis.objects.get(
        object_id=str(article.pk), analysis_type="ai_vision_tagging"
    )
    assert tagging.status == AnalysisStatus.WAITING
    assert tagging.remote_task_id == task_id
    assert MediaTag.objects.for_object(article).filter(name="cat").count() == 0

    payload = sample_webhook("ai_vision_tagging", task_id, tagging.params)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(client, payload).json() == {"status": "applied"}

    tagging.refresh_from_db()
    assert tagging.status == AnalysisStatus.SUCCEEDED
    tags = MediaTag.objects.for_object(article).filter(analysis=tagging)
    assert [t.name for t in tags] == ["cat"]
    assert Article.objects.tagged("cat").filter(pk=article.pk).exists()


def test_late_delivery_after_overdue_changes_nothing(
    client: Any, cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo
    Analysis.objects.filter(pk=analysis.pk).update(
        started_at=timezone.now() - timedelta(seconds=DEADLINE + 60)
    )
    assert poll_remote.apply(args=(analysis.pk,)).get() == AnalysisStatus.FAILED
    analysis.refresh_from_db()
    before = (analysis.status, analysis.error_code, analysis.result)

    payload = sample_webhook("ai_vision_moderation", TASK_ID, analysis.params)
    response = deliver(client, payload)

    assert response.status_code == 200
    assert response.json() == {"status": "duplicate"}
    analysis.refresh_from_db()
    assert (analysis.status, analysis.error_code, analysis.result) == before


# -- polling ------------------------------------------------------------------


def test_poll_failed_task_fails_the_analysis(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET, f"{API}/tasks/{TASK_ID}", json=sample_accepted(TASK_ID, "failed")
    )

    outcome = poll_remote.apply(args=(analysis.pk,)).get()

    assert outcome == AnalysisStatus.FAILED
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.FAILED
    assert analysis.error_code == "remote_task_failed"
    assert "failed" in analysis.error_message
    assert analysis.finished_at is not None
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW


@pytest.mark.parametrize("status", ["pending", "processing", "completed"])
def test_poll_unfinished_past_the_deadline_fails_as_overdue(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis], status: str
) -> None:
    # "completed" without a webhook: the result was lost (or never sent).
    photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET, f"{API}/tasks/{TASK_ID}", json=sample_accepted(TASK_ID, status)
    )
    Analysis.objects.filter(pk=analysis.pk).update(
        started_at=timezone.now() - timedelta(seconds=DEADLINE + 1)
    )

    outcome = poll_remote.apply(args=(analysis.pk,)).get()

    assert outcome == AnalysisStatus.FAILED
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.FAILED
    assert analysis.error_code == "overdue"
    assert f"{DEADLINE} s" in analysis.error_message
    assert status in analysis.error_message
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW


@pytest.mark.parametrize("status", ["pending", "processing", "completed"])
def test_poll_within_the_deadline_keeps_waiting(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis], status: str
) -> None:
    _photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET, f"{API}/tasks/{TASK_ID}", json=sample_accepted(TASK_ID, status)
    )
    Analysis.objects.filter(pk=analysis.pk).update(
        started_at=timezone.now() - timedelta(seconds=DEADLINE - 60)
    )

    outcome = services.poll(analysis.pk)

    assert outcome.status == "waiting"
    assert outcome.retry_in is not None and outcome.retry_in > 0
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.WAITING
    assert analysis.finished_at is None


def test_poll_transient_error_keeps_waiting(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET,
        f"{API}/tasks/{TASK_ID}",
        status=503,
        body="<html>Service Unavailable</html>",
    )

    outcome = services.poll(analysis.pk)

    assert outcome.status == "poll_error"
    assert outcome.retry_in is not None
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.WAITING


def test_poll_past_the_deadline_fails_even_while_the_api_is_down(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo
    Analysis.objects.filter(pk=analysis.pk).update(
        started_at=timezone.now() - timedelta(seconds=DEADLINE + 1)
    )
    cloudinary.replace(responses.GET, f"{API}/tasks/{TASK_ID}", status=503)

    outcome = services.poll(analysis.pk)

    assert outcome.status == AnalysisStatus.FAILED
    assert outcome.retry_in is None
    analysis.refresh_from_db()
    assert analysis.error_code == "overdue"


def test_poll_unknown_remote_task_fails(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET,
        f"{API}/tasks/{TASK_ID}",
        status=404,
        json=sample_error(404, code="MA_00404", message="task not found"),
    )

    outcome = services.poll(analysis.pk)

    assert outcome.status == AnalysisStatus.FAILED
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.FAILED
    assert "cannot be checked" in analysis.error_message


def test_poll_ignores_analyses_that_are_not_waiting(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    photo, analysis = waiting_photo
    done = Analysis.objects.for_object(photo).exclude(pk=analysis.pk).first()
    before = len(cloudinary.calls)

    assert services.poll(done.pk).status == "noop"
    assert services.poll(10**9).status == "noop"
    assert len(cloudinary.calls) == before


def test_poll_task_retries_outside_eager_mode(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis], settings: Any
) -> None:
    _photo, analysis = waiting_photo
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "ASYNC_POLL_INTERVAL": 120,
    }
    # Called directly, the task is not eager: a still-waiting outcome must
    # come back after the poll interval.
    with (
        mock.patch.object(poll_remote, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        poll_remote(analysis.pk)
    retry.assert_called_once_with(countdown=120)


def test_poll_task_stops_when_final(
    cloudinary: Any, waiting_photo: tuple[Photo, Analysis]
) -> None:
    _photo, analysis = waiting_photo
    cloudinary.replace(
        responses.GET, f"{API}/tasks/{TASK_ID}", json=sample_accepted(TASK_ID, "failed")
    )
    with mock.patch.object(poll_remote, "retry", side_effect=Retry()) as retry:
        assert poll_remote(analysis.pk) == AnalysisStatus.FAILED
    retry.assert_not_called()
