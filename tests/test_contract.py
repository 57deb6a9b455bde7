"""Contract checks against the official SDK (``cloudinary-analysis`` 0.1.0).

The SDK is generated from Cloudinary's OpenAPI spec, so its pydantic models
and its wire format are the best published statement of the contract:

* our request bodies validate against its request models and equal, as JSON,
  what the SDK itself sends for the same call (same path, same Basic auth);
* every body in ``tests/support/api_samples`` validates against its response
  models and survives a round trip unchanged — except the detection ``tags``
  and ``error.details``, which the SDK's models leave empty, so there only the
  envelope is compared;
* the SDK, fed our samples over a mock transport, parses them into the same
  data our client returns;
* the same holds for ``AsyncAnalyzeClient`` against the SDK's ``*_async``
  methods, both over in-process httpx transports.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import responses

from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    AnalyzeClient,
    AsyncAnalyzeClient,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import (
    AuthError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UserError,
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

models = pytest.importorskip("cloudinary_analysis.models")
cloudinary_analysis = pytest.importorskip("cloudinary_analysis")

# The generated SDK trips pydantic 2.11+ deprecations inside its own code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing the 'model_fields' attribute on the instance is deprecated"
)

CLOUD = "demo"
API_KEY = "123456789012345"
SECRET = "contract-secret"
BASE = f"https://api.cloudinary.com/v2/analysis/{CLOUD}"
IMAGE = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"
HOOK = "https://example.com/cloudinary/webhook/"

#: Detection models whose ``tags`` the SDK models as an empty object.
EMPTY_TAG_MODELS = {
    "coco",
    "lvis",
    "unidet",
    "cld_fashion",
    "cld_text",
    "human_anatomy",
    "shop_classifier",
}
EXTRAS: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"prompts": DEFAULT_PROMPTS},
    "ai_vision_moderation": {"rejection_questions": DEFAULT_REJECTION_QUESTIONS},
    "ai_vision_tagging": {"tag_definitions": DEFAULT_TAG_DEFINITIONS},
}
_CAMEL = {
    "ai_vision_general": "AIVisionGeneral",
    "ai_vision_moderation": "AIVisionModeration",
    "ai_vision_tagging": "AIVisionTagging",
}


def _camel(name: str) -> str:
    return _CAMEL.get(name) or "".join(part.title() for part in name.split("_"))


def request_model(name: str) -> Any:
    return getattr(models, f"Analyze{_camel(name)}Request", models.BaseAnalyzeRequest)


def response_model(name: str) -> Any:
    return getattr(models, f"Analyze{_camel(name)}Response")


def _dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_unset=True)


class SDKRecorder:
    """The official SDK wired to a mock transport that records and replies."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body if body is not None else {}
        self.sdk = cloudinary_analysis.CloudinaryAnalysis(
            security=models.Security(
                cloudinary_auth=models.SchemeCloudinaryAuth(
                    api_key=API_KEY, api_secret=SECRET
                )
            ),
            cloud_name=CLOUD,
            client=httpx.Client(transport=self.transport()),
            async_client=httpx.AsyncClient(transport=self.transport()),
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.body)

    def ours(self) -> AsyncAnalyzeClient:
        """Our asyncio client, answered (and recorded) by this same recorder."""
        return AsyncAnalyzeClient(
            CLOUD,
            api_key=API_KEY,
            api_secret=SECRET,
            http_options={"transport": self.transport()},
        )


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def client():
    return AnalyzeClient(CLOUD, api_key=API_KEY, api_secret=SECRET)


def _variants() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for name in ANALYSIS_TYPES:
        extras = EXTRAS.get(name, {})
        cases.append((name, {"source": {"uri": IMAGE}, **extras}))
        cases.append((name, {"source": {"asset_id": "a1b2c3"}, **extras}))
        # Sent as given without async, as the SDK's own first example does.
        cases.append(
            (name, {"source": {"uri": IMAGE}, **extras, "notification_url": HOOK})
        )
        if name != "google_logo_detection":
            cases.append(
                (
                    name,
                    {
                        "source": {"uri": IMAGE},
                        **extras,
                        "async_": True,
                        "notification_url": HOOK,
                    },
                )
            )
    return cases


