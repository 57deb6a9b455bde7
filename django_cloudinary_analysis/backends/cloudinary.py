"""The default backend: the Cloudinary Analyze API through AnalyzeClient.

``CLOUDINARY_ANALYSIS["BACKEND_OPTIONS"]`` may hold:

``session``
    A ``requests.Session`` (or the dotted path of a callable returning one)
    for the client to send through: a site's proxies, CA bundle, adapters or
    instrumentation. The backend never closes it.
``client_options``
    Keyword arguments for :class:`AnalyzeClient`, e.g. ``{"debug": True,
    "user_agent": "my-site/1.0", "retry": RetryPolicy(...),
    "max_response_bytes": ...}``. Credentials, ``base_url`` and ``timeout``
    come from the app's settings and are refused here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_cloudinary_analysis.backends.base import Backend, Media
from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    AnalyzeClient,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import ConfigurationError

_clients: dict[tuple[Any, ...], AnalyzeClient] = {}
#: Sessions made by a dotted-path factory: one per path and process.
_sessions: dict[str, requests.Session] = {}
_clients_lock = threading.Lock()

#: Client arguments the app's settings own; BACKEND_OPTIONS may not set them.
_SETTINGS_OWNED = frozenset(
    {"cloud_name", "api_key", "api_secret", "oauth_token", "base_url", "timeout"}
)
_OPTIONS = frozenset({"session", "client_options"})


def _fingerprint(*parts: str | None) -> str:
    """A cache key part standing for credentials, so no key holds them."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"\0" if part is None else b"\1" + part.encode())
    return digest.hexdigest()


def _session_from(path: str) -> requests.Session:
    """Call the session factory at ``path`` once per process."""
    with _clients_lock:
        if path not in _sessions:
            try:
                factory = import_string(path)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"CLOUDINARY_ANALYSIS['BACKEND_OPTIONS']['session'] = {path!r} "
                    f"cannot be imported: {exc}"
                ) from exc
            _sessions[path] = factory()
        return _sessions[path]


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def get_client(
    session: requests.Session | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> AnalyzeClient:
    """One client (and connection pool) per process, credentials and options."""
    from django_cloudinary_analysis.conf import app_settings

    creds = app_settings.credentials
    if not creds.complete:
        raise ConfigurationError(
            "Cloudinary credentials are missing: "
            + ", ".join(creds.missing())
            + " (set CLOUDINARY_ANALYSIS or the CLOUDINARY_URL environment variable)"
        )
    options = dict(client_options or {})
    timeout = tuple(app_settings.TIMEOUT)
    # Never the plain secret in a local (Django's error pages list locals).
    key = (
        creds.cloud_name,
        _fingerprint(creds.api_key, creds.api_secret, creds.oauth_token),
        app_settings.BASE_URL,
        timeout,
        id(session),
        tuple(sorted((name, _hashable(v)) for name, v in options.items())),
    )
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
                session=session,
                **options,
            )
            _clients[key] = client
        return client


class CloudinaryBackend(Backend):
    """Send each analysis to the Analyze API (async when a webhook is given)."""

    name = "cloudinary"
    supports_async = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ImproperlyConfigured(
                "CLOUDINARY_ANALYSIS['BACKEND_OPTIONS'] has unknown keys for the "
                f"cloudinary backend: {', '.join(sorted(unknown))} "
                f"(it accepts {', '.join(sorted(_OPTIONS))})"
            )
        session = options.get("session")
        if isinstance(session, str):
            session = _session_from(session)
        if session is not None and not isinstance(session, requests.Session):
            raise ImproperlyConfigured(
                "CLOUDINARY_ANALYSIS['BACKEND_OPTIONS']['session'] must be a "
                "requests.Session or the dotted path of a callable returning one"
            )
        client_options = options.get("client_options") or {}
        if not isinstance(client_options, Mapping):
            raise ImproperlyConfigured(
                "CLOUDINARY_ANALYSIS['BACKEND_OPTIONS']['client_options'] must be "
                "a dict of AnalyzeClient arguments"
            )
        owned = set(client_options) & _SETTINGS_OWNED
        if owned:
            raise ImproperlyConfigured(
                "CLOUDINARY_ANALYSIS['BACKEND_OPTIONS']['client_options'] may not "
                f"set {', '.join(sorted(owned))}: they come from the app's "
                "settings (CLOUDINARY_ANALYSIS / CLOUDINARY_URL)"
            )
        self.session: requests.Session | None = session
        self.client_options: dict[str, Any] = dict(client_options)

    def client(self) -> AnalyzeClient:
        """Return the shared client for the current settings and these options."""
        return get_client(self.session, self.client_options)

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Call ``POST /analyze/{type}`` with the file's remote source."""
        return self.client().analyze(
            analysis_type,
            media.remote_source(),
            async_=notification_url is not None,
            notification_url=notification_url,
            **params,
        )

    def get_task_status(self, task_id: str) -> TaskStatus:
        """Call ``GET /tasks/{task_id}``."""
        return self.client().get_task_status(task_id)
