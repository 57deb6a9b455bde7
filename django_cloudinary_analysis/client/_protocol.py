"""What both clients share: configuration, request building and validation,
response parsing, retry decisions and debug logging (the error translation
is in ``_errors``, a mixin of :class:`BaseClient`).

Everything here is free of I/O; :mod:`.sync` and :mod:`.aio` only move bytes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from django_cloudinary_analysis import analysis_types
from django_cloudinary_analysis.client._config import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    build_base_url,
    debug_from_environment,
    normalise_timeout,
    parse_cloudinary_url,
)
from django_cloudinary_analysis.client._errors import (
    ErrorTranslation,
    _decode,
    _request_id,
)
from django_cloudinary_analysis.client.credentials import Credentials, Secret, protect
from django_cloudinary_analysis.client.results import (
    Accepted,
    AnalysisResult,
    SourceLike,
    TaskStatus,
    coerce_source,
    parse_success,
)
from django_cloudinary_analysis.client.retry import RetryPolicy
from django_cloudinary_analysis.exceptions import (
    APIError,
    ConfigurationError,
    InvalidParameters,
)

logger = logging.getLogger("django_cloudinary_analysis.client")
#: Request and response bodies, when a client's ``debug`` switch is on.
http_logger = logging.getLogger("django_cloudinary_analysis.client.http")

#: ``retries=`` on a call: a policy, False for none, None for the client's.
Retries = RetryPolicy | Literal[False] | None
Result = AnalysisResult | Accepted | TaskStatus
_C = TypeVar("_C", bound="BaseClient")


class BaseClient(ErrorTranslation):
    """Configuration and the transport-free half of a call."""

    def __init__(
        self,
        cloud_name: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        oauth_token: str | None = None,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        debug: bool | None = None,
    ) -> None:
        # The credentials live in one object with a redacted repr, and no
        # frame keeps them in a plain local: Django's error pages print locals.
        api_key, api_secret = Secret.of(api_key), Secret.of(api_secret)
        oauth_token = Secret.of(oauth_token)
        credentials = Credentials(api_key, api_secret, oauth_token)
        del api_key, api_secret, oauth_token
        self._credentials = credentials
        if not isinstance(cloud_name, str) or not cloud_name.strip():
            raise ConfigurationError("cloud_name is missing")
        self.cloud_name = cloud_name.strip()
        self.api_key = credentials.api_key
        self.auth_scheme = credentials.scheme
        self.base_url = build_base_url(base_url, self.cloud_name)
        self.timeout = normalise_timeout(timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a RetryPolicy or None")
        self.retry = retry
        self.user_agent = user_agent or USER_AGENT
        self.max_response_bytes = max_response_bytes
        #: Log request and response bodies (redacted) on ``…client.http``.
        self.debug = debug_from_environment() if debug is None else bool(debug)
        if self.debug and http_logger.level == logging.NOTSET:
            http_logger.setLevel(logging.DEBUG)
        self._headers = {
            "User-Agent": self.user_agent,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    # -- constructors -----------------------------------------------------------

    @classmethod
    def from_url(cls: type[_C], url: str, **kwargs: Any) -> _C:
        """Build a client from ``cloudinary://API_KEY:API_SECRET@CLOUD_NAME``.

        Key and secret are URL-decoded. Query options are tolerated;
        ``oauth_token`` and ``upload_prefix`` (another API host, as
        pycloudinary uses it) are honoured. Keyword arguments win.
        """
        url = Secret.of(url)
        protect(kwargs)
        for key, value in parse_cloudinary_url(url).items():
            kwargs.setdefault(key, value)
        del url
        return cls(kwargs.pop("cloud_name"), **kwargs)

    @classmethod
    def from_environment(
        cls: type[_C], environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> _C:
        """Build a client from ``CLOUDINARY_URL`` (or the CLOUDINARY_CLOUD_NAME,
        CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET variables)."""
        protect(kwargs)
        env = {
            name: Secret.of((os.environ if environ is None else environ).get(name))
            for name in (
                "CLOUDINARY_URL",
                "CLOUDINARY_CLOUD_NAME",
                "CLOUDINARY_API_KEY",
                "CLOUDINARY_API_SECRET",
                "CLOUDINARY_OAUTH_TOKEN",
            )
        }
        del environ
        if (env["CLOUDINARY_URL"] or "").strip():
            return cls.from_url(env["CLOUDINARY_URL"], **kwargs)
        cloud_name = str(env["CLOUDINARY_CLOUD_NAME"] or "").strip()
        if not cloud_name:
            raise ConfigurationError(
                "CLOUDINARY_URL is not set "
                "(expected cloudinary://API_KEY:API_SECRET@CLOUD_NAME)"
            )
        kwargs.setdefault("api_key", env["CLOUDINARY_API_KEY"] or None)
        kwargs.setdefault("api_secret", env["CLOUDINARY_API_SECRET"] or None)
        kwargs.setdefault("oauth_token", env["CLOUDINARY_OAUTH_TOKEN"] or None)
        return cls(cloud_name, **kwargs)

    def __repr__(self) -> str:
        # getattr: a half-built client shows up in tracebacks of __init__.
        return (
            f"<{self.__class__.__name__} "
            f"cloud_name={getattr(self, 'cloud_name', None)!r} "
            f"base_url={getattr(self, 'base_url', None)!r} "
            f"auth={getattr(self, 'auth_scheme', None)}>"
        )

    # -- building requests ------------------------------------------------------

    def request_body(
        self,
        analysis_type: str,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Validate the arguments and return the JSON body of the request.

        ``notification_url`` is sent as given, with or without ``async_``
        (the official SDK does the same): with ``async_`` the result comes
        only there; on a synchronous call the answer carries the result and
        the API may also notify that URL.
        """
        entry = analysis_types.get(analysis_type)
        cleaned = analysis_types.validate_params(analysis_type, params)
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
            if not isinstance(notification_url, str) or urlsplit(
                notification_url
            ).scheme not in ("http", "https"):
                raise InvalidParameters("notification_url must be an http(s) URL")
            body["notification_url"] = notification_url
        return body

    def _analyze_request(
        self,
        analysis_type: str,
        source: SourceLike,
        async_: bool,
        notification_url: str | None,
        params: dict[str, Any],
    ) -> tuple[str, bytes]:
        body = self.request_body(
            analysis_type,
            source,
            async_=async_,
            notification_url=notification_url,
            **params,
        )
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return f"/analyze/{analysis_type}", data

    @staticmethod
    def _task_path(task_id: str) -> str:
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidParameters("task_id is empty")
        return f"/tasks/{quote(task_id.strip(), safe='')}"

    def _policy(self, retries: Retries) -> RetryPolicy | None:
        if retries is None:
            return self.retry
        if retries is False:
            return None
        if not isinstance(retries, RetryPolicy):
            raise InvalidParameters("retries must be a RetryPolicy, False or None")
        return retries

    def _retry_wait(
        self,
        policy: RetryPolicy | None,
        attempt: int,
        exc: APIError,
        started: float,
        method: str,
        path: str,
    ) -> float | None:
        """Return how long to wait before the next attempt, or None to raise."""
        if policy is None:
            return None
        wait = policy.next_delay(attempt, exc, policy.clock() - started)
        if wait is not None:
            logger.info(
                "Retrying %s %s in %.2f s after attempt %d: %s",
                method,
                path,
                wait,
                attempt,
                exc.code,
                extra={"request_id": exc.request_id, "attempt": attempt},
            )
        return wait

    # -- reading answers --------------------------------------------------------

    def _log_request(self, method: str, path: str, data: bytes | None) -> None:
        http_logger.debug(
            "request %s %s headers=%s body=%s",
            method,
            self.base_url + path,
            self._credentials.redact_headers({**self._headers, "Authorization": "x"}),
            self._redacted_text(data or b""),
        )

    def _answer(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        analysis_type: str | None,
        started: float,
    ) -> Result:
        """Turn a status, headers and body into a typed result, or raise."""
        body, decode_error = _decode(content)
        request_id = _request_id(body, headers)
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
        if self.debug:
            http_logger.debug(
                "response %s %s -> %s headers=%s body=%s",
                method,
                path,
                status,
                self._credentials.redact_headers(headers),
                self._redacted_text(content),
            )
        if status == 200 or status == 202:
            if isinstance(body, dict):
                parsed = parse_success(status, body, analysis_type, request_id)
                if parsed is not None:
                    return parsed
            raise self._unexpected(status, content, decode_error, request_id, headers)
        raise self._error(status, body, content, decode_error, request_id, headers)
