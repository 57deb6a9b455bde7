"""Errors from answers: decoding a body, finding its request id, and turning a
failed status or a bad body into the app's exception (redacted, capped).

Shared by both clients through :class:`ErrorTranslation`, a mixin of
:class:`~django_cloudinary_analysis.client._protocol.BaseClient`; no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django_cloudinary_analysis.client import results as _results
from django_cloudinary_analysis.client._config import (
    MAX_DETAIL_BYTES,
    RETRYABLE_STATUSES,
)
from django_cloudinary_analysis.client.credentials import Credentials
from django_cloudinary_analysis.client.results import parse_limits, retry_after_from
from django_cloudinary_analysis.exceptions import (
    APIError,
    AuthError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    UnexpectedResponse,
    UserError,
)

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


def _decode(content: bytes) -> tuple[Any, json.JSONDecodeError | None]:
    if not content:
        return None, None
    try:
        return json.loads(content), None
    except json.JSONDecodeError as exc:
        return None, exc
    except UnicodeDecodeError:
        return None, None


def _request_id(body: Any, headers: Mapping[str, str]) -> str | None:
    if isinstance(body, dict):
        rid = body.get("request_id")
        if isinstance(rid, str):
            return rid
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("request_id"), str):
            return error["request_id"]
    return headers.get("X-Request-Id")


class ErrorTranslation:
    """Failures as exceptions; needs the client's credentials and body cap."""

    _credentials: Credentials
    max_response_bytes: int

    def _redacted_text(self, content: bytes) -> str:
        """Return a body for a log line or an error: redacted, capped."""
        size = len(content)
        body = _decode(content)[0] if size <= MAX_DETAIL_BYTES else None
        if isinstance(body, (dict, list)):
            return json.dumps(self._credentials.redact(body), ensure_ascii=False)
        text = content[:MAX_DETAIL_BYTES].decode("utf-8", "replace")
        text = self._credentials.redact(text)
        if size > MAX_DETAIL_BYTES:
            text += f"… ({size} bytes in all)"
        return text

    # -- failures without an answer (the transports translate into these) --------

    @staticmethod
    def _timed_out(what: str, kind: str) -> RequestTimeout:
        return RequestTimeout(
            f"{what} timed out ({kind} timeout)", details={"timeout": kind}
        )

    @staticmethod
    def _cut_short(what: str, exc: Exception) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"{what}: the response was cut short or corrupt ({exc.__class__.__name__})",
            retryable=True,
            details={"truncated": True},
        )

    def _network_error(self, what: str, exc: Exception) -> NetworkError:
        return NetworkError(
            self._credentials.redact(f"{what} failed: {exc.__class__.__name__}: {exc}")
        )

    def _check_declared_size(self, status: int, headers: Mapping[str, str]) -> None:
        """Refuse a body whose Content-Length is over ``max_response_bytes``."""
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise self._too_large(status, int(declared))

    def _too_large(self, status: int, size: int) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"the response body is too large ({size} bytes or more; the limit "
            f"is {self.max_response_bytes})",
            status_code=status,
            code="response_too_large",
        )

    def _response_detail(
        self, headers: Mapping[str, str], content: bytes
    ) -> dict[str, Any]:
        """The failed response, redacted and capped, for the error to keep."""
        return {
            "headers": self._credentials.redact_headers(headers),
            "body": self._redacted_text(content),
        }

    def _unexpected(
        self,
        status: int,
        content: bytes,
        decode_error: json.JSONDecodeError | None,
        request_id: str | None,
        headers: Mapping[str, str],
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
                "body_prefix": self._credentials.redact(
                    content[:200].decode("utf-8", "replace")
                ),
            },
            **self._response_detail(headers, content),
        )

    def _error(
        self,
        status: int,
        body: Any,
        content: bytes,
        decode_error: json.JSONDecodeError | None,
        request_id: str | None,
        headers: Mapping[str, str],
    ) -> APIError:
        redact = self._credentials.redact
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
                headers,
                headers.get("Content-Type"),
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
            content_type = headers.get("Content-Type") or "no content type"
            message = f"HTTP {status} without an API error body ({content_type})"
            code = None
            details = None
        if not isinstance(message, str) or not message:
            message = f"HTTP {status}"
        limits = parse_limits(body.get("limits")) if isinstance(body, dict) else []
        retry_after = retry_after_from(
            headers.get("Retry-After"),
            limits if cls is RateLimitError else None,
            _results._utcnow(),
        )
        kwargs: dict[str, Any] = {
            "status_code": status,
            "category": category or _default_category(cls),
            "code": code,
            "details": redact(details),
            "request_id": request_id,
            "retry_after": retry_after,
            **self._response_detail(headers, content),
        }
        if cls is RateLimitError:
            exc: APIError = RateLimitError(redact(message), limits=limits, **kwargs)
        else:
            exc = cls(redact(message), **kwargs)
        if exc.retryable and status not in RETRYABLE_STATUSES:
            exc.retryable = False  # e.g. 501, 505: retrying cannot help
        return exc
