"""The webhook view and its signature check: valid deliveries and every forgery."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.urls import reverse
from django.utils import timezone

from django_cloudinary_analysis import services, webhooks
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.webhooks import InvalidSignature, verify_signature
from tests.models import Photo
from tests.support.api_samples import sample_webhook

pytestmark = pytest.mark.django_db

SECRET = "tests-api-secret-value"  # tests/settings.py's API_SECRET
TASK_ID = "f" * 40 + "0123456789abcdef" * 10  # 200 characters
URL = "/cloudinary-analysis/webhook/"


def sign(
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int | str | None = None,
    algorithm: str = "sha1",
) -> dict[str, str]:
    """Return the headers Cloudinary would send with ``body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hashlib.new(algorithm)
    digest.update(body)
    digest.update(stamp.encode())
    digest.update(secret.encode())
    return {"HTTP_X_CLD_SIGNATURE": digest.hexdigest(), "HTTP_X_CLD_TIMESTAMP": stamp}


def post(client: Any, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        URL, data=body, content_type="application/json", **(headers or {})
    )


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def waiting(image_file: Any) -> Analysis:
    """A photo whose moderation analysis was sent async and awaits its result."""
    # The on-commit enqueue never runs here: the analyses stay queued and the
    # moderation one is moved to `waiting` by hand, as the worker would.
    photo = Photo.objects.create(image=image_file())
    analysis = Analysis.objects.get(
        object_id=str(photo.pk), analysis_type="ai_vision_moderation"
    )
    Analysis.objects.filter(pk=analysis.pk).update(
        status=AnalysisStatus.WAITING,
        remote_task_id=TASK_ID,
        started_at=timezone.now(),
        attempts=1,
    )
    analysis.refresh_from_db()
    return analysis


def delivery(analysis: Analysis, **changes: Any) -> dict[str, Any]:
    payload = sample_webhook(
        "ai_vision_moderation", analysis.remote_task_id, analysis.params
    )
    payload.update(changes)
    return payload


def snapshot() -> dict[str, Any]:
    """Everything a notification could change."""
    return {
        "analyses": list(
            Analysis.objects.order_by("pk").values(
                "pk",
                "status",
                "result",
                "raw",
                "error_code",
                "error_message",
                "finished_at",
                "request_id",
            )
        ),
        "tags": list(MediaTag.objects.order_by("pk").values_list("pk", "name")),
        "decisions": list(
            ModerationDecision.objects.order_by("pk").values_list("pk", "status")
        ),
        "photos": list(
            Photo.objects.order_by("pk").values_list("pk", "moderation_status")
        ),
    }


# -- verify_signature ---------------------------------------------------------

KAT_BODY = b'{"notification_type":"analyze","task_id":"abc"}'
KAT_STAMP = "1700000000"
# Computed with `openssl dgst` over KAT_BODY + KAT_STAMP + SECRET.
KAT_SHA1 = "14f60311e50ec8fd0fb6492859175359a24ae645"
KAT_SHA256 = "1ff6baf1a0a2bed8e0a4505ea0394934af6abf5a401d861f63b85c8e8de2f807"


def check(signature: str, **kwargs: Any) -> None:
    options: dict[str, Any] = {
        "max_age": 7200,
        "max_future": 300,
        "now": 1700000000 + 60,
    }
    options.update(kwargs)
    body = options.pop("body", KAT_BODY)
    stamp = options.pop("timestamp", KAT_STAMP)
    secret = options.pop("secret", SECRET)
    verify_signature(body, stamp, signature, secret, **options)


@pytest.mark.parametrize("signature", [KAT_SHA1, KAT_SHA256, KAT_SHA1.upper()])
def test_verify_accepts_known_digests(signature: str) -> None:
    check(signature)


