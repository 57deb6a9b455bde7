"""The security tests' WSGI application: the site, with failures on request.

A notification whose ``task_id`` starts with ``explode-`` fails after its
signature was verified, and an analysis of a file whose name contains
``explode`` fails inside the Cloudinary backend's call, below the task: each
puts the app's own frames on Django's error page and in the error mail.
"""

from __future__ import annotations

from typing import Any

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

# The site's Celery app: eager here (CELERY_TASK_ALWAYS_EAGER=1), errors propagate.
import tests.celery_app  # noqa: E402, F401
from django_cloudinary_analysis import services  # noqa: E402
from django_cloudinary_analysis.client import AnalyzeClient  # noqa: E402

_apply_notification = services.apply_notification
_analyze = AnalyzeClient.analyze


class ForcedFailure(RuntimeError):
    """Raised where the tests ask for a failure."""


def apply_notification(payload: dict[str, Any]) -> str:
    """Fail for ``explode-`` task ids, else apply."""
    if str(payload.get("task_id") or "").startswith("explode-"):
        raise ForcedFailure("forced failure after the signature check")
    return _apply_notification(payload)


def analyze(self: AnalyzeClient, analysis_type: str, source: Any, **kw: Any) -> Any:
    """Fail for sources naming ``explode``, else call the API."""
    if "explode" in str(getattr(source, "uri", source)):
        raise ForcedFailure("forced failure inside the backend call")
    return _analyze(self, analysis_type, source, **kw)


services.apply_notification = apply_notification  # type: ignore[assignment]
AnalyzeClient.analyze = analyze  # type: ignore[method-assign]
