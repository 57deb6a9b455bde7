"""A typed ``requests`` client for the Cloudinary Analyze API (no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
