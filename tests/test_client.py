"""AnalyzeClient against ``responses`` mocks: requests, parsing, errors, retries."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses

from django_cloudinary_analysis import __version__
from django_cloudinary_analysis.client import (
    DEFAULT_TIMEOUT,
    Accepted,
    AnalysisResult,
    AnalyzeClient,
    QuotaLimit,
    RetryPolicy,
    Source,
    TaskStatus,
    coerce_source,
    parse_cloudinary_url,
    parse_limits,
    retry_after_from,
)
from django_cloudinary_analysis.client import results as client_results
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    APIError,
    AuthError,
    ConfigurationError,
    InvalidParameters,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    UnexpectedResponse,
    UnknownAnalysisType,
    UserError,
)
from tests.support.api_samples import (
    ANALYSIS_TYPES,
    DEFAULT_PROMPTS,
    DEFAULT_REJECTION_QUESTIONS,
    DEFAULT_TAG_DEFINITIONS,
    sample_accepted,
    sample_analysis,
    sample_error,
    sample_response,
    sample_task_id,
)

CLOUD = "demo"
API_KEY = "123456789012345"
SECRET = "sEcReT-abc_XYZ-987"
TOKEN = "oauth-TOKEN-zyx-654"
BASE = f"https://api.cloudinary.com/v2/analysis/{CLOUD}"
IMAGE = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"
BASIC = "Basic " + base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
BEARER = f"Bearer {TOKEN}"
SENSITIVE = (SECRET, TOKEN, BASIC.split()[1])

#: The extras each typed method needs (the others take none).
EXTRAS: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"prompts": DEFAULT_PROMPTS},
    "ai_vision_moderation": {"rejection_questions": DEFAULT_REJECTION_QUESTIONS},
    "ai_vision_tagging": {"tag_definitions": DEFAULT_TAG_DEFINITIONS},
}
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client():
    with AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET) as c:
        yield c


@pytest.fixture
def bearer_client():
    with AnalyzeClient(CLOUD, oauth_token=TOKEN) as c:
        yield c


def _body(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def _error_response(rsps, status, category, code="MA_00001", message="boom", **kw):
    body = sample_error(
        status, category, code, message, details={"parameters": ["uri"]}
    )
    rsps.post(f"{BASE}/analyze/coco", json=body, status=status, **kw)
    return body


# -- all fifteen types ----------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@pytest.mark.parametrize("analysis_type", ANALYSIS_TYPES)
def test_every_type_request_and_parse(rsps, client, bearer_client, auth, analysis_type):
    extras = EXTRAS.get(analysis_type, {})
    payload = sample_response(analysis_type, extras)
    rsps.post(f"{BASE}/analyze/{analysis_type}", json=payload)
    c = client if auth == "basic" else bearer_client

    result = getattr(c, analysis_type)(IMAGE, **extras)

    assert len(rsps.calls) == 1
    request = rsps.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{BASE}/analyze/{analysis_type}"
    assert request.headers["Authorization"] == (BASIC if auth == "basic" else BEARER)
    assert request.headers["User-Agent"] == f"django-cloudinary-analysis/{__version__}"
    assert request.headers["Content-Type"] == "application/json"
    assert _body(rsps.calls[0]) == {"source": {"uri": IMAGE}, **extras}

    assert isinstance(result, AnalysisResult)
    assert result.analysis_type == analysis_type
    assert result.analysis == sample_analysis(analysis_type, extras)
    assert result.entity == payload["data"]["entity"]
    assert result.request_id == payload["request_id"]
    assert result.raw == payload
    [limit] = result.limits
    item = payload["limits"]["items"][0]
    assert limit == QuotaLimit(
        type=item["type"],
        used_by_request=1,
        remaining=500,
        limit=10000,
        reset_time=datetime(2024, 1, 20, 12, 34, 56, tzinfo=timezone.utc),
    )


@pytest.mark.parametrize("analysis_type", ANALYSIS_TYPES)
def test_generic_analyze_sends_the_same_request(rsps, client, analysis_type):
    extras = EXTRAS.get(analysis_type, {})
    rsps.post(f"{BASE}/analyze/{analysis_type}", json=sample_response(analysis_type))
    result = client.analyze(analysis_type, "my-asset-id", **extras)
    assert _body(rsps.calls[0]) == {"source": {"asset_id": "my-asset-id"}, **extras}
    assert isinstance(result, AnalysisResult)


def test_tuple_extras_are_sent_as_lists(rsps, client):
    rsps.post(f"{BASE}/analyze/ai_vision_general", json=sample_response("coco"))
    client.ai_vision_general(IMAGE, prompts=("a?", "b?"))
    assert _body(rsps.calls[0])["prompts"] == ["a?", "b?"]


def test_response_without_limits_or_entity(rsps, client):
    rsps.post(
        f"{BASE}/analyze/captioning",
        json={"data": {"analysis": {"data": {"caption": "x"}}}, "limits": None},
    )
    result = client.captioning(IMAGE)
    assert result.limits == []
    assert result.entity is None
    assert result.request_id is None


def test_limits_with_nulls_and_garbage():
    limits = parse_limits(
        {
            "items": [
                {"type": "ai_vision", "used_by_request": None, "remaining": None},
                "junk",
                {"type": 3, "remaining": "7", "limit": 5.0, "reset_time": "nonsense"},
                {"type": "google_tagging", "reset_time": "2024-01-20T12:34:56"},
            ]
        }
    )
    assert limits == [
        QuotaLimit("ai_vision"),
        QuotaLimit(None, limit=5),
        QuotaLimit(
            "google_tagging",
            reset_time=datetime(2024, 1, 20, 12, 34, 56, tzinfo=timezone.utc),
        ),
    ]
    assert parse_limits(None) == []
    assert parse_limits({"items": "x"}) == []


# -- sources --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (IMAGE, {"uri": IMAGE}),
        ("http://example.com/a.png", {"uri": "http://example.com/a.png"}),
        ("3f5c0a8e2b", {"asset_id": "3f5c0a8e2b"}),
        (Source(asset_id="abc"), {"asset_id": "abc"}),
        ({"uri": IMAGE}, {"uri": IMAGE}),
        ({"asset_id": "abc"}, {"asset_id": "abc"}),
    ],
)
def test_source_forms(rsps, client, source, expected):
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    client.coco(source)
    assert _body(rsps.calls[0])["source"] == expected


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   ",
        "ftp://example.com/a.png",
        {"uri": IMAGE, "asset_id": "abc"},
        {},
        {"url": IMAGE},
        42,
        None,
    ],
)
def test_bad_sources_are_refused_before_sending(rsps, client, source):
    with pytest.raises(InvalidParameters):
        client.coco(source)
    assert len(rsps.calls) == 0


def test_source_dataclass_needs_exactly_one():
    with pytest.raises(InvalidParameters):
        Source()
    with pytest.raises(InvalidParameters):
        Source(uri=IMAGE, asset_id="x")
    assert coerce_source(Source(uri=IMAGE)).as_json() == {"uri": IMAGE}


# -- extras and type validation -------------------------------------------------


@pytest.mark.parametrize(
    ("analysis_type", "extras"),
    [
        ("ai_vision_general", {"prompts": []}),
        ("ai_vision_general", {"prompts": [f"q{i}?" for i in range(11)]}),
        ("ai_vision_general", {"prompts": "one string"}),
        ("ai_vision_general", {"prompts": ["ok", 3]}),
        ("ai_vision_general", {"prompts": ["ok", "  "]}),
        ("ai_vision_moderation", {"rejection_questions": []}),
        ("ai_vision_moderation", {"rejection_questions": ["q?"] * 11}),
        ("ai_vision_tagging", {}),
        ("ai_vision_tagging", {"tag_definitions": []}),
        ("ai_vision_tagging", {"tag_definitions": [{"name": "cat"}]}),
        ("ai_vision_tagging", {"tag_definitions": [{"description": "a cat"}]}),
        ("ai_vision_tagging", {"tag_definitions": ["cat"]}),
        (
            "ai_vision_tagging",
            {"tag_definitions": [{"name": "c", "description": "d", "colour": "x"}]},
        ),
        ("coco", {"prompts": ["q?"]}),
        ("ai_vision_general", {"rejection_questions": ["q?"]}),
        ("captioning", {"async": True}),
    ],
)
def test_invalid_extras_are_refused_before_sending(rsps, client, analysis_type, extras):
    with pytest.raises(InvalidParameters):
        client.analyze(analysis_type, IMAGE, **extras)
    assert len(rsps.calls) == 0


def test_unknown_type(rsps, client):
    with pytest.raises(UnknownAnalysisType) as info:
        client.analyze("cats_only", IMAGE)
    assert isinstance(info.value, InvalidParameters)
    assert "cats_only" in str(info.value)
    assert len(rsps.calls) == 0


def test_logo_detection_is_synchronous_only(rsps, client):
    with pytest.raises(InvalidParameters, match="asynchronously"):
        client.analyze("google_logo_detection", IMAGE, async_=True)
    with pytest.raises(TypeError):
        client.google_logo_detection(IMAGE, async_=True)
    assert len(rsps.calls) == 0


def test_notification_url_on_a_synchronous_call_is_sent_as_given(rsps, client):
    """As the SDK's first README example does: no ``async``, a webhook URL."""
    hook = "https://example.com/hook"
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    rsps.post(
        f"{BASE}/analyze/google_logo_detection",
        json=sample_response("google_logo_detection"),
    )
    result = client.coco(IMAGE, notification_url=hook)
    assert isinstance(result, AnalysisResult)
    logo = client.google_logo_detection(IMAGE, notification_url=hook)
    assert isinstance(logo, AnalysisResult)
    for call in rsps.calls:
        assert _body(call) == {"source": {"uri": IMAGE}, "notification_url": hook}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x/y", 42])
