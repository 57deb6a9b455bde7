"""A typed ``requests`` client for the Cloudinary Analyze API (no Django).

Usage::

    client = AnalyzeClient.from_environment()          # CLOUDINARY_URL
    result = client.google_tagging("https://example.com/cat.jpg")
    result.analysis["label_annotations"]

Base URL: by default ``https://api.cloudinary.com/v2/analysis/{cloud_name}``.
``base_url=`` overrides it; a ``{cloud_name}`` placeholder in it is filled in,
otherwise it is used as the complete base (``.../analysis/<cloud>``), to which
``/analyze/<type>`` and ``/tasks/<id>`` are appended.

Errors are the classes of :mod:`django_cloudinary_analysis.exceptions`; this is
the only module that translates ``requests`` exceptions. The client does not
retry unless given a :class:`RetryPolicy`: inside Celery the task layer asks
:meth:`RetryPolicy.delay` for a countdown and schedules the retry instead.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests

from django_cloudinary_analysis import __version__, analyses
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    APIError,
    AuthError,
    ConfigurationError,
    InvalidParameters,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    UnexpectedResponse,
    UserError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "RETRYABLE_STATUSES",
    "USER_AGENT",
    "Accepted",
    "AnalysisResult",
    "AnalyzeClient",
    "QuotaLimit",
    "RetryPolicy",
    "Source",
    "SourceLike",
    "TaskStatus",
    "coerce_source",
    "parse_cloudinary_url",
    "parse_limits",
    "retry_after_from",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.cloudinary.com/v2/analysis/{cloud_name}"
#: Answers are a few kilobytes; anything this large is a fault, not a result.
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
#: HTTP statuses worth retrying; every other error status is final.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"django-cloudinary-analysis/{__version__}"
REDACTED = "[redacted]"


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


# -- retries --------------------------------------------------------------------


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, APIError) and bool(error.retryable)


@dataclass(frozen=True)
class RetryPolicy:
    """In-client retries for standalone use: bounded, exponential, jittered.

    ``max_attempts`` counts every attempt including the first. The wait
    before attempt ``n + 1`` is ``min(cap, base * 2 ** (n - 1))``, with
    "equal jitter" (a uniform draw from the upper half) when ``jitter`` is
    on; an error's ``retry_after`` (Retry-After header or quota reset) that
    asks for longer wins. A server-requested wait longer than
    ``max_wait`` (default: ``cap``) is not slept in-process: the error is
    raised with its ``retry_after`` for the caller to reschedule.
    """

    max_attempts: int = 3
    base: float = 0.5
    cap: float = 30.0
    jitter: bool = True
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    max_wait: float | None = None
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ConfigurationError("RetryPolicy.base and cap must not be negative")

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """Return whether ``error`` is worth another attempt at all."""
        return _is_retryable(error)

    def backoff(self, attempt: int) -> float:
        """Return the backoff after failed attempt ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        # 2 ** 1000 overflows float maths: stop growing once past the cap.
        raw = self.cap if exponent > 62 else self.base * (2**exponent)
        ceiling = min(self.cap, raw)
        if not self.jitter:
            return ceiling
        return ceiling / 2 + self.rand() * ceiling / 2

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the seconds to wait after failed attempt ``attempt``.

        That is the computed backoff, or the error's ``retry_after`` when it
        asks for longer (a quota reset already past does not mean "hammer
        now"). Nothing here sleeps, so the task layer can use it for Celery
        countdowns.
        """
        backoff = self.backoff(attempt)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(float(retry_after), backoff)
        return backoff

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """Return the in-client wait before another attempt, or None to give up."""
        if attempt >= self.max_attempts or not _is_retryable(error):
            return None
        wait = self.delay(attempt, error)
        limit = self.cap if self.max_wait is None else self.max_wait
        if wait > limit:
            return None
        return wait


# -- the client -----------------------------------------------------------------


class _HeaderAuth(requests.auth.AuthBase):
    """Set a precomputed Authorization header; its value never shows in repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {REDACTED}>"

    def __eq__(self, other: object) -> bool:  # requests compares auth objects
        return isinstance(other, _HeaderAuth) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _check_credential(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} is missing")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        # Never echo the value: it may be the secret.
        raise ConfigurationError(f"{name} contains whitespace or control characters")


def _normalise_timeout(timeout: Any) -> float | tuple[float, float]:
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        return float(timeout)
    if isinstance(timeout, (tuple, list)) and len(timeout) == 2:
        connect, read = timeout
        for part in (connect, read):
            if (
                isinstance(part, bool)
                or not isinstance(part, (int, float))
                or part <= 0
            ):
                raise ConfigurationError("timeout parts must be positive numbers")
        return (float(connect), float(read))
    raise ConfigurationError("timeout must be seconds or a (connect, read) pair")


_CATEGORY_CLASSES: dict[str, type[APIError]] = {
    "user_error": UserError,
    "auth_error": AuthError,
    "rate_limit_error": RateLimitError,
    "server_error": ServerError,
}


def _error_class(status: int, category: str | None) -> type[APIError]:
    if status == 400:
        return UserError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    return _CATEGORY_CLASSES.get(category or "", APIError)


def _default_category(cls: type[APIError]) -> str | None:
    for category, klass in _CATEGORY_CLASSES.items():
        if klass is cls:
            return category
    if cls is NotFoundError:
        return "user_error"
    return None


class AnalyzeClient:
    """Talk to the Cloudinary Analyze API: 15 analyses and task status."""

    def __init__(
        self,
        cloud_name: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        oauth_token: str | None = None,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if not isinstance(cloud_name, str) or not cloud_name.strip():
            raise ConfigurationError("cloud_name is missing")
        self.cloud_name = cloud_name.strip()
        self.api_key = api_key or None
        # A token wins over key/secret: a site may keep the secret around for
        # webhook signatures while authenticating API calls with OAuth.
        if oauth_token:
            _check_credential("oauth_token", oauth_token)
            self.auth_scheme = "bearer"
            header = f"Bearer {oauth_token}"
            self._secrets: tuple[str, ...] = tuple(
                s for s in (oauth_token, api_secret) if s
            )
        else:
            missing = [
                name
                for name, value in (("api_key", api_key), ("api_secret", api_secret))
                if not value
            ]
            if missing:
                raise ConfigurationError(
                    "credentials are missing: "
                    + " and ".join(missing)
                    + " (or give an oauth_token)",
                    details={"missing": missing},
                )
            assert api_key is not None and api_secret is not None
            _check_credential("api_key", api_key)
            _check_credential("api_secret", api_secret)
            if ":" in api_key:
                raise ConfigurationError("api_key must not contain ':'")
            self.auth_scheme = "basic"
            token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
            header = f"Basic {token}"
            self._secrets = (api_secret, token)
        self._auth = _HeaderAuth(header)
        self.base_url = self._build_base_url(base_url)
        self.timeout = _normalise_timeout(timeout)
        self.retry = retry
        self.user_agent = user_agent or USER_AGENT
        self.max_response_bytes = max_response_bytes
        self._owns_session = session is None
        self.session = session if session is not None else self._new_session()
        self._headers = {
            "User-Agent": self.user_agent,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def _new_session(self) -> requests.Session:
        """Return a session that reads proxy and CA settings from the environment
        once, for the API host, instead of on every request.

        ``requests`` re-reads every environment variable per request when
        ``trust_env`` is on (about a quarter of a loopback call's CPU time);
        a worker's environment does not change, so resolve it up front.
        """
        session = requests.Session()
        settings = session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        session.trust_env = False
        session.proxies.update(settings.get("proxies") or {})
        session.verify = settings.get("verify", True)
        if settings.get("cert"):
            session.cert = settings["cert"]
        return session

    def _build_base_url(self, base_url: str | None) -> str:
        template = base_url or DEFAULT_BASE_URL
        if "{cloud_name}" in template:
            template = template.replace("{cloud_name}", quote(self.cloud_name, safe=""))
        parts = urlsplit(template)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("base_url must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ConfigurationError("base_url must not contain credentials")
        return template.rstrip("/")

    # -- constructors -----------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AnalyzeClient:
        """Build a client from ``cloudinary://API_KEY:API_SECRET@CLOUD_NAME``.

        Key and secret are URL-decoded. Query options are tolerated;
        ``oauth_token`` and ``upload_prefix`` (another API host, as
        pycloudinary uses it) are honoured. Keyword arguments win.
        """
        options = parse_cloudinary_url(url)
        for key, value in options.items():
            kwargs.setdefault(key, value)
        cloud_name = kwargs.pop("cloud_name")
        return cls(cloud_name, **kwargs)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> AnalyzeClient:
        """Build a client from ``CLOUDINARY_URL`` (or the CLOUDINARY_CLOUD_NAME,
        CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET variables)."""
        env = os.environ if environ is None else environ
        url = env.get("CLOUDINARY_URL", "").strip()
        if url:
            return cls.from_url(url, **kwargs)
        cloud_name = env.get("CLOUDINARY_CLOUD_NAME", "").strip()
        if not cloud_name:
            raise ConfigurationError(
                "CLOUDINARY_URL is not set "
                "(expected cloudinary://API_KEY:API_SECRET@CLOUD_NAME)"
            )
        kwargs.setdefault("api_key", env.get("CLOUDINARY_API_KEY") or None)
        kwargs.setdefault("api_secret", env.get("CLOUDINARY_API_SECRET") or None)
        kwargs.setdefault("oauth_token", env.get("CLOUDINARY_OAUTH_TOKEN") or None)
        return cls(cloud_name, **kwargs)

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> AnalyzeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} cloud_name={self.cloud_name!r} "
            f"base_url={self.base_url!r} auth={self.auth_scheme}>"
        )

    # -- requests ---------------------------------------------------------------

    def request_body(
        self,
        analysis_type: str,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        **extras: Any,
    ) -> dict[str, Any]:
        """Validate the arguments and return the JSON body of the request."""
        entry = analyses.get(analysis_type)
        cleaned = analyses.validate_extras(analysis_type, extras)
        body: dict[str, Any] = {"source": coerce_source(source).as_json()}
        body.update(cleaned)
        if async_:
            if not entry.async_allowed:
                raise InvalidParameters(
                    f"{analysis_type} cannot run asynchronously",
                    details={"analysis_type": analysis_type},
                )
            body["async"] = True
        if notification_url is not None:
            if not async_:
                raise InvalidParameters("notification_url needs async_=True")
            scheme = urlsplit(notification_url).scheme
            if scheme not in ("http", "https"):
                raise InvalidParameters("notification_url must be an http(s) URL")
            body["notification_url"] = notification_url
        return body

    def analyze(
        self,
        analysis_type: str,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        **extras: Any,
    ) -> AnalysisResult | Accepted:
        """Run ``analysis_type`` on ``source``; extras are validated first."""
        body = self.request_body(
            analysis_type,
            source,
            async_=async_,
            notification_url=notification_url,
            **extras,
        )
        result = self._call("POST", f"/analyze/{analysis_type}", body, analysis_type)
        assert not isinstance(result, TaskStatus)
        return result

    def get_task_status(self, task_id: str) -> TaskStatus:
        """Return the status of an async analysis (never its result)."""
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidParameters("task_id is empty")
        path = f"/tasks/{quote(task_id.strip(), safe='')}"
        result = self._call("GET", path, None, None)
        assert isinstance(result, TaskStatus)
        return result

    # -- one method per analysis type ------------------------------------------

    def ai_vision_general(
        self,
        source: SourceLike,
        *,
        prompts: list[str] | tuple[str, ...],
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Ask 1–10 open questions about the image."""
        return self.analyze(
            "ai_vision_general",
            source,
            async_=async_,
            notification_url=notification_url,
            prompts=prompts,
        )

    def ai_vision_moderation(
        self,
        source: SourceLike,
        *,
        rejection_questions: list[str] | tuple[str, ...],
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Ask 1–10 yes/no questions whose "yes" rejects the image."""
        return self.analyze(
            "ai_vision_moderation",
            source,
            async_=async_,
            notification_url=notification_url,
            rejection_questions=rejection_questions,
        )

    def ai_vision_tagging(
        self,
        source: SourceLike,
        *,
        tag_definitions: list[Mapping[str, str]] | tuple[Mapping[str, str], ...],
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Apply those of 1–10 ``{name, description}`` tags that match."""
        return self.analyze(
            "ai_vision_tagging",
            source,
            async_=async_,
            notification_url=notification_url,
            tag_definitions=tag_definitions,
        )

    def captioning(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Describe the image in one sentence."""
        return self.analyze(
            "captioning", source, async_=async_, notification_url=notification_url
        )

    def cld_fashion(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect clothing and accessories."""
        return self.analyze(
            "cld_fashion", source, async_=async_, notification_url=notification_url
        )

    def cld_text(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect text regions."""
        return self.analyze(
            "cld_text", source, async_=async_, notification_url=notification_url
        )

    def coco(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect the 80 COCO object classes."""
        return self.analyze(
            "coco", source, async_=async_, notification_url=notification_url
        )

    def google_logo_detection(self, source: SourceLike) -> AnalysisResult:
        """Detect brand logos (synchronous only)."""
        result = self.analyze("google_logo_detection", source)
        assert isinstance(result, AnalysisResult)
        return result

    def google_tagging(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Tag the image with Google's labels."""
        return self.analyze(
            "google_tagging", source, async_=async_, notification_url=notification_url
        )

    def human_anatomy(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect human body parts."""
        return self.analyze(
            "human_anatomy", source, async_=async_, notification_url=notification_url
        )

    def image_quality(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Rate the image's technical quality."""
        return self.analyze(
            "image_quality", source, async_=async_, notification_url=notification_url
        )

    def lvis(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect objects from the LVIS vocabulary."""
        return self.analyze(
            "lvis", source, async_=async_, notification_url=notification_url
        )

    def shop_classifier(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Classify the product category for shops."""
        return self.analyze(
            "shop_classifier",
            source,
            async_=async_,
            notification_url=notification_url,
        )

    def unidet(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect objects with the unified (UniDet) model."""
        return self.analyze(
            "unidet", source, async_=async_, notification_url=notification_url
        )

    def watermark_detection(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Detect watermarks, banners and overlaid logos."""
        return self.analyze(
            "watermark_detection",
            source,
            async_=async_,
            notification_url=notification_url,
        )

    # -- transport --------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        analysis_type: str | None,
    ) -> AnalysisResult | Accepted | TaskStatus:
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        attempt = 1
        while True:
            try:
                return self._send(method, path, data, analysis_type)
            except APIError as exc:
                wait = (
                    None if self.retry is None else self.retry.next_delay(attempt, exc)
                )
                if wait is None:
                    raise
                logger.info(
                    "Retrying %s %s in %.2f s after attempt %d: %s",
                    method,
                    path,
                    wait,
                    attempt,
                    exc.code,
                    extra={"request_id": exc.request_id, "attempt": attempt},
                )
                self.retry.sleep(wait)  # type: ignore[union-attr]
                attempt += 1

    def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        analysis_type: str | None,
    ) -> AnalysisResult | Accepted | TaskStatus:
        started = time.perf_counter()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                data=data,
                headers=self._headers,
                auth=self._auth,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
            status = response.status_code
            content = self._read_capped(response)
        except requests.exceptions.RequestException as exc:
            raise self._translate(exc, method, path) from None
        body, decode_error = self._decode(content)
        request_id = self._request_id(body, response)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.1f ms (request_id=%s)",
                method,
                path,
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
                extra={"request_id": request_id, "status_code": status},
            )
        if status == 200 or status == 202:
            if isinstance(body, dict):
                parsed = self._parse_success(status, body, analysis_type, request_id)
                if parsed is not None:
                    return parsed
            raise self._unexpected(status, content, decode_error, request_id)
        raise self._error(status, body, content, decode_error, request_id, response)

    def _read_capped(self, response: requests.Response) -> bytes:
        """Read the body, refusing one larger than ``max_response_bytes``."""
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            response.close()
            raise self._too_large(response.status_code, int(declared))
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > limit:
                response.close()
                raise self._too_large(response.status_code, size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, status: int, size: int) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"the response body is too large ({size} bytes or more; the limit "
            f"is {self.max_response_bytes})",
            status_code=status,
            code="response_too_large",
        )

    @staticmethod
    def _decode(content: bytes) -> tuple[Any, json.JSONDecodeError | None]:
        if not content:
            return None, None
        try:
            return json.loads(content), None
        except json.JSONDecodeError as exc:
            return None, exc
        except UnicodeDecodeError:
            return None, None

    @staticmethod
    def _request_id(body: Any, response: requests.Response) -> str | None:
        if isinstance(body, dict):
            rid = body.get("request_id")
            if isinstance(rid, str):
                return rid
            error = body.get("error")
            if isinstance(error, dict) and isinstance(error.get("request_id"), str):
                return error["request_id"]
        return response.headers.get("X-Request-Id")

    @staticmethod
    def _parse_success(
        status: int,
        body: dict[str, Any],
        analysis_type: str | None,
        request_id: str | None,
    ) -> AnalysisResult | Accepted | TaskStatus | None:
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

    # -- errors -----------------------------------------------------------------

    def _redact(self, value: Any) -> Any:
        """Replace any credential inside ``value`` (str, list or dict)."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret and secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {self._redact(k): self._redact(v) for k, v in value.items()}
        return value

    def _translate(
        self, exc: requests.exceptions.RequestException, method: str, path: str
    ) -> AnalysisError:
        what = f"{method} {path}"
        if isinstance(exc, requests.exceptions.Timeout):
            kind = (
                "connect"
                if isinstance(exc, requests.exceptions.ConnectTimeout)
                else "read"
            )
            return RequestTimeout(
                f"{what} timed out ({kind} timeout)", details={"timeout": kind}
            )
        if isinstance(exc, requests.exceptions.InvalidHeader):
            # Its text quotes the header value, which may be the credential.
            return UnexpectedResponse(f"{what} failed: invalid request header")
        if isinstance(
            exc,
            (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
        ):
            return UnexpectedResponse(
                f"{what}: the response was cut short or corrupt "
                f"({exc.__class__.__name__})",
                retryable=True,
                details={"truncated": True},
            )
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
            ),
        ):
            return ConfigurationError(f"{what}: the API URL is invalid")
        return NetworkError(
            self._redact(f"{what} failed: {exc.__class__.__name__}: {exc}")
        )

    def _unexpected(
        self,
        status: int,
        content: bytes,
        decode_error: json.JSONDecodeError | None,
        request_id: str | None,
        content_type: str | None = None,
    ) -> UnexpectedResponse:
        truncated = decode_error is not None and decode_error.pos >= len(
            decode_error.doc.rstrip()
        )
        if decode_error is not None:
            problem = "a truncated JSON body" if truncated else "a non-JSON body"
        elif not content:
            problem = "an empty body"
        else:
            problem = "a body of an unexpected shape"
        if content_type:
            problem += f" ({content_type})"
        return UnexpectedResponse(
            f"HTTP {status} with {problem}",
            retryable=truncated or status in RETRYABLE_STATUSES,
            status_code=status,
            request_id=request_id,
            details={
                "truncated": truncated,
                "body_prefix": self._redact(content[:200].decode("utf-8", "replace")),
            },
        )

    def _error(
        self,
        status: int,
        body: Any,
        content: bytes,
        decode_error: json.JSONDecodeError | None,
        request_id: str | None,
        response: requests.Response,
    ) -> APIError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = None
        # Bodies that are not the API's JSON: proxies answer 5xx with HTML, and
        # odd statuses (3xx, other 2xx) mean something in between misbehaved.
        if error is None and (status >= 500 or status < 400):
            return self._unexpected(
                status,
                content,
                decode_error,
                request_id,
                response.headers.get("Content-Type"),
            )
        category = error.get("category") if error else None
        if not isinstance(category, str):
            category = None
        cls = _error_class(status, category)
        if error is not None:
            message = error.get("message")
            code = error.get("code") if isinstance(error.get("code"), str) else None
            details = error.get("details")
        else:
            content_type = response.headers.get("Content-Type") or "no content type"
            message = f"HTTP {status} without an API error body ({content_type})"
            code = None
            details = None
        if not isinstance(message, str) or not message:
            message = f"HTTP {status}"
        limits = parse_limits(body.get("limits")) if isinstance(body, dict) else []
        retry_after = retry_after_from(
            response.headers.get("Retry-After"),
            limits if cls is RateLimitError else None,
            _utcnow(),
        )
        kwargs: dict[str, Any] = {
            "status_code": status,
            "category": category or _default_category(cls),
            "code": code,
            "details": self._redact(details),
            "request_id": request_id,
            "retry_after": retry_after,
        }
        if cls is RateLimitError:
            exc: APIError = RateLimitError(
                self._redact(message), limits=limits, **kwargs
            )
        else:
            exc = cls(self._redact(message), **kwargs)
        if exc.retryable and status not in RETRYABLE_STATUSES:
            exc.retryable = False  # e.g. 501, 505: retrying cannot help
        return exc


def parse_cloudinary_url(url: str) -> dict[str, Any]:
    """Split ``cloudinary://KEY:SECRET@CLOUD?options`` into client arguments.

    Error messages name the missing part and never repeat the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("CLOUDINARY_URL is empty")
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() != "cloudinary":
        raise ConfigurationError(
            "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME"
        )
    rest, _, query = rest.partition("?")
    rest = rest.split("#", 1)[0]
    netloc = rest.split("/", 1)[0]
    userinfo, at, host = netloc.rpartition("@")
    cloud_name = unquote(host)
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        options[key] = value
    oauth_token = options.get("oauth_token")
    missing = []
    if not cloud_name:
        missing.append("cloud name")
    api_key = api_secret = None
    if at:
        key, colon, secret = userinfo.partition(":")
        api_key = unquote(key) or None
        api_secret = unquote(secret) if colon else None
    if not oauth_token:
        if not api_key:
            missing.append("API key")
        if not api_secret:
            missing.append("API secret")
    if missing:
        raise ConfigurationError(
            "CLOUDINARY_URL lacks the "
            + ", ".join(missing)
            + " (expected cloudinary://API_KEY:API_SECRET@CLOUD_NAME)",
            details={"missing": missing},
        )
    result: dict[str, Any] = {"cloud_name": cloud_name}
    if api_key:
        result["api_key"] = api_key
    if api_secret:
        result["api_secret"] = api_secret
    if oauth_token:
        result["oauth_token"] = oauth_token
    prefix = options.get("upload_prefix")
    if prefix:
        result["base_url"] = prefix.rstrip("/") + "/v2/analysis/{cloud_name}"
    return result
