"""The shape of what the API sends: coerce or refuse each field at the edge.

Everything the API sends is untrusted data, even a correctly signed
notification: a number where a string belongs, an object where an id
belongs, ``NaN``, a NUL character, a lone surrogate or a thousand levels of
nesting must end as a clear refusal (the webhook answers 400) or a recorded
failure, never as a crash in a database driver or a serializer later on.

``loads`` parses a webhook body; ``notification`` turns the parsed body into
the canonical shape ``services.apply_notification`` reads; ``checked_answer``
does the same for what a backend returned before services store it, and
``quota_limits`` bounds the quota figures before they reach ``QuotaState``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from django_cloudinary_analysis.client import Accepted, AnalysisResult, QuotaLimit
from django_cloudinary_analysis.exceptions import UnexpectedResponse

#: Deepest nesting kept; the deepest documented answer is about 6 levels.
MAX_DEPTH = 64
#: Integers beyond a signed 64-bit range are refused (no column holds them).
MAX_INT = 2**63 - 1
#: Longest error text kept from a notification.
MAX_MESSAGE = 1000
#: Widest ``QuotaState`` integer (an IntegerField).
MAX_QUOTA = 2**31 - 1
#: A quota reset further ahead than this is not believed (it would block a type).
MAX_RESET_AHEAD = timedelta(days=366)

#: ``remote_task_id`` holds 512 characters; ids are hex in practice.
TASK_ID = re.compile(r"[\x21-\x7e]{1,512}")
#: An error code or a quota type: a short token, nothing else.
TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
QUOTA_TYPE = re.compile(r"[a-z0-9_]{1,40}")

REQUEST_ID_LENGTH = 100  # Analysis.request_id
REPLACEMENT = "\ufffd"
SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidPayload(UnexpectedResponse):
    """A body or a field of what the API sent cannot be used.

    ``code`` names the problem (``malformed_json``, ``not_an_object``,
    ``too_deep``, ``bad_number``, ``bad_type``, ``invalid_payload``).
    """

    default_code = "invalid_payload"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} does not fit a float")
    return number


def loads(body: bytes | str) -> Any:
    """Parse JSON strictly (no NaN, Infinity or overflowing floats) or raise."""
    try:
        value = json.loads(
            body, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except RecursionError:  # a C stack guard, raised before any harm is done
        raise InvalidPayload(
            f"the body is nested deeper than {MAX_DEPTH} levels", code="too_deep"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the above
        raise InvalidPayload(
            f"the body is not JSON: {type(exc).__name__}", code="malformed_json"
        ) from None
    return value


def clean_text(value: str) -> str:
    """Replace what no database column stores: NUL and lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = SURROGATE.sub(REPLACEMENT, value)
    return value