def test_a_notification_url_must_be_http(rsps, client, url):
    for async_ in (False, True):
        with pytest.raises(InvalidParameters, match="notification_url"):
            client.coco(IMAGE, async_=async_, notification_url=url)
    assert len(rsps.calls) == 0


# -- async ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "analysis_type", [t for t in ANALYSIS_TYPES if t != "google_logo_detection"]
)
def test_async_returns_accepted(rsps, client, analysis_type):
    task_id = sample_task_id(analysis_type)
    payload = sample_accepted(task_id)
    rsps.post(f"{BASE}/analyze/{analysis_type}", json=payload, status=202)
    extras = EXTRAS.get(analysis_type, {})

    accepted = getattr(client, analysis_type)(
        IMAGE, async_=True, notification_url="https://example.com/hook", **extras
    )

    assert accepted == Accepted(
        analysis_type, task_id, "pending", payload["request_id"], payload
    )
    assert _body(rsps.calls[0]) == {
        "source": {"uri": IMAGE},
        **extras,
        "async": True,
        "notification_url": "https://example.com/hook",
    }


def test_a_200_carrying_a_task_is_an_acceptance(rsps, client):
    rsps.post(f"{BASE}/analyze/coco", json=sample_accepted("t9", "processing"))
    accepted = client.coco(IMAGE, async_=True)
    assert isinstance(accepted, Accepted)
    assert (accepted.task_id, accepted.status) == ("t9", "processing")


