"""Fuzz the webhook view and the API's write endpoints: 2xx or 4xx, never 500.

Signed notifications are generated from the contract's shape (the
notification of docs/webhooks.md: type, task and request ids, status, data,
limits, error) with every field allowed to be any
JSON value, plus raw bytes bodies; each runs against the real view, and the
state must show exactly the change the answer claims, or none.
Hypothesis runs derandomized (the ``dca-ci`` profile): the same examples on
every run, about 20 s in all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
)
from tests import test_webhooks
from tests.models import Photo
from tests.support.api_samples import sample_analysis, sample_limits
from tests.test_webhooks import TASK_ID, URL, sign

pytestmark = pytest.mark.django_db

settings.register_profile(
    "dca-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
CI = settings.get_profile("dca-ci")

# -- strategies ------------------------------------------------------------------

TEXT = st.text(max_size=20) | st.sampled_from(["", "\x00", "\ud800", "analyze"])
NUMBER = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 200, 500, -1, 2**63])
)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON_VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A contract field: mostly its documented shape, often anything at all."""
    return st.one_of(valid, valid, JSON_VALUE)


def analysis_value() -> st.SearchStrategy[Any]:
    sample = sample_analysis("ai_vision_moderation", {"rejection_questions": ["q?"]})
    responses = st.lists(
        st.fixed_dictionaries(
            {
                "prompt": field(st.just("q?")),
                "value": field(st.sampled_from(["yes", "no", "unknown"])),
            }
        ),
        max_size=3,
    )
    return field(
        st.fixed_dictionaries(
            {"responses": field(responses), "model_version": field(st.just(1))}
        )
        | st.just(sample)
    )


NOTIFICATION = st.fixed_dictionaries(
    {},
    optional={
        "notification_type": field(st.sampled_from(["analyze", "upload"])),
        "operation_type": field(st.just("single")),
        "task_id": field(st.sampled_from([TASK_ID, "other-task"])),
        "request_id": field(st.text(alphabet="0123456789abcdef", max_size=40)),
        "http_status": field(st.sampled_from([200, 400, 500])),
        "data": field(
            st.fixed_dictionaries(
                {
                    "entity": field(st.just("https://x/a.png")),
                    "analysis": analysis_value(),
                }
            )
        ),
        "limits": field(st.just(sample_limits("ai_vision_moderation"))),
        "error": field(
            st.none()
            | st.fixed_dictionaries(
                {"code": field(st.just("MA_1")), "message": field(st.just("broke"))}
            )
        ),
    },
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- the webhook -------------------------------------------------------------------


#: A photo whose moderation analysis awaits its webhook.
waiting = test_webhooks.waiting


def state() -> dict[str, Any]:
    return {
        "analyses": list(
            Analysis.objects.order_by("pk").values(
                "pk", "status", "raw", "result", "error_code", "request_id"
            )
        ),
        "tags": MediaTag.objects.count(),
        "decisions": ModerationDecision.objects.count(),
        "photos": list(Photo.objects.values_list("pk", "moderation_status")),
    }


def deliver_and_check(waiting: Analysis, body: bytes) -> None:
    """Post ``body`` signed; check the answer against the change it made."""
    with transaction.atomic():
        before = state()
        response = Client().post(
            URL, data=body, content_type="application/json", **sign(body)
        )
        assert response.status_code in (200, 400), response.content
        after = state()
        row = Analysis.objects.get(pk=waiting.pk)
        outcome = response.json().get("status")
        if outcome == "applied":
            assert row.status == AnalysisStatus.SUCCEEDED
            assert row.raw is not None and row.raw["task_id"] == TASK_ID
            json.dumps(row.raw, allow_nan=False)  # renderable by the API
        elif outcome == "failed":
            assert row.status == AnalysisStatus.FAILED
            assert row.error_code and row.error_message
        else:  # 400, ignored, unknown: nothing at all
            assert outcome in (None, "ignored", "unknown"), outcome
            assert after == before
        transaction.set_rollback(True)


@settings(CI, max_examples=200)
@given(payload=NOTIFICATION)
def test_signed_notifications_of_any_shape(waiting: Analysis, payload: Any) -> None:
    deliver_and_check(waiting, encode(payload))


@settings(CI, max_examples=60)
@given(payload=JSON_VALUE)
def test_signed_bodies_of_any_json(waiting: Analysis, payload: Any) -> None:
    deliver_and_check(waiting, encode(payload))


@settings(CI, max_examples=60)
@given(body=st.binary(max_size=200) | st.just(b"[" * 5000))
def test_signed_bodies_of_any_bytes(waiting: Analysis, body: bytes) -> None:
    deliver_and_check(waiting, body)


# -- the API's write endpoints --------------------------------------------------------

API_BODY = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "force": field(st.booleans()),
            "types": field(st.lists(st.sampled_from(["google_tagging", "nope"]))),
            "fields": field(st.lists(st.sampled_from(["image", "nope"]))),
            "note": field(st.text(max_size=30)),
        },
    ).map(encode),
    JSON_VALUE.map(encode),
    st.binary(max_size=100),
)


@pytest.fixture
def api_client(image_file: Any) -> tuple[Client, Photo]:
    user = User.objects.create_user("fuzzer", is_staff=True)
    for codename in ("reanalyze_media", "review_media"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client, Photo.objects.create(image=image_file())


@pytest.mark.urls("tests.urls_api")
@settings(CI, max_examples=100)
@given(
    endpoint=st.sampled_from(["analysis", "object", "approve", "reject"]), body=API_BODY
)
def test_api_write_endpoints_with_any_body(
    api_client: tuple[Client, Photo], endpoint: str, body: bytes
) -> None:
    client, photo = api_client
    analysis = Analysis.objects.filter(object_id=str(photo.pk)).first()
    assert analysis is not None
    url = {
        "analysis": f"/api/analysis/analyses/{analysis.pk}/reanalyze/",
        "object": f"/api/analysis/objects/tests.photo/{photo.pk}/reanalyze/",
        "approve": f"/api/analysis/moderation/tests.photo/{photo.pk}/approve/",
        "reject": f"/api/analysis/moderation/tests.photo/{photo.pk}/reject/",
    }[endpoint]
    with transaction.atomic():
        before = state()
        response = client.post(url, data=body, content_type="application/json")
        assert response.status_code in (200, 202, 400, 413), response.content
        after = state()
        if response.status_code >= 400:
            assert after == before
        elif endpoint in ("approve", "reject"):
            assert after["decisions"] == before["decisions"] + 1
            photo.refresh_from_db()
            assert photo.moderation_status == response.json()["moderation_status"]
        else:
            queued = len(response.json()["scheduled"])
            assert len(after["analyses"]) == len(before["analyses"]) + queued
        transaction.set_rollback(True)
