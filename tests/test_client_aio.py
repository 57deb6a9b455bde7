"""AsyncAnalyzeClient: the same requests, results, errors and retries as AnalyzeClient.

Each scenario is served to both clients — the synchronous one through
``responses``, the asyncio one through an in-process ``httpx.MockTransport``
— and what went over the wire and what came back are compared.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import responses

from django_cloudinary_analysis.client import (
    AnalysisResult,
    AnalyzeClient,
    RetryPolicy,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    ConfigurationError,
    InvalidParameters,
    NetworkError,
    RequestTimeout,
    ServerError,
    UnexpectedResponse,
)
from tests.support.api_samples import (
    ANALYSIS_TYPES,
    DEFAULT_PROMPTS,
    DEFAULT_REJECTION_QUESTIONS,
    DEFAULT_TAG_DEFINITIONS,
    sample_accepted,
    sample_error,
    sample_response,
    sample_task_id,
)

httpx = pytest.importorskip("httpx")
from django_cloudinary_analysis.client import AsyncAnalyzeClient  # noqa: E402

CLOUD = "demo"
API_KEY = "123456789012345"
SECRET = "sEcReT-abc_XYZ-987"
BASE = f"https://api.cloudinary.com/v2/analysis/{CLOUD}"
IMAGE = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"
HOOK = "https://example.com/hook"
EXTRAS: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"prompts": DEFAULT_PROMPTS},
    "ai_vision_moderation": {"rejection_questions": DEFAULT_REJECTION_QUESTIONS},
    "ai_vision_tagging": {"tag_definitions": DEFAULT_TAG_DEFINITIONS},
}

#: One reply: status, headers, body.
Reply = tuple[int, dict[str, str], bytes]


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return (
        status,
        {"Content-Type": "application/json", **headers},
        json.dumps(body).encode(),
    )


class Server:
    """Replies in turn (the last one repeats) and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.seen: list[tuple[str, str, str | None, str | None, Any]] = []

    def reply(self, method: str, url: str, headers: Any, body: bytes | None) -> Reply:
        content = json.loads(body) if body else None
        self.seen.append(
            (
                method,
                url,
                headers.get("Authorization"),
                headers.get("User-Agent"),
                content,
            )
        )
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def run_sync(server: Server, call: Callable[[Any], Any], **options: Any) -> Any:
    def callback(request: Any) -> Reply:
        return server.reply(request.method, request.url, request.headers, request.body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for method in (responses.GET, responses.POST):
            rsps.add_callback(method, re.compile(re.escape(BASE)), callback=callback)
        with AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, **options) as c:
            try:
                return call(c)
            except AnalysisError as exc:
                return exc


def run_async(server: Server, call: Callable[[Any], Any], **options: Any) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        status, headers, body = server.reply(
            request.method, str(request.url), request.headers, request.content
        )
        return httpx.Response(status, headers=headers, content=body)

    async def main() -> Any:
        transport = httpx.MockTransport(handle)
        async with AsyncAnalyzeClient(
            CLOUD,
            api_key=API_KEY,
            api_secret=SECRET,
            http_options={"transport": transport},
            **options,
        ) as c:
            try:
                return await call(c)
            except AnalysisError as exc:
                return exc

    return asyncio.run(main())


def both(
    call: Callable[[Any], Any], *replies: Reply, **options: Any
) -> tuple[Any, Any, Server, Server]:
    """Serve ``replies`` to both clients; return both outcomes and servers."""
    sync_server, async_server = Server(*replies), Server(*replies)
    ours = run_sync(sync_server, call, **options)
    theirs = run_async(async_server, call, **options)
    return ours, theirs, sync_server, async_server


def error_fields(exc: AnalysisError) -> dict[str, Any]:
    fields = dict(vars(exc))
    fields["type"] = type(exc)
    # httpx adds the Content-Length that responses' mocks leave out.
    fields["headers"] = {
        k: v for k, v in (exc.headers or {}).items() if k != "content-length"
    }
    return fields


def assert_same(ours: Any, theirs: Any, a: Server, b: Server) -> None:
    assert a.seen == b.seen
    if isinstance(ours, AnalysisError):
        assert isinstance(theirs, AnalysisError), theirs
        assert error_fields(theirs) == error_fields(ours)
    else:
        assert theirs == ours