def test_async_without_notification_url(rsps, client):
    rsps.post(f"{BASE}/analyze/coco", json=sample_accepted("t1"), status=202)
    client.coco(IMAGE, async_=True)
    assert _body(rsps.calls[0]) == {"source": {"uri": IMAGE}, "async": True}


@pytest.mark.parametrize("status", ["pending", "processing", "completed", "failed"])
def test_task_status(rsps, bearer_client, status):
    task_id = sample_task_id()
    payload = sample_accepted(task_id, status)
    rsps.get(f"{BASE}/tasks/{task_id}", json=payload)

    result = bearer_client.get_task_status(task_id)

    assert result == TaskStatus(task_id, status, payload["request_id"], payload)
    request = rsps.calls[0].request
    assert request.method == "GET"
    assert request.headers["Authorization"] == BEARER
    assert request.body is None


def test_task_id_is_quoted_into_the_path(rsps, client):
    rsps.get(f"{BASE}/tasks/a%2Fb%20c", json=sample_accepted("a/b c"))
    assert client.get_task_status("a/b c").task_id == "a/b c"


def test_task_status_errors(rsps, client):
    with pytest.raises(InvalidParameters):
        client.get_task_status("  ")
    rsps.get(
        f"{BASE}/tasks/nope",
        json=sample_error(404, "user_error", "MA_404", "task not found"),
        status=404,
    )
    with pytest.raises(NotFoundError) as info:
        client.get_task_status("nope")
    assert info.value.message == "task not found"


@pytest.mark.parametrize(
    "payload",
    [
        {"data": {"status": "pending"}},
        {"data": {"task_id": "", "status": "pending"}},
        {"data": "x"},
        {"request_id": "r"},
    ],
)
def test_malformed_202_is_unexpected(rsps, client, payload):
    rsps.post(f"{BASE}/analyze/coco", json=payload, status=202)
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE, async_=True)
    assert info.value.retryable is False
    assert info.value.status_code == 202


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "cls", "retryable"),
    [
        (400, "user_error", UserError, False),
        (401, "auth_error", AuthError, False),
        (403, "auth_error", AuthError, False),
        (404, "user_error", NotFoundError, False),
        (429, "rate_limit_error", RateLimitError, True),
        (500, "server_error", ServerError, True),
        (502, "server_error", ServerError, True),
        (503, "server_error", ServerError, True),
        (504, "server_error", ServerError, True),
        (501, "server_error", ServerError, False),
        (409, "user_error", UserError, False),
        (418, "auth_error", AuthError, False),
        (422, None, APIError, False),
    ],
)
def test_json_errors(rsps, client, status, category, cls, retryable):
    body = sample_error(
        status,
        category or "",
        "MA_00001",
        "missing parameters",
        details={"parameters": ["uri"]},
    )
    if category is None:
        del body["error"]["category"]
    rsps.post(f"{BASE}/analyze/coco", json=body, status=status)

    with pytest.raises(cls) as info:
        client.coco(IMAGE)

    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.category == category
    assert exc.code == "MA_00001"
    assert exc.message == "missing parameters"
    assert exc.details == {"parameters": ["uri"]}
    assert exc.request_id == body["error"]["request_id"]
    assert exc.retryable is retryable
    assert "missing parameters" in str(exc)
    assert f"HTTP {status}" in str(exc)


@pytest.mark.parametrize(
    ("status", "cls", "category"),
    [
        (400, UserError, "user_error"),
        (401, AuthError, "auth_error"),
        (403, AuthError, "auth_error"),
        (404, NotFoundError, "user_error"),
        (429, RateLimitError, "rate_limit_error"),
    ],
)
def test_non_json_client_errors_keep_their_class(rsps, client, status, cls, category):
    rsps.post(
        f"{BASE}/analyze/coco",
        body="<html>nope</html>",
        status=status,
        content_type="text/html",
    )
    with pytest.raises(cls) as info:
        client.coco(IMAGE)
    exc = info.value
    assert exc.status_code == status
    assert exc.category == category
    assert exc.code == cls.default_code
    assert "text/html" in exc.message
    assert exc.details is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_html_5xx_from_a_proxy_is_unexpected_and_retryable(rsps, client, status):
    rsps.post(
        f"{BASE}/analyze/coco",
        body=HTML_502,
        status=status,
        content_type="text/html",
        headers={"X-Request-Id": "proxy-1"},
    )
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    exc = info.value
    assert exc.retryable is True
    assert exc.status_code == status
    assert exc.request_id == "proxy-1"
    assert "non-JSON" in exc.message
    assert "text/html" in exc.message
    assert exc.details["body_prefix"].startswith("<html>")


def test_html_505_is_unexpected_and_final(rsps, client):
    rsps.post(f"{BASE}/analyze/coco", body=HTML_502, status=505)
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert info.value.retryable is False


def test_empty_500_is_unexpected_and_retryable(rsps, client):
    rsps.post(f"{BASE}/analyze/coco", body="", status=500)
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert info.value.retryable is True
    assert "empty" in info.value.message