# -- requests -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "call"), _variants())
def test_request_matches_the_sdk(rsps, client, name, call):
    is_async = call.get("async_", False)
    reply = sample_accepted("t1") if is_async else sample_response(name)
    status = 202 if is_async else 200
    rsps.post(f"{BASE}/analyze/{name}", json=reply, status=status)
    kwargs = {k: v for k, v in call.items() if k != "source"}
    source = call["source"].get("uri") or call["source"]["asset_id"]

    getattr(client, name)(source, **kwargs)
    ours = rsps.calls[0].request
    body = json.loads(ours.body)

    # Valid for the SDK's request model, and nothing in it is unknown there.
    parsed = request_model(name).model_validate(body)
    assert parsed.model_dump(by_alias=True, mode="json", exclude_none=True) == body

    recorder = SDKRecorder(status, reply)
    getattr(recorder.sdk.analyze, name)(**call)
    [theirs] = recorder.requests
    assert theirs.method == ours.method
    assert str(theirs.url) == ours.url
    assert theirs.headers["authorization"] == ours.headers["Authorization"]
    assert json.loads(theirs.content) == body


@pytest.mark.parametrize(("name", "call"), _variants())
def test_async_request_matches_the_sdks_async_request(name, call):
    is_async = call.get("async_", False)
    reply = sample_accepted("t1") if is_async else sample_response(name)
    recorder = SDKRecorder(202 if is_async else 200, reply)
    kwargs = {k: v for k, v in call.items() if k != "source"}
    source = call["source"].get("uri") or call["source"]["asset_id"]

    async def both() -> tuple[Any, Any]:
        async with recorder.ours() as client:
            ours = await getattr(client, name)(source, **kwargs)
        theirs = await getattr(recorder.sdk.analyze, f"{name}_async")(**call)
        return ours, theirs

    ours, theirs = asyncio.run(both())
    mine, sdk = recorder.requests
    assert (mine.method, str(mine.url)) == (sdk.method, str(sdk.url))
    assert mine.headers["authorization"] == sdk.headers["authorization"]
    assert json.loads(mine.content) == json.loads(sdk.content)
    if is_async:
        assert isinstance(ours, Accepted)
        assert (ours.task_id, ours.status) == (
            theirs.data.task_id,
            theirs.data.status.value,
        )
    else:
        assert isinstance(ours, AnalysisResult)
        assert ours.request_id == theirs.request_id
        assert ours.entity == theirs.data.entity
        if name not in EMPTY_TAG_MODELS:
            assert ours.analysis == _dump(theirs.data.analysis)


def test_async_task_status_matches_the_sdk():
    task_id = sample_task_id()
    recorder = SDKRecorder(200, sample_accepted(task_id, "processing"))

    async def both() -> tuple[Any, Any]:
        async with recorder.ours() as client:
            ours = await client.get_task_status(task_id)
        return ours, await recorder.sdk.tasks.get_status_async(task_id=task_id)

    ours, theirs = asyncio.run(both())
    mine, sdk = recorder.requests
    assert (mine.method, str(mine.url)) == (sdk.method, str(sdk.url))
    assert isinstance(ours, TaskStatus)
    assert (ours.task_id, ours.status) == (
        theirs.data.task_id,
        theirs.data.status.value,
    )


def test_task_status_request_matches_the_sdk(rsps, client):
    task_id = sample_task_id()
    reply = sample_accepted(task_id, "processing")
    rsps.get(f"{BASE}/tasks/{task_id}", json=reply)
    ours = client.get_task_status(task_id)
    recorder = SDKRecorder(200, reply)
    theirs = recorder.sdk.tasks.get_status(task_id=task_id)
    assert str(recorder.requests[0].url) == rsps.calls[0].request.url
    assert recorder.requests[0].method == rsps.calls[0].request.method == "GET"
    assert theirs.data.task_id == ours.task_id
    assert theirs.data.status.value == ours.status


# -- responses ------------------------------------------------------------------


@pytest.mark.parametrize("name", ANALYSIS_TYPES)
def test_samples_validate_against_the_response_models(name):
    sample = sample_response(name, EXTRAS.get(name))
    dumped = _dump(response_model(name).model_validate(sample))
    if name in EMPTY_TAG_MODELS:
        # The SDK keeps only the envelope of the free-form tags.
        assert dumped["data"]["analysis"] == {"tags": {}, "model_version": 1}
        assert dumped["data"]["entity"] == sample["data"]["entity"]
        assert dumped["limits"] == sample["limits"]
        assert dumped["request_id"] == sample["request_id"]
    else:
        assert dumped == sample


@pytest.mark.parametrize("name", ANALYSIS_TYPES)
def test_the_sdk_parses_our_samples_like_our_client(rsps, client, name):
    extras = EXTRAS.get(name, {})
    sample = sample_response(name, extras)
    rsps.post(f"{BASE}/analyze/{name}", json=sample)
    ours = getattr(client, name)(IMAGE, **extras)
    theirs = getattr(SDKRecorder(200, sample).sdk.analyze, name)(
        source={"uri": IMAGE}, **extras
    )
    assert isinstance(ours, AnalysisResult)
    assert isinstance(theirs, response_model(name))
    assert theirs.request_id == ours.request_id
    assert theirs.data.entity == ours.entity
    sdk_limits = [
        (item.type.value, item.remaining, item.limit, item.reset_time)
        for item in theirs.limits.items
    ]
    our_limits = [(q.type, q.remaining, q.limit, q.reset_time) for q in ours.limits]
    assert sdk_limits == our_limits
    analysis = _dump(theirs.data.analysis)
    if name in EMPTY_TAG_MODELS:
        assert analysis["tags"] == {}  # what the SDK throws away…
        assert ours.analysis["tags"]  # …and we keep
    else:
        assert analysis == ours.analysis