# -- the same calls, the same results ---------------------------------------------


@pytest.mark.parametrize("analysis_type", ANALYSIS_TYPES)
def test_every_typed_method_sends_and_returns_the_same(analysis_type):
    extras = EXTRAS.get(analysis_type, {})
    reply = json_reply(200, sample_response(analysis_type, extras))

    ours, theirs, a, b = both(
        lambda c: getattr(c, analysis_type)(IMAGE, **extras), reply
    )

    assert isinstance(theirs, AnalysisResult)
    assert_same(ours, theirs, a, b)
    method, url, auth, agent, body = b.seen[0]
    assert (method, url) == ("POST", f"{BASE}/analyze/{analysis_type}")
    assert auth.startswith("Basic ") and agent.startswith("django-cloudinary")
    assert body == {"source": {"uri": IMAGE}, **extras}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.analyze("coco", IMAGE, async_=True, notification_url=HOOK),
        lambda c: c.coco(IMAGE, notification_url=HOOK),
        lambda c: c.analyze("ai_vision_general", IMAGE, prompts=("a?", "b?")),
    ],
    ids=["async-with-hook", "sync-with-hook", "generic-with-extras"],
)
def test_analyze_sends_and_returns_the_same(call):
    accepted = json_reply(202, sample_accepted(sample_task_id()))
    ours, theirs, a, b = both(call, accepted)
    assert_same(ours, theirs, a, b)
    assert not isinstance(theirs, AnalysisError)


@pytest.mark.parametrize("status", ["pending", "completed", "failed"])
def test_task_status_is_the_same(status):
    task_id = sample_task_id()
    reply = json_reply(200, {"data": {"task_id": task_id, "status": status}})
    ours, theirs, a, b = both(lambda c: c.get_task_status(task_id), reply)
    assert_same(ours, theirs, a, b)
    assert isinstance(theirs, TaskStatus) and theirs.status == status
    assert b.seen[0][:2] == ("GET", f"{BASE}/tasks/{task_id}")


HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(400, sample_error(400, "user_error", "MA_1", "bad uri")),
        json_reply(401, sample_error(401, "auth_error", "MA_2", "no")),
        json_reply(404, sample_error(404, "user_error", "MA_3", "gone")),
        json_reply(
            429,
            sample_error(429, "rate_limit_error", "MA_4", "slow"),
            **{"Retry-After": "7"},
        ),
        json_reply(500, sample_error(500, "server_error", "MA_5", "oops")),
        json_reply(501, sample_error(501, "server_error", "MA_6", "nope")),
        (502, {"Content-Type": "text/html"}, HTML),
        (500, {"Content-Type": "text/plain"}, b""),
        (200, {"Content-Type": "application/json"}, b'{"data": {"entity": '),
        json_reply(200, {"data": {"entity": "x"}}),
        json_reply(202, {"data": {"status": "pending"}}),
        (301, {"Location": "https://example.com/", "Content-Type": "text/plain"}, b""),
        json_reply(418, {"error": {"message": f"echo {SECRET}", "api_secret": 1}}),
    ],
    ids=lambda reply: str(reply[0]),
)
def test_errors_are_the_same(reply):
    ours, theirs, a, b = both(lambda c: c.coco(IMAGE), reply)
    assert isinstance(ours, AnalysisError)
    assert_same(ours, theirs, a, b)
    assert theirs.status_code == reply[0]
    assert SECRET not in repr(vars(theirs))


def test_a_huge_body_is_refused_the_same():
    reply = (200, {"Content-Length": str(11 * 1024 * 1024)}, b"{}")
    ours, theirs, a, b = both(lambda c: c.coco(IMAGE), reply)
    assert_same(ours, theirs, a, b)
    assert isinstance(theirs, UnexpectedResponse)
    assert theirs.code == "response_too_large"


def test_a_body_over_the_cap_without_length_is_refused():
    server = Server((200, {}, b"x" * 2048))
    outcome = run_async(server, lambda c: c.coco(IMAGE), max_response_bytes=1024)
    assert isinstance(outcome, UnexpectedResponse)
    assert outcome.code == "response_too_large"