def test_json_5xx_without_error_object_is_unexpected(rsps, client):
    rsps.post(f"{BASE}/analyze/coco", json={"message": "upstream"}, status=503)
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert info.value.retryable is True


@pytest.mark.parametrize(
    ("body", "retryable", "words"),
    [
        (HTML_502, False, "non-JSON"),
        ('{"data": {"entity": "x", "analysis": {"tags": {', True, "truncated"),
        ('{"data": {"entity": "x"}}', False, "unexpected shape"),
        ('{"data": []}', False, "unexpected shape"),
        ("[1, 2]", False, "unexpected shape"),
        ("", False, "empty"),
    ],
)
def test_bad_200_bodies(rsps, client, body, retryable, words):
    rsps.post(f"{BASE}/analyze/coco", body=body, status=200)
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert info.value.retryable is retryable
    assert words in info.value.message
    assert info.value.status_code == 200


@pytest.mark.parametrize("status", [201, 204, 301, 302])
def test_odd_statuses_are_unexpected(rsps, client, status):
    rsps.post(
        f"{BASE}/analyze/coco",
        body="",
        status=status,
        headers={"Location": "https://elsewhere.example/"},
    )
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert info.value.retryable is False
    assert len(rsps.calls) == 1  # redirects are not followed


@pytest.mark.parametrize(
    ("raised", "cls", "retryable"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), RequestTimeout, True),
        (requests.exceptions.ReadTimeout("read timed out"), RequestTimeout, True),
        (requests.exceptions.ConnectionError("refused"), NetworkError, True),
        (requests.exceptions.SSLError("bad cert"), NetworkError, True),
        (requests.exceptions.ChunkedEncodingError("cut"), UnexpectedResponse, True),
        (requests.exceptions.TooManyRedirects("loop"), NetworkError, True),
        (requests.exceptions.InvalidURL("bad"), ConfigurationError, False),
    ],
)
def test_transport_errors_are_translated(rsps, client, raised, cls, retryable):
    rsps.post(f"{BASE}/analyze/coco", body=raised)
    with pytest.raises(cls) as info:
        client.coco(IMAGE)
    exc = info.value
    assert type(exc) is cls
    assert exc.retryable is retryable
    assert exc.status_code is None
    assert "/analyze/coco" in exc.message
    assert not isinstance(exc, requests.exceptions.RequestException)
    assert exc.__cause__ is None and exc.__suppress_context__


def test_invalid_header_error_never_quotes_the_header(rsps, client):
    rsps.post(
        f"{BASE}/analyze/coco",
        body=requests.exceptions.InvalidHeader(f"bad header value {BASIC!r}"),
    )
    with pytest.raises(UnexpectedResponse) as info:
        client.coco(IMAGE)
    assert BASIC not in str(info.value)
    assert BASIC not in repr(info.value)


# -- rate limits and Retry-After ------------------------------------------------

