"""Settings of the integration suite's worker and web subprocesses.

``DJANGO_SETTINGS_MODULE=tests.integration.settings`` gives ``tests.settings``
plus what the environment describes (see ``integration_settings``): the Redis
broker, the shared database, the fake Analyze API, the shared media
directory, the webhook URL and short retry timings. The test process itself
keeps ``tests.settings`` (unit and integration tests share one pytest run)
and applies the same values per test through ``integration_settings`` and
``database_settings``, so both sides are configured from one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import django

from tests.settings import *  # noqa: F403
from tests.settings import CLOUDINARY_ANALYSIS as _BASE_ANALYSIS

#: Environment variables this module reads (all optional).
ENV_BROKER = "CELERY_BROKER_URL"
ENV_VISIBILITY = "DCA_IT_VISIBILITY_TIMEOUT"
ENV_SQLITE = "TESTS_SQLITE_PATH"
ENV_POSTGRES = "TESTS_POSTGRES_DSN"
ENV_MEDIA_ROOT = "TESTS_MEDIA_ROOT"
ENV_API_URL = "DCA_IT_API_URL"
ENV_API_KEY = "DCA_IT_API_KEY"
ENV_API_SECRET = "DCA_IT_API_SECRET"
ENV_OAUTH_TOKEN = "DCA_IT_OAUTH_TOKEN"
ENV_MEDIA_BASE_URL = "DCA_IT_MEDIA_BASE_URL"
ENV_WEBHOOK_URL = "DCA_IT_WEBHOOK_URL"
ENV_ASYNC_TYPES = "DCA_IT_ASYNC_TYPES"
ENV_QUEUE = "DCA_IT_QUEUE"
ENV_MAX_ATTEMPTS = "DCA_IT_MAX_ATTEMPTS"

#: Retries finish in seconds, not minutes: base 0.2 s doubling up to 2 s.
RETRY_BACKOFF = 0.2
RETRY_BACKOFF_MAX = 2.0
MAX_ATTEMPTS = 5
#: (connect, read) seconds: a hung request is abandoned after 1.5 s.
TIMEOUT = (2.0, 1.5)
ASYNC_POLL_INTERVAL = 5
ASYNC_DEADLINE = 120
CLOUDINARY_BACKEND = "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend"


def database_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return the ``default`` database the environment names (SQLite file or PG)."""
    dsn = environ.get(ENV_POSTGRES)
    if dsn:
        parts = dict(part.split("=", 1) for part in dsn.split())
        name = parts.get("dbname", "postgres")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": parts.get("user", "postgres"),
            "HOST": parts.get("host", "127.0.0.1"),
            "PORT": parts.get("port", "5432"),
            "TEST": {"NAME": name},
        }
    path = environ.get(ENV_SQLITE)
    if not path:
        raise RuntimeError(
            f"the integration settings need {ENV_SQLITE} or {ENV_POSTGRES}: the "
            "worker and the test process must share one database"
        )
    options: dict[str, Any] = {"timeout": 30}
    if django.VERSION >= (5, 1):
        # Several processes write at once: take the write lock when a
        # transaction starts (a deferred one that later needs it fails at
        # once with "database is locked") and let readers run beside a
        # writer (WAL). The docs recommend both for concurrent workers.
        options["transaction_mode"] = "IMMEDIATE"
        options["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": options,
        "TEST": {"NAME": path},
    }


def analysis_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return ``CLOUDINARY_ANALYSIS``: the real backend against the fake API."""
    conf = dict(_BASE_ANALYSIS)
    conf.update(
        {
            "BACKEND": CLOUDINARY_BACKEND,
            "RETRY_BACKOFF": RETRY_BACKOFF,
            "RETRY_BACKOFF_MAX": RETRY_BACKOFF_MAX,
            "MAX_ATTEMPTS": int(environ.get(ENV_MAX_ATTEMPTS) or MAX_ATTEMPTS),
            "TIMEOUT": TIMEOUT,
            "ASYNC_POLL_INTERVAL": ASYNC_POLL_INTERVAL,
            "ASYNC_DEADLINE": ASYNC_DEADLINE,
        }
    )
    if environ.get(ENV_API_URL):
        conf["BASE_URL"] = environ[ENV_API_URL]
    if environ.get(ENV_API_KEY):
        conf["API_KEY"] = environ[ENV_API_KEY]
    if environ.get(ENV_API_SECRET):
        conf["API_SECRET"] = environ[ENV_API_SECRET]
    if environ.get(ENV_OAUTH_TOKEN):
        conf["OAUTH_TOKEN"] = environ[ENV_OAUTH_TOKEN]
    if ENV_MEDIA_BASE_URL in environ:
        # Present but empty: no public origin (relative media URLs fail).
        conf["MEDIA_BASE_URL"] = environ[ENV_MEDIA_BASE_URL] or None
    if environ.get(ENV_WEBHOOK_URL):
        conf["WEBHOOK_URL"] = environ[ENV_WEBHOOK_URL]
    if environ.get(ENV_ASYNC_TYPES):
        conf["ASYNC_TYPES"] = [
            name for name in environ[ENV_ASYNC_TYPES].split(",") if name
        ]
    if environ.get(ENV_QUEUE):
        conf["QUEUE"] = environ[ENV_QUEUE]
    return conf


def celery_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return the ``CELERY_*`` settings: a real broker, never eager."""
    values: dict[str, Any] = {}
    if environ.get(ENV_BROKER):
        values["CELERY_BROKER_URL"] = environ[ENV_BROKER]
        values["CELERY_TASK_ALWAYS_EAGER"] = False
    if environ.get(ENV_VISIBILITY):
        seconds = float(environ[ENV_VISIBILITY])
        values["CELERY_BROKER_TRANSPORT_OPTIONS"] = {
            "visibility_timeout": seconds,
            # Sweep for unacknowledged messages every second, not every 100 s.
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            # A worker killed during a sweep leaves the sweep's lock behind:
            # by default for 300 s, longer than the tests wait for the
            # redelivery (seen as one analysis left queued after a SIGKILL).
            "unacked_mutex_expire": max(1, int(seconds)),
        }
    return values


def integration_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Return every setting the environment changes (DATABASES excluded)."""
    values: dict[str, Any] = {"CLOUDINARY_ANALYSIS": analysis_settings(environ)}
    values.update(celery_settings(environ))
    if environ.get(ENV_MEDIA_ROOT):
        values["MEDIA_ROOT"] = environ[ENV_MEDIA_ROOT]
    return values


#: Subprocesses log everything at DEBUG to stderr (the suite's log files),
#: so the secrets scan reads what a verbose production log would hold.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": "DEBUG",
        }
    },
    "root": {"handlers": ["stderr"], "level": "DEBUG"},
}
ROOT_URLCONF = "tests.integration.urls"

globals().update(integration_settings())
if os.environ.get(ENV_SQLITE) or os.environ.get(ENV_POSTGRES):
    DATABASES = {"default": database_settings()}