@pytest.mark.parametrize("status", ["pending", "processing", "completed", "failed"])
def test_accepted_and_task_status_samples(status):
    task_id = sample_task_id(status)
    sample = sample_accepted(task_id, status)
    accepted = models.AsyncOperationAcceptedResponse.model_validate(sample)
    assert _dump(accepted) == sample
    assert _dump(models.GetTaskStatusResponse.model_validate(sample)) == sample


def test_the_sdk_and_our_client_agree_on_202(rsps, client):
    sample = sample_accepted(sample_task_id())
    rsps.post(f"{BASE}/analyze/captioning", json=sample, status=202)
    ours = client.captioning(IMAGE, async_=True)
    theirs = SDKRecorder(202, sample).sdk.analyze.captioning(
        source={"uri": IMAGE}, async_=True
    )
    assert isinstance(ours, Accepted)
    assert isinstance(theirs, models.AsyncOperationAcceptedResponse)
    assert (theirs.data.task_id, theirs.data.status.value, theirs.request_id) == (
        ours.task_id,
        ours.status,
        ours.request_id,
    )


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "ours_cls", "sdk_cls"),
    [
        (400, "user_error", UserError, "ErrorResponse"),
        (401, "auth_error", AuthError, "ErrorResponse"),
        (403, "auth_error", AuthError, "ErrorResponse"),
        (404, "user_error", NotFoundError, "ErrorResponse"),
        (429, "rate_limit_error", RateLimitError, "RateLimitedResponse"),
        (500, "server_error", ServerError, "ErrorResponse"),
    ],
)
def test_error_samples(rsps, client, status, category, ours_cls, sdk_cls):
    sample = sample_error(status, category, "MA_00001", "missing parameters")
    data_model = (
        models.RateLimitedResponseData if status == 429 else models.ErrorResponseData
    )
    dumped = _dump(data_model.model_validate(sample))
    expected = json.loads(json.dumps(sample))
    expected["error"]["details"] = {}  # the SDK models details as empty
    assert dumped == expected
    assert category in {c.value for c in models.ErrorCategory}

    rsps.post(f"{BASE}/analyze/coco", json=sample, status=status)
    with pytest.raises(ours_cls) as ours:
        client.coco(IMAGE)
    with pytest.raises(getattr(models, sdk_cls)) as theirs:
        SDKRecorder(status, sample).sdk.analyze.coco(source={"uri": IMAGE})
    error = theirs.value.data.error
    assert (error.category.value, error.code, error.message, error.request_id) == (
        ours.value.category,
        ours.value.code,
        ours.value.message,
        ours.value.request_id,
    )
    if status == 429:
        assert [i.remaining for i in theirs.value.data.limits.items] == [
            q.remaining for q in ours.value.limits
        ]


@pytest.mark.parametrize(
    ("status", "category", "ours_cls", "sdk_cls"),
    [
        (401, "auth_error", AuthError, "ErrorResponse"),
        (429, "rate_limit_error", RateLimitError, "RateLimitedResponse"),
        (500, "server_error", ServerError, "ErrorResponse"),
    ],
)
def test_async_errors_match_the_sdks_async_errors(status, category, ours_cls, sdk_cls):
    sample = sample_error(status, category, "MA_00001", "missing parameters")
    recorder = SDKRecorder(status, sample)

    async def both() -> tuple[Any, Any]:
        async with recorder.ours() as client:
            with pytest.raises(ours_cls) as ours:
                await client.coco(IMAGE)
        with pytest.raises(getattr(models, sdk_cls)) as theirs:
            await recorder.sdk.analyze.coco_async(source={"uri": IMAGE})
        return ours.value, theirs.value

    ours, theirs = asyncio.run(both())
    error = theirs.data.error
    assert (error.category.value, error.code, error.message, error.request_id) == (
        ours.category,
        ours.code,
        ours.message,
        ours.request_id,
    )
    # Like the SDK's errors, ours keep the status and body of the answer.
    assert ours.status_code == status
    assert json.loads(ours.body) == sample


def test_quota_types_are_the_sdk_features():
    features = {f.value for f in models.Feature}
    for name in ANALYSIS_TYPES:
        for item in sample_response(name)["limits"]["items"]:
            assert item["type"] in features