NOW = datetime(2024, 1, 20, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def frozen_now(monkeypatch):
    monkeypatch.setattr(client_results, "_utcnow", lambda: NOW)
    return NOW


def _limits(remaining: int, reset: datetime) -> dict[str, Any]:
    return {
        "items": [
            {
                "type": "ai_vision",
                "used_by_request": 0,
                "remaining": remaining,
                "limit": 100,
                "reset_time": reset.isoformat().replace("+00:00", "Z"),
            }
        ]
    }


def test_429_retry_after_seconds_header(rsps, client, frozen_now):
    body = sample_error(429, "rate_limit_error", "MA_429", "quota exceeded")
    rsps.post(
        f"{BASE}/analyze/coco", json=body, status=429, headers={"Retry-After": "120"}
    )
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    exc = info.value
    assert exc.retry_after == 120.0
    assert exc.retryable is True
    assert [q.remaining for q in exc.limits] == [0]
    assert exc.limits[0].type == "ai_vision"


def test_429_retry_after_http_date_header(rsps, client, frozen_now):
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    rsps.post(
        f"{BASE}/analyze/coco",
        json=sample_error(429, "rate_limit_error"),
        status=429,
        headers={"Retry-After": when},
    )
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after == 90.0


def test_429_without_header_waits_for_the_exhausted_quota(rsps, client, frozen_now):
    body = sample_error(
        429, "rate_limit_error", limits=_limits(0, NOW + timedelta(hours=1))
    )
    rsps.post(f"{BASE}/analyze/coco", json=body, status=429)
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after == 3600.0


def test_429_with_quota_left_has_no_retry_after(rsps, client, frozen_now):
    body = sample_error(
        429, "rate_limit_error", limits=_limits(5, NOW + timedelta(hours=1))
    )
    rsps.post(f"{BASE}/analyze/coco", json=body, status=429)
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after is None


def test_429_with_a_bad_header_falls_back_to_reset_time(rsps, client, frozen_now):
    body = sample_error(
        429, "rate_limit_error", limits=_limits(0, NOW + timedelta(minutes=5))
    )
    rsps.post(
        f"{BASE}/analyze/coco",
        json=body,
        status=429,
        headers={"Retry-After": "soon-ish"},
    )
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after == 300.0


def test_html_429_from_a_proxy_keeps_retry_after(rsps, client, frozen_now):
    rsps.post(
        f"{BASE}/analyze/coco",
        body="<html>Too Many Requests</html>",
        status=429,
        content_type="text/html",
        headers={"Retry-After": "30"},
    )
    with pytest.raises(RateLimitError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after == 30.0
    assert info.value.limits == []
    assert info.value.retryable is True


def test_503_retry_after_is_kept(rsps, client, frozen_now):
    rsps.post(
        f"{BASE}/analyze/coco",
        json=sample_error(503, "server_error"),
        status=503,
        headers={"Retry-After": "7"},
    )
    with pytest.raises(ServerError) as info:
        client.coco(IMAGE)
    assert info.value.retry_after == 7.0


def test_retry_after_from_is_pure():
    past = [QuotaLimit("ai_vision", remaining=0, reset_time=NOW - timedelta(hours=1))]
    assert retry_after_from(None, past, NOW) == 0.0
    assert retry_after_from("-5", None, NOW) == 0.0
    assert retry_after_from("nan", None, NOW) is None
    assert retry_after_from("1.5", None, NOW) == 1.5
    two = [
        QuotaLimit("ai_vision", remaining=0, reset_time=NOW + timedelta(seconds=10)),
        QuotaLimit(
            "google_tagging", remaining=0, reset_time=NOW + timedelta(seconds=40)
        ),
        QuotaLimit("object_detection", remaining=3, reset_time=NOW + timedelta(days=1)),
    ]
    assert retry_after_from(None, two, NOW) == 40.0
    assert retry_after_from(None, [QuotaLimit("x", remaining=0)], NOW) is None


# -- retry policy: pure timing decisions ----------------------------------------


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(10_000) == 10.0


def test_jitter_stays_in_the_upper_half():
    low = RetryPolicy(base=1.0, cap=10.0, rand=lambda: 0.0)
    high = RetryPolicy(base=1.0, cap=10.0, rand=lambda: 0.999999)
    assert [low.delay(n) for n in (1, 2, 3, 5)] == [0.5, 1.0, 2.0, 5.0]
    assert high.delay(3) == pytest.approx(4.0, abs=1e-5)
    assert high.delay(5) == pytest.approx(10.0, abs=1e-4)
    real = RetryPolicy(base=1.0, cap=10.0)
    assert all(2.0 <= real.delay(3) <= 4.0 for _ in range(200))


def test_delay_honours_retry_after_over_backoff():
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=False)
    assert policy.delay(1, RateLimitError("x", retry_after=42.0)) == 42.0
    assert policy.delay(2, ServerError("x")) == 2.0
    # A reset time already past (retry_after 0) still backs off.
    assert policy.delay(2, RateLimitError("x", retry_after=0.0)) == 2.0
    assert policy.delay(4, RateLimitError("x", retry_after=3.0)) == 8.0


@pytest.mark.parametrize(
    ("error", "decision"),
    [
        (RateLimitError("x"), 1.0),
        (ServerError("x", status_code=503), 1.0),
        (RequestTimeout("x"), 1.0),
        (NetworkError("x"), 1.0),
        (UnexpectedResponse("x", retryable=True), 1.0),
        (UnexpectedResponse("x"), None),
        (UserError("x"), None),
        (AuthError("x"), None),
        (NotFoundError("x"), None),
        (InvalidParameters("x"), None),
        (ValueError("x"), None),
        (RateLimitError("x", retry_after=5.0), 5.0),
        (RateLimitError("x", retry_after=3600.0), None),  # longer than cap
    ],
)
def test_next_delay_decisions(error, decision):
    policy = RetryPolicy(max_attempts=3, base=1.0, cap=30.0, jitter=False)
    assert policy.next_delay(1, error) == decision


def test_next_delay_stops_after_max_attempts_and_respects_max_wait():
    policy = RetryPolicy(max_attempts=3, base=1.0, cap=30.0, jitter=False)
    assert policy.next_delay(2, ServerError("x")) == 2.0
    assert policy.next_delay(3, ServerError("x")) is None
    patient = RetryPolicy(cap=30.0, max_wait=7200.0)
    assert patient.next_delay(1, RateLimitError("x", retry_after=3600.0)) == 3600.0


def test_retry_policy_validation():
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(base=-1)


# -- in-client retries ----------------------------------------------------------


class Sleeper:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _retrying_client(sleeper: Sleeper, **policy: Any) -> AnalyzeClient:
    options = {"max_attempts": 3, "base": 1.0, "cap": 30.0, "jitter": False}
    options.update(policy)
    return AnalyzeClient(
        CLOUD,
        api_key=API_KEY,
        api_secret=SECRET,
        retry=RetryPolicy(sleep=sleeper, **options),
    )


def test_retries_5xx_then_succeeds(rsps):
    sleeper = Sleeper()
    url = f"{BASE}/analyze/coco"
    rsps.post(url, json=sample_error(503, "server_error"), status=503)
    rsps.post(url, body=HTML_502, status=502)
    rsps.post(url, json=sample_response("coco"))
    result = _retrying_client(sleeper).coco(IMAGE)
    assert isinstance(result, AnalysisResult)
    assert len(rsps.calls) == 3
    assert sleeper.waits == [1.0, 2.0]
    assert all(c.request.body == rsps.calls[0].request.body for c in rsps.calls)


def test_retry_honours_retry_after(rsps, frozen_now):
    sleeper = Sleeper()
    url = f"{BASE}/analyze/coco"
    rsps.post(
        url,
        json=sample_error(429, "rate_limit_error"),
        status=429,
        headers={"Retry-After": "3"},
    )
    rsps.post(url, json=sample_response("coco"))
    _retrying_client(sleeper).coco(IMAGE)
    assert sleeper.waits == [3.0]


def test_retry_gives_up_when_the_quota_resets_too_late(rsps, frozen_now):
    sleeper = Sleeper()
    body = sample_error(
        429, "rate_limit_error", limits=_limits(0, NOW + timedelta(hours=2))
    )
    rsps.post(f"{BASE}/analyze/coco", json=body, status=429)
    with pytest.raises(RateLimitError) as info:
        _retrying_client(sleeper).coco(IMAGE)
    assert info.value.retry_after == 7200.0
    assert sleeper.waits == []
    assert len(rsps.calls) == 1


def test_retry_exhaustion_raises_the_last_error(rsps):
    sleeper = Sleeper()
    rsps.post(
        f"{BASE}/analyze/coco", json=sample_error(500, "server_error"), status=500
    )
    with pytest.raises(ServerError):
        _retrying_client(sleeper, max_attempts=4).coco(IMAGE)
    assert len(rsps.calls) == 4
    assert sleeper.waits == [1.0, 2.0, 4.0]


def test_retry_covers_connection_errors_and_timeouts(rsps):
    sleeper = Sleeper()
    url = f"{BASE}/analyze/coco"
    rsps.post(url, body=requests.exceptions.ConnectionError("reset"))
    rsps.post(url, body=requests.exceptions.ReadTimeout("slow"))
    rsps.post(url, json=sample_response("coco"))
    _retrying_client(sleeper).coco(IMAGE)
    assert len(rsps.calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 501])