def test_verify_honours_the_algorithm_list() -> None:
    check(KAT_SHA256, algorithms=["sha256"])
    with pytest.raises(InvalidSignature) as info:
        check(KAT_SHA1, algorithms=["sha256"])
    assert info.value.code == "mismatch"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "another-secret"}, "mismatch"),
        ({"body": KAT_BODY + b" "}, "mismatch"),
        ({"timestamp": "1700000001"}, "mismatch"),
        ({"timestamp": "", "signature": KAT_SHA1}, "missing_headers"),
        ({"timestamp": None}, "missing_headers"),
        ({"signature": None}, "missing_headers"),
        ({"signature": ""}, "missing_headers"),
        ({"timestamp": "17e8"}, "bad_timestamp"),
        ({"timestamp": "-1700000000"}, "bad_timestamp"),
        ({"timestamp": "1700000000.0"}, "bad_timestamp"),
        ({"timestamp": "١٧٠٠٠٠٠٠٠٠"}, "bad_timestamp"),  # Arabic-Indic digits
        ({"timestamp": "9" * 40}, "bad_timestamp"),
        ({"signature": "é" * 40}, "bad_signature"),
        ({"now": 1700000000 + 7201}, "stale"),
        ({"now": 1700000000 - 301}, "future"),
    ],
)
def test_verify_rejects(kwargs: dict[str, Any], code: str) -> None:
    signature = kwargs.pop("signature", KAT_SHA1)
    with pytest.raises(InvalidSignature) as info:
        check(signature, **kwargs)
    assert info.value.code == code
    assert SECRET not in str(info.value)
    assert KAT_SHA1 not in str(info.value)


def test_verify_bounds_are_inclusive() -> None:
    check(KAT_SHA1, now=1700000000 + 7200)
    check(KAT_SHA1, now=1700000000 - 300)


def test_verify_refuses_to_run_without_a_secret_or_with_odd_algorithms() -> None:
    with pytest.raises(ValueError, match="no API secret"):
        check(KAT_SHA1, secret="")
    with pytest.raises(ValueError, match="unsupported"):
        check(KAT_SHA1, algorithms=["md5"])
    with pytest.raises(ValueError, match="unsupported"):
        check(KAT_SHA1, algorithms=[])


def test_url_is_named() -> None:
    assert reverse("cloudinary_analysis:webhook") == URL


# -- the view: valid deliveries -----------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_valid_delivery_applies_the_result(
    client: Any, waiting: Analysis, algorithm: str
) -> None:
    body = encode(delivery(waiting))
    response = post(client, body, sign(body, algorithm=algorithm))

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.SUCCEEDED
    assert waiting.finished_at is not None
    answers = waiting.result["answers"]
    assert set(answers) == set(waiting.params["rejection_questions"])
    assert "yes" in answers.values()  # the sample says yes to "violence"
    assert waiting.raw["task_id"] == TASK_ID
    photo = Photo.objects.get(pk=waiting.object_id)
    assert photo.moderation_status == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(photo).first()
    assert decision.status == ModerationStatus.REJECTED
    assert decision.reasons[0]["rule"] == "question_yes"


def test_replay_changes_nothing(client: Any, waiting: Analysis) -> None:
    body = encode(delivery(waiting))
    headers = sign(body)
    assert post(client, body, headers).json() == {"status": "applied"}
    before = snapshot()

    response = post(client, body, headers)

    assert response.status_code == 200
    assert response.json() == {"status": "duplicate"}
    assert snapshot() == before


def test_a_different_second_delivery_changes_nothing(
    client: Any, waiting: Analysis
) -> None:
    body = encode(delivery(waiting))
    post(client, body, sign(body))
    before = snapshot()
    other = delivery(waiting)
    other["data"]["analysis"]["responses"] = [
        {"prompt": q, "value": "no"} for q in waiting.params["rejection_questions"]
    ]
    other_body = encode(other)

    response = post(client, other_body, sign(other_body))

    assert response.json() == {"status": "duplicate"}
    assert snapshot() == before


def test_failure_notification_fails_the_analysis(
    client: Any, waiting: Analysis
) -> None:
    payload = delivery(
        waiting,
        http_status=500,
        data=None,
        error={
            "category": "server_error",
            "code": "MA_00500",
            "message": "the model could not process the image",
        },
    )
    body = encode(payload)

    response = post(client, body, sign(body))

    assert response.status_code == 200
    assert response.json() == {"status": "failed"}
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.FAILED
    assert waiting.error_code == "MA_00500"
    assert "the model could not process the image" in waiting.error_message
    assert "HTTP 500" in waiting.error_message
    assert waiting.finished_at is not None
    photo = Photo.objects.get(pk=waiting.object_id)
    # A failed moderation analysis never approves (ON_FAILURE = "review").
    assert photo.moderation_status == ModerationStatus.REVIEW


