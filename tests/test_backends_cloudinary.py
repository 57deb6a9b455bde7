"""The Cloudinary backend inside the pipeline, HTTP mocked with responses."""

from __future__ import annotations

import base64
import json
import logging
import sys

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from django_cloudinary_analysis.backends import Media, get_backend
from django_cloudinary_analysis.backends import cloudinary as cloudinary_backend
from django_cloudinary_analysis.client import AnalysisResult, Source
from django_cloudinary_analysis.exceptions import ServerError
from django_cloudinary_analysis.models import Analysis
from tests.models import Photo
from tests.support.api_samples import sample_error, sample_response

pytestmark = pytest.mark.django_db

BASE = "https://api.cloudinary.com/v2/analysis/demo-cloud"
SECRET = "tests-api-secret-value"
IMAGE = "https://media.example.com/a.jpg"


@pytest.fixture(autouse=True)
def cloudinary(settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend",
        "MAX_ATTEMPTS": 2,
        "RETRY_BACKOFF": 0.01,
    }
    cloudinary_backend._clients.clear()
    cloudinary_backend._sessions.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
    cloudinary_backend._clients.clear()


@pytest.fixture
def save(django_capture_on_commit_callbacks, image_file):
    def create(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return Photo.objects.create(image=image_file(), **kwargs)

    return create


def answer_all(mock, status=200, body=None, **kw):
    for kind in ("google_tagging", "ai_vision_moderation", "image_quality"):
        mock.add(
            responses.POST,
            f"{BASE}/analyze/{kind}",
            json=body if body is not None else sample_response(kind),
            status=status,
            **kw,
        )


def test_sends_the_public_url_and_stores_results(cloudinary, save, caplog):
    answer_all(cloudinary)
    caplog.set_level(logging.DEBUG)
    photo = save()
    assert {a.status for a in photo.analyses.all()} == {"succeeded"}
    sent = [json.loads(c.request.body) for c in cloudinary.calls]
    assert {s["source"]["uri"] for s in sent} == {
        "https://media.example.com/media/" + photo.image.name
    }
    moderation = next(s for s in sent if "rejection_questions" in s)
    assert moderation["rejection_questions"]
    auth = cloudinary.calls[0].request.headers["Authorization"]
    assert auth.startswith("Basic ")
    assert photo.media_tags.exists()
    analysis = photo.analyses.get(analysis_type="google_tagging")
    assert analysis.request_id and analysis.raw["data"]["analysis"]
    # nothing secret in logs or stored JSON
    stored = json.dumps(list(Analysis.objects.values("raw", "result", "error_message")))
    for text in (caplog.text, stored):
        assert SECRET not in text
        assert auth.split()[1] not in text


def test_relative_url_without_base_is_skipped_without_a_call(
    cloudinary, save, settings
):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "MEDIA_BASE_URL": None,
    }
    photo = save()
    assert len(cloudinary.calls) == 0
    for analysis in photo.analyses.all():
        assert analysis.status == "skipped"
        assert "MEDIA_BASE_URL" in analysis.error_message


def test_invalid_credentials_fail_without_retries(cloudinary, save):
    answer_all(
        cloudinary,
        status=401,
        body=sample_error(401, "auth_error", "MA_00401", "Invalid credentials"),
    )
    photo = save()
    assert len(cloudinary.calls) == 3
    for analysis in photo.analyses.all():
        assert analysis.status == "failed"
        assert analysis.attempts == 1
        assert "Invalid credentials" in analysis.error_message
        assert SECRET not in analysis.error_message
    photo.refresh_from_db()
    assert photo.moderation_status == "review"


def test_html_502_is_retried_then_fails_with_reason(cloudinary, save):
    answer_all(
        cloudinary,
        status=502,
        body=None,
    )
    cloudinary.replace(
        responses.POST,
        f"{BASE}/analyze/google_tagging",
        body="<html><body>Bad gateway</body></html>",
        status=502,
        content_type="text/html",
    )
    photo = save()
    tagging = photo.analyses.get(analysis_type="google_tagging")
    assert tagging.status == "failed"
    assert tagging.attempts == 2
    assert "gave up after 2 attempts" in tagging.error_message


