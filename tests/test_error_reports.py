"""Django's error reports never show the API secret (issue 12, point 2).

A failure is forced inside the webhook view, the signature check, the
Cloudinary backend (client creation and the call) and the Celery task; the
DEBUG=True technical 500 page and an ``AdminEmailHandler(include_html=True)``
mail (DEBUG=False) are then searched for every form of the credential. The
pages list each frame's local variables, which is where a secret would sit.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path
from django.utils.log import AdminEmailHandler
from django.views import debug as django_debug

from django_cloudinary_analysis import services, tasks, webhooks
from django_cloudinary_analysis.backends import cloudinary
from django_cloudinary_analysis.models import Analysis
from tests import test_webhooks
from tests.models import Photo
from tests.test_webhooks import delivery, encode, sign

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

API_KEY = "111111111111111"  # tests/settings.py
SECRET = "tests-api-secret-value"
SECRET_FORMS = {
    "API secret": SECRET,
    "Basic credentials": base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode(),
    "secret bytes repr": repr(SECRET.encode())[2:-1],
}


def run_task(request: HttpRequest, pk: int) -> HttpResponse:
    """Run one analysis in the request, as an eager task does."""
    tasks.run_analysis.delay(pk)
    return HttpResponse("ran")


urlpatterns = [
    path("cloudinary-analysis/", include("django_cloudinary_analysis.urls")),
    path("run/<int:pk>/", run_task),
]


class Boom(RuntimeError):
    """The forced failure."""


def boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("forced failure")


class BrokenLock:
    """Fails get_client where it holds the credentials, before the client."""

    def __enter__(self) -> None:
        raise Boom("forced failure")

    def __exit__(self, *exc_info: object) -> None:
        return None


@pytest.fixture
def mails() -> Iterator[list[Any]]:
    """Mail 500s to the admins with the HTML report, as sites do."""
    handler = AdminEmailHandler(include_html=True)
    handler.setLevel(logging.ERROR)
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        yield mail.outbox
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def cloudinary_backend(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Cloudinary backend with an empty client cache; no async types."""
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend",
        "ASYNC_TYPES": [],
        "DEDUP": False,
    }
    monkeypatch.setattr(cloudinary, "_clients", {})


def reports(
    settings: Any, mails: list[Any], send: Callable[[Client], Any]
) -> list[str]:
    """Return the technical 500 page (DEBUG=True) and the mail (DEBUG=False)."""
    settings.ADMINS = [("Admin", "admin@example.com")]
    texts = []
    for debug in (True, False):
        settings.DEBUG = debug
        response = send(Client(raise_request_exception=False))
        assert response.status_code == 500
        if debug:
            texts.append(response.content.decode())
    # Django's own mail_admins handler sends one too (DEBUG=False only).
    assert any(message.alternatives for message in mails)
    for message in mails:
        texts.append(message.body)
        texts += [content for content, _ in message.alternatives]
    return texts


def assert_clean(texts: list[str], *frames: str) -> None:
    """No form of the secret anywhere; the frames were listed with locals."""
    for text in texts:
        for name, value in SECRET_FORMS.items():
            assert value not in text, f"{name} shown in an error report"
    page = texts[0]
    assert "Local vars" in page  # the part of the page that lists locals
    for frame in frames:
        assert frame in page, f"frame {frame} is not on the page"


#: A photo whose moderation analysis awaits its webhook.
waiting = test_webhooks.waiting


def post_webhook(waiting: Analysis) -> Callable[[Client], Any]:
    body = encode(delivery(waiting))

    def send(client: Client) -> Any:
        return client.post(
            "/cloudinary-analysis/webhook/",
            data=body,
            content_type="application/json",
            **sign(body),
        )

    return send


def test_failure_after_verification_in_the_webhook(
    settings: Any, mails: list[Any], waiting: Analysis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "apply_notification", boom)

    texts = reports(settings, mails, post_webhook(waiting))

    assert_clean(texts, "in webhook")


def test_failure_inside_the_signature_check(
    settings: Any, mails: list[Any], waiting: Analysis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks.hmac, "compare_digest", boom)

    texts = reports(settings, mails, post_webhook(waiting))

    assert_clean(texts, "in webhook", "in verify_signature")


@pytest.mark.parametrize(
    ("target", "name", "replacement", "frames"),
    [
        # inside get_client, where it holds the credentials
        (cloudinary, "_clients_lock", BrokenLock(), ("in get_client",)),
        # inside the call, below the backend and the task
        (cloudinary.AnalyzeClient, "analyze", boom, ("in analyze",)),
    ],
    ids=["creating-the-client", "calling-the-api"],
)
def test_failure_inside_the_backend_and_the_task(
    settings: Any,
    mails: list[Any],
    image_file: Any,
    cloudinary_backend: None,
    monkeypatch: pytest.MonkeyPatch,
    target: Any,
    name: str,
    replacement: Any,
    frames: tuple[str, ...],
) -> None:
    monkeypatch.setattr(target, name, replacement)
    photo = Photo.objects.create(image=image_file())
    pks = list(photo.analyses.values_list("pk", flat=True))

    texts = reports(settings, mails, lambda c: c.get(f"/run/{pks.pop()}/"))

    assert_clean(texts, "in run_analysis", "in _run_claimed", *frames)


def url_setting_page(settings: Any, mails: list[Any]) -> list[str]:
    """Reports of a failure on a site with the secret inside URL settings."""
    # Django caches the filter instance; setting changes do not clear it.
    django_debug.get_default_exception_reporter_filter.cache_clear()
    settings.CLOUDINARY_URL = f"cloudinary://{API_KEY}:{SECRET}@demo"
    settings.CELERY_BROKER_URL = f"redis://:{SECRET}@localhost:6379/0"

    def fail(client: Client) -> Any:
        url = settings.CLOUDINARY_URL  # noqa: F841 - a frame variable
        return client.get("/run/0/")

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tasks.run_analysis, "delay", boom)
            return reports(settings, mails, fail)
    finally:
        django_debug.get_default_exception_reporter_filter.cache_clear()


def test_url_passwords_show_without_the_filter(settings: Any, mails: list[Any]) -> None:
    """Django hides settings by name only: CLOUDINARY_URL's value shows."""
    texts = url_setting_page(settings, mails)
    assert SECRET in texts[0]


def test_filter_hides_passwords_inside_urls(settings: Any, mails: list[Any]) -> None:
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = (
        "django_cloudinary_analysis.error_reports.SafeExceptionReporterFilter"
    )
    texts = url_setting_page(settings, mails)
    assert_clean(texts, "in run_task")
    assert f"cloudinary://{API_KEY}:********************@demo" in texts[0]
    assert "redis://:********************@localhost:6379/0" in texts[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cloudinary://k:s3cr3t@demo", "cloudinary://k:***@demo"),
        ("postgres://u:p%40ss@db:5432/x", "postgres://u:***@db:5432/x"),
        (
            "a redis://:pw@h/0 and amqp://g:g@r//",
            "a redis://:***@h/0 and amqp://g:***@r//",
        ),
        ("https://example.com/a:b@c", "https://example.com/a:b@c"),
        ("user:pw@host", "user:pw@host"),
    ],
)
def test_hide_url_passwords(text: str, expected: str) -> None:
    from django_cloudinary_analysis.error_reports import hide_url_passwords

    assert hide_url_passwords(text, "***") == expected