def test_bad_arguments_are_refused_before_sending():
    server = Server(json_reply(200, {}))
    for call in (
        lambda c: c.coco("ftp://example.com/x.jpg"),
        lambda c: c.ai_vision_general(IMAGE, prompts=[]),
        lambda c: c.google_logo_detection(IMAGE, async_=True),
        lambda c: c.coco(IMAGE, notification_url="javascript:alert(1)"),
        lambda c: c.get_task_status(" "),
        lambda c: c.coco(IMAGE, retries=3),
    ):
        try:
            outcome = run_async(server, call)
        except TypeError as exc:  # google_logo_detection takes no async_
            outcome = exc
        assert isinstance(outcome, (InvalidParameters, TypeError))
    assert server.seen == []


# -- retries ----------------------------------------------------------------------


class AsyncSleeper:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _policy(sleeper: AsyncSleeper, **kw: Any) -> RetryPolicy:
    options = {"initial_interval": 1.0, "jitter": False, "async_sleep": sleeper}
    options.update(kw)
    return RetryPolicy(**options)


def test_per_call_retries_override_the_client():
    server_error = json_reply(503, sample_error(503, "server_error", "X", "busy"))
    ok = json_reply(200, sample_response("coco"))
    sleeper = AsyncSleeper()
    # The client retries nothing; the call asks for three attempts.
    server = Server(server_error, server_error, ok)
    result = run_async(server, lambda c: c.coco(IMAGE, retries=_policy(sleeper)))
    assert isinstance(result, AnalysisResult)
    assert len(server.seen) == 3 and sleeper.waits == [1.0, 2.0]
    # The client retries; the call says False.
    server = Server(server_error, ok)
    outcome = run_async(
        server, lambda c: c.coco(IMAGE, retries=False), retry=_policy(sleeper)
    )
    assert isinstance(outcome, ServerError) and len(server.seen) == 1


def test_retries_honour_retry_after_and_give_up_like_the_sync_client():
    limited = json_reply(
        429, sample_error(429, "rate_limit_error", "X", "slow"), **{"Retry-After": "3"}
    )
    ok = json_reply(200, sample_response("coco"))
    sleeper = AsyncSleeper()
    server = Server(limited, ok)
    result = run_async(
        server,
        lambda c: c.coco(IMAGE, retries=_policy(sleeper)),
    )
    assert isinstance(result, AnalysisResult) and sleeper.waits == [3.0]
    # A reset later than the policy's max wait is raised for the caller.
    late = json_reply(
        429,
        sample_error(429, "rate_limit_error", "X", "slow"),
        **{"Retry-After": "3600"},
    )
    server = Server(late, ok)
    outcome = run_async(server, lambda c: c.coco(IMAGE, retries=_policy(sleeper)))
    assert outcome.retry_after == 3600 and len(server.seen) == 1


# -- the transport ----------------------------------------------------------------


def _raising(exc: Exception) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


@pytest.mark.parametrize(
    ("raised", "cls", "retryable"),
    [
        (httpx.ConnectError("refused"), NetworkError, True),
        (httpx.ReadError("reset"), NetworkError, True),
        (httpx.RemoteProtocolError("peer closed"), NetworkError, True),
        (httpx.ConnectTimeout("slow"), RequestTimeout, True),
        (httpx.ReadTimeout("slow"), RequestTimeout, True),
        (httpx.PoolTimeout("full"), RequestTimeout, True),
        (httpx.DecodingError("gzip"), UnexpectedResponse, True),
        (httpx.LocalProtocolError(f"bad header {SECRET}"), UnexpectedResponse, False),
        (httpx.UnsupportedProtocol("ftp"), ConfigurationError, False),
    ],
)
def test_transport_errors_are_translated(raised, cls, retryable):
    async def main() -> Any:
        async with AsyncAnalyzeClient(
            CLOUD,
            api_key=API_KEY,
            api_secret=SECRET,
            http_options={"transport": httpx.MockTransport(_raising(raised))},
        ) as c:
            with pytest.raises(cls) as info:
                await c.coco(IMAGE)
            return info.value

    exc = asyncio.run(main())
    assert type(exc) is cls
    assert exc.retryable is retryable
    assert exc.__suppress_context__
    assert SECRET not in str(exc)