def test_final_errors_are_never_retried(rsps, status):
    sleeper = Sleeper()
    category = "server_error" if status >= 500 else "user_error"
    rsps.post(
        f"{BASE}/analyze/coco", json=sample_error(status, category), status=status
    )
    with pytest.raises(APIError):
        _retrying_client(sleeper).coco(IMAGE)
    assert len(rsps.calls) == 1
    assert sleeper.waits == []


def test_no_retries_by_default(rsps, client):
    rsps.post(
        f"{BASE}/analyze/coco", json=sample_error(503, "server_error"), status=503
    )
    with pytest.raises(ServerError):
        client.coco(IMAGE)
    assert len(rsps.calls) == 1
    assert client.retry is None


# -- configuration --------------------------------------------------------------


def test_from_url():
    c = AnalyzeClient.from_url(f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}")
    assert c.cloud_name == CLOUD
    assert c.api_key == API_KEY
    assert c.auth_scheme == "basic"
    assert c.base_url == BASE


def test_from_url_secret_with_reserved_characters(rsps):
    c = AnalyzeClient.from_url("cloudinary://key:p%40ss%3Aw%2Fd@demo?secure=true")
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    c.coco(IMAGE)
    header = rsps.calls[0].request.headers["Authorization"]
    assert base64.b64decode(header.split()[1]).decode() == "key:p@ss:w/d"


def test_from_url_options_and_overrides():
    c = AnalyzeClient.from_url(
        f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}?upload_prefix=https://api-eu.cloudinary.com",
        timeout=3,
    )
    assert c.base_url == f"https://api-eu.cloudinary.com/v2/analysis/{CLOUD}"
    assert c.timeout == 3.0
    c = AnalyzeClient.from_url(
        f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}?upload_prefix=https://x.example",
        base_url="http://127.0.0.1:9000/v2/analysis/{cloud_name}",
    )
    assert c.base_url == f"http://127.0.0.1:9000/v2/analysis/{CLOUD}"
    t = AnalyzeClient.from_url(f"cloudinary://@{CLOUD}?oauth_token={TOKEN}")
    assert t.auth_scheme == "bearer"


