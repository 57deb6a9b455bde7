"""The loopback fake Analyze API honours the contract, breaks on demand, counts."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
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
    WebhookReceiver,
    notification_headers,
    sign,
    verify_signature,
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


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


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


def test_keep_alive_serves_many_requests_on_one_connection(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    for _ in range(30):
        assert analyze(client, api).status_code == 200

    assert api.connections_accepted == 1


def test_set_analysis_overrides_the_answer(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.set_analysis("coco", {"tags": {"dog": []}, "model_version": 2})
    assert analyze(client, api).json()["data"]["analysis"]["model_version"] == 2

    api.set_analysis(
        "coco", lambda _type, body: {"tags": {}, "echo": body["source"]["uri"]}
    )
    assert analyze(client, api).json()["data"]["analysis"]["echo"] == URI

    api.set_analysis("coco", None)
    assert analyze(client, api).json()["data"]["analysis"] == sample_analysis("coco")


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

        api.set_quota("google_tagging", remaining=0, reset_in=3600)
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
    assert api.count(status=404, endpoint="unknown") == 1
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
    assert api.billable_by_type() == {"coco": 1, "google_tagging": 1}


def test_unsubscribed_can_be_given_at_construction() -> None:
    with FakeAnalyzeAPI(unsubscribed=["lvis"]) as server, requests.Session() as s:
        s.auth = (server.api_key, server.api_secret)
        assert analyze(s, server, "lvis").status_code == 403


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
    assert api.count(status=400) == 1


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
    receiver: WebhookReceiver,
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
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False, webhook_delay=3600) as api:
        task_id = start_async(client, api, receiver)
        assert re.fullmatch(r"[0-9a-f]{160}", task_id)
        assert task_status(client, api, task_id) == "pending"
        assert api.billable_calls == 1
        assert receiver.received == []

        [delivery] = api.deliver_pending()

        assert delivery.status == 200
        assert task_status(client, api, task_id) == "completed"
    [hook] = receiver.received
    timestamp = hook.headers["X-Cld-Timestamp"]
    expected = hashlib.sha1(
        hook.body + timestamp.encode() + b"tests-api-secret-value"
    ).hexdigest()
    assert hook.headers["X-Cld-Signature"] == expected
    assert hook.headers["Content-Type"] == "application/json"
    payload = hook.payload
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


def test_deliveries_go_out_on_their_own(
    api: FakeAnalyzeAPI, client: requests.Session, receiver: WebhookReceiver
) -> None:
    ids = {start_async(client, api, receiver, t) for t in ("coco", "lvis", "unidet")}

    hooks = receiver.wait_for(3)

    assert {hook.payload["task_id"] for hook in hooks} == ids
    assert all(
        verify_signature(
            h.body, h.headers["X-Cld-Timestamp"], h.headers["X-Cld-Signature"],
            api.api_secret,
        )
        for h in hooks
    )  # fmt: skip


def test_sha256_signatures_when_configured(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(signature_algorithm="sha256", auto_deliver=False) as api:
        start_async(client, api, receiver)
        api.deliver_pending()
    [hook] = receiver.received
    ts, sig = hook.headers["X-Cld-Timestamp"], hook.headers["X-Cld-Signature"]

    assert len(sig) == 64
    assert verify_signature(hook.body, ts, sig, api.api_secret, algorithms=["sha256"])
    assert not verify_signature(hook.body, ts, sig, api.api_secret, ["sha1"])


def test_failed_tasks_deliver_an_error_object(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False, webhook_delay=3600) as api:
        api.fail_tasks(1, http_status=422, analysis_type="lvis")
        ok_id = start_async(client, api, receiver, "coco")
        failed_id = start_async(client, api, receiver, "lvis")
        later_id = start_async(client, api, receiver, "lvis")
        chosen_id = start_async(client, api, receiver, "coco")
        api.fail_task(chosen_id, http_status=500)
        api.deliver_pending()
        statuses = {t: task_status(client, api, t) for t in (ok_id, failed_id)}
        statuses[later_id] = task_status(client, api, later_id)
        statuses[chosen_id] = task_status(client, api, chosen_id)

    by_task = {hook.payload["task_id"]: hook.payload for hook in receiver.received}
    assert statuses == {
        ok_id: "completed",
        failed_id: "failed",
        later_id: "completed",
        chosen_id: "failed",
    }
    failed = by_task[failed_id]
    assert failed["http_status"] == 422
    assert failed["data"] is None
    assert failed["error"]["category"] == "user_error"
    assert failed["error"]["message"]
    assert by_task[chosen_id]["error"]["category"] == "server_error"
    assert by_task[later_id]["error"] is None


def test_task_status_can_be_forced(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False, webhook_delay=3600) as api:
        task_id = start_async(client, api, receiver)
        api.set_task_status(task_id, "processing")
        assert task_status(client, api, task_id) == "processing"
        api.set_task_status(task_id, None)
        assert task_status(client, api, task_id) == "pending"
        with pytest.raises(ValueError):
            api.set_task_status(task_id, "lost")


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


def test_replay_resends_the_same_bytes_and_headers(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False) as api:
        task_id = start_async(client, api, receiver)
        [original] = api.deliver_pending()
        replayed = api.replay(task_id)
        fresh = api.replay(task_id, fresh_timestamp=True)

    first, second, third = receiver.received
    assert second.body == first.body
    assert second.headers["X-Cld-Signature"] == first.headers["X-Cld-Signature"]
    assert second.headers["X-Cld-Timestamp"] == first.headers["X-Cld-Timestamp"]
    assert replayed.replay and not original.replay
    assert third.body == first.body
    assert verify_signature(
        third.body,
        third.headers["X-Cld-Timestamp"],
        third.headers["X-Cld-Signature"],
        "tests-api-secret-value",
    )
    assert fresh.timestamp >= original.timestamp


def test_undelivered_notifications_are_retried() -> None:
    with (
        WebhookReceiver(statuses=[500, 503]) as receiver,
        FakeAnalyzeAPI(webhook_delay=0, webhook_retry_delay=0) as api,
        requests.Session() as client,
    ):
        client.auth = (api.api_key, api.api_secret)
        task_id = start_async(client, api, receiver)
        hooks = receiver.wait_for(3)

    assert [h.payload["task_id"] for h in hooks] == [task_id] * 3
    assert [d.status for d in api.get_task(task_id).deliveries] == [500, 503, 200]
    assert [d.attempt for d in api.get_task(task_id).deliveries] == [1, 2, 3]


def test_clock_skew_shifts_the_timestamp(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False, webhook_clock_skew=-10_000) as api:
        start_async(client, api, receiver)
        [delivery] = api.deliver_pending()

    assert delivery.timestamp < int(delivery.time) - 9_000
    hook = receiver.received[0]
    assert verify_signature(
        hook.body,
        hook.headers["X-Cld-Timestamp"],
        hook.headers["X-Cld-Signature"],
        "tests-api-secret-value",
    )


def test_notifications_go_through_a_custom_transport(client: requests.Session) -> None:
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    def transport(url: str, body: bytes, headers: Any) -> int:
        sent.append((url, body, dict(headers)))
        return 200

    with FakeAnalyzeAPI(auto_deliver=False, notification_transport=transport) as api:
        body = {
            "source": {"uri": URI},
            "async": True,
            "notification_url": "https://site.example/hooks",
        }
        assert analyze(client, api, "coco", body).status_code == 202
        [delivery] = api.deliver_pending()

    assert delivery.status == 200
    assert sent[0][0] == "https://site.example/hooks"


def test_non_loopback_notification_urls_are_never_contacted(
    client: requests.Session,
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False) as api:
        body = {
            "source": {"uri": URI},
            "async": True,
            "notification_url": "https://site.example/hooks",
        }
        assert analyze(client, api, "coco", body).status_code == 202
        [delivery] = api.deliver_pending()

    assert delivery.status is None
    assert "non-loopback" in (delivery.error or "")


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
    assert verify_signature(body, 1700000000, headers["X-Cld-Signature"], "s3cret")
    assert not verify_signature(
        body + b" ", 1700000000, headers["X-Cld-Signature"], "s3cret"
    )
    assert not verify_signature(body, 1700000001, headers["X-Cld-Signature"], "s3cret")
    assert not verify_signature(body, 1700000000, headers["X-Cld-Signature"], "other")


# -- quotas --------------------------------------------------------------------------


def test_an_exhausted_quota_answers_429_until_reset_and_spares_other_features(
    api: FakeAnalyzeAPI, client: requests.Session
) -> None:
    api.set_quota("google_tagging", remaining=2, limit=50, reset_in=3600)

    first = analyze(client, api, "google_tagging")
    second = analyze(client, api, "google_logo_detection")
    refused = analyze(client, api, "google_tagging")
    other = analyze(
        client,
        api,
        "ai_vision_tagging",
        {"source": {"uri": URI}, **EXTRAS["ai_vision_tagging"]},
    )
    api.set_quota("google_tagging", reset_in=-1)
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
    assert api.count(status=429) == 1


def test_limits_can_be_reported_as_null(client: requests.Session) -> None:
    with FakeAnalyzeAPI(report_limits=False) as api:
        assert analyze(client, api).json()["limits"] is None


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
        ("forbidden", 403, "auth_error"),
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
    api.add_fault("forbidden", source="private/")

    hit = analyze(client, api, body={"source": {"uri": "https://x/private/a.jpg"}})
    miss = analyze(client, api, body={"source": {"uri": "https://x/public/a.jpg"}})

    assert (hit.status_code, miss.status_code) == (403, 200)


def test_faults_can_target_task_polling(
    client: requests.Session, receiver: WebhookReceiver
) -> None:
    with FakeAnalyzeAPI(auto_deliver=False) as api:
        task_id = start_async(client, api, receiver)
        api.add_fault("unavailable", target="tasks", times=1)
        assert analyze(client, api).status_code == 200
        failed = client.get(f"{api.base_url}/tasks/{task_id}", timeout=5)
        assert failed.status_code == 503
        assert task_status(client, api, task_id) in ("pending", "processing")


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
    with pytest.raises(ValueError):
        api.add_fault("reset", target="admin")
    with pytest.raises(ValueError):
        api.add_fault("reset", probability=2)


def test_fault_kinds_are_all_documented() -> None:
    assert set(FAULT_KINDS) >= {
        "latency", "rate_limit", "server_error", "bad_gateway", "unavailable",
        "timeout", "reset", "truncated", "malformed", "huge", "not_found",
        "unauthorized", "forbidden",
    }  # fmt: skip


# -- counting --------------------------------------------------------------------------


def test_counting_is_exact_across_outcomes(
    api: FakeAnalyzeAPI, client: requests.Session, receiver: WebhookReceiver
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
    assert api.billable_by_type() == {"coco": 3, "google_tagging": 1, "unidet": 1}
    assert api.billable_by_source()[("coco", "https://x/a.jpg")] == 2
    assert api.count(analysis_type="coco") == 6
    assert api.count(analysis_type="coco", billable=True) == 3
    assert api.count(status=403) == 1
    assert api.count(fault="server_error") == 1
    assert api.count(endpoint="tasks") == 1
    assert [r.seq for r in api.records] == list(range(1, 11))
    stats = api.stats()
    assert stats["requests"] == 10
    assert stats["billable_calls"] == 5
    assert stats["auth_failures"] == 1
    assert stats["by_status"] == {
        "200": 4,
        "202": 1,
        "403": 1,
        "400": 1,
        "401": 1,
        "500": 1,
        "404": 1,
    }
    assert stats["billable_by_source"]["coco"] == {
        "https://x/a.jpg": 2,
        "https://x/b.jpg": 1,
    }
    assert stats["tasks"] == {"pending": 1} or stats["tasks"] == {"processing": 1}
    json.dumps(stats)

    api.reset()

    assert api.records == []
    assert api.billable_calls == 0
    assert api.tasks == []
    assert api.fault_rules == []
    assert "lvis" not in api.unsubscribed
    assert api.auto_deliver


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
    api: FakeAnalyzeAPI, client: requests.Session, receiver: WebhookReceiver
) -> None:
    control = FakeAPIControl(api.base_url)
    rule_id = control.add_fault("server_error", times=1, analysis_type="coco")
    control.set_quota("google_tagging", remaining=0, reset_in=3600)
    control.set_subscribed("lvis", False)
    control.set_analysis(
        "captioning", {"data": {"caption": "fixed"}, "model_version": 9}
    )
    control.hold_deliveries()
    control.configure(signature_algorithm="sha256")

    assert analyze(client, api, "coco").status_code == 500
    assert analyze(client, api, "google_tagging").status_code == 429
    assert analyze(client, api, "lvis").status_code == 403
    assert (
        analyze(client, api, "captioning").json()["data"]["analysis"]["model_version"]
        == 9
    )
    task_id = start_async(client, api, receiver, "coco")
    control.fail_tasks(1)
    failing_id = start_async(client, api, receiver, "coco")
    assert [r["id"] for r in control.fault_rules()] == [rule_id]
    assert control.fault_rules()[0]["fired"] == 1
    assert control.quotas()["google_tagging"]["remaining"] == 0
    assert {t["status"] for t in control.tasks()} <= {"pending", "processing"}

    delivered = control.deliver_pending([task_id])
    replayed = control.replay(task_id)
    control.set_task_status(failing_id, "processing")

    assert [d["status"] for d in delivered] == [200]
    assert replayed["replay"] is True
    assert len(control.deliveries()) == 2
    assert len(receiver.received) == 2
    hook = receiver.received[0]
    assert verify_signature(
        hook.body, hook.headers["X-Cld-Timestamp"], hook.headers["X-Cld-Signature"],
        api.api_secret, ["sha256"],
    )  # fmt: skip
    assert task_status(client, api, failing_id) == "processing"
    stats = control.stats()
    assert stats["billable_calls"] == control.billable_calls == 3
    assert stats["by_status"]["500"] == 1
    assert len(control.records()) == stats["requests"] == 7

    control.remove_fault(rule_id)
    control.clear_faults()
    control.release_deliveries()
    control.clear_records()
    assert control.stats()["requests"] == 0
    control.reset()
    assert control.stats()["tasks"] == {}


def test_control_api_rejects_bad_input(api: FakeAnalyzeAPI) -> None:
    control = FakeAPIControl(api.url)

    with pytest.raises(RuntimeError, match="unknown fault kind"):
        control.add_fault("explode")
    with pytest.raises(RuntimeError, match="unknown control route"):
        control._call("GET", "nothing")
    with pytest.raises(RuntimeError, match="unknown options"):
        control.configure(api_secret="leak")


@pytest.mark.integration
def test_the_server_runs_in_its_own_process_and_obeys_control() -> None:
    from tests.support.servers import FakeAPIProcess

    with (
        FakeAPIProcess("--unsubscribed", "lvis", "--hold-deliveries") as process,
        WebhookReceiver() as receiver,
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
        lvis = session.post(
            f"{process.base_url}/analyze/lvis", json={"source": {"uri": URI}}, timeout=5
        )
        accepted = session.post(
            url,
            json={
                "source": {"uri": URI},
                "async": True,
                "notification_url": receiver.url,
            },
            timeout=5,
        )
        [delivery] = control.deliver_pending()
        stats = control.stats()

    assert ok.status_code == 200
    assert lvis.status_code == 403
    assert accepted.status_code == 202
    assert delivery["status"] == 200
    assert receiver.received[0].payload["task_id"] == accepted.json()["data"]["task_id"]
    assert stats["requests"] == 4
    assert stats["billable_calls"] == 2
    assert stats["by_fault"] == {"reset": 1}
