"""payloads: each field of what the API sends is coerced or refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import responses
from django.utils import timezone

from django_cloudinary_analysis import payloads, services
from django_cloudinary_analysis.client import Accepted, AnalysisResult, QuotaLimit
from django_cloudinary_analysis.models import Analysis, AnalysisStatus, QuotaState
from django_cloudinary_analysis.payloads import InvalidPayload
from tests.models import Photo
from tests.support.api_samples import sample_accepted, sample_response

API = "https://api.cloudinary.com/v2/analysis/demo-cloud"


# -- parsing and cleaning --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"NaN", "malformed_json"),
        (b"[-Infinity]", "malformed_json"),
        (b"[1e400]", "malformed_json"),
        (b"{", "malformed_json"),
        (b"\xc3\x28", "malformed_json"),
        (b"[" * 100_000, "too_deep"),
    ],
)
def test_loads_refuses_what_is_not_strict_json(body: bytes, code: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        payloads.loads(body)
    assert caught.value.code == code


def test_loads_keeps_ordinary_json() -> None:
    assert payloads.loads(b'{"a": [1, 2.5, "x", null, true]}') == {
        "a": [1, 2.5, "x", None, True]
    }


def test_clean_replaces_what_no_column_stores() -> None:
    dirty = {"k\x00": ["a\x00b", "\ud800x"], "ok": "é"}

    cleaned = payloads.clean(dirty)

    assert cleaned == {"k\ufffd": ["a\ufffdb", "\ufffdx"], "ok": "é"}
    json.dumps(cleaned).encode("utf-8")  # storable and renderable


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (2**63, "bad_number"),
        (-(2**63) - 1, "bad_number"),
        (float("nan"), "bad_number"),
        ({1: "a"}, "bad_type"),
        ({"a": object()}, "bad_type"),
    ],
    ids=["int-too-big", "int-too-small", "nan", "int-key", "object"],
)
def test_clean_refuses(value: Any, code: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        payloads.clean(value)
    assert caught.value.code == code


def test_clean_bounds_the_depth() -> None:
    assert payloads.clean(nested(payloads.MAX_DEPTH)) == nested(payloads.MAX_DEPTH)
    with pytest.raises(InvalidPayload, match="deeper"):
        payloads.clean(nested(payloads.MAX_DEPTH + 1))


# -- fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        (" abc ", "abc"),
        (123, "123"),
        ("r" * 300, "r" * 100),
        (True, None),
        (1.5, None),
        ({"a": 1}, None),
        ([], None),
        ("", None),
        (None, None),
    ],
)
def test_request_id(value: Any, expected: str | None) -> None:
    assert payloads.request_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(200, 200), (599, 599), (99, None), (600, None), ("200", None), (True, None)],
)
def test_http_status(value: Any, expected: int | None) -> None:
    assert payloads.http_status(value) == expected


def test_notification_of_another_type_keeps_only_what_says_so() -> None:
    payload = {"notification_type": ["upload"], "task_id": "t1", "data": "x"}

    assert payloads.notification(payload) == {
        "notification_type": None,
        "task_id": "t1",
    }


def test_notification_coerces_each_field() -> None:
    payload = {
        "notification_type": "analyze",
        "task_id": "t1",
        "request_id": 7,
        "http_status": "200",
        "error": ["x"],
        "data": {"entity": {"url": 1}, "analysis": {}},
        "extra": "kept",
    }

    assert payloads.notification(payload) == {
        "notification_type": "analyze",
        "task_id": "t1",
        "request_id": "7",
        "http_status": None,
        "error": {"code": "remote_error", "message": "an error given as an array"},
        "data": {"entity": None, "analysis": {}},
        "extra": "kept",
    }


def test_quota_limits_are_bounded() -> None:
    now = timezone.now()
    limits = [
        QuotaLimit("ai_vision", -5, -(10**12), 10**12, now + timedelta(days=2)),
        QuotaLimit("ai_vision", 1, 0, 10, now + timedelta(days=4000)),
        QuotaLimit("Not A Type!", 1, 0, 10, now),
        QuotaLimit(None, 1, 0, 10, now),
        "not a limit",  # type: ignore[list-item]
    ]

    kept = payloads.quota_limits(limits)

    assert kept == [
        QuotaLimit("ai_vision", 0, 0, 2**31 - 1, now + timedelta(days=2)),
        QuotaLimit("ai_vision", 1, 0, 10, None),
    ]


def test_reused_raw_keeps_the_analysis_and_names_its_own_file() -> None:
    donor = {
        "data": {"entity": "https://media/donor.png", "analysis": {"tags": []}},
        "request_id": "donor-request",
        "task_id": "donor-task",
        "limits": {"items": []},
    }

    assert payloads.reused_raw(donor, "own.png") == {
        "data": {"entity": "own.png", "analysis": {"tags": []}}
    }
    assert payloads.reused_raw(None, "own.png") is None


# -- answers where services consume them -----------------------------------------


def test_checked_answer_cleans_a_result() -> None:
    result = AnalysisResult(
        "captioning",
        {"data": {"caption": "a\x00b"}},
        entity="e\ud800",
        request_id=5,  # type: ignore[arg-type]
        raw={"request_id": 5},
    )

    checked = payloads.checked_answer(result)

    assert checked.analysis == {"data": {"caption": "a\ufffdb"}}
    assert checked.entity == "e\ufffd"
    assert checked.request_id == "5"


def test_checked_answer_cleans_the_analysis_inside_the_raw_answer_once() -> None:
    """The client's result: ``analysis`` is the raw body's data.analysis."""
    analysis = {"tags": ["x\x00", {"n": 1}], "deep": [[["\udc00"]]]}
    raw = {"data": {"entity": "e", "analysis": analysis}, "request_id": "r"}
    result = AnalysisResult("google_tagging", analysis, raw=raw)

    checked = payloads.checked_answer(result)

    cleaned = {"tags": ["x\ufffd", {"n": 1}], "deep": [[["\ufffd"]]]}
    assert checked.analysis == cleaned
    assert checked.raw == {
        "data": {"entity": "e", "analysis": cleaned},
        "request_id": "r",
    }
    assert checked.analysis is checked.raw["data"]["analysis"]
    assert analysis["tags"][0] == "x\x00"  # the answer itself is left alone


def test_checked_answer_refuses_a_bad_analysis_inside_the_raw_answer() -> None:
    analysis = {"score": float("nan")}
    result = AnalysisResult("coco", analysis, raw={"data": {"analysis": analysis}})
    with pytest.raises(InvalidPayload):
        payloads.checked_answer(result)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"data": {}},
        AnalysisResult("captioning", ["not", "a", "dict"]),  # type: ignore[arg-type]
        AnalysisResult("captioning", {"score": float("inf")}),
        AnalysisResult("captioning", {}, raw={"n": float("nan")}),
        Accepted("captioning", "x" * 513, "pending"),
        Accepted("captioning", "", "pending"),
        Accepted("captioning", "has space", "pending"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_checked_answer_refuses(answer: Any) -> None:
    with pytest.raises(InvalidPayload):
        payloads.checked_answer(answer)


@pytest.fixture
def cloudinary(settings: Any) -> Any:
    """The Cloudinary backend, HTTP mocked, with moderation async."""
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend",
        "ASYNC_TYPES": ["ai_vision_moderation"],
        "WEBHOOK_URL": "https://www.example.com/cloudinary-analysis/webhook/",
        "DEDUP": False,
        "MAX_ATTEMPTS": 1,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


def run_all(photo: Photo) -> dict[str, Analysis]:
    for analysis in photo.analyses.all():
        services.run(analysis.pk, can_wait=False)
    return {a.analysis_type: a for a in photo.analyses.all()}


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.django_db
def test_odd_answers_fail_with_a_reason_and_store_nothing(
    cloudinary: Any, image_file: Any
) -> None:
    deep = sample_response("google_tagging")
    deep["data"]["analysis"]["extra"] = nested(100)
    cloudinary.post(f"{API}/analyze/google_tagging", json=deep)
    cloudinary.post(
        f"{API}/analyze/ai_vision_moderation",
        status=202,
        json=sample_accepted("t" * 600),
    )
    dirty = sample_response("image_quality")
    dirty["data"]["entity"] = "nul\x00"
    dirty["request_id"] = "\ud800" * 3
    cloudinary.post(f"{API}/analyze/image_quality", json=dirty)
    photo = Photo.objects.create(image=image_file())

    analyses = run_all(photo)

    tagging = analyses["google_tagging"]
    assert (tagging.status, tagging.error_code) == ("failed", "too_deep")
    assert "deeper than 64" in tagging.error_message
    assert tagging.raw is None and not tagging.tags.exists()
    moderation = analyses["ai_vision_moderation"]
    assert (moderation.status, moderation.error_code) == ("failed", "invalid_payload")
    assert "task id" in moderation.error_message
    assert moderation.remote_task_id is None
    quality = analyses["image_quality"]
    assert quality.status == AnalysisStatus.SUCCEEDED
    assert quality.raw["data"]["entity"] == "nul\ufffd"
    assert quality.request_id == "\ufffd" * 3


@pytest.mark.django_db
def test_quota_figures_beyond_a_column_or_a_year_are_bounded(
    cloudinary: Any, image_file: Any
) -> None:
    far = (timezone.now() + timedelta(days=4000)).isoformat()
    soon = (timezone.now() + timedelta(hours=1)).isoformat()
    body = sample_response("image_quality")
    body["limits"] = {
        "items": [
            {"type": "ai_vision", "remaining": -(10**15), "limit": 10**15},
            {"type": "google_tagging", "remaining": 0, "reset_time": far},
            {"type": "object_detection", "remaining": 0, "reset_time": soon},
        ]
    }
    cloudinary.post(f"{API}/analyze/image_quality", json=body)
    photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="image_quality")

    services.run(analysis.pk, can_wait=False)

    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.SUCCEEDED
    # Only the believable block is kept: a year-long one would stop a type.
    assert list(QuotaState.objects.values_list("feature", "remaining")) == [
        ("object_detection", 0)
    ]