def test_retry_connection_errors_false_makes_them_final():
    attempts = []

    def handle(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("refused")

    sleeper = AsyncSleeper()

    async def main() -> None:
        async with AsyncAnalyzeClient(
            CLOUD,
            api_key=API_KEY,
            api_secret=SECRET,
            http_options={"transport": httpx.MockTransport(handle)},
            retry=_policy(sleeper, retry_connection_errors=False),
        ) as c:
            with pytest.raises(NetworkError):
                await c.coco(IMAGE)
            assert len(attempts) == 1
            with pytest.raises(NetworkError):
                await c.coco(IMAGE, retries=_policy(sleeper))
            assert len(attempts) == 4

    asyncio.run(main())


def test_calls_are_spread_over_the_pools():
    """Eight calls at once over eight pools: one call in flight in each."""
    arrived = 0
    everyone_in = asyncio.Event()
    loads: list[list[int]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 8:
            loads.append([pool.in_flight for pool in client._pools])
            everyone_in.set()
        await everyone_in.wait()
        return httpx.Response(200, json=sample_response("coco"))

    async def main() -> list[Any]:
        async with client:
            return await asyncio.gather(*(client.coco(IMAGE) for _ in range(8)))

    client = AsyncAnalyzeClient(
        CLOUD,
        api_key=API_KEY,
        api_secret=SECRET,
        pools=8,
        http_options={"transport": httpx.MockTransport(handle)},
    )
    results = asyncio.run(main())
    assert all(isinstance(r, AnalysisResult) for r in results)
    assert loads == [[1] * 8]
    assert [pool.in_flight for pool in client._pools] == [0] * 8


def test_an_injected_http_client_is_used_and_left_open():
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=sample_response("coco"))

    async def main() -> httpx.AsyncClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        async with AsyncAnalyzeClient(CLOUD, oauth_token="tok", http_client=http) as c:
            assert c.http_client is http
            assert isinstance(await c.coco(IMAGE), AnalysisResult)
        assert not http.is_closed
        await http.aclose()
        own = AsyncAnalyzeClient(CLOUD, oauth_token="tok", pools=2)
        async with own:
            pass
        assert all(pool.client.is_closed for pool in own._pools)
        return http

    asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"pools": 0},
        {"pools": True},
        {"connections_per_pool": 0},
        {"http_client": object(), "http_options": {"verify": False}},
        {"retry": 3},
    ],
)
def test_bad_options(options):
    with pytest.raises(ConfigurationError):
        AsyncAnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET, **options)


def test_from_url_and_repr_keep_the_secret_out():
    client = AsyncAnalyzeClient.from_url(f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}")
    assert isinstance(client, AsyncAnalyzeClient)
    assert SECRET not in repr(client) and SECRET not in repr(vars(client))
    asyncio.run(client.aclose())


def test_a_django_async_view_awaits_the_client(monkeypatch):
    """The docs/client.md example: open the client per request and await it."""
    from django.http import JsonResponse
    from django.test import AsyncRequestFactory

    from django_cloudinary_analysis.exceptions import APIError

    monkeypatch.setenv("CLOUDINARY_URL", f"cloudinary://{API_KEY}:{SECRET}@{CLOUD}")
    answers = iter(
        [
            httpx.Response(200, json=sample_response("captioning")),
            httpx.Response(403, json=sample_error(403, "auth_error", "MA_9", "no")),
        ]
    )
    transport = httpx.MockTransport(lambda request: next(answers))

    async def caption(request):
        url = request.GET["url"]
        async with AsyncAnalyzeClient.from_environment(
            http_options={"transport": transport}
        ) as client:
            try:
                result = await client.captioning(url)
            except APIError as exc:
                return JsonResponse({"error": exc.code}, status=502)
        return JsonResponse({"caption": result.analysis["data"]["caption"]})

    request = AsyncRequestFactory().get("/caption/", {"url": IMAGE})
    ok = asyncio.run(caption(request))
    assert ok.status_code == 200
    caption_text = sample_response("captioning")["data"]["analysis"]["data"]["caption"]
    assert json.loads(ok.content) == {"caption": caption_text}
    refused = asyncio.run(caption(request))
    assert refused.status_code == 502 and json.loads(refused.content) == {
        "error": "MA_9"
    }
