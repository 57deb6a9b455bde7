"""Typed clients for the Cloudinary Analyze API (no Django).

Usage::

    client = AnalyzeClient.from_environment()          # CLOUDINARY_URL
    result = client.google_tagging("https://example.com/cat.jpg")
    result.analysis["label_annotations"]

    async with AsyncAnalyzeClient.from_environment() as client:   # httpx
        result = await client.captioning("https://example.com/cat.jpg")

Base URL: by default ``https://api.cloudinary.com/v2/analysis/{cloud_name}``.
``base_url=`` overrides it; a ``{cloud_name}`` placeholder in it is filled in,
otherwise it is used as the complete base (``.../analysis/<cloud>``), to which
``/analyze/<type>`` and ``/tasks/<id>`` are appended.

Errors are the classes of :mod:`django_cloudinary_analysis.exceptions`; this
package is the only place that translates ``requests`` and ``httpx``
exceptions. A client does not retry unless given a :class:`RetryPolicy` (or a
call its ``retries=``): inside Celery the task layer asks
:meth:`RetryPolicy.delay` for a countdown and schedules the retry instead.

The parts: :mod:`.results` (typed results and parsing), :mod:`.retry`,
:mod:`.credentials` (redaction), ``_config``, ``_protocol`` (request
building, validation, answers) and ``_errors`` (failures as exceptions), each
written once, :mod:`.methods`
(the fifteen typed methods), and the two transports :mod:`.sync`
(``requests``) and :mod:`.aio` (``httpx``, the ``async`` extra; imported on
first use of ``AsyncAnalyzeClient``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.client._config import (
    DEBUG_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    RETRYABLE_STATUSES,
    USER_AGENT,
    parse_cloudinary_url,
)
from django_cloudinary_analysis.client.credentials import REDACTED, Secret
from django_cloudinary_analysis.client.results import (
    Accepted,
    AnalysisResult,
    QuotaLimit,
    Source,
    SourceLike,
    TaskStatus,
    coerce_source,
    parse_limits,
    retry_after_from,
)
from django_cloudinary_analysis.client.retry import RetryPolicy
from django_cloudinary_analysis.client.sync import AnalyzeClient

if TYPE_CHECKING:
    from django_cloudinary_analysis.client.aio import AsyncAnalyzeClient

__all__ = [
    "DEBUG_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "REDACTED",
    "RETRYABLE_STATUSES",
    "USER_AGENT",
    "Accepted",
    "AnalysisResult",
    "AnalyzeClient",
    "AsyncAnalyzeClient",
    "QuotaLimit",
    "RetryPolicy",
    "Secret",
    "Source",
    "SourceLike",
    "TaskStatus",
    "coerce_source",
    "parse_cloudinary_url",
    "parse_limits",
    "retry_after_from",
]


def __getattr__(name: str) -> Any:
    # httpx is optional (the ``async`` extra): import it only when asked for.
    if name == "AsyncAnalyzeClient":
        from django_cloudinary_analysis.client.aio import AsyncAnalyzeClient

        return AsyncAnalyzeClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