@pytest.mark.parametrize(
    ("url", "missing"),
    [
        (f"https://{API_KEY}:{SECRET}@{CLOUD}", "cloudinary://"),
        (f"{API_KEY}:{SECRET}@{CLOUD}", "cloudinary://"),
        (f"cloudinary://{API_KEY}:{SECRET}@", "cloud name"),
        (f"cloudinary://{API_KEY}@{CLOUD}", "API secret"),
        (f"cloudinary://{API_KEY}:@{CLOUD}", "API secret"),
        (f"cloudinary://:{SECRET}@{CLOUD}", "API key"),
        (f"cloudinary://{CLOUD}", "API key, API secret"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_malformed_urls(url, missing):
    with pytest.raises(ConfigurationError) as info:
        AnalyzeClient.from_url(url)
    assert missing in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in repr(info.value.details)


def test_parse_cloudinary_url_is_exposed():
    assert parse_cloudinary_url("cloudinary://k:s@c") == {
        "cloud_name": "c",
        "api_key": "k",
        "api_secret": "s",
    }


def test_from_environment(monkeypatch):
    monkeypatch.setenv("CLOUDINARY_URL", f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}")
    c = AnalyzeClient.from_environment(timeout=(1, 2))
    assert (c.cloud_name, c.api_key, c.timeout) == (CLOUD, API_KEY, (1.0, 2.0))


def test_from_environment_with_a_mapping_and_split_variables():
    c = AnalyzeClient.from_environment(
        {
            "CLOUDINARY_CLOUD_NAME": "other",
            "CLOUDINARY_API_KEY": API_KEY,
            "CLOUDINARY_API_SECRET": SECRET,
        }
    )
    assert c.base_url == "https://api.cloudinary.com/v2/analysis/other"
    with pytest.raises(ConfigurationError, match="api_secret"):
        AnalyzeClient.from_environment(
            {"CLOUDINARY_CLOUD_NAME": "other", "CLOUDINARY_API_KEY": API_KEY}
        )


def test_from_environment_missing(monkeypatch):
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    monkeypatch.delenv("CLOUDINARY_CLOUD_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="CLOUDINARY_URL is not set"):
        AnalyzeClient.from_environment()
    with pytest.raises(ConfigurationError, match="API secret"):
        AnalyzeClient.from_environment({"CLOUDINARY_URL": f"cloudinary://k@{CLOUD}"})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "api_key and api_secret"),
        ({"api_key": API_KEY}, "api_secret"),
        ({"api_secret": SECRET}, "api_key"),
        ({"api_key": API_KEY, "api_secret": SECRET + "\n"}, "api_secret contains"),
        ({"api_key": "a:b", "api_secret": SECRET}, "api_key must not contain"),
        ({"oauth_token": TOKEN + " x"}, "oauth_token contains"),
    ],
)
def test_missing_or_bad_credentials(kwargs, words):
    with pytest.raises(ConfigurationError) as info:
        AnalyzeClient(CLOUD, **kwargs)
    assert words in str(info.value)
    assert SECRET not in str(info.value)
    assert TOKEN not in str(info.value)


def test_missing_cloud_name():
    with pytest.raises(ConfigurationError, match="cloud_name"):
        AnalyzeClient("  ", api_key=API_KEY, api_secret=SECRET)


def test_oauth_token_wins_over_key_and_secret(rsps):
    c = AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, oauth_token=TOKEN)
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    c.coco(IMAGE)
    assert rsps.calls[0].request.headers["Authorization"] == BEARER


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (
            "http://127.0.0.1:8765/v2/analysis/{cloud_name}",
            "http://127.0.0.1:8765/v2/analysis/demo",
        ),
        ("http://127.0.0.1:8765/custom/", "http://127.0.0.1:8765/custom"),
    ],
)
def test_base_url_override(rsps, base_url, expected):
    c = AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, base_url=base_url)
    assert c.base_url == expected
    rsps.post(f"{expected}/analyze/coco", json=sample_response("coco"))
    rsps.get(f"{expected}/tasks/t1", json=sample_accepted("t1"))
    c.coco(IMAGE)
    c.get_task_status("t1")
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    "base_url", ["ftp://x/y", "/relative", "https://", "https://u:p@host/x"]
)
def test_bad_base_url(base_url):
    with pytest.raises(ConfigurationError) as info:
        AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, base_url=base_url)
    assert "u:p" not in str(info.value)


@pytest.mark.parametrize("timeout", [0, -1, (1,), (1, 0), ("a", 2), True, "5"])
def test_bad_timeouts(timeout):
    with pytest.raises(ConfigurationError):
        AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, timeout=timeout)


def test_timeouts_and_redirects_are_passed_to_requests(rsps, client):
    assert client.timeout == DEFAULT_TIMEOUT
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    client.coco(IMAGE)
    kwargs = rsps.calls[0].request.req_kwargs
    assert kwargs["timeout"] == DEFAULT_TIMEOUT
    assert rsps.calls[0].request.headers["Accept"] == "application/json"


def test_custom_user_agent(rsps):
    c = AnalyzeClient(CLOUD, oauth_token=TOKEN, user_agent="mysite/2")
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    c.coco(IMAGE)
    assert rsps.calls[0].request.headers["User-Agent"] == "mysite/2"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.closed = False

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.requests += 1
        return super().request(*args, **kwargs)

    def close(self) -> None:
        self.closed = True
        super().close()


def test_one_session_is_reused_and_a_given_session_is_left_open(rsps):
    session = CountingSession()
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    with AnalyzeClient(CLOUD, oauth_token=TOKEN, session=session) as c:
        c.coco(IMAGE)
        c.coco(IMAGE)
        assert c.session is session
    assert session.requests == 2
    assert session.closed is False
    assert "Authorization" not in session.headers  # never stored on the session


def test_own_session_is_closed():
    c = AnalyzeClient(CLOUD, oauth_token=TOKEN)
    assert isinstance(c.session, requests.Session)
    closed = []
    c.session.close = lambda: closed.append(True)  # type: ignore[method-assign]
    c.close()
    assert closed == [True]


# -- secrets never leak ---------------------------------------------------------


def _assert_clean(text: str) -> None:
    for secret in SENSITIVE:
        assert secret not in text


def test_reprs_do_not_leak(client, bearer_client):
    for c in (client, bearer_client):
        _assert_clean(repr(c))
        _assert_clean(str(c))
        _assert_clean(repr(c._auth))
        _assert_clean(repr(vars(c).get("_headers")))
        _assert_clean(repr(c.session.headers))
    assert "cloud_name='demo'" in repr(client)
    assert "auth=bearer" in repr(bearer_client)


