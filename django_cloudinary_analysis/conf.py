"""Settings: the ``CLOUDINARY_ANALYSIS`` dict plus ``CLOUDINARY_URL``.

Every property reads ``django.conf.settings`` when accessed, so
``override_settings`` works and nothing is read at import time. The user's
dict is never mutated.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_cloudinary_analysis.credentials import (  # noqa: F401  (re-exported)
    CREDENTIAL_SOURCES,
    Credentials,
    _dict_credentials,
    _optional_str,
    _pycloudinary_credentials,
    credentials_from_url,
)

SETTING_NAME = "CLOUDINARY_ANALYSIS"

DEFAULT_REJECTION_QUESTIONS = (
    "Does the image contain nudity or sexual content?",
    "Does the image contain graphic violence or gore?",
)

DEFAULTS: dict[str, Any] = {
    # Credentials; when unset, see CREDENTIAL_SOURCES for where else to look.
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
    # Seconds a webhook for a task id not stored yet waits for the worker.
    "WEBHOOK_RECHECK": 2.0,
    "ASYNC_POLL_INTERVAL": 300,
    "ASYNC_DEADLINE": 3600,
    "MAX_ATTEMPTS": 5,
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 900.0,
    "QUEUE": None,
    # Recovery (recover_stuck): seconds an analysis may stay queued unclaimed,
    # and seconds a claimed one may go without news, before it is queued again.
    "STUCK_AFTER": 600,
    "RUNNING_TIMEOUT": 3600,
    # Seconds a running twin of the same content is waited for, not longer.
    "TWIN_LEASE": 300,
    # A human approval, like a rejection, applies to later identical content.
    "HUMAN_APPROVAL_FOLLOWS_CONTENT": True,
    "DEDUP": True,
    "STORE_RAW": True,
    # REST API (rest_framework subpackage): import paths; None means staff only.
    "API_PERMISSION_CLASSES": None,
    # Import path of ``f(request, queryset) -> queryset`` limiting visible objects.
    "API_OBJECT_FILTER": None,
    # Write-back (AnalysisMeta.tags_field and SYNC_TO_CLOUDINARY): labels at
    # least this confident become tags; TAG_MAP renames ({"kitten": "cat"}) or
    # drops (None) API labels, matched case-insensitively.
    "TAG_WRITE_MIN_CONFIDENCE": 0.7,
    "TAG_MAP": {},
    # {"tags": True, "moderation": True, "tag_prefix": ""}; off when unset.
    "SYNC_TO_CLOUDINARY": None,
    # Page size of the API's lists when the site sets no DRF
    # DEFAULT_PAGINATION_CLASS; None turns paging off.
    "API_PAGE_SIZE": 50,
    # Accountability: email uploaders their statement of reasons and the
    # answer to their appeal (Django's mail framework; signals are always sent).
    "NOTIFY_UPLOADERS": False,
    "NOTIFY_FROM_EMAIL": None,  # None: DEFAULT_FROM_EMAIL
    "NOTIFY_MAX_ATTEMPTS": 5,
    # Origin put before the appeal link in emails, e.g. "https://example.com".
    "APPEAL_BASE_URL": None,
}


#: Settings whose value is a dotted import path (or a list of them), resolved
#: in one place: :func:`import_setting` (DRF's ``IMPORT_STRINGS`` pattern).
IMPORT_STRINGS = (
    "BACKEND",
    "SOURCE_RESOLVER",
    "MODERATION_POLICY",
    "API_PERMISSION_CLASSES",
    "API_OBJECT_FILTER",
)


def import_setting(name: str) -> Any:
    """Import what an import-string setting names (a list stays a list; None).

    Like DRF's settings, an object given directly instead of its path is
    returned as it is.
    """
    if name not in IMPORT_STRINGS:
        raise KeyError(f"{name!r} is not an import-string setting")
    value = app_settings._get(name)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [resolve_import(name, item) for item in value]
    return resolve_import(name, value)


def resolve_import(name: str, value: Any) -> Any:
    """A dotted path is imported; a class or callable given as such is kept."""
    return _import_path(name, value) if isinstance(value, str) else value


@lru_cache(maxsize=32)
def _import_path(name: str, path: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{SETTING_NAME}[{name!r}] = {path!r} cannot be imported: {exc}"
        ) from exc


class AppSettings:
    """Typed access to ``settings.CLOUDINARY_ANALYSIS`` with defaults.

    One property per key of :data:`DEFAULTS`, each read on every access and
    converted to its type, so call sites never cast.
    """

    def _get(self, name: str) -> Any:
        user = getattr(settings, SETTING_NAME, None) or {}
        if name in user:
            return user[name]
        return DEFAULTS[name]

    @property
    def user_settings(self) -> dict[str, Any]:
        """Return the site's dict (read-only use)."""
        return dict(getattr(settings, SETTING_NAME, None) or {})

    # -- credentials and the API ---------------------------------------------

    @property
    def CLOUD_NAME(self) -> str | None:
        """Cloud name from ``CLOUDINARY_ANALYSIS`` only (see ``credentials``)."""
        return _optional_str(self._get("CLOUD_NAME"))

    @property
    def API_KEY(self) -> str | None:
        """API key from ``CLOUDINARY_ANALYSIS`` only."""
        return _optional_str(self._get("API_KEY"))

    @property
    def API_SECRET(self) -> str | None:
        """API secret from ``CLOUDINARY_ANALYSIS`` only."""
        return _optional_str(self._get("API_SECRET"))

    @property
    def OAUTH_TOKEN(self) -> str | None:
        """Bearer token from ``CLOUDINARY_ANALYSIS`` only."""
        return _optional_str(self._get("OAUTH_TOKEN"))

    @property
    def BASE_URL(self) -> str | None:
        """Another API base URL (e.g. a proxy), or None."""
        return _optional_str(self._get("BASE_URL"))

    @property
    def TIMEOUT(self) -> tuple[float, float]:
        """(connect, read) timeouts in seconds; a number means both."""
        value = self._get("TIMEOUT")
        if isinstance(value, (int, float)):
            return (float(value), float(value))
        connect, read = value
        return (float(connect), float(read))

    @property
    def BACKEND(self) -> str:
        """Import path of the backend class."""
        return str(self._get("BACKEND"))

    @property
    def BACKEND_OPTIONS(self) -> dict[str, Any]:
        """Keyword arguments for the backend (a copy)."""
        return dict(self._get("BACKEND_OPTIONS") or {})

    # -- what runs ------------------------------------------------------------

    @property
    def DEFAULT_ANALYSES(self) -> list[Any]:
        """Analyses for models whose ``AnalysisMeta`` names none."""
        return list(self._get("DEFAULT_ANALYSES") or ())

    @property
    def AUTO_ANALYZE(self) -> bool:
        """Whether saving a model schedules its analyses."""
        return bool(self._get("AUTO_ANALYZE"))

    @property
    def SOURCE_RESOLVER(self) -> str:
        """Import path of the ``(obj, field_name) -> Media`` resolver."""
        return str(self._get("SOURCE_RESOLVER"))

    @property
    def MEDIA_BASE_URL(self) -> str | None:
        """Public origin that makes relative media URLs fetchable."""
        return _optional_str(self._get("MEDIA_BASE_URL"))

    @property
    def TAG_MIN_CONFIDENCE(self) -> float:
        """Tags below this confidence are not stored."""
        return float(self._get("TAG_MIN_CONFIDENCE") or 0.0)

    @property
    def MODERATION_POLICY(self) -> str:
        """Import path of the moderation policy class."""
        return str(self._get("MODERATION_POLICY"))

    @property
    def REJECTION_QUESTIONS(self) -> list[str]:
        """Questions sent to ``ai_vision_moderation`` by default."""
        return [str(q) for q in self._get("REJECTION_QUESTIONS") or ()]

    @property
    def LABEL_RULES(self) -> list[Any]:
        """Label thresholds for review/reject (validated by check E011)."""
        return list(self._get("LABEL_RULES") or ())

    @property
    def ON_FAILURE(self) -> str:
        """What a failed moderation analysis does: "review" or "pending"."""
        return str(self._get("ON_FAILURE"))

    # -- async and webhooks ---------------------------------------------------

    @property
    def ASYNC_TYPES(self) -> list[str]:
        """Analysis types sent with ``async: true`` (as configured)."""
        return list(self._get("ASYNC_TYPES") or ())

    @property
    def async_types(self) -> frozenset[str]:
        """Analysis types sent with ``async: true``."""
        return frozenset(self.ASYNC_TYPES)

    @property
    def WEBHOOK_URL(self) -> str | None:
        """Absolute URL of the webhook view."""
        return _optional_str(self._get("WEBHOOK_URL"))

    @property
    def WEBHOOK_MAX_AGE(self) -> int:
        """Seconds a signed notification stays valid."""
        return int(self._get("WEBHOOK_MAX_AGE"))

    @property
    def WEBHOOK_MAX_FUTURE(self) -> int:
        """Seconds a notification's timestamp may be ahead of the clock."""
        return int(self._get("WEBHOOK_MAX_FUTURE"))

    @property
    def WEBHOOK_MAX_BODY(self) -> int:
        """Largest notification body accepted, in bytes."""
        return int(self._get("WEBHOOK_MAX_BODY"))

    @property
    def WEBHOOK_ALGORITHMS(self) -> list[str]:
        """Accepted signature digests."""
        return [str(a) for a in self._get("WEBHOOK_ALGORITHMS") or ()]

    @property
    def ASYNC_POLL_INTERVAL(self) -> int:
        """Seconds between task-status checks of a waiting analysis."""
        return int(self._get("ASYNC_POLL_INTERVAL"))

    @property
    def ASYNC_DEADLINE(self) -> int:
        """Seconds after which a waiting analysis fails as overdue."""
        return int(self._get("ASYNC_DEADLINE"))

    # -- retries, queues, storage of results --------------------------------

    @property
    def MAX_ATTEMPTS(self) -> int:
        """Attempts for retryable errors."""
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def RETRY_BACKOFF(self) -> float:
        """Base of the exponential backoff, in seconds."""
        return float(self._get("RETRY_BACKOFF"))

    @property
    def RETRY_BACKOFF_MAX(self) -> float:
        """Cap of the backoff, in seconds."""
        return float(self._get("RETRY_BACKOFF_MAX"))

    @property
    def QUEUE(self) -> str | None:
        """Celery queue for the app's tasks (None: the default queue)."""
        return _optional_str(self._get("QUEUE"))

    @property
    def DEDUP(self) -> bool:
        """Whether identical content reuses earlier results."""
        return bool(self._get("DEDUP"))

    @property
    def STORE_RAW(self) -> bool:
        """Whether ``Analysis.raw`` keeps the API's whole answer."""
        return bool(self._get("STORE_RAW"))

    # -- recovery and races -----------------------------------------------------

    @property
    def WEBHOOK_RECHECK(self) -> float:
        """Seconds a webhook for a not yet stored task id is looked up again."""
        return float(self._get("WEBHOOK_RECHECK"))

    @property
    def STUCK_AFTER(self) -> float:
        """Seconds after which a queued analysis counts as lost (recover_stuck)."""
        return float(self._get("STUCK_AFTER"))

    @property
    def RUNNING_TIMEOUT(self) -> float:
        """Seconds a claimed analysis may stay silent before it is re-queued."""
        return float(self._get("RUNNING_TIMEOUT"))

    @property
    def TWIN_LEASE(self) -> float:
        """Seconds a silent lead keeps its twins waiting before one takes over."""
        return float(self._get("TWIN_LEASE"))

    @property
    def HUMAN_APPROVAL_FOLLOWS_CONTENT(self) -> bool:
        """Whether a person's approval, like a rejection, follows its content."""
        return bool(self._get("HUMAN_APPROVAL_FOLLOWS_CONTENT"))

    # -- accountability -----------------------------------------------------------

    @property
    def NOTIFY_UPLOADERS(self) -> bool:
        """Whether uploaders get their statement of reasons by email."""
        return bool(self._get("NOTIFY_UPLOADERS"))

    @property
    def NOTIFY_FROM_EMAIL(self) -> str | None:
        """Sender of those emails (None: DEFAULT_FROM_EMAIL)."""
        return _optional_str(self._get("NOTIFY_FROM_EMAIL"))

    @property
    def NOTIFY_MAX_ATTEMPTS(self) -> int:
        """Attempts per email before it is recorded as failed."""
        return int(self._get("NOTIFY_MAX_ATTEMPTS"))

    @property
    def APPEAL_BASE_URL(self) -> str | None:
        """Origin put before the appeal link in emails."""
        return _optional_str(self._get("APPEAL_BASE_URL"))

    # -- write-back (validated by the checks E022/E023) -------------------------

    @property
    def TAG_WRITE_MIN_CONFIDENCE(self) -> float:
        """Labels at least this confident become taggit/Cloudinary tags."""
        return self._get("TAG_WRITE_MIN_CONFIDENCE")  # type: ignore[no-any-return]

    @property
    def TAG_MAP(self) -> dict[str, str | None]:
        """API label (case-insensitive) → the site's tag name, None drops it."""
        return self._get("TAG_MAP")  # type: ignore[no-any-return]

    @property
    def SYNC_TO_CLOUDINARY(self) -> dict[str, Any] | bool | None:
        """What is pushed to assets on Cloudinary; None or False is off."""
        return self._get("SYNC_TO_CLOUDINARY")  # type: ignore[no-any-return]

    # -- REST API -------------------------------------------------------------

    @property
    def API_PERMISSION_CLASSES(self) -> list[Any] | None:
        """DRF permission classes or their import paths (None: staff only)."""
        value = self._get("API_PERMISSION_CLASSES")
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(value)

    @property
    def API_OBJECT_FILTER(self) -> Any:
        """``f(request, queryset) -> queryset`` or its import path, or None."""
        value = self._get("API_OBJECT_FILTER")
        return None if value in (None, "") else value

    @property
    def API_PAGE_SIZE(self) -> int | None:
        """Page size of the API's lists without a site-wide DRF paginator."""
        value = self._get("API_PAGE_SIZE")
        return int(value) if value else None

    # -- credentials ----------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The first complete credentials, in :data:`CREDENTIAL_SOURCES` order.

        ``CLOUDINARY_ANALYSIS``, ``CLOUDINARY_URL`` (setting, then the
        environment), ``settings.CLOUDINARY`` (pycloudinary's Django
        setting), ``settings.CLOUDINARY_STORAGE`` (django-cloudinary-storage),
        then pycloudinary's ``cloudinary.config()``. Nothing here touches a
        storage. When none is complete, the partial ``CLOUDINARY_ANALYSIS``
        values are returned so ``missing()`` can name what to set.
        """
        own = Credentials(
            self.CLOUD_NAME, self.API_KEY, self.API_SECRET, self.OAUTH_TOKEN
        )
        if own.complete:
            return own
        url = getattr(settings, "CLOUDINARY_URL", None) or os.environ.get(
            "CLOUDINARY_URL"
        )
        if url:
            return credentials_from_url(url)
        for found in (
            _dict_credentials("CLOUDINARY", lower=True),
            _dict_credentials("CLOUDINARY_STORAGE", lower=False),
            _pycloudinary_credentials(),
        ):
            if found is not None:
                return found
        return own


app_settings = AppSettings()
