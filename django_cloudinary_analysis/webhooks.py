"""The notification endpoint: check Cloudinary's signature, apply the result.

Cloudinary POSTs async results to the ``notification_url`` sent with each
request, and every Console-wide webhook hits the same URL with other
notification types. The signature is the hex digest of SHA-1 or SHA-256 over
``raw_body + timestamp + api_secret`` (a plain hash, not an HMAC), sent in
``X-Cld-Signature`` with the Unix time in ``X-Cld-Timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from django_cloudinary_analysis import payloads, services
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import (
    InvalidSignature,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cld-Signature"
TIMESTAMP_HEADER = "X-Cld-Timestamp"

#: Digest algorithms a site may list in ``WEBHOOK_ALGORITHMS``.
SUPPORTED_ALGORITHMS = frozenset({"sha1", "sha256", "sha512"})

# Longer than any Unix time for millennia; keeps int() off huge inputs.
_MAX_TIMESTAMP_DIGITS = 12


class _Secret:
    """The API secret, kept out of every repr (and so of tracebacks' locals).

    Django's debug page and error mails list each frame's local variables;
    ``sensitive_variables`` hides them only when DEBUG is off, so the secret
    itself is never a local variable of the view or the check.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def __repr__(self) -> str:
        return "<secret>"

    def __bool__(self) -> bool:
        return bool(self._value)

    def digest(self, name: str, body: bytes, stamp: bytes) -> str:
        """Return the hex digest of ``body + stamp + secret`` with ``name``."""
        digest = hashlib.new(name)
        digest.update(body)
        digest.update(stamp)
        digest.update(self._value.encode("utf-8"))
        return digest.hexdigest()


@sensitive_variables("secret")
def verify_signature(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: str | _Secret,
    *,
    max_age: float,
    max_future: float,
    algorithms: Iterable[str] = ("sha1", "sha256"),
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless ``signature`` signs ``body`` + ``timestamp``."""
    if not isinstance(secret, _Secret):
        secret = _Secret(secret)
    if not secret:
        # Hashing with an empty secret would accept anyone's digest.
        raise ValueError("no API secret to verify notifications with")
    names = [name.lower() for name in algorithms]
    unknown = sorted(set(names) - SUPPORTED_ALGORITHMS)
    if unknown or not names:
        raise ValueError(
            f"unsupported webhook algorithms {unknown or names!r}; "
            f"use some of {sorted(SUPPORTED_ALGORITHMS)}"
        )
    if not timestamp or not signature:
        raise InvalidSignature(
            f"{SIGNATURE_HEADER} or {TIMESTAMP_HEADER} is missing",
            code="missing_headers",
        )
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > _MAX_TIMESTAMP_DIGITS:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is not a Unix time", code="bad_timestamp"
        )
    age = (time.time() if now is None else now) - int(stamp)
    if age > max_age:
        raise InvalidSignature(
            f"the notification is {age:.0f} s old (max {max_age} s)", code="stale"
        )
    if -age > max_future:
        raise InvalidSignature(
            f"the notification is dated {-age:.0f} s in the future "
            f"(max {max_future} s)",
            code="future",
        )
    candidate = signature.strip().lower()
    if not candidate.isascii():
        raise InvalidSignature(f"{SIGNATURE_HEADER} is not hex", code="bad_signature")
    matched = False
    for name in names:
        expected = secret.digest(name, body, stamp.encode("ascii"))
        # Check every algorithm so the time taken does not say which matched.
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise InvalidSignature("the signature does not match", code="mismatch")


#: Seconds between looks for a task id not stored yet (WEBHOOK_RECHECK in all).
RECHECK_INTERVAL = 0.25


def _error(status: int, error: str) -> JsonResponse:
    return JsonResponse({"error": error}, status=status)


def _read_body(request: HttpRequest, limit: int) -> bytes | JsonResponse:
    """Return the raw body, or the refusal when it is too large or unreadable."""
    # Read the stream, not request.body: that would apply Django's
    # DATA_UPLOAD_MAX_MEMORY_SIZE instead of WEBHOOK_MAX_BODY. Reading one
    # byte past the cap catches bodies longer than they said.
    stream: Any = request
    if not request.META.get("CONTENT_LENGTH") and _is_chunked(request):
        # Django's WSGI request reads nothing without a Content-Length. A
        # server that de-chunks the body says so (wsgi.input_terminated) and
        # its input can be read to the end; from any other the body would be
        # silently empty, so it is refused.
        if not request.META.get("wsgi.input_terminated"):
            if "wsgi.input" in request.META:
                logger.warning("webhook refused: chunked body without a length")
                return _error(411, "length_required")
        else:
            stream = request.META["wsgi.input"]
    body = stream.read(limit + 1)
    if len(body) > limit:
        logger.warning("webhook refused: body exceeds %s bytes", limit)
        return _error(413, "body_too_large")
    return bytes(body)


def _is_chunked(request: HttpRequest) -> bool:
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower()


@csrf_exempt
@require_POST
@sensitive_variables("secret")
def webhook(request: HttpRequest) -> HttpResponse:
    """Verify a Cloudinary notification and apply it through services."""
    limit = int(app_settings.WEBHOOK_MAX_BODY)
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared:
        try:
            length = int(declared)
        except ValueError:
            return _error(400, "bad_content_length")
        if length > limit:
            logger.warning(
                "webhook refused: body of %s bytes exceeds %s", length, limit
            )
            return _error(413, "body_too_large")
    body = _read_body(request, limit)
    if isinstance(body, HttpResponse):
        return body

    secret = _Secret(app_settings.credentials.api_secret)
    if not secret:
        logger.error(
            "webhook refused: no API secret is configured, so notifications "
            "cannot be verified (set CLOUDINARY_ANALYSIS['API_SECRET'] or "
            "CLOUDINARY_URL)"
        )
        return _error(503, "not_configured")
    try:
        verify_signature(
            body,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            secret,
            max_age=float(app_settings.WEBHOOK_MAX_AGE),
            max_future=float(app_settings.WEBHOOK_MAX_FUTURE),
            algorithms=app_settings.WEBHOOK_ALGORITHMS,
        )
    except InvalidSignature as exc:
        logger.warning(
            "webhook refused: %s",
            exc,
            extra={
                "error_code": exc.code,
                "remote_addr": request.META.get("REMOTE_ADDR"),
            },
        )
        return _error(403, "invalid_signature")
    except ValueError as exc:  # WEBHOOK_ALGORITHMS is misconfigured
        logger.error("webhook refused: %s", exc)
        return _error(503, "not_configured")

    try:
        payload = payloads.notification(payloads.loads(body))
    except payloads.InvalidPayload as exc:
        logger.warning(
            "webhook refused: the signed body cannot be used: %s",
            exc,
            extra={"error_code": exc.code},
        )
        return _error(400, exc.code)

    task_id = payload["task_id"]
    notification_type = payload["notification_type"]
    extra = {"remote_task_id": task_id, "notification_type": notification_type}
    outcome = services.apply_notification(payload)
    # The webhook can beat the worker storing the task id of its 202: while an
    # async call is in flight, look again briefly before answering "unknown".
    unknown = services.NotificationOutcome.UNKNOWN
    rechecks = int(app_settings.WEBHOOK_RECHECK / RECHECK_INTERVAL)
    while outcome == unknown and rechecks > 0 and services.async_call_in_flight():
        rechecks -= 1
        time.sleep(RECHECK_INTERVAL)
        outcome = services.apply_notification(payload)
    if outcome == unknown:
        logger.info("webhook for an unknown task %s", task_id, extra=extra)
    elif outcome == services.NotificationOutcome.IGNORED:
        logger.info(
            "webhook of type %r ignored (task %s)",
            notification_type,
            task_id,
            extra=extra,
        )
    else:  # applied, failed, duplicate or cancelled: every outcome is final
        logger.info("webhook for task %s: %s", task_id, outcome, extra=extra)
    return JsonResponse({"status": str(outcome)})