def test_rate_limit_records_the_quota(cloudinary, save):
    body = sample_error(429, "rate_limit_error", "MA_00429", "Quota exceeded")
    body["limits"] = {
        "items": [
            {
                "type": "google_tagging",
                "remaining": 0,
                "limit": 10,
                "used_by_request": 0,
                "reset_time": "2999-01-01T00:00:00Z",
            }
        ]
    }
    answer_all(cloudinary)
    cloudinary.replace(
        responses.POST, f"{BASE}/analyze/google_tagging", json=body, status=429
    )
    photo = save()
    tagging = photo.analyses.get(analysis_type="google_tagging")
    assert tagging.error_code == "quota_exhausted"
    from django_cloudinary_analysis.models import QuotaState

    assert QuotaState.objects.get(feature="google_tagging").remaining == 0
    assert photo.analyses.get(analysis_type="image_quality").status == "succeeded"


# -- BACKEND_OPTIONS: an injected session and client options ----------------------


class CountingSession(requests.Session):
    made = 0

    def __init__(self) -> None:
        super().__init__()
        CountingSession.made += 1
        self.sent = 0

    def send(self, request, **kwargs):
        self.sent += 1
        return super().send(request, **kwargs)


def make_session() -> CountingSession:
    return CountingSession()


def _options(settings, **options):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND_OPTIONS": options,
    }


def test_an_injected_session_and_client_options_are_used(cloudinary, settings):
    session = CountingSession()
    _options(
        settings,
        session=session,
        client_options={"user_agent": "site/1.0", "debug": True},
    )
    cloudinary.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    backend = get_backend()
    client = backend.client()
    assert client.session is session and client.debug is True
    result = backend.analyze("coco", Media("a.jpg", source=Source(uri=IMAGE)), {})
    assert isinstance(result, AnalysisResult)
    assert session.sent == 1
    assert cloudinary.calls[0].request.headers["User-Agent"] == "site/1.0"
    assert get_backend().client() is client  # one client per process and options


def test_a_session_factory_path_is_called_once(cloudinary, settings):
    CountingSession.made = 0
    _options(settings, session="tests.test_backends_cloudinary.make_session")
    first, second = get_backend(), get_backend()
    assert first.client() is second.client()
    assert isinstance(first.client().session, CountingSession)
    assert CountingSession.made == 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"sesion": None}, "unknown keys"),
        ({"session": "no.such.factory"}, "cannot be imported"),
        ({"session": object()}, "requests.Session"),
        ({"client_options": ["debug"]}, "dict"),
        ({"client_options": {"api_secret": "x"}}, "api_secret"),
        ({"client_options": {"timeout": 3}}, "timeout"),
    ],
)
def test_bad_backend_options_are_refused(cloudinary, settings, options, words):
    _options(settings, **options)
    with pytest.raises(ImproperlyConfigured, match=words):
        get_backend()


def test_a_failing_backend_call_leaves_no_secret_on_the_debug_page(cloudinary):
    cloudinary.post(
        f"{BASE}/analyze/coco", json=sample_error(500, "server_error"), status=500
    )
    backend = get_backend()
    try:
        backend.analyze("coco", Media("a.jpg", source=Source(uri=IMAGE)), {})
    except ServerError:
        exc_info = sys.exc_info()
    reporter = ExceptionReporter(RequestFactory().get("/"), *exc_info)
    text = reporter.get_traceback_html() + reporter.get_traceback_text()
    assert 'backends/cloudinary.py", line' in text and ", in run" in text
    token = base64.b64encode(f"111111111111111:{SECRET}".encode()).decode()
    assert SECRET not in text and token not in text