def clean(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Return a JSON-safe copy of ``value`` or raise InvalidPayload.

    Strings lose NUL characters and lone surrogates (replaced by U+FFFD);
    non-finite floats, integers beyond 64 bits, nesting deeper than
    ``max_depth`` and anything that is not JSON data are refused.
    """
    return _clean(value, max_depth)


def _clean(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        if -MAX_INT - 1 <= value <= MAX_INT:
            return value
        raise InvalidPayload("an integer does not fit 64 bits", code="bad_number")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise InvalidPayload("a number is not finite", code="bad_number")
    if depth <= 0 and isinstance(value, (dict, list, tuple)):
        raise InvalidPayload(
            f"the body is nested deeper than {MAX_DEPTH} levels", code="too_deep"
        )
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayload("an object key is not a string", code="bad_type")
            cleaned[clean_text(key)] = _clean(item, depth - 1)
        return cleaned
    if isinstance(value, (list, tuple)):
        return [_clean(item, depth - 1) for item in value]
    raise InvalidPayload(f"{type(value).__name__} is not JSON data", code="bad_type")


# -- fields -----------------------------------------------------------------------


def request_id(value: Any) -> str | None:
    """A request id: a string (cut to the column) or an integer; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    return clean_text(value.strip())[:REQUEST_ID_LENGTH]


def task_id(value: Any) -> str | None:
    """A remote task id: 1–512 printable ASCII characters, else None."""
    if isinstance(value, str) and TASK_ID.fullmatch(value):
        return value
    return None


def http_status(value: Any) -> int | None:
    """An HTTP status code (100–599), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value < 600:
        return value
    return None


def error(value: Any) -> dict[str, str] | None:
    """A notification's ``error``: None, or ``{"code", "message"}`` as text."""
    if not value:  # null, false, 0, "", {} and [] all say "no error"
        return None
    code = "remote_error"
    message = ""
    if isinstance(value, dict):
        raw_code, raw_message = value.get("code"), value.get("message")
        if isinstance(raw_code, str) and TOKEN.fullmatch(raw_code):
            code = raw_code
        if isinstance(raw_message, (str, int, float)) and not isinstance(
            raw_message, bool
        ):
            message = str(raw_message)
    elif isinstance(value, str):
        message = value
    else:
        message = f"an error given as {_json_type(value)}"
    message = clean_text(" ".join(message.split()))[:MAX_MESSAGE]
    return {"code": code, "message": message or code}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def notification(payload: Any) -> dict[str, Any]:
    """Return a parsed notification in the shape services read, or raise.

    Other notification types (``upload``, ``moderation``…) and ``analyze``
    ones without a usable ``task_id`` keep only what says so: services
    ignore them. For the rest every field is coerced: ``request_id`` to text,
    ``http_status`` to a status code, ``error`` to ``{"code", "message"}``,
    ``data.entity`` to text; ``data`` that is not an object becomes None
    (services then record the failure with its reason).
    """
    if not isinstance(payload, dict):
        raise InvalidPayload("the body is not a JSON object", code="not_an_object")
    payload = clean(payload)
    kind = payload.get("notification_type")
    kind = kind[:100] if isinstance(kind, str) else None
    remote_id = task_id(payload.get("task_id"))
    if kind != "analyze" or remote_id is None:
        return {"notification_type": kind, "task_id": remote_id}
    data = payload.get("data")
    if isinstance(data, dict):
        entity = data.get("entity")
        data = {**data, "entity": entity if isinstance(entity, str) else None}
    else:
        data = None
    return {
        **payload,
        "notification_type": kind,
        "task_id": remote_id,
        "request_id": request_id(payload.get("request_id")),
        "http_status": http_status(payload.get("http_status")),
        "error": error(payload.get("error")),
        "data": data,
    }


# -- answers ----------------------------------------------------------------------


def _bounded(value: int | None, low: int = 0) -> int | None:
    if value is None:
        return None
    return min(max(value, low), MAX_QUOTA)


def quota_limits(limits: Iterable[QuotaLimit] | None) -> list[QuotaLimit]:
    """Keep the quota figures a ``QuotaState`` row can hold and believe.

    Items with a type that is not a short token are dropped; counts are
    clamped to 0…2³¹−1; a reset time more than a year ahead (or unreadable)
    becomes None.
    """
    kept = []
    now = timezone.now()
    for limit in limits or ():
        if not isinstance(limit, QuotaLimit):
            continue
        if not (isinstance(limit.type, str) and QUOTA_TYPE.fullmatch(limit.type)):
            continue
        reset = limit.reset_time
        believable = (
            isinstance(reset, datetime)
            and reset.tzinfo is not None
            and reset - now <= MAX_RESET_AHEAD
        )
        if not believable:
            reset = None
        kept.append(
            dataclasses.replace(
                limit,
                used_by_request=_bounded(limit.used_by_request),
                remaining=_bounded(limit.remaining),
                limit=_bounded(limit.limit),
                reset_time=reset,
            )
        )
    return kept


def checked_answer(answer: Any) -> AnalysisResult | Accepted:
    """Return a backend's answer fit to store, or raise InvalidPayload.

    A result's ``analysis`` must be an object; its raw JSON is cleaned like
    a notification; an acceptance's task id must fit ``remote_task_id``.
    """
    if isinstance(answer, Accepted):
        remote_id = task_id(answer.task_id)
        if remote_id is None:
            raise InvalidPayload(
                "the API accepted the analysis without a usable task id"
            )
        return dataclasses.replace(
            answer,
            request_id=request_id(answer.request_id),
            raw=_clean_object(answer.raw),
        )
    if not isinstance(answer, AnalysisResult):
        raise InvalidPayload(
            f"the backend returned {type(answer).__name__}, not a result",
            code="bad_type",
        )
    if not isinstance(answer.analysis, dict):
        raise InvalidPayload("the answer carries no data.analysis object")
    raw = _clean_object(answer.raw)
    data = answer.raw.get("data") if isinstance(answer.raw, dict) else None
    if isinstance(data, dict) and data.get("analysis") is answer.analysis:
        analysis = raw["data"]["analysis"]  # the same object, cleaned once
    else:
        analysis = clean(answer.analysis)
    return dataclasses.replace(
        answer,
        analysis=analysis,
        entity=clean_text(answer.entity) if isinstance(answer.entity, str) else None,
        request_id=request_id(answer.request_id),
        limits=quota_limits(answer.limits),
        raw=raw,
    )


def _clean_object(value: Any) -> dict[str, Any]:
    return clean(value) if isinstance(value, dict) else {}


def reused_raw(raw: Any, entity: str) -> dict[str, Any] | None:
    """The raw JSON a reused result carries: the donor's analysis, own entity.

    Everything else of the donor's answer (its file's URL, request and task
    ids, quota figures) belongs to another object, maybe another owner's.
    """
    if not isinstance(raw, dict):
        return None
    data = raw.get("data")
    analysis = data.get("analysis") if isinstance(data, dict) else None
    return {"data": {"entity": entity, "analysis": analysis}}
