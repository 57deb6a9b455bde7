"""Settings: the ``CLOUDINARY_ANALYSIS`` dict plus ``CLOUDINARY_URL``.

Every property reads ``django.conf.settings`` when accessed, so
``override_settings`` works and nothing is read at import time. The user's
dict is never mutated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

SETTING_NAME = "CLOUDINARY_ANALYSIS"

DEFAULT_REJECTION_QUESTIONS = (
    "Does the image contain nudity or sexual content?",
    "Does the image contain graphic violence or gore?",
)

DEFAULTS: dict[str, Any] = {
    # Credentials; when unset, CLOUDINARY_URL, then pycloudinary's config().
    "CLOUD_NAME": None,
    "API_KEY": None,
    "API_SECRET": None,
    "OAUTH_TOKEN": None,
    "BASE_URL": None,
    "TIMEOUT": (5.0, 60.0),
    "BACKEND": "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend",
    "BACKEND_OPTIONS": {},
    # Used for models whose AnalysisMeta names no analyses.
    "DEFAULT_ANALYSES": ["ai_vision_moderation", "image_quality"],
    "AUTO_ANALYZE": True,
    "SOURCE_RESOLVER": "django_cloudinary_analysis.sources.resolve",
    # Public origin that makes relative media URLs fetchable by the API.
    "MEDIA_BASE_URL": None,
    "TAG_MIN_CONFIDENCE": 0.0,
    "MODERATION_POLICY": "django_cloudinary_analysis.moderation.DefaultPolicy",
    "REJECTION_QUESTIONS": list(DEFAULT_REJECTION_QUESTIONS),
    # [{"type": "human_anatomy", "label": "*", "review": 0.5, "reject": 0.9}]
    "LABEL_RULES": [],
    # What a failed or skipped moderation analysis does: "review" or "pending".
    "ON_FAILURE": "review",
    "ASYNC_TYPES": [],
    "WEBHOOK_URL": None,
    "WEBHOOK_MAX_AGE": 7200,
    "WEBHOOK_MAX_FUTURE": 300,
    "WEBHOOK_MAX_BODY": 5 * 1024 * 1024,
    "WEBHOOK_ALGORITHMS": ["sha1", "sha256"],
    "ASYNC_POLL_INTERVAL": 300,
    "ASYNC_DEADLINE": 3600,
    "MAX_ATTEMPTS": 5,
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 900.0,
    "QUEUE": None,
    "DEDUP": True,
    "STORE_RAW": True,
    # REST API (rest_framework subpackage): import paths; None means staff only.
    "API_PERMISSION_CLASSES": None,
    # Import path of ``f(request, queryset) -> queryset`` limiting visible objects.
    "API_OBJECT_FILTER": None,
    # Accountability: email uploaders their statement of reasons and the
    # answer to their appeal (Django's mail framework; signals are always sent).
    "NOTIFY_UPLOADERS": False,
    "NOTIFY_FROM_EMAIL": None,  # None: DEFAULT_FROM_EMAIL
    "NOTIFY_MAX_ATTEMPTS": 5,
    # Origin put before the appeal link in emails, e.g. "https://example.com".
    "APPEAL_BASE_URL": None,
}


@dataclass(frozen=True)
class Credentials:
    """Where to reach the API and how to authenticate (secret kept out of repr)."""

    cloud_name: str | None
    api_key: str | None = None
    api_secret: str | None = None
    oauth_token: str | None = None
    source: str = "settings"

    def __repr__(self) -> str:
        return (
            f"Credentials(cloud_name={self.cloud_name!r}, api_key={self.api_key!r}, "
            f"api_secret={'***' if self.api_secret else None}, "
            f"oauth_token={'***' if self.oauth_token else None}, "
            f"source={self.source!r})"
        )

    @property
    def complete(self) -> bool:
        """Return whether these are enough to call the API."""
        return bool(
            self.cloud_name and (self.oauth_token or (self.api_key and self.api_secret))
        )

    def missing(self) -> list[str]:
        """Name what is missing, for errors and system checks."""
        missing = []
        if not self.cloud_name:
            missing.append("CLOUD_NAME")
        if not self.oauth_token:
            if not self.api_key:
                missing.append("API_KEY")
            if not self.api_secret:
                missing.append("API_SECRET")
        return missing


def credentials_from_url(url: str) -> Credentials:
    """Read credentials from ``cloudinary://KEY:SECRET@CLOUD`` (never echoed)."""
    from django_cloudinary_analysis.client import parse_cloudinary_url

    options = parse_cloudinary_url(url)
    return Credentials(
        options["cloud_name"],
        options.get("api_key"),
        options.get("api_secret"),
        options.get("oauth_token"),
        source="CLOUDINARY_URL",
    )


def import_setting(name: str) -> Any:
    """Import the dotted path a setting names (cached per path)."""
    return _import_path(name, app_settings._get(name))


@lru_cache(maxsize=32)
def _import_path(name: str, path: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{SETTING_NAME}[{name!r}] = {path!r} cannot be imported: {exc}"
        ) from exc


class AppSettings:
    """Typed access to ``settings.CLOUDINARY_ANALYSIS`` with defaults."""

    def _get(self, name: str) -> Any:
        user = getattr(settings, SETTING_NAME, None) or {}
        if name in user:
            return user[name]
        return DEFAULTS[name]

    def __getattr__(self, name: str) -> Any:
        if name in DEFAULTS:
            return self._get(name)
        raise AttributeError(name)

    @property
    def user_settings(self) -> dict[str, Any]:
        """Return the site's dict (read-only use)."""
        return dict(getattr(settings, SETTING_NAME, None) or {})

    @property
    def credentials(self) -> Credentials:
        """Resolve credentials: the settings dict, CLOUDINARY_URL, pycloudinary."""
        cloud = self._get("CLOUD_NAME")
        key = self._get("API_KEY")
        secret = self._get("API_SECRET")
        token = self._get("OAUTH_TOKEN")
        if cloud and (token or (key and secret)):
            return Credentials(cloud, key, secret, token)
        url = getattr(settings, "CLOUDINARY_URL", None) or os.environ.get(
            "CLOUDINARY_URL"
        )
        if url:
            return credentials_from_url(url)
        from_sdk = _pycloudinary_credentials()
        if from_sdk is not None:
            return from_sdk
        return Credentials(cloud, key, secret, token)

    @property
    def async_types(self) -> frozenset[str]:
        """Analysis types sent with ``async: true``."""
        return frozenset(self._get("ASYNC_TYPES") or ())


def _pycloudinary_credentials() -> Credentials | None:
    try:
        import cloudinary  # type: ignore[import-not-found]
    except ImportError:
        return None
    cfg = cloudinary.config()
    cloud = getattr(cfg, "cloud_name", None)
    key = getattr(cfg, "api_key", None)
    secret = getattr(cfg, "api_secret", None)
    token = getattr(cfg, "oauth_token", None)
    if cloud and (token or (key and secret)):
        return Credentials(cloud, key, secret, token, source="cloudinary.config()")
    return None


app_settings = AppSettings()