def test_unknown_task_answers_200_and_logs(
    client: Any, waiting: Analysis, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot()
    payload = delivery(waiting, task_id="0" * 160)
    body = encode(payload)

    with caplog.at_level(logging.INFO, logger="django_cloudinary_analysis"):
        response = post(client, body, sign(body))

    assert response.status_code == 200
    assert response.json() == {"status": "unknown"}
    assert snapshot() == before
    records = [r for r in caplog.records if r.name == webhooks.logger.name]
    assert any(
        getattr(r, "remote_task_id", None) == "0" * 160 and r.levelno == logging.INFO
        for r in records
    )


@pytest.mark.parametrize(
    "payload",
    [
        {
            "notification_type": "upload",
            "public_id": "samples/cat",
            "secure_url": "https://res.cloudinary.com/demo/image/upload/cat.jpg",
        },
        {
            "notification_type": "moderation",
            "moderation_status": "approved",
            "public_id": "samples/cat",
        },
        {"notification_type": "analyze"},  # no task id
        {"task_id": TASK_ID},  # no notification type
    ],
)
def test_other_notifications_are_ignored(
    client: Any, waiting: Analysis, payload: dict[str, Any]
) -> None:
    before = snapshot()
    body = encode(payload)

    response = post(client, body, sign(body))

    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert snapshot() == before


def test_upload_notification_with_the_same_task_id_is_ignored(
    client: Any, waiting: Analysis
) -> None:
    before = snapshot()
    body = encode(delivery(waiting, notification_type="upload"))

    assert post(client, body, sign(body)).json() == {"status": "ignored"}
    assert snapshot() == before


def test_delivery_for_a_replaced_file_cancels(
    client: Any, waiting: Analysis, image_file: Any
) -> None:
    photo = Photo.objects.get(pk=waiting.object_id)
    photo.image = image_file("other.png", seed=3)
    photo.save()
    body = encode(delivery(waiting))

    response = post(client, body, sign(body))

    assert response.json() == {"status": "cancelled"}
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.CANCELLED
    assert waiting.result is None


# -- the view: forgeries and bad requests --------------------------------------


def _forgeries(body: bytes, other_body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = sign(body)
    return {
        "wrong secret": sign(body, secret="not-the-secret"),
        "other algorithm, other body": sign(other_body, algorithm="sha256"),
        "signature of another body": sign(other_body),
        "stale": sign(body, timestamp=now - 7200 - 60),
        "future": sign(body, timestamp=now + 300 + 60),
        "non-numeric timestamp": {**good, "HTTP_X_CLD_TIMESTAMP": "yesterday"},
        "timestamp changed after signing": {
            **good,
            "HTTP_X_CLD_TIMESTAMP": str(int(good["HTTP_X_CLD_TIMESTAMP"]) + 1),
        },
        "missing both headers": {},
        "missing signature": {"HTTP_X_CLD_TIMESTAMP": good["HTTP_X_CLD_TIMESTAMP"]},
        "missing timestamp": {"HTTP_X_CLD_SIGNATURE": good["HTTP_X_CLD_SIGNATURE"]},
        "empty signature": {**good, "HTTP_X_CLD_SIGNATURE": ""},
        "truncated signature": {
            **good,
            "HTTP_X_CLD_SIGNATURE": good["HTTP_X_CLD_SIGNATURE"][:-2],
        },
    }


FORGERIES = list(_forgeries(b"", b"x"))


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forgeries_are_refused_and_change_nothing(
    client: Any, waiting: Analysis, forgery: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = encode(delivery(waiting))
    # The attacker's preferred body: every answer "no", so the photo passes.
    other = delivery(waiting)
    other["data"]["analysis"]["responses"] = [
        {"prompt": q, "value": "no"} for q in waiting.params["rejection_questions"]
    ]
    other_body = encode(other)
    headers = _forgeries(body, other_body)[forgery]
    before = snapshot()

    with caplog.at_level(logging.DEBUG, logger="django_cloudinary_analysis"):
        response = post(client, body, headers)

    assert response.status_code == 403
    assert response.json() == {"error": "invalid_signature"}
    assert snapshot() == before
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert SECRET not in logged
    signature = headers.get("HTTP_X_CLD_SIGNATURE")
    if signature:
        assert signature not in logged


def test_tampered_body_is_refused(client: Any, waiting: Analysis) -> None:
    body = encode(delivery(waiting))
    headers = sign(body)
    tampered = body.replace(b'"yes"', b'"no"')
    assert tampered != body
    before = snapshot()

    response = post(client, tampered, headers)

    assert response.status_code == 403
    assert snapshot() == before


def test_body_is_verified_byte_for_byte(client: Any, waiting: Analysis) -> None:
    # Same JSON, different whitespace: a re-serialised body must not verify.
    body = json.dumps(delivery(waiting), indent=2).encode()
    headers = sign(json.dumps(delivery(waiting)).encode())

    assert post(client, body, headers).status_code == 403
    assert post(client, body, sign(body)).status_code == 200


def test_algorithms_setting_restricts_the_view(
    client: Any, waiting: Analysis, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_ALGORITHMS": ["sha256"],
    }
    body = encode(delivery(waiting))

    assert post(client, body, sign(body, algorithm="sha1")).status_code == 403
    assert post(client, body, sign(body, algorithm="sha256")).status_code == 200


def test_max_age_setting_is_used(client: Any, waiting: Analysis, settings: Any) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_AGE": 60,
    }
    body = encode(delivery(waiting))

    old = sign(body, timestamp=int(time.time()) - 600)
    assert post(client, body, old).status_code == 403
    assert post(client, body, sign(body)).status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe{}", b"[" * 100000])
def test_malformed_json_is_400(client: Any, waiting: Analysis, body: bytes) -> None:
    before = snapshot()

    response = post(client, body, sign(body))

    assert response.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize("payload", [[], "analyze", 42, None])
def test_json_that_is_not_an_object_is_400(
    client: Any, waiting: Analysis, payload: Any
) -> None:
    body = encode(payload)

    response = post(client, body, sign(body))

    assert response.status_code == 400
    assert response.json() == {"error": "not_an_object"}


def test_malformed_json_with_a_bad_signature_is_403(
    client: Any, waiting: Analysis
) -> None:
    # Nothing about the body is looked at before the signature checks out.
    assert post(client, b"{not json", sign(b"other")).status_code == 403


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405(client: Any, method: str) -> None:
    response = getattr(client, method)(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_post_needs_no_csrf_token(waiting: Analysis) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    body = encode(delivery(waiting))

    assert post(strict, body, sign(body)).status_code == 200


def test_oversized_body_is_413(client: Any, waiting: Analysis, settings: Any) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_BODY": 1024,
    }
    before = snapshot()
    payload = delivery(waiting, padding="x" * 2048)
    body = encode(payload)

    response = post(client, body, sign(body))

    assert response.status_code == 413
    assert snapshot() == before


def test_body_at_the_cap_is_accepted(
    client: Any, waiting: Analysis, settings: Any
) -> None:
    body = encode(delivery(waiting))
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_BODY": len(body),
    }

    assert post(client, body, sign(body)).status_code == 200


def test_default_cap_is_above_djangos_upload_limit(
    client: Any, waiting: Analysis, settings: Any
) -> None:
    # A 3 MB body is over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) but under the
    # 5 MiB WEBHOOK_MAX_BODY: the webhook's own cap is the one that applies.
    body = encode(delivery(waiting, padding="x" * 3_000_000))

    assert post(client, body, sign(body)).status_code == 200


def test_oversized_body_without_content_length_is_413(
    waiting: Analysis, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_BODY": 1024,
    }
    body = encode(delivery(waiting, padding="x" * 2048))
    headers = sign(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-cld-signature", headers["HTTP_X_CLD_SIGNATURE"].encode()),
            (b"x-cld-timestamp", headers["HTTP_X_CLD_TIMESTAMP"].encode()),
        ],
    }
    before = snapshot()
    request = ASGIRequest(scope, io.BytesIO(body))  # chunked: no Content-Length
    assert "CONTENT_LENGTH" not in request.META

    response = webhooks.webhook(request)

    assert response.status_code == 413
    assert snapshot() == before


def test_oversized_content_length_is_refused_before_reading(
    rf: Any, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_BODY": 1024,
    }
    request = rf.post(URL, data=b"x" * 2048, content_type="application/json")

    class Unreadable(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read")

    request._stream = Unreadable()

    assert webhooks.webhook(request).status_code == 413


def test_bad_content_length_is_400(client: Any) -> None:
    response = client.post(
        URL, data=b"{}", content_type="application/json", CONTENT_LENGTH="lots"
    )

    assert response.status_code == 400


def test_no_secret_configured_is_503_and_logged(
    client: Any,
    waiting: Analysis,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    # OAuth credentials are enough to call the API but cannot verify webhooks.
    settings.CLOUDINARY_ANALYSIS = {
        "CLOUD_NAME": "demo-cloud",
        "OAUTH_TOKEN": "tests-oauth-token",
        "BACKEND": settings.CLOUDINARY_ANALYSIS["BACKEND"],
    }
    before = snapshot()
    body = encode(delivery(waiting))

    with caplog.at_level(logging.ERROR, logger="django_cloudinary_analysis"):
        response = post(client, body, sign(body))

    assert response.status_code == 503
    assert snapshot() == before
    assert any("no API secret" in r.getMessage() for r in caplog.records)
    assert not any("tests-oauth-token" in r.getMessage() for r in caplog.records)


def test_misconfigured_algorithms_are_503(
    client: Any, waiting: Analysis, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_ALGORITHMS": ["md5"],
    }
    body = encode(delivery(waiting))

    assert post(client, body, sign(body, algorithm="md5")).status_code == 503


def test_outcomes_are_logged_with_the_task_id_and_no_secret(
    client: Any, waiting: Analysis, caplog: pytest.LogCaptureFixture
) -> None:
    body = encode(delivery(waiting))
    headers = sign(body)

    with caplog.at_level(logging.DEBUG, logger="django_cloudinary_analysis"):
        post(client, body, headers)

    ours = [r for r in caplog.records if r.name == webhooks.logger.name]
    assert [getattr(r, "remote_task_id", None) for r in ours] == [TASK_ID]
    assert "applied" in ours[0].getMessage()
    everything = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert SECRET not in everything
    assert headers["HTTP_X_CLD_SIGNATURE"] not in everything


# -- odd shapes of correctly signed notifications (issue 12) -------------------


def short_id(value: Any) -> str:
    return repr(value)[:40]


def deliver(client: Any, payload: Any) -> Any:
    """Post ``payload`` correctly signed."""
    body = encode(payload)
    return post(client, body, sign(body))


@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": 12345},
        {"request_id": {"a": 1}},
        {"request_id": ["x"]},
        {"request_id": "\x00bad\ud800"},
        {"http_status": "two hundred"},
        {"http_status": 10**12},
        {"limits": {"items": [{"type": "ai_vision", "remaining": -(10**15)}]}},
        {"limits": {"items": [{"type": "x" * 500, "remaining": 0}]}},
        {"limits": "lots"},
        {"operation_type": {"nested": [1, 2, {"deep": None}]}},
        {"error": False},
        {"error": {}},
    ],
    ids=short_id,
)
def test_odd_fields_of_a_result_are_coerced_and_it_applies(
    client: Any, waiting: Analysis, changes: dict[str, Any]
) -> None:
    response = deliver(client, delivery(waiting, **changes))

    assert response.status_code == 200
    assert response.json() == {"status": "applied"}
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.SUCCEEDED
    assert len(waiting.request_id) <= 100
    assert "\x00" not in json.dumps(waiting.raw)


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        ({"code": {"x": 1}, "message": ["a", "b"]}, "remote_error", "remote_error"),
        ({"code": "MA 1; drop", "message": "no"}, "remote_error", "no"),
        ("the model broke", "remote_error", "the model broke"),
        (["boom"], "remote_error", "an error given as an array"),
        (42, "remote_error", "an error given as a number"),
        ({"message": "x" * 5000}, "remote_error", "x" * 1000),
        ({"code": "MA_1", "message": "nul\x00here"}, "MA_1", "nul\ufffdhere"),
    ],
    ids=short_id,
)
def test_odd_errors_fail_the_analysis_with_a_reason(
    client: Any, waiting: Analysis, error: Any, code: str, reason: str
) -> None:
    # An object request_id on an error notification used to crash _finish.
    payload = delivery(waiting, error=error, data=None, request_id={"id": 1})

    assert deliver(client, payload).json() == {"status": "failed"}
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error_code) == (AnalysisStatus.FAILED, code)
    assert f"the API reports: {reason} (HTTP 200)" == waiting.error_message
    assert waiting.request_id == ""


