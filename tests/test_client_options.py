"""Per-call retries, the retry policy's fields, the debug switch, error detail,
and credentials kept off Django's technical 500 page."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from typing import Any

import pytest
import requests
import responses
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from django_cloudinary_analysis.client import (
    DEBUG_ENV,
    REDACTED,
    AnalysisResult,
    AnalyzeClient,
    RetryPolicy,
    Secret,
    TaskStatus,
)
from django_cloudinary_analysis.client._config import MAX_DETAIL_BYTES
from django_cloudinary_analysis.exceptions import (
    ConfigurationError,
    InvalidParameters,
    NetworkError,
    RequestTimeout,
    ServerError,
    UserError,
)
from tests.support.api_samples import (
    ANALYSIS_TYPES,
    DEFAULT_PROMPTS,
    DEFAULT_REJECTION_QUESTIONS,
    DEFAULT_TAG_DEFINITIONS,
    sample_error,
    sample_response,
)
from tests.test_client import Sleeper

CLOUD = "demo"
API_KEY = "123456789012345"
SECRET = "sEcReT-abc_XYZ-987"
TOKEN = "oauth-TOKEN-zyx-654"
BASIC_TOKEN = base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
SENSITIVE = (SECRET, TOKEN, BASIC_TOKEN)
BASE = f"https://api.cloudinary.com/v2/analysis/{CLOUD}"
IMAGE = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"
EXTRAS: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"prompts": DEFAULT_PROMPTS},
    "ai_vision_moderation": {"rejection_questions": DEFAULT_REJECTION_QUESTIONS},
    "ai_vision_tagging": {"tag_definitions": DEFAULT_TAG_DEFINITIONS},
}


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _policy(sleeper: Sleeper, **kw: Any) -> RetryPolicy:
    options: dict[str, Any] = {"initial_interval": 1.0, "jitter": False}
    options.update(kw)
    return RetryPolicy(sleep=sleeper, **options)


def _client(**kw: Any) -> AnalyzeClient:
    return AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, **kw)


def _busy(rsps: Any, path: str, method: str = "POST") -> None:
    rsps.add(
        method,
        f"{BASE}{path}",
        json=sample_error(503, "server_error", "X", "busy"),
        status=503,
    )


# -- per-call retries -------------------------------------------------------------


@pytest.mark.parametrize("analysis_type", ANALYSIS_TYPES)
def test_every_typed_method_takes_per_call_retries(rsps, analysis_type):
    extras = EXTRAS.get(analysis_type, {})
    path = f"/analyze/{analysis_type}"
    _busy(rsps, path)
    rsps.post(f"{BASE}{path}", json=sample_response(analysis_type, extras))
    sleeper = Sleeper()
    client = _client()  # no retries of its own

    result = getattr(client, analysis_type)(IMAGE, retries=_policy(sleeper), **extras)

    assert isinstance(result, AnalysisResult)
    assert len(rsps.calls) == 2 and sleeper.waits == [1.0]


def test_retries_false_overrides_the_clients_policy(rsps):
    _busy(rsps, "/analyze/coco")
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    sleeper = Sleeper()
    client = _client(retry=_policy(sleeper))
    with pytest.raises(ServerError):
        client.coco(IMAGE, retries=False)
    assert len(rsps.calls) == 1 and sleeper.waits == []
    rsps.reset()
    _busy(rsps, "/analyze/coco")
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    assert isinstance(client.coco(IMAGE), AnalysisResult)  # the client's policy
    assert sleeper.waits == [1.0]


def test_task_status_and_analyze_take_per_call_retries(rsps):
    _busy(rsps, "/tasks/t1", "GET")
    rsps.get(f"{BASE}/tasks/t1", json={"data": {"task_id": "t1", "status": "failed"}})
    _busy(rsps, "/analyze/coco")
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    sleeper = Sleeper()
    client = _client()
    status = client.get_task_status("t1", retries=_policy(sleeper))
    assert isinstance(status, TaskStatus) and status.status == "failed"
    result = client.analyze("coco", IMAGE, retries=_policy(sleeper))
    assert isinstance(result, AnalysisResult) and sleeper.waits == [1.0, 1.0]


@pytest.mark.parametrize("retries", [3, "yes", True, RetryPolicy])
def test_bad_retries_are_refused_before_sending(rsps, retries):
    with pytest.raises(InvalidParameters, match="retries"):
        _client().coco(IMAGE, retries=retries)
    assert len(rsps.calls) == 0


# -- the policy's fields ----------------------------------------------------------


def test_exponent_and_max_interval_shape_the_backoff():
    policy = RetryPolicy(
        initial_interval=1.0, exponent=3.0, max_interval=20.0, jitter=False
    )
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 3.0, 9.0, 20.0, 20.0]
    assert RetryPolicy(exponent=1.0, jitter=False).backoff(50) == 0.5
    assert RetryPolicy(jitter=False).backoff(5000) == 30.0  # no overflow


def test_max_elapsed_time_stops_retrying(rsps):
    for _ in range(5):
        _busy(rsps, "/analyze/coco")
    now = [100.0]
    sleeper_waits: list[float] = []

    def sleep(seconds: float) -> None:
        sleeper_waits.append(seconds)
        now[0] += seconds

    policy = RetryPolicy(
        max_attempts=10,
        initial_interval=2.0,
        jitter=False,
        max_elapsed_time=5.0,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with pytest.raises(ServerError):
        _client().coco(IMAGE, retries=policy)
    # 2 s, then 4 s would end past 5 s: two attempts in all.
    assert sleeper_waits == [2.0] and len(rsps.calls) == 2
    assert policy.next_delay(1, ServerError("x"), elapsed=0.0) == 2.0
    assert policy.next_delay(1, ServerError("x"), elapsed=3.5) is None


def test_retry_connection_errors(rsps):
    rsps.post(f"{BASE}/analyze/coco", body=requests.exceptions.ConnectionError("x"))
    sleeper = Sleeper()
    with pytest.raises(NetworkError):
        _client().coco(IMAGE, retries=_policy(sleeper, retry_connection_errors=False))
    assert len(rsps.calls) == 1
    with pytest.raises(NetworkError):
        _client().coco(IMAGE, retries=_policy(sleeper))
    assert len(rsps.calls) == 4
    policy = RetryPolicy(retry_connection_errors=False)
    assert not policy.is_retryable(RequestTimeout("slow"))
    assert policy.is_retryable(ServerError("x"))
    assert not policy.is_retryable(UserError("x"))


def test_old_names_and_sdk_config():
    assert RetryPolicy(base=2, cap=9) == RetryPolicy(initial_interval=2, max_interval=9)
    assert RetryPolicy(base=2).base == 2.0 and RetryPolicy(cap=9).cap == 9.0
    with pytest.raises(ConfigurationError):
        RetryPolicy(base=1, initial_interval=1)
    with pytest.raises(ConfigurationError):
        RetryPolicy(cap=1, max_interval=1)
    for bad in (
        {"exponent": 0.5},
        {"max_elapsed_time": -1},
        {"initial_interval": float("inf")},
        {"max_attempts": 1.5},
    ):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)
    retries = pytest.importorskip("cloudinary_analysis.utils.retries")
    config = retries.RetryConfig(
        "backoff", retries.BackoffStrategy(500, 60000, 1.5, 3600000), False
    )
    policy = RetryPolicy.from_sdk(config, jitter=False)
    assert (
        policy.initial_interval,
        policy.max_interval,
        policy.exponent,
        policy.max_elapsed_time,
        policy.retry_connection_errors,
    ) == (0.5, 60.0, 1.5, 3600.0, False)
    assert "RetryPolicy(max_attempts=1000000" in repr(policy)


# -- debug ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)],
)
def test_the_sdks_debug_variable_switches_debug_on(monkeypatch, value, expected):
    monkeypatch.setenv(DEBUG_ENV, value)
    assert _client().debug is expected
    assert _client(debug=not expected).debug is (not expected)


def test_debug_logs_bodies_with_credentials_and_signatures_redacted(rsps, caplog):
    signed = "https://res.cloudinary.com/demo/image/upload/s--Ab3_dE-9--/v1/cat.jpg"
    hook = f"https://example.com/hook?signature=abc123&token={SECRET}"
    answer = sample_response("coco")
    answer["echo"] = {"api_secret": "server-side-secret", "note": f"k {SECRET}"}
    rsps.post(
        f"{BASE}/analyze/coco",
        json=answer,
        headers={"Set-Cookie": "session=abc", "X-Request-Id": "r1"},
    )
    caplog.set_level(logging.DEBUG, logger="django_cloudinary_analysis.client")
    client = _client(debug=True)
    client.coco(signed, notification_url=hook)

    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "django_cloudinary_analysis.client.http"
    ]
    request_line, response_line = lines
    assert request_line.startswith(f"request POST {BASE}/analyze/coco")
    assert "'authorization': '[redacted]'" in request_line
    assert f"/s--{REDACTED}--/" in request_line
    assert f"signature={REDACTED}" in request_line
    assert '"source"' in request_line
    assert response_line.startswith("response POST /analyze/coco -> 200")
    assert "'set-cookie': '[redacted]'" in response_line
    assert '"api_secret": "[redacted]"' in response_line
    assert "server-side-secret" not in response_line
    assert '"label_annotations"' not in response_line  # a coco answer
    assert '"tags"' in response_line
    for text in (request_line, response_line, caplog.text):
        for secret in SENSITIVE:
            assert secret not in text
    assert "Ab3_dE-9" not in caplog.text


def test_without_debug_no_bodies_are_logged(rsps, caplog):
    rsps.post(f"{BASE}/analyze/coco", json=sample_response("coco"))
    caplog.set_level(logging.DEBUG, logger="django_cloudinary_analysis.client")
    _client(debug=False).coco(IMAGE)
    assert not [
        r for r in caplog.records if r.name == "django_cloudinary_analysis.client.http"
    ]


# -- error detail -----------------------------------------------------------------


def test_errors_keep_status_headers_and_body_redacted(rsps):
    body = sample_error(400, "user_error", "MA_1", f"bad key {SECRET}")
    body["error"]["details"] = {"signature": "deadbeef", "parameters": ["uri"]}
    rsps.post(
        f"{BASE}/analyze/coco",
        json=body,
        status=400,
        headers={"X-Request-Id": "r9", "WWW-Authenticate": f"Basic {BASIC_TOKEN}"},
    )
    with pytest.raises(UserError) as info:
        _client().coco(IMAGE)
    exc = info.value
    assert exc.status_code == 400
    assert exc.headers["x-request-id"] == "r9"
    assert exc.headers["www-authenticate"] == f"Basic {REDACTED}"
    assert json.loads(exc.body)["error"]["code"] == "MA_1"
    assert exc.details == {"signature": REDACTED, "parameters": ["uri"]}
    for secret in SENSITIVE:
        assert secret not in repr(vars(exc)) and secret not in str(exc)


def test_error_bodies_are_size_capped(rsps):
    html = "<html>" + "x" * (3 * MAX_DETAIL_BYTES) + f"{SECRET}</html>"
    rsps.post(f"{BASE}/analyze/coco", body=html, status=502)
    with pytest.raises(Exception) as info:
        _client().coco(IMAGE)
    body = info.value.body
    assert len(body) < MAX_DETAIL_BYTES + 100
    assert body.endswith(f"({len(html)} bytes in all)")
    assert SECRET not in body


def test_errors_without_an_answer_have_no_response_detail(rsps):
    rsps.post(f"{BASE}/analyze/coco", body=requests.exceptions.ConnectionError("x"))
    with pytest.raises(NetworkError) as info:
        _client().coco(IMAGE)
    assert info.value.headers is None and info.value.body is None


# -- no credential on Django's debug page ----------------------------------------


def _report(exc_info: Any) -> str:
    request = RequestFactory().get("/")
    reporter = ExceptionReporter(request, *exc_info)
    return reporter.get_traceback_html() + reporter.get_traceback_text()


def _assert_no_secret(text: str) -> None:
    for secret in SENSITIVE:
        assert secret not in text
    assert "Traceback" in text or "traceback" in text


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("parsing blew up")


def _failures(rsps: Any, monkeypatch: Any) -> list[Any]:
    """Run calls that fail in different places; return their exc_info."""
    caught = []

    def attempt(call: Any) -> None:
        try:
            call()
        except Exception:
            caught.append(sys.exc_info())
        else:
            raise AssertionError("the call did not fail")

    basic = _client(retry=RetryPolicy(max_attempts=2, sleep=lambda s: None))
    bearer = AnalyzeClient(CLOUD, oauth_token=TOKEN, api_secret=SECRET)
    rsps.post(
        f"{BASE}/analyze/coco", json=sample_error(500, "server_error"), status=500
    )
    rsps.post(f"{BASE}/analyze/lvis", body=requests.exceptions.ConnectionError("x"))
    rsps.post(f"{BASE}/analyze/unidet", json=sample_response("unidet"))
    attempt(lambda: basic.coco(IMAGE))
    attempt(lambda: bearer.lvis(IMAGE))
    attempt(lambda: basic.coco("ftp://nope"))
    attempt(lambda: AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, timeout=0))
    attempt(lambda: AnalyzeClient.from_url(f"cloudinary://{API_KEY}:{SECRET}@"))
    attempt(
        lambda: AnalyzeClient.from_url(
            f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}", base_url="ftp://x"
        )
    )
    attempt(
        lambda: AnalyzeClient.from_environment(
            {"CLOUDINARY_URL": f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}"}, timeout=-1
        )
    )
    attempt(lambda: AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=f"{SECRET} "))
    monkeypatch.setattr(
        "django_cloudinary_analysis.client._protocol.parse_success", _boom
    )
    attempt(lambda: basic.unidet(IMAGE))
    return caught


def test_failing_calls_leave_no_credential_on_the_debug_page(rsps, monkeypatch):
    failures = _failures(rsps, monkeypatch)
    assert len(failures) == 9
    for exc_info in failures:
        text = _report(exc_info)
        _assert_no_secret(text)
    # The frames are there, with their locals, just redacted.
    assert "_send" in _report(failures[0]) and "&#x27;[redacted]&#x27;" in _report(
        failures[3]
    )


def test_failing_async_calls_leave_no_credential_on_the_debug_page():
    httpx = pytest.importorskip("httpx")
    from django_cloudinary_analysis.client import AsyncAnalyzeClient

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/lvis"):
            raise httpx.ConnectError(f"refused {request.headers['Authorization']}")
        return httpx.Response(500, json=sample_error(500, "server_error"))

    def make(**credentials: str) -> AsyncAnalyzeClient:
        return AsyncAnalyzeClient(
            CLOUD,
            http_options={"transport": httpx.MockTransport(handle)},
            **credentials,
        )

    async def main() -> list[Any]:
        # Built outside this frame: the caught tracebacks start here.
        clients = [make(api_key=API_KEY, api_secret=SECRET), make(oauth_token=TOKEN)]
        caught = []
        for client in clients:
            async with client:
                for call in (client.coco, client.lvis):
                    try:
                        await call(IMAGE)
                    except Exception:
                        caught.append(sys.exc_info())
        return caught

    failures = asyncio.run(main())
    assert len(failures) == 4
    for exc_info in failures:
        _assert_no_secret(_report(exc_info))


def test_secret_strings_behave_as_strings():
    secret = Secret(SECRET)
    assert secret == SECRET and f"{secret}" == SECRET and str(secret) == SECRET
    assert repr(secret) == repr(REDACTED) and SECRET not in repr([secret])
    assert Secret.of(None) is None and Secret.of("") == ""
