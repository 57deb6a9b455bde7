"""Settings of the benchmark processes (``DJANGO_SETTINGS_MODULE=bench.settings``).

The test suite's settings plus the integration suite's environment-driven
parts (``tests.integration.settings``): the database the environment names
(``TESTS_SQLITE_PATH``, a file, or ``TESTS_POSTGRES_DSN``), the Redis broker
with eager mode off (``CELERY_BROKER_URL``), the Cloudinary backend pointed
at the loopback fake API (``DCA_IT_API_URL``) and ``TESTS_MEDIA_ROOT``. On top
of that the bench-only app ``bench.benchapp`` (its models have no migrations:
``migrate --run-syncdb`` creates them), URLs with the admin and the REST API,
a paginator that takes ``?page_size=`` and quiet logging.

A benchmark's parent process builds the environment (``bench._common``) and
hands the same one to its measuring child and to the Celery worker, so both
sides are configured from one place.
"""

from __future__ import annotations

import os
import tempfile

from tests.integration.settings import (
    analysis_settings,
    celery_settings,
    database_settings,
)
from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _TEST_APPS
from tests.settings import REST_FRAMEWORK as _TEST_REST_FRAMEWORK

#: Environment variable: the level of the app's logger (``INFO`` by default).
ENV_LOG_LEVEL = "DCA_BENCH_LOG_LEVEL"
#: Environment variable: set, Celery logs no line per task (see LOGGING).
ENV_QUIET_TASKS = "DCA_BENCH_QUIET_TASKS"
#: Environment variable: Celery's ``CELERY_DB_REUSE_MAX`` (tasks per connection).
ENV_DB_REUSE_MAX = "DCA_BENCH_DB_REUSE_MAX"

INSTALLED_APPS = [*_TEST_APPS, "bench.benchapp"]
ROOT_URLCONF = "bench.benchapp.urls"
DEBUG = False

if not (os.environ.get("TESTS_SQLITE_PATH") or os.environ.get("TESTS_POSTGRES_DSN")):
    # Run by hand without the bench runner: a file database in the temp dir.
    _default_dir = os.path.join(tempfile.gettempdir(), "dca-bench")
    os.makedirs(_default_dir, exist_ok=True)
    os.environ["TESTS_SQLITE_PATH"] = os.path.join(_default_dir, "bench.sqlite3")
DATABASES = {"default": database_settings()}
if os.environ.get(ENV_DB_REUSE_MAX):
    # Celery's Django fixup closes every database connection before and after
    # each task unless this is set, whatever CONN_MAX_AGE says: a worker would
    # reconnect (and PostgreSQL fork a backend) for every analysis.
    CELERY_DB_REUSE_MAX = int(os.environ[ENV_DB_REUSE_MAX])

CLOUDINARY_ANALYSIS = analysis_settings()
globals().update(celery_settings())

REST_FRAMEWORK = {
    **_TEST_REST_FRAMEWORK,
    "DEFAULT_PAGINATION_CLASS": "bench.benchapp.pagination.SizedPagination",
}

# The test settings log the app at DEBUG; a benchmark measures production-like
# logging unless it asks for the per-call timings (DCA_BENCH_LOG_LEVEL=DEBUG).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "django_cloudinary_analysis": {
            "level": os.environ.get(ENV_LOG_LEVEL, "INFO"),
        }
    },
}
if os.environ.get(ENV_QUIET_TASKS):
    # Celery's two INFO lines per task ("received", "succeeded in") off,
    # with the worker still at -l info.
    for _name in ("celery.worker.strategy", "celery.app.trace"):
        LOGGING["loggers"][_name] = {"level": "WARNING"}