def test_logs_and_errors_do_not_leak(rsps, caplog, frozen_now):
    caplog.set_level(logging.DEBUG)
    sleeper = Sleeper()
    # An API that echoes credentials back must not get them into our errors.
    echo = sample_error(
        401,
        "auth_error",
        "MA_401",
        f"invalid credentials {API_KEY}:{SECRET} / {TOKEN}",
        details={"header": BASIC, "nested": [SECRET]},
    )
    rsps.post(
        f"{BASE}/analyze/coco", json=sample_error(503, "server_error"), status=503
    )
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    rsps.post(f"{BASE}/analyze/lvis", json=echo, status=401)
    rsps.post(
        f"{BASE}/analyze/unidet",
        body=requests.exceptions.ConnectionError(f"failed {SECRET} {TOKEN}"),
    )
    basic = _retrying_client(sleeper)
    bearer = AnalyzeClient(CLOUD, oauth_token=TOKEN, retry=RetryPolicy(sleep=sleeper))
    basic.coco(IMAGE)  # retried once, logged
    errors: list[tuple[AnalysisError, tuple[str, ...]]] = []
    for c, own in ((basic, (SECRET, BASIC.split()[1])), (bearer, (TOKEN,))):
        for call in (c.lvis, c.unidet):
            with pytest.raises(AnalysisError) as info:
                call(IMAGE)
            errors.append((info.value, own))

    assert [type(e) for e, _ in errors] == [AuthError, NetworkError] * 2
    # Each client scrubs the credentials it holds.
    for exc, own in errors:
        for text in (str(exc), repr(exc), repr(exc.details), exc.message):
            assert not any(secret in text for secret in own)
    errors_ = [e for e, _ in errors]
    assert "[redacted]" in errors_[0].message
    assert errors_[0].details == {
        "header": "Basic [redacted]",
        "nested": ["[redacted]"],
    }
    assert sleeper.waits
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Retrying POST /analyze/coco") for m in messages)
    for record in caplog.records:
        _assert_clean(record.getMessage())
        _assert_clean(repr(record.__dict__))


def test_debug_log_line(rsps, client, caplog):
    caplog.set_level(logging.DEBUG, logger="django_cloudinary_analysis.client")
    payload = sample_response("coco")
    rsps.post(f"{BASE}/analyze/coco", json=payload)
    client.coco(IMAGE)
    [record] = [
        r for r in caplog.records if r.name == "django_cloudinary_analysis.client"
    ]
    message = record.getMessage()
    assert message.startswith("POST /analyze/coco -> 200 in ")
    assert payload["request_id"] in message
    assert record.request_id == payload["request_id"]
    assert record.levelno == logging.DEBUG


def _clear_proxy_env(monkeypatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_environment_proxies_and_ca_bundle_are_resolved_once(monkeypatch):
    _clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/custom.pem")
    c = AnalyzeClient(CLOUD, oauth_token=TOKEN)
    assert c.session.trust_env is False
    assert c.session.proxies["https"] == "http://proxy.internal:3128"
    assert c.session.verify == "/etc/ssl/custom.pem"

    monkeypatch.setenv("NO_PROXY", "api.cloudinary.com")
    bypass = AnalyzeClient(CLOUD, oauth_token=TOKEN)
    assert "https" not in bypass.session.proxies

    _clear_proxy_env(monkeypatch)
    plain = AnalyzeClient(CLOUD, oauth_token=TOKEN)
    assert plain.session.proxies == {}
    assert plain.session.verify is True


def test_a_given_session_keeps_its_own_settings():
    session = requests.Session()
    c = AnalyzeClient(CLOUD, oauth_token=TOKEN, session=session)
    assert c.session.trust_env is True


@responses.activate
def test_a_huge_body_is_refused_without_reading_it_all(client):
    client.max_response_bytes = 1000
    body = json.dumps(sample_response("google_tagging")) + " " * 5000
    responses.add(responses.POST, f"{BASE}/analyze/google_tagging", body=body)
    with pytest.raises(UnexpectedResponse) as info:
        client.google_tagging("https://example.com/a.jpg")
    assert info.value.code == "response_too_large"
    assert not info.value.retryable
    assert "too large" in str(info.value)


@responses.activate
def test_a_body_under_the_cap_is_read(client):
    client.max_response_bytes = 100_000
    responses.add(
        responses.POST,
        f"{BASE}/analyze/google_tagging",
        json=sample_response("google_tagging"),
    )
    assert client.google_tagging("https://example.com/a.jpg").analysis


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.coco(IMAGE),
        lambda c: c.captioning(IMAGE, notification_url="https://example.com/h?x=1 2"),
        lambda c: c.get_task_status("task-1"),
    ],
    ids=["analyze", "async", "task status"],
)
@pytest.mark.parametrize("auth", ["basic", "oauth"])
def test_the_own_session_sends_what_session_request_would(rsps, call, auth):
    """The client prepares requests on its own session directly (no
    ``Session.request``); what reaches the wire must not change: method, URL,
    every header in order, body."""
    for path in ("analyze/coco", "analyze/captioning"):
        rsps.post(f"{BASE}/{path}", json=sample_response("coco"))
    rsps.get(f"{BASE}/tasks/task-1", json={"data": {"task_id": "t", "status": "p"}})
    credentials = (
        {"api_key": API_KEY, "api_secret": SECRET}
        if auth == "basic"
        else {"oauth_token": TOKEN}
    )
    own = AnalyzeClient(CLOUD, **credentials)
    given = AnalyzeClient(CLOUD, session=requests.Session(), **credentials)
    given.session.trust_env = False  # the own session resolved its environment once
    sent = []
    for client in (own, given):
        call(client)
        request = rsps.calls[-1].request
        sent.append(
            (request.method, request.url, list(request.headers.items()), request.body)
        )
    assert sent[0] == sent[1]
    assert own._owns_session and not given._owns_session
