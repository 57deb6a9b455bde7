"""Settings for the test suite (an installed test app with its own models)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "taggit",
    "django_cloudinary_analysis",
    "tests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

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

# The integration suite shares a file database with a real worker process;
# the worker gets the path through the environment.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TESTS_SQLITE_PATH", ":memory:"),
        "TEST": {"NAME": os.environ.get("TESTS_SQLITE_PATH") or None},
    }
}
if os.environ.get("TESTS_POSTGRES_DSN"):
    _dsn = dict(part.split("=", 1) for part in os.environ["TESTS_POSTGRES_DSN"].split())
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _dsn.get("dbname", "postgres"),
        "USER": _dsn.get("user", "postgres"),
        "HOST": _dsn.get("host", "127.0.0.1"),
        "PORT": _dsn.get("port", "5432"),
        "TEST": {"NAME": _dsn.get("dbname", "postgres")},
    }

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# Tests point MEDIA_ROOT at their own tmp_path; this is only a fallback.
MEDIA_ROOT = os.environ.get(
    "TESTS_MEDIA_ROOT", os.path.join(tempfile.gettempdir(), "dca-tests-media")
)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

CLOUDINARY_ANALYSIS = {
    "CLOUD_NAME": "demo-cloud",
    "API_KEY": "111111111111111",
    "API_SECRET": "tests-api-secret-value",
    "BACKEND": "django_cloudinary_analysis.backends.memory.MemoryBackend",
    "MEDIA_BASE_URL": "https://media.example.com/",
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 10,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_cloudinary_analysis": {"level": "DEBUG"}},
}
