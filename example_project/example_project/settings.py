"""Settings of the example site, read from the environment with demo defaults.

Out of the box: SQLite next to this project, Celery tasks run in-process and
images are analysed offline by the local backend. The environment switches
each part to its real counterpart:

- ``DATABASE_URL=postgres://user:password@host:5432/name``: PostgreSQL;
- ``CELERY_BROKER_URL=redis://127.0.0.1:6379/0``: tasks go to a worker
  started with ``celery -A example_project worker -l info``;
- ``CLOUDINARY_URL=cloudinary://KEY:SECRET@CLOUD``: the Cloudinary backend,
  with ``MEDIA_BASE_URL`` (the site's public origin, so the API can fetch
  local media) and ``WEBHOOK_URL`` (for async analyses).

This is a demo configuration: DEBUG is on and the secret key is public unless
the environment says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import django

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool) -> bool:
    """Read a yes/no environment variable."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated environment variable."""
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or default


def database_from_url(url: str) -> dict[str, Any]:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` to a dict."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if parts.scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path[1:]}
    raise ValueError(
        f"DATABASE_URL must start with postgres:// or sqlite://, not {parts.scheme}://"
    )


SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "example-project-demo-only-not-a-secret"
)
DEBUG = env_flag("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_cloudinary_analysis",
    "taggit",
    "gallery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_DB_PATH") or BASE_DIR / "db.sqlite3",
            # A worker with several processes writes concurrently with the
            # site: wait for the lock instead of failing at once.
            "OPTIONS": {"timeout": 20},
        }
    }
    if django.VERSION >= (5, 1):
        # Take the write lock when a transaction starts: a read lock upgraded
        # mid-transaction fails with "database is locked" without waiting.
        DATABASES["default"]["OPTIONS"].update(
            transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or BASE_DIR / "media"

# -- Celery -------------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
if not CELERY_BROKER_URL:
    # No broker: run tasks in the process that saves the model, right after
    # the transaction commits. An analysis error is recorded on its Analysis
    # row and must not turn the upload's request into a 500.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# -- django-cloudinary-analysis -------------------------------------------------

CLOUDINARY_URL = os.environ.get("CLOUDINARY_URL", "")
LOCAL_BACKEND = "django_cloudinary_analysis.backends.local.LocalBackend"
CLOUDINARY_BACKEND = "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend"

CLOUDINARY_ANALYSIS: dict[str, Any] = {
    # Chosen here, explicitly: the app itself never falls back to anything.
    "BACKEND": CLOUDINARY_BACKEND if CLOUDINARY_URL else LOCAL_BACKEND,
    # The site's public origin, e.g. https://gallery.example.com, so the API
    # can fetch files from local media storage (unused by the local backend).
    "MEDIA_BASE_URL": os.environ.get("MEDIA_BASE_URL") or None,
    # Where Cloudinary posts async results: https://<origin>/cloudinary-analysis/webhook/
    "WEBHOOK_URL": os.environ.get("WEBHOOK_URL") or None,
    "ASYNC_TYPES": env_list("CLOUDINARY_ANALYSIS_ASYNC_TYPES", []),
}
if not CLOUDINARY_URL:
    # The offline model answers only nudity questions; any other question is
    # "unknown" and would send every photo to review. Ask what it can answer
    # (the product asks one more, on purpose: see gallery/models.py).
    CLOUDINARY_ANALYSIS["REJECTION_QUESTIONS"] = [
        "Does the image contain nudity or sexual content?"
    ]
    # Offline tags: ImageNet-1k labels from EfficientNet-Lite0, exported to
    # ONNX by models/export_efficientnet.py and checked against these sums
    # before it is loaded (a changed file is refused with both sums named).
    CLOUDINARY_ANALYSIS["BACKEND_OPTIONS"] = {
        "tagging_model": str(BASE_DIR / "models" / "efficientnet-lite0.onnx"),
        "tagging_model_sha256": (
            "2ed1811c5eff0d2db12fb0b112a8a78726d9872baa2eda49227d31031b8b9092"
        ),
        "tagging_labels": str(BASE_DIR / "models" / "imagenet-labels.txt"),
        "tagging_labels_sha256": (
            "ee4fa67b1dd46919ef87529b70e25bdd1ec9ebd350de3ad426e6640eb70320a1"
        ),
    }

    # The small offline classifier spreads its belief over near classes
    # (Egyptian cat 0.39, tiger cat 0.36): the default 0.7 would keep almost
    # none of its labels as taggit tags. Its own scores, a lower bar.
    CLOUDINARY_ANALYSIS["TAG_WRITE_MIN_CONFIDENCE"] = 0.35

# The review queue, filled by the app's own rules: a tag that looks like a
# weapon is reviewed by a person (the classifier calls the rocket launch a
# "missile")…
CLOUDINARY_ANALYSIS["LABEL_RULES"] = [
    {"type": "google_tagging", "label": label, "review": 0.2}
    for label in ("missile", "projectile", "rifle", "assault rifle", "revolver")
]
# …and so is an image the quality analysis grades "low" (gallery/policy.py:
# the default policy plus that one rule).
CLOUDINARY_ANALYSIS["MODERATION_POLICY"] = "gallery.policy.ReviewLowQuality"

REST_FRAMEWORK = {
    # Basic auth so `curl -u admin:admin` works against the local demo.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_cloudinary_analysis": {
            "handlers": ["console"],
            "level": os.environ.get("CLOUDINARY_ANALYSIS_LOG_LEVEL", "WARNING"),
        }
    },
}
