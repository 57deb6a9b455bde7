"""The default backend: the Cloudinary Analyze API through AnalyzeClient."""

from __future__ import annotations

import threading
from typing import Any

from django_cloudinary_analysis.backends.base import Backend, Media
from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    AnalyzeClient,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import ConfigurationError

_clients: dict[tuple[Any, ...], AnalyzeClient] = {}
_clients_lock = threading.Lock()


def get_client() -> AnalyzeClient:
    """One client (and connection pool) per process and credentials."""
    from django_cloudinary_analysis.conf import app_settings

    creds = app_settings.credentials
    if not creds.complete:
        raise ConfigurationError(
            "Cloudinary credentials are missing: "
            + ", ".join(creds.missing())
            + " (set CLOUDINARY_ANALYSIS or the CLOUDINARY_URL environment variable)"
        )
    timeout = tuple(app_settings.TIMEOUT)
    # The Credentials object compares by value but never shows its secret:
    # a tuple of the plain values would list it on Django's error pages.
    key = (creds, app_settings.BASE_URL, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = AnalyzeClient(
                creds.cloud_name or "",
                api_key=creds.api_key,
                api_secret=creds.api_secret,
                oauth_token=creds.oauth_token,
                base_url=app_settings.BASE_URL,
                timeout=timeout,
            )
            _clients[key] = client
        return client


class CloudinaryBackend(Backend):
    """Send each analysis to the Analyze API (async when a webhook is given)."""

    name = "cloudinary"
    supports_async = True

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Call ``POST /analyze/{type}`` with the file's remote source."""
        return get_client().analyze(
            analysis_type,
            media.remote_source(),
            async_=notification_url is not None,
            notification_url=notification_url,
            **params,
        )

    def get_task_status(self, task_id: str) -> TaskStatus:
        """Call ``GET /tasks/{task_id}``."""
        return get_client().get_task_status(task_id)