@pytest.mark.parametrize(
    "data",
    [None, "text", 5, [], {"analysis": "yes"}, {"analysis": None}, {"entity": 1}],
    ids=short_id,
)
def test_data_without_an_analysis_object_fails_with_a_reason(
    client: Any, waiting: Analysis, data: Any
) -> None:
    assert deliver(client, delivery(waiting, data=data)).json() == {"status": "failed"}
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.FAILED
    assert waiting.error_code == "unexpected_response"
    assert "data.analysis" in waiting.error_message


@pytest.mark.parametrize(
    "task_id", [12345, {"a": 1}, ["x"], "", "with space", "x" * 513, True, None]
)
def test_unusable_task_ids_are_ignored(
    client: Any, waiting: Analysis, task_id: Any
) -> None:
    before = snapshot()
    response = deliver(client, delivery(waiting, task_id=task_id))

    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"task_id": NaN}', "malformed_json"),
        (b'{"x": Infinity}', "malformed_json"),
        (b'{"x": 1e999}', "malformed_json"),
        (b'{"x": ' + b"9" * 5000 + b"}", "malformed_json"),
        (b'{"x": 99999999999999999999}', "bad_number"),
        (b"\xff\xfe{}", "malformed_json"),
        (b"[" * 50_000 + b"]" * 50_000, "too_deep"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "too_deep"),
    ],
    ids=[
        "nan",
        "infinity",
        "overflowing-float",
        "huge-int",
        "int-beyond-64-bits",
        "not-utf8",
        "nested-50000",
        "nested-65",
    ],
)
def test_bodies_no_column_can_hold_are_400_and_change_nothing(
    client: Any, waiting: Analysis, body: bytes, code: str
) -> None:
    before = snapshot()

    response = post(client, body, sign(body))

    assert response.status_code == 400
    assert response.json() == {"error": code}
    assert snapshot() == before


