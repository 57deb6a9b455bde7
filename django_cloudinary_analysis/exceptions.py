"""One exception hierarchy for the client, the backends and the pipeline.

Nothing here imports Django: the client is usable on its own. Each class
carries class-level defaults (``retryable``, ``status``) that the task layer
reads to decide between a scheduled retry and a final ``failed`` status.
"""

from __future__ import annotations

from typing import Any


class AnalysisError(Exception):
    """Base class of every error this package raises."""

    retryable: bool = False
    #: The Analysis status a pipeline failure of this kind ends in.
    status: str = "failed"
    default_code: str = "error"

    def __init__(
        self,
        message: str = "",
        *,
        status_code: int | None = None,
        category: str | None = None,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.category = category
        self.code = code or self.default_code
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after
        #: The failed response's headers and body (redacted, size-capped), as
        #: the official SDK's errors keep them; None when there was no answer.
        self.headers = headers
        self.body = body

    def __str__(self) -> str:
        parts = [self.message or self.__class__.__name__]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code}")
            parts[-1] += f", {self.code})" if self.code else ")"
        return " ".join(parts)


class ConfigurationError(AnalysisError, ValueError):
    """Credentials or settings are missing or malformed."""

    default_code = "configuration"


class InvalidParameters(AnalysisError, ValueError):
    """A request was refused before sending: bad source or params."""

    default_code = "invalid_parameters"


class UnknownAnalysisType(InvalidParameters, KeyError):
    """The analysis type is not one of the fifteen the API knows."""

    default_code = "unknown_analysis_type"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class UnsupportedAnalysis(AnalysisError):
    """The configured backend cannot run this analysis type."""

    status = "skipped"
    default_code = "unsupported"


class SourceError(AnalysisError):
    """The file cannot be sent: missing, unreadable, not an image, no URL."""

    status = "skipped"
    default_code = "source_unavailable"


# -- errors from the API --------------------------------------------------------


class APIError(AnalysisError):
    """The API answered with an error (or not at all)."""

    default_code = "api_error"


class UserError(APIError):
    """400: the request was malformed (``user_error``)."""

    default_code = "user_error"


class AuthError(APIError):
    """401/403: bad credentials or an add-on that is not subscribed."""

    default_code = "auth_error"


class NotFoundError(APIError):
    """404: the resource (asset, task) does not exist."""

    default_code = "not_found"


class RateLimitError(APIError):
    """429: a request rate or an add-on quota is exhausted."""

    retryable = True
    default_code = "rate_limit_error"

    def __init__(self, message: str = "", *, limits: Any = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.limits = limits or []


class ServerError(APIError):
    """5xx: the API failed; worth retrying."""

    retryable = True
    default_code = "server_error"


class RequestTimeout(APIError):
    """The API did not answer in time."""

    retryable = True
    default_code = "timeout"


class NetworkError(APIError):
    """The connection failed or was reset."""

    retryable = True
    default_code = "connection_error"


class UnexpectedResponse(APIError):
    """The answer was not the JSON the contract describes (HTML 502, truncated).

    Retryable when the status says the server side failed (5xx) or the body
    was cut short; a 2xx with a body of the wrong shape is not.
    """

    default_code = "unexpected_response"

    def __init__(self, message: str = "", *, retryable: bool = False, **kw: Any):
        super().__init__(message, **kw)
        self.retryable = retryable


# -- the app's own refusals (webhooks, review, appeals, Cloudinary sync) ------


class InvalidSignature(AnalysisError):
    """A notification's signature or timestamp does not check out.

    ``code`` names the reason (``missing_headers``, ``bad_timestamp``,
    ``stale``, ``future``, ``bad_signature``, ``mismatch``); the text never
    contains the signature or the secret.
    """

    default_code = "invalid_signature"


class UndoRefused(AnalysisError):
    """The decision cannot be undone (too late, not yours, or superseded)."""


class AppealError(AnalysisError):
    """An appeal the app refuses, with a reason fit for the uploader."""

    def __init__(self, message: Any, code: str) -> None:
        super().__init__(str(message), code=code)
        self.message = message  # kept lazy: translated where it is shown


class SyncError(AnalysisError):
    """A failed Cloudinary call, translated from pycloudinary's exceptions."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
