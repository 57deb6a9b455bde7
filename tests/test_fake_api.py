"""The loopback fake Analyze API honours the contract, breaks on demand, counts.

Only what the suite, bench/ and the example use is tested here (and kept in
tests/support/fake_api.py): a feature tested only here is dead weight.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.support.api_samples import (
    ANALYSIS_TYPES,
    DEFAULT_QUOTA_FEATURE,
    QUOTA_FEATURES,
    sample_analysis,
)
from tests.support.fake_api import (
    FAULT_KINDS,
    FakeAnalyzeAPI,
    FakeAPIControl,
    notification_headers,
    post_notification,
    sign,
)

URI = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"
EXTRAS: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"prompts": ["What is in the image?", "Any people?"]},
    "ai_vision_moderation": {
        "rejection_questions": ["Does it show a weapon?", "Is it unclear?"]
    },
    "ai_vision_tagging": {
        "tag_definitions": [
            {"name": "cat", "description": "a cat"},
            {"name": "dog", "description": "a dog"},
            {"name": "sofa", "description": "a sofa"},
        ]
    },
}


@pytest.fixture
def api() -> Iterator[FakeAnalyzeAPI]:
    with FakeAnalyzeAPI(oauth_token="tests-oauth-token", seed=7) as server:
        yield server


@pytest.fixture
def client(api: FakeAnalyzeAPI) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (api.api_key, api.api_secret)
        yield session


class Receiver:
    """A loopback endpoint that collects notification POSTs.

    It answers with ``statuses`` in order, then 200.
    """

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append((dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhook"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int) -> list[tuple[dict[str, str], bytes]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.received) >= count, 10)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def deliveries_of(api: FakeAnalyzeAPI, count: int) -> list[Any]:
    """The fake's delivery records, once ``count`` of them are written."""
    deadline = time.monotonic() + 10
    while len(api.deliveries) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return api.deliveries


