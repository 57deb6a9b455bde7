"""Typed results of the Analyze API and the parsing of its answers.

Shared by the synchronous and the asyncio client: nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django_cloudinary_analysis.exceptions import InvalidParameters


@dataclass(frozen=True)
class Source:
    """What the API analyses: exactly one of a public https URI or an asset id."""

    uri: str | None = None
    asset_id: str | None = None

    def __post_init__(self) -> None:
        if bool(self.uri) == bool(self.asset_id):
            raise InvalidParameters("source needs exactly one of uri or asset_id")

    def as_json(self) -> dict[str, str]:
        """Return the request body's ``source`` object."""
        if self.uri:
            return {"uri": self.uri}
        return {"asset_id": self.asset_id or ""}


@dataclass(frozen=True)
class QuotaLimit:
    """One add-on quota from a response's ``limits.items``."""

    type: str | None
    used_by_request: int | None = None
    remaining: int | None = None
    limit: int | None = None
    reset_time: datetime | None = None


@dataclass(frozen=True)
class AnalysisResult:
    """A finished analysis: the ``analysis`` dict verbatim plus its envelope."""

    analysis_type: str
    analysis: dict[str, Any]
    entity: str | None = None
    request_id: str | None = None
    limits: list[QuotaLimit] = field(default_factory=list)
    #: The whole response body as received.
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """A 202: the analysis runs remotely and its result comes by webhook."""

    analysis_type: str
    task_id: str
    status: str
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskStatus:
    """``GET /tasks/{id}``: status only, never the result."""

    task_id: str
    status: str  # pending | processing | completed | failed
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


SourceLike = Source | str | Mapping[str, str]


def coerce_source(source: SourceLike) -> Source:
    """Return a Source from a Source, a URL, an asset id or a source mapping.

    A string with an ``https://`` (or ``http://``) scheme is a URI, any other
    string without a scheme is an asset id.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise InvalidParameters("source is empty")
        if "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme not in ("https", "http"):
                raise InvalidParameters(
                    f"source URI must be an https URL, not {scheme}://"
                )
            return Source(uri=text)
        return Source(asset_id=text)
    if isinstance(source, Mapping):
        unknown = set(source) - {"uri", "asset_id"}
        if unknown:
            raise InvalidParameters(
                f"source has unknown keys: {', '.join(sorted(unknown))}"
            )
        return Source(uri=source.get("uri"), asset_id=source.get("asset_id"))
    raise InvalidParameters(
        f"source must be a Source, a URL or an asset id, not {type(source).__name__}"
    )


# -- response helpers -----------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _datetime(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp into an aware datetime (naive means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def parse_limits(value: Any) -> list[QuotaLimit]:
    """Parse a ``limits`` object into QuotaLimits, skipping malformed items."""
    items = value.get("items") if isinstance(value, Mapping) else None
    if not isinstance(items, list):
        return []
    limits = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        limits.append(
            QuotaLimit(
                type=kind if isinstance(kind, str) else None,
                used_by_request=_int(item.get("used_by_request")),
                remaining=_int(item.get("remaining")),
                limit=_int(item.get("limit")),
                reset_time=_datetime(item.get("reset_time")),
            )
        )
    return limits


def _parse_retry_after_header(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after_from(
    header: str | None,
    limits: list[QuotaLimit] | None = None,
    now: datetime | None = None,
) -> float | None:
    """Return seconds to wait: ``Retry-After`` (seconds or HTTP date) if valid,
    else the latest ``reset_time`` among exhausted quotas, else None."""
    now = now or _utcnow()
    seconds = _parse_retry_after_header(header, now)
    if seconds is not None:
        return seconds
    resets = [
        q.reset_time
        for q in limits or []
        if q.remaining == 0 and q.reset_time is not None
    ]
    if resets:
        return max(0.0, (max(resets) - now).total_seconds())
    return None


def parse_success(
    status: int,
    body: dict[str, Any],
    analysis_type: str | None,
    request_id: str | None,
) -> AnalysisResult | Accepted | TaskStatus | None:
    """Return the typed result of a 200/202 body, or None if its shape is wrong."""
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    if analysis_type is None:  # GET /tasks/{id}
        task_id, task_status = data.get("task_id"), data.get("status")
        if not isinstance(task_id, str) or not isinstance(task_status, str):
            return None
        return TaskStatus(task_id, task_status, request_id, body)
    # A 200 shaped like a 202 (a task, no analysis) is still an acceptance.
    if status == 202 or ("analysis" not in data and "task_id" in data):
        task_id, task_status = data.get("task_id"), data.get("status", "pending")
        if not isinstance(task_id, str) or not task_id:
            return None
        if not isinstance(task_status, str):
            return None
        return Accepted(analysis_type, task_id, task_status, request_id, body)
    analysis = data.get("analysis")
    if not isinstance(analysis, dict):
        return None
    entity = data.get("entity")
    return AnalysisResult(
        analysis_type=analysis_type,
        analysis=analysis,
        entity=entity if isinstance(entity, str) else None,
        request_id=request_id,
        limits=parse_limits(body.get("limits")),
        raw=body,
    )