def test_nesting_within_the_bound_applies(client: Any, waiting: Analysis) -> None:
    deep: Any = "leaf"
    for _ in range(60):
        deep = {"d": deep}
    assert deliver(client, delivery(waiting, extra=deep)).json() == {
        "status": "applied"
    }


# -- bodies without a Content-Length under WSGI (issue 12) -----------------------


def chunked_request(rf: Any, body: bytes, *, terminated: bool) -> Any:
    """A WSGI request as a server passes on a chunked body (no Content-Length)."""
    environ: dict[str, Any] = {
        "wsgi.input": io.BytesIO(body),
        "HTTP_TRANSFER_ENCODING": "chunked",
        **sign(body),
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    request = rf.generic("POST", URL, content_type="application/json", **environ)
    assert "CONTENT_LENGTH" not in request.META
    return request


def test_chunked_body_from_a_dechunking_server_is_read(
    rf: Any, waiting: Analysis
) -> None:
    body = encode(delivery(waiting))

    response = webhooks.webhook(chunked_request(rf, body, terminated=True))

    assert response.status_code == 200
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.SUCCEEDED


def test_oversized_chunked_body_is_413_under_wsgi(
    rf: Any, waiting: Analysis, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "WEBHOOK_MAX_BODY": 1024,
    }
    body = encode(delivery(waiting, padding="x" * 2048))
    before = snapshot()

    response = webhooks.webhook(chunked_request(rf, body, terminated=True))

    assert response.status_code == 413
    assert snapshot() == before


def test_chunked_body_the_server_cannot_end_is_411(rf: Any, waiting: Analysis) -> None:
    # Django would read it as empty: refuse it rather than misread it.
    body = encode(delivery(waiting))
    before = snapshot()

    response = webhooks.webhook(chunked_request(rf, body, terminated=False))

    assert response.status_code == 411
    assert json.loads(response.content) == {"error": "length_required"}
    assert snapshot() == before


def test_apply_notification_answers_with_an_outcome_member() -> None:
    outcome = services.apply_notification({"notification_type": "upload"})
    assert outcome is services.NotificationOutcome.IGNORED
    assert f"{outcome}" == str(outcome) == "ignored"
    unknown = {"notification_type": "analyze", "task_id": "nope"}
    assert services.apply_notification(unknown) is services.NotificationOutcome.UNKNOWN