def signed(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """Whether a delivery carries the documented SHA-1 signature."""
    return headers["X-Cld-Signature"] == sign(body, headers["X-Cld-Timestamp"], secret)


def analyze(
    client: requests.Session,
    api: FakeAnalyzeAPI,
    analysis_type: str = "coco",
    body: dict[str, Any] | None = None,
    **kwargs: Any,
) -> requests.Response:
    payload = {"source": {"uri": URI}} if body is None else body
    return client.post(
        f"{api.base_url}/analyze/{analysis_type}", json=payload, timeout=5, **kwargs
    )


# -- contract: happy path ------------------------------------------------------


@pytest.mark.parametrize("analysis_type", ANALYSIS_TYPES)
def test_every_type_answers_200_with_a_realistic_body(
    api: FakeAnalyzeAPI, client: requests.Session, analysis_type: str
) -> None:
    extras = EXTRAS.get(analysis_type, {})
    response = analyze(client, api, analysis_type, {"source": {"uri": URI}, **extras})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["data"]["entity"] == URI
    assert body["data"]["analysis"] == sample_analysis(analysis_type, extras or None)
    [limit] = body["limits"]["items"]
    assert limit["type"] == QUOTA_FEATURES.get(analysis_type, DEFAULT_QUOTA_FEATURE)
    assert limit["used_by_request"] == 1
    assert limit["remaining"] == limit["limit"] - 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", limit["reset_time"])
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert api.billable_calls == 1


def test_detection_types_keep_their_tags(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    tags = analyze(client, api, "cld_fashion").json()["data"]["analysis"]["tags"]

    assert tags["coat"][0]["bounding-box"] == [401.5, 310.2, 388.1, 702.9]
    assert tags["coat"][0]["attributes"]


def test_asset_id_sources_are_accepted_and_counted_by_source(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    response = analyze(client, api, "captioning", {"source": {"asset_id": "abc123"}})

    assert response.status_code == 200
    assert response.json()["data"]["entity"] == "abc123"
    assert api.billable_by_source() == {("captioning", "abc123"): 1}


def test_request_ids_are_unique_per_request(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    ids = {analyze(client, api).json()["request_id"] for _ in range(20)}

    assert len(ids) == 20


def test_official_sdk_models_accept_the_answers(api: FakeAnalyzeAPI) -> None:
    """The SDK's pydantic models are an independent check of the shapes."""
    from cloudinary_analysis import CloudinaryAnalysis, models

    security = models.Security(
        cloudinary_auth=models.SchemeCloudinaryAuth(
            api_key=api.api_key, api_secret=api.api_secret
        )
    )
    api.hold_deliveries()
    with CloudinaryAnalysis(security=security, server_url=api.base_url) as sdk:
        moderation = sdk.analyze.ai_vision_moderation(
            source={"uri": URI}, rejection_questions=["Does it show a weapon?"]
        )
        assert moderation.data is not None
        assert moderation.data.analysis.responses[0].value == "yes"
        quality = sdk.analyze.image_quality(source={"asset_id": "a1"})
        assert quality.data is not None
        accepted = sdk.analyze.captioning(
            source={"uri": URI}, async_=True, notification_url="http://127.0.0.1:9/"
        )
        assert accepted.data.status == "pending"
        status = sdk.tasks.get_status(task_id=accepted.data.task_id)
        assert status.data.task_id == accepted.data.task_id

        api.set_quota("google_tagging", remaining=0, reset_time=time.time() + 3600)
        with pytest.raises(models.RateLimitedResponse):
            sdk.analyze.google_tagging(source={"uri": URI})
        with pytest.raises(models.ErrorResponse):
            sdk.analyze.ai_vision_tagging(source={"uri": URI}, tag_definitions=[])


# -- contract: routing, auth, subscriptions ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/analysis/demo-cloud/analyze/no_such_type"),
        ("POST", "/v2/analysis/other-cloud/analyze/coco"),
        ("GET", "/v2/analysis/demo-cloud/analyze/coco"),
        ("POST", "/v2/analysis/demo-cloud/tasks/abc"),
        ("GET", "/v2/analysis/demo-cloud/tasks/"),
        ("GET", "/favicon.ico"),
    ],
)
def test_unknown_paths_answer_404_json(
    api: FakeAnalyzeAPI, client: requests.Session, method: str, path: str
) -> None:
    response = client.request(method, api.url + path, json={}, timeout=5)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["category"] == "user_error"
    assert error["code"] and error["message"] and error["request_id"]
    assert api.count(endpoint="unknown") == 1
    assert api.records[0].status == 404
    assert api.billable_calls == 0


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"111111111111111:wrong-secret").decode(),
        "Basic " + base64.b64encode(b"222222222222222:tests-api-secret-value").decode(),
        "Basic not-base64!",
        "Bearer wrong-token",
        "Token tests-oauth-token",
    ],
)
def test_wrong_or_missing_credentials_answer_401(
    api: FakeAnalyzeAPI, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.post(
        f"{api.base_url}/analyze/coco",
        json={"source": {"uri": URI}},
        headers=headers,
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json()["error"]["category"] == "auth_error"
    [record] = api.records
    assert record.auth_ok is False
    assert not record.billable


def test_bearer_token_is_accepted(api: FakeAnalyzeAPI) -> None:
    response = requests.post(
        f"{api.base_url}/analyze/coco",
        json={"source": {"uri": URI}},
        headers={"Authorization": "Bearer tests-oauth-token"},
        timeout=5,
    )

    assert response.status_code == 200


def test_bearer_is_refused_when_no_token_is_configured() -> None:
    with FakeAnalyzeAPI() as server:
        response = requests.post(
            f"{server.base_url}/analyze/coco",
            json={"source": {"uri": URI}},
            headers={"Authorization": "Bearer anything"},
            timeout=5,
        )

    assert response.status_code == 401


def test_unsubscribed_types_answer_403_until_subscribed(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.set_subscribed("google_tagging", False)

    refused = analyze(client, api, "google_tagging")
    other = analyze(client, api, "coco")
    api.set_subscribed("google_tagging", True)
    allowed = analyze(client, api, "google_tagging")

    assert refused.status_code == 403
    assert refused.json()["error"]["category"] == "auth_error"
    assert other.status_code == 200
    assert allowed.status_code == 200
    assert api.billable_by_source() == {
        ("coco", URI): 1,
        ("google_tagging", URI): 1,
    }


# -- contract: request validation ----------------------------------------------------

TEN = [f"question {i}?" for i in range(10)]


@pytest.mark.parametrize(
    ("analysis_type", "body", "code", "parameters"),
    [
        ("coco", [], "MA_00002", []),
        ("coco", "just a string", "MA_00002", []),
        ("coco", {}, "MA_00001", ["source"]),
        ("coco", {"source": "https://x/a.jpg"}, "MA_00002", ["source"]),
        ("coco", {"source": {}}, "MA_00002", ["source.uri", "source.asset_id"]),
        (
            "coco",
            {"source": {"uri": URI, "asset_id": "a"}},
            "MA_00002",
            ["source.uri", "source.asset_id"],
        ),
        ("coco", {"source": {"uri": "ftp://x/a.jpg"}}, "MA_00002", ["source.uri"]),
        ("coco", {"source": {"uri": 5}}, "MA_00002", ["source.uri"]),
        ("coco", {"source": {"asset_id": ""}}, "MA_00002", ["source.asset_id"]),
        ("coco", {"source": {"url": URI}}, "MA_00002", ["source"]),
        ("coco", {"source": {"uri": URI}, "async": "yes"}, "MA_00002", ["async"]),
        (
            "google_logo_detection",
            {"source": {"uri": URI}, "async": True},
            "MA_00002",
            ["async"],
        ),
        (
            "coco",
            {"source": {"uri": URI}, "notification_url": "not a url"},
            "MA_00002",
            ["notification_url"],
        ),
        ("coco", {"source": {"uri": URI}, "prompts": ["x"]}, "MA_00002", ["prompts"]),
        ("coco", {"source": {"uri": URI}, "colour": "red"}, "MA_00002", ["colour"]),
        (
            "ai_vision_tagging",
            {"source": {"uri": URI}},
            "MA_00001",
            ["tag_definitions"],
        ),
        (
            "ai_vision_tagging",
            {"source": {"uri": URI}, "tag_definitions": [{"name": "cat"}]},
            "MA_00002",
            ["tag_definitions"],
        ),
        (
            "ai_vision_tagging",
            {"source": {"uri": URI}, "tag_definitions": []},
            "MA_00002",
            ["tag_definitions"],
        ),
        (
            "ai_vision_general",
            {"source": {"uri": URI}, "prompts": [*TEN, "one too many?"]},
            "MA_00002",
            ["prompts"],
        ),
        (
            "ai_vision_general",
            {"source": {"uri": URI}, "prompts": ["ok", 3]},
            "MA_00002",
            ["prompts"],
        ),
        (
            "ai_vision_moderation",
            {"source": {"uri": URI}, "rejection_questions": [""]},
            "MA_00002",
            ["rejection_questions"],
        ),
        (
            "ai_vision_moderation",
            {"source": {"uri": URI}, "rejection_questions": "Is it bad?"},
            "MA_00002",
            ["rejection_questions"],
        ),
        (
            "ai_vision_moderation",
            {"source": {"uri": URI}, "prompts": ["x"]},
            "MA_00002",
            ["prompts"],
        ),
    ],
)
def test_bad_bodies_answer_400_with_an_error_object(
    api: FakeAnalyzeAPI,
    client: requests.Session,
    analysis_type: str,
    body: Any,
    code: str,
    parameters: list[str],
) -> None:
    response = analyze(client, api, analysis_type, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["category"] == "user_error"
    assert error["code"] == code
    assert error["message"]
    assert error["details"]["parameters"] == parameters
    assert api.billable_calls == 0
    assert [r.status for r in api.records] == [400]


def test_invalid_json_answers_400(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    response = client.post(
        f"{api.base_url}/analyze/coco",
        data=b'{"source": ',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MA_00002"
    assert api.records[0].body == '{"source": '


def test_ten_extras_are_accepted(api: FakeAnalyzeAPI, client: requests.Session) -> None:
    body = {"source": {"uri": URI}, "rejection_questions": TEN}

    response = analyze(client, api, "ai_vision_moderation", body)

    assert response.status_code == 200
    assert len(response.json()["data"]["analysis"]["responses"]) == 10


# -- async tasks and webhooks ------------------------------------------------------


def start_async(
    client: requests.Session,
    api: FakeAnalyzeAPI,
    receiver: Receiver,
    analysis_type: str = "captioning",
) -> str:
    body = {"source": {"uri": URI}, "async": True, "notification_url": receiver.url}
    response = analyze(client, api, analysis_type, body)
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "pending"
    return str(data["task_id"])


def task_status(client: requests.Session, api: FakeAnalyzeAPI, task_id: str) -> str:
    response = client.get(f"{api.base_url}/tasks/{task_id}", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["task_id"] == task_id
    assert set(body["data"]) == {"task_id", "status"}, "status never has the result"
    return str(body["data"]["status"])


def test_async_answers_202_then_a_signed_webhook_delivers_the_result(
    api: FakeAnalyzeAPI, client: requests.Session, receiver: Receiver
) -> None:
    api.hold_deliveries()
    task_id = start_async(client, api, receiver)
    assert re.fullmatch(r"[0-9a-f]{160}", task_id)
    assert task_status(client, api, task_id) in ("pending", "processing")
    assert api.billable_calls == 1
    time.sleep(0.2)  # past the webhook delay: held, nothing goes out
    assert receiver.received == []

    api.release_deliveries()
    [(headers, body)] = receiver.wait_for(1)

    assert task_status(client, api, task_id) == "completed"
    timestamp = headers["X-Cld-Timestamp"]
    expected = hashlib.sha1(body + timestamp.encode() + b"tests-api-secret-value")
    assert headers["X-Cld-Signature"] == expected.hexdigest()
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["notification_type"] == "analyze"
    assert payload["operation_type"] == "single"
    assert payload["task_id"] == task_id
    assert payload["http_status"] == 200
    assert payload["error"] is None
    assert payload["data"] == {
        "entity": URI,
        "analysis": sample_analysis("captioning"),
    }
    assert payload["limits"]["items"][0]["type"] == "object_detection"
    assert payload["request_id"] == api.records[0].request_id
    [task] = api.tasks
    assert task.notification_url == receiver.url
    assert task.payload() == payload
    # The receiver answers before the fake records the delivery: wait for it.
    assert [d.status for d in deliveries_of(api, 1)] == [200]


def test_deliveries_go_out_on_their_own(
    api: FakeAnalyzeAPI, client: requests.Session, receiver: Receiver
) -> None:
    ids = {start_async(client, api, receiver, t) for t in ("coco", "lvis", "unidet")}

    hooks = receiver.wait_for(3)

    assert {json.loads(body)["task_id"] for _, body in hooks} == ids
    assert all(signed(headers, body, api.api_secret) for headers, body in hooks)


def test_unknown_tasks_answer_404_and_tasks_need_auth(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    missing = client.get(f"{api.base_url}/tasks/{'0' * 160}", timeout=5)
    anonymous = requests.get(f"{api.base_url}/tasks/{'0' * 160}", timeout=5)

    assert missing.status_code == 404
    assert missing.json()["error"]["category"] == "user_error"
    assert anonymous.status_code == 401
    assert api.count(endpoint="tasks") == 2
    assert api.billable_calls == 0


def test_undelivered_notifications_are_retried() -> None:
    with (
        Receiver(statuses=(500, 503)) as receiver,
        FakeAnalyzeAPI(webhook_delay=0, webhook_retry_delay=0) as api,
        requests.Session() as client,
    ):
        client.auth = (api.api_key, api.api_secret)
        task_id = start_async(client, api, receiver)
        hooks = receiver.wait_for(3)
        [task] = api.tasks

    assert [json.loads(body)["task_id"] for _, body in hooks] == [task_id] * 3
    assert [d.status for d in task.deliveries] == [500, 503, 200]
    assert [d.attempt for d in task.deliveries] == [1, 2, 3]


def test_non_loopback_notification_urls_are_never_contacted() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        post_notification("https://site.example/hooks", b"{}", {})


def test_sign_matches_the_documented_formula() -> None:
    body = b'{"a": 1}'
    expected = hashlib.sha256(body + b"1700000000" + b"s3cret").hexdigest()

    assert sign(body, 1700000000, "s3cret", "sha256") == expected
    assert (
        sign(body, "1700000000", "s3cret")
        == hashlib.sha1(body + b"1700000000s3cret").hexdigest()
    )
    headers = notification_headers(body, "s3cret", timestamp=1700000000)
    assert headers["X-Cld-Timestamp"] == "1700000000"
    assert signed(headers, body, "s3cret")
    assert not signed(headers, body + b" ", "s3cret")
    assert not signed(headers, body, "other")
    sha256 = notification_headers(body, "s3cret", 1700000000, algorithm="sha256")
    assert sha256["X-Cld-Signature"] == expected


# -- quotas --------------------------------------------------------------------------


def test_an_exhausted_quota_answers_429_until_reset_and_spares_other_features(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.set_quota(
        "google_tagging", remaining=2, limit=50, reset_time=time.time() + 3600
    )

    first = analyze(client, api, "google_tagging")
    second = analyze(client, api, "google_logo_detection")
    refused = analyze(client, api, "google_tagging")
    other = analyze(
        client,
        api,
        "ai_vision_tagging",
        {"source": {"uri": URI}, **EXTRAS["ai_vision_tagging"]},
    )
    api.set_quota("google_tagging", reset_time=time.time() - 1)
    after_reset = analyze(client, api, "google_tagging")

    assert first.json()["limits"]["items"][0]["remaining"] == 1
    assert second.json()["limits"]["items"][0]["remaining"] == 0
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["category"] == "rate_limit_error"
    [limit] = body["limits"]["items"]
    assert limit["type"] == "google_tagging"
    assert limit["remaining"] == 0
    assert limit["limit"] == 50
    reset = datetime.strptime(limit["reset_time"], "%Y-%m-%dT%H:%M:%SZ")
    assert reset.replace(tzinfo=timezone.utc) > datetime.now(timezone.utc)
    assert "Retry-After" not in refused.headers
    assert other.status_code == 200
    assert other.json()["limits"]["items"][0]["type"] == "ai_vision"
    assert after_reset.status_code == 200
    assert after_reset.json()["limits"]["items"][0]["remaining"] == 49
    assert api.billable_calls == 4
    assert [r.status for r in api.records].count(429) == 1


# -- faults ------------------------------------------------------------------------


def test_server_error_fault(api: FakeAnalyzeAPI, client: requests.Session) -> None:
    api.add_fault("server_error", times=1)

    response = analyze(client, api)

    assert response.status_code == 500
    assert response.json()["error"]["category"] == "server_error"


@pytest.mark.parametrize(
    ("kind", "status"),
    [("bad_gateway", 502), ("unavailable", 503), ("gateway_timeout", 504)],
)
def test_proxy_faults_answer_html(
    api: FakeAnalyzeAPI, client: requests.Session, kind: str, status: int
) -> None:
    api.add_fault(kind, times=1)

    response = analyze(client, api)

    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize(
    ("kind", "status", "category"),
    [
        ("not_found", 404, "user_error"),
        ("unauthorized", 401, "auth_error"),
    ],
)
def test_json_error_faults(
    api: FakeAnalyzeAPI, client: requests.Session, kind: str, status: int, category: str
) -> None:
    api.add_fault(kind, times=1)

    response = analyze(client, api)

    assert response.status_code == status
    assert response.json()["error"]["category"] == category


def test_rate_limit_fault_with_retry_after(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("rate_limit", times=1, retry_after=2, reset_in=30)

    response = analyze(client, api, "ai_vision_general")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["error"]["category"] == "rate_limit_error"
    [limit] = body["limits"]["items"]
    assert limit["type"] == "ai_vision"
    assert limit["remaining"] == 0
    assert limit["reset_time"]
    assert api.quotas["ai_vision"].remaining == 10000, "a fault spends no quota"


def test_malformed_json_fault(api: FakeAnalyzeAPI, client: requests.Session) -> None:
    api.add_fault("malformed", times=1)

    response = analyze(client, api)

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_truncated_fault_breaks_the_body(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("truncated", times=1)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        analyze(client, api)


def test_reset_fault_resets_the_connection(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("reset", times=1)

    with pytest.raises(requests.exceptions.ConnectionError) as excinfo:
        analyze(client, api)

    assert "reset" in str(excinfo.value).lower()


def test_timeout_fault_outlasts_the_client_timeout(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("timeout", times=1, hang_seconds=3)

    with pytest.raises(requests.exceptions.ReadTimeout):
        client.post(
            f"{api.base_url}/analyze/coco", json={"source": {"uri": URI}}, timeout=0.2
        )

    assert analyze(client, api).status_code == 200


def test_huge_fault_sends_a_valid_body_of_the_given_size(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("huge", times=1)

    response = analyze(client, api)

    assert response.status_code == 200
    assert len(response.content) == 20_000_000
    assert response.json()["data"]["entity"] == "huge"


def test_huge_fault_survives_a_client_that_stops_reading(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("huge", times=1, size=5_000_000)

    with analyze(client, api, stream=True) as response:
        assert int(response.headers["Content-Length"]) == 5_000_000
        next(response.iter_content(1024))

    assert analyze(client, api).status_code == 200


def test_latency_fault_still_answers_and_is_billable(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("latency", times=1, latency_ms=30)

    response = analyze(client, api)

    assert response.status_code == 200
    [record] = api.records
    assert (record.fault, record.latency_ms, record.billable) == ("latency", 30, True)


def test_latency_adds_to_a_terminal_fault(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("latency", latency_ms=5)
    api.add_fault("server_error", times=1)

    assert analyze(client, api).status_code == 500
    assert analyze(client, api).status_code == 200
    assert [(r.fault, r.latency_ms) for r in api.records] == [
        ("server_error", 5),
        ("latency", 5),
    ]


def test_faults_hit_only_the_next_n_matching_requests(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    rule = api.add_fault("server_error", times=2, analysis_type="lvis")

    statuses = [
        analyze(client, api, t).status_code
        for t in ("coco", "lvis", "coco", "lvis", "lvis", "coco")
    ]

    assert statuses == [200, 500, 200, 500, 200, 200]
    assert rule.fired == 2
    assert rule.exhausted


def test_faults_can_match_a_source(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.add_fault("unauthorized", source="private/")

    hit = analyze(client, api, body={"source": {"uri": "https://x/private/a.jpg"}})
    miss = analyze(client, api, body={"source": {"uri": "https://x/public/a.jpg"}})

    assert (hit.status_code, miss.status_code) == (401, 200)


def test_a_fraction_of_requests_fail_reproducibly_with_a_seed() -> None:
    def run(seed: int) -> list[int]:
        with FakeAnalyzeAPI(seed=seed) as api, requests.Session() as client:
            client.auth = (api.api_key, api.api_secret)
            rule = api.add_fault(
                ["server_error", "bad_gateway", "not_found"], probability=0.2
            )
            statuses = [analyze(client, api).status_code for _ in range(300)]
            assert rule.fired == sum(1 for s in statuses if s != 200)
            assert api.billable_calls == statuses.count(200)
            return statuses

    first, again, other = run(1), run(1), run(2)

    assert first == again
    assert first != other
    failures = sum(1 for s in first if s != 200)
    assert 30 <= failures <= 90
    assert {s for s in first if s != 200} == {500, 502, 404}


def test_unknown_fault_kinds_are_refused(api: FakeAnalyzeAPI) -> None:
    with pytest.raises(ValueError):
        api.add_fault("explode")
    with pytest.raises(TypeError):
        api.add_fault("reset", target="tasks")  # faults break analyze requests only
    with pytest.raises(ValueError):
        api.add_fault("reset", probability=2)


def test_fault_kinds_are_the_ones_the_suite_uses() -> None:
    assert set(FAULT_KINDS) == {
        "latency", "rate_limit", "server_error", "bad_gateway", "unavailable",
        "timeout", "reset", "truncated", "malformed", "huge", "not_found",
        "unauthorized", "gateway_timeout",
    }  # fmt: skip


# -- counting --------------------------------------------------------------------------


def test_counting_is_exact_across_outcomes(
    api: FakeAnalyzeAPI, client: requests.Session, receiver: Receiver
) -> None:
    api.hold_deliveries()
    api.set_subscribed("lvis", False)
    for name in ("a", "b", "a"):
        analyze(client, api, "coco", {"source": {"uri": f"https://x/{name}.jpg"}})
    analyze(client, api, "google_tagging", {"source": {"asset_id": "id-1"}})
    start_async(client, api, receiver, "unidet")
    analyze(client, api, "lvis")  # 403
    analyze(client, api, "coco", {"source": {}})  # 400
    requests.post(f"{api.base_url}/analyze/coco", json={"source": {}}, timeout=5)
    api.add_fault("server_error", times=1)
    analyze(client, api, "coco")  # 500 fault
    client.get(f"{api.base_url}/tasks/unknown", timeout=5)  # 404

    assert api.billable_calls == 5
    assert api.billable_by_source() == {
        ("coco", "https://x/a.jpg"): 2,
        ("coco", "https://x/b.jpg"): 1,
        ("google_tagging", "id-1"): 1,
        ("unidet", URI): 1,
    }
    assert api.count(endpoint="analyze") == 9
    assert api.count(fault="server_error") == 1
    assert api.count(endpoint="tasks") == 1
    assert [r.seq for r in api.records] == list(range(1, 11))
    assert sum(1 for r in api.records if r.auth_ok is False) == 1
    stats = api.stats()
    assert stats["requests"] == 10
    assert stats["billable_calls"] == 5
    assert stats["by_fault"] == {"server_error": 1}
    assert stats["by_status"] == {
        "200": 4,
        "202": 1,
        "403": 1,
        "400": 1,
        "401": 1,
        "500": 1,
        "404": 1,
    }
    json.dumps(stats)

    api.reset()

    assert api.records == []
    assert api.billable_calls == 0
    assert api.tasks == []
    assert analyze(client, api, "lvis").status_code == 200  # subscribed again
    assert analyze(client, api, "coco").status_code == 200  # no fault left


def test_concurrent_clients_are_all_counted(api: FakeAnalyzeAPI) -> None:
    rule = api.add_fault("server_error", probability=0.2)
    statuses: list[int] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        with requests.Session() as session:
            session.auth = (api.api_key, api.api_secret)
            for i in range(50):
                body = {"source": {"uri": f"https://x/{worker}/{i}.jpg"}}
                status = analyze(session, api, "coco", body).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == len(api.records) == 400
    assert api.billable_calls == statuses.count(200)
    assert rule.fired == statuses.count(500)
    assert statuses.count(200) + statuses.count(500) == 400
    assert len(api.billable_by_source()) == statuses.count(200)


def test_secrets_stay_out_of_reprs_records_and_stats(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    analyze(client, api)

    text = repr(api) + json.dumps(api.stats()) + repr(api.records)
    assert api.api_secret not in text
    assert "tests-oauth-token" not in text
    assert (
        base64.b64encode(f"{api.api_key}:{api.api_secret}".encode()).decode()
        not in text
    )


# -- control API ----------------------------------------------------------------


def test_control_api_drives_the_server(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    control = FakeAPIControl(api.base_url)
    control.add_fault("server_error", times=1, analysis_type="coco")
    control.add_fault(["latency"], latency_ms=1)

    assert analyze(client, api, "coco").status_code == 500
    assert analyze(client, api, "coco").status_code == 200
    stats = control.stats()
    assert (stats["requests"], stats["billable_calls"]) == (2, 1)
    assert stats["by_status"] == {"500": 1, "200": 1}

    control.reset()
    assert control.stats()["requests"] == 0
    assert analyze(client, api, "coco").status_code == 200  # the faults went too


def test_control_api_rejects_bad_input(api: FakeAnalyzeAPI) -> None:
    control = FakeAPIControl(api.url)

    with pytest.raises(RuntimeError, match="unknown fault kind"):
        control.add_fault("explode")
    with pytest.raises(RuntimeError, match="unknown fault rule keys"):
        control.add_fault("reset", api_secret="leak")
    with pytest.raises(RuntimeError, match="unknown control route"):
        control._call("GET", "nothing")


@pytest.mark.integration
def test_the_server_runs_in_its_own_process_and_obeys_control() -> None:
    from tests.support.servers import FakeAPIProcess

    with (
        FakeAPIProcess("--quota-limit", "1") as process,
        Receiver() as receiver,
        requests.Session() as session,
    ):
        assert process.control is not None
        control = process.control
        assert process.base_url.endswith("/v2/analysis/demo-cloud")
        session.auth = ("111111111111111", "tests-api-secret-value")
        control.add_fault("reset", times=1)
        url = f"{process.base_url}/analyze/coco"
        with pytest.raises(requests.exceptions.ConnectionError):
            session.post(url, json={"source": {"uri": URI}}, timeout=5)
        ok = session.post(url, json={"source": {"uri": URI}}, timeout=5)
        refused = session.post(url, json={"source": {"uri": URI}}, timeout=5)
        accepted = session.post(
            f"{process.base_url}/analyze/google_tagging",
            json={
                "source": {"uri": URI},
                "async": True,
                "notification_url": receiver.url,
            },
            timeout=5,
        )
        [(_, body)] = receiver.wait_for(1)
        stats = control.stats()

    assert ok.status_code == 200
    assert refused.status_code == 429  # a quota of one call per feature
    assert accepted.status_code == 202
    assert json.loads(body)["task_id"] == accepted.json()["data"]["task_id"]
    assert stats["requests"] == 4
    assert stats["billable_calls"] == 2
    assert stats["by_fault"] == {"reset": 1}
