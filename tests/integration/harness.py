"""The integration suite's moving parts: shared database, processes, figures.

The test process keeps ``tests.settings`` (unit and integration tests run in
one pytest process). For each integration test the ``default`` connection of
the test thread is swapped for one to a database the worker subprocesses
share (a SQLite file or a PostgreSQL database), the Celery app is pointed at
the real Redis broker and the settings get the same values the worker reads
from ``tests.integration.settings``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files.base import ContentFile

from tests.integration import settings as it_settings
from tests.support.fake_api import FakeAnalyzeAPI
from tests.support.servers import (
    REPO_ROOT,
    CeleryWorker,
    _terminate,
    find_free_port,
    subprocess_env,
    wait_until,
)

logger = logging.getLogger(__name__)

SETTINGS_MODULE = "tests.integration.settings"
#: ``DCA_FULL=1`` runs the sizes the issue names where the default run is smaller.
FULL = os.environ.get("DCA_FULL", "") not in ("", "0")

API_KEY = "111111111111111"
API_SECRET = "tests-api-secret-value"  # what tests.settings configures
WRONG_SECRET = "wrong-secret-for-401-tests"
OAUTH_TOKEN = "oauth-token-for-integration-tests-0123456789"


def basic_header(key: str, secret: str) -> str:
    """Return the Authorization header value of HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


#: Strings that must never leave the process that holds them.
SECRETS: dict[str, str] = {
    "API secret": API_SECRET,
    "Authorization header": basic_header(API_KEY, API_SECRET),
    "Basic credentials": basic_header(API_KEY, API_SECRET)[6:],
    "wrong API secret": WRONG_SECRET,
    "Authorization header (wrong secret)": basic_header(API_KEY, WRONG_SECRET),
    "OAuth token": OAUTH_TOKEN,
}


# -- figures ---------------------------------------------------------------------

#: nodeid -> the figure lines a test reported (printed at the end of the run).
FIGURES: dict[str, list[str]] = {}


def report(nodeid: str, line: str) -> None:
    """Record one figure line for the terminal summary and print it."""
    FIGURES.setdefault(nodeid, []).append(line)
    print(line)


# -- secrets ---------------------------------------------------------------------


@dataclass
class SecretScan:
    """Counts secret occurrences in everything the suite scanned."""

    hits: Counter[tuple[str, str]] = field(default_factory=Counter)
    scanned: Counter[str] = field(default_factory=Counter)
    bytes_scanned: Counter[str] = field(default_factory=Counter)

    def scan(self, where: str, text: str | bytes) -> int:
        """Count every secret in ``text``; return how many were found."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.scanned[where] += 1
        self.bytes_scanned[where] += len(text)
        found = 0
        for name, value in SECRETS.items():
            count = text.count(value)
            if count:
                self.hits[(where, name)] += count
                found += count
        return found

    @property
    def total_hits(self) -> int:
        """Return the number of secret occurrences found anywhere."""
        return sum(self.hits.values())


SCAN = SecretScan()


def dump_rows() -> Iterator[tuple[str, str]]:
    """Yield (table, JSON text) for every row the app stores."""
    from django_cloudinary_analysis.models import (
        Analysis,
        MediaTag,
        ModerationDecision,
        QuotaState,
    )

    for model in (Analysis, MediaTag, ModerationDecision, QuotaState):
        for row in model.objects.values():
            yield model._meta.db_table, json.dumps(row, default=str)


# -- the shared database ---------------------------------------------------------


class LiveDB:
    """A database the test thread and the subprocesses share."""

    def __init__(self, kind: str, env: Mapping[str, str]) -> None:
        from django.db import connections
        from django.db.utils import load_backend

        self.kind = kind
        self.env = dict(env)
        configured = connections.configure_settings(
            {"default": it_settings.database_settings(self.env)}
        )["default"]
        self.settings_dict = configured
        self.wrapper = load_backend(configured["ENGINE"]).DatabaseWrapper(
            configured, "default"
        )

    def __repr__(self) -> str:
        return f"<LiveDB {self.kind}>"

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this the test thread's ``default`` database for a while."""
        from django.contrib.contenttypes.models import ContentType
        from django.db import connections

        original = connections["default"]
        connections["default"] = self.wrapper
        # Content type ids differ between databases; the cache is per alias.
        ContentType.objects.clear_cache()
        try:
            yield
        finally:
            connections["default"] = original
            ContentType.objects.clear_cache()

    def close(self) -> None:
        """Close the test thread's connection."""
        with contextlib.suppress(Exception):
            self.wrapper.close()


def clear_rows() -> None:
    """Delete every row the tests create (content types and permissions stay).

    Raw deletes skip signals (``forget`` per object would be slow) and keep
    content type ids stable: the worker caches them for the whole session.
    """
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.models import Session
    from taggit.models import Tag, TaggedItem

    from django_cloudinary_analysis.models import (
        Analysis,
        Appeal,
        MediaTag,
        ModerationDecision,
        Notification,
        QuotaState,
        ReviewClaim,
        StatementOfReasons,
    )
    from django_cloudinary_analysis.writeback.models import (
        CloudinarySync,
        WrittenValue,
    )
    from tests.models import (
        Article,
        CloudPhoto,
        OwnedPhoto,
        Photo,
        PlainPhoto,
        SlugPhoto,
        TaggedPhoto,
        UUIDPhoto,
    )

    # Rows that point at decisions and analyses go first.
    models = [
        Notification,
        Appeal,
        StatementOfReasons,
        CloudinarySync,
        WrittenValue,
        ReviewClaim,
        MediaTag,
        ModerationDecision,
        Analysis,
        QuotaState,
        LogEntry,
        Session,
        User.groups.through,
        User.user_permissions.through,
        Group.permissions.through,
        User,
        Group,
        Photo,
        UUIDPhoto,
        SlugPhoto,
        Article,
        PlainPhoto,
        TaggedItem,
        Tag,
        TaggedPhoto,
        CloudPhoto,
        OwnedPhoto,
    ]
    for model in models:
        qs = model._default_manager.all()
        qs._raw_delete(qs.db)


# -- processes ---------------------------------------------------------------------


class WebServer:
    """``django runserver`` with the integration settings: the webhook's site."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.port = find_free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the site's origin."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """Return the notification URL the worker sends with async requests."""
        return f"{self.url}/cloudinary-analysis/webhook/"

    def argv(self) -> list[str]:
        """Return the server's command line."""
        return [
            sys.executable,
            "-m",
            "django",
            "runserver",
            f"127.0.0.1:{self.port}",
            "--noreload",
        ]

    def start(self) -> WebServer:
        """Start the server and wait until it answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=subprocess_env(self.env),
                start_new_session=True,
            )
        wait_until(
            self.answers,
            timeout=60,
            what=type(self).__name__,
            process=self.process,
            log_path=self.log_path,
            interval=0.1,
        )
        return self

    def answers(self) -> bool:
        """Return whether the server answers HTTP at all."""
        try:
            urllib.request.urlopen(self.url + "/", timeout=2)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server."""
        _terminate(self.process, group=True)
        self.process = None


@dataclass
class Stack:
    """One database with its worker and web server, the broker and the fake API."""

    db: LiveDB
    broker_url: str
    fake: FakeAnalyzeAPI
    media_root: Path
    log_dir: Path
    web: WebServer
    worker: CeleryWorker | None = None
    workers: list[CeleryWorker] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        """Return the environment of a worker or web process for this stack."""
        env = {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            it_settings.ENV_BROKER: self.broker_url,
            it_settings.ENV_MEDIA_ROOT: str(self.media_root),
            it_settings.ENV_API_URL: self.fake.base_url,
            it_settings.ENV_MEDIA_BASE_URL: self.web.url + "/",
            it_settings.ENV_WEBHOOK_URL: self.web.webhook_url,
            **self.db.env,
        }
        env.update(overrides)
        return env

    def test_settings(self) -> dict[str, Any]:
        """Return the settings the test process applies (as the worker has them)."""
        values = it_settings.integration_settings(self.env())
        for key in list(values):
            if key.startswith("CELERY_"):
                values.pop(key)  # the Celery app is switched directly
        return values

    def start_worker(
        self,
        name: str,
        *,
        queue: str = "celery",
        concurrency: int = 4,
        broker_url: str | None = None,
        extra_args: Iterable[str] = (),
        **env: str,
    ) -> CeleryWorker:
        """Start a worker subprocess logging at DEBUG into the stack's log dir."""
        overrides = dict(env)
        if broker_url:
            overrides[it_settings.ENV_BROKER] = broker_url
        if queue != "celery":
            overrides[it_settings.ENV_QUEUE] = queue
        worker = CeleryWorker(
            env=self.env(**overrides),
            concurrency=concurrency,
            queues=(queue,),
            loglevel="debug",
            hostname=f"{name}-{self.db.kind}-{os.getpid()}@%h",
            log_path=self.log_dir / f"worker-{name}-{self.db.kind}.log",
            extra_args=list(extra_args),
        )
        self.workers.append(worker)
        return worker.start()

    def close(self) -> None:
        """Stop every process this stack started."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop(timeout=10)
        self.web.stop()


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Make the test process publish tasks to ``url`` instead of running them."""
    from tests.celery_app import app

    keys = ("broker_url", "task_always_eager", "broker_transport_options")
    saved = {key: app.conf.get(key) for key in keys}

    def reset_pools() -> None:
        # Only drop the references: kombu keeps pools per URL in a registry,
        # and a force-closed one would be handed out again.
        app._pool = None
        amqp = app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None

    app.conf.update(
        broker_url=url, task_always_eager=False, broker_transport_options={}
    )
    reset_pools()
    try:
        yield
    finally:
        reset_pools()
        app.conf.update(saved)


# -- waiting -----------------------------------------------------------------------


def wait_for(
    predicate: Any,
    *,
    timeout: float,
    what: str,
    workers: Iterable[CeleryWorker] = (),
    describe: Any = None,
    interval: float = 0.2,
) -> None:
    """Poll ``predicate`` until true; fail with the state and worker logs."""
    deadline = time.monotonic() + timeout
    workers = list(workers)
    while not predicate():
        dead = [w for w in workers if not w.is_alive()]
        if dead or time.monotonic() > deadline:
            state = describe() if describe else ""
            tails = "\n".join(
                f"--- {w.log_path.name}\n" + "\n".join(w.log_text().splitlines()[-30:])
                for w in workers
            )
            problem = f"worker died: {dead}" if dead else f"not after {timeout} s"
            raise AssertionError(f"{what}: {problem}; {state}\n{tails}")
        time.sleep(interval)


def statuses(qs: Any = None) -> Counter[str]:
    """Return how many analyses are in each status."""
    from django_cloudinary_analysis.models import Analysis

    qs = Analysis.objects.all() if qs is None else qs
    return Counter(qs.values_list("status", flat=True))


def wait_finished(
    qs: Any = None,
    *,
    timeout: float,
    workers: Iterable[CeleryWorker] = (),
    expect: int | None = None,
    what: str = "analyses",
) -> Counter[str]:
    """Wait until no analysis is unfinished (and ``expect`` rows exist)."""
    from django_cloudinary_analysis.models import UNFINISHED

    def done() -> bool:
        counts = statuses(qs)
        if expect is not None and sum(counts.values()) < expect:
            return False
        return not any(counts.get(s) for s in UNFINISHED)

    wait_for(
        done,
        timeout=timeout,
        what=f"{what} to finish",
        workers=workers,
        describe=lambda: dict(statuses(qs)),
    )
    return statuses(qs)


# -- files -----------------------------------------------------------------------


def image(name: str, seed: int) -> ContentFile:
    """Return a named in-memory PNG unique to ``seed``."""
    from tests.support.images import png_bytes

    return ContentFile(png_bytes(seed, (8, 8)), name=name)


def tag_duplicates() -> int:
    """Return how many MediaTag rows repeat one (object, field, analysis type, name)."""
    from django.db.models import Count

    from django_cloudinary_analysis.models import MediaTag

    rows = (
        MediaTag.objects.values(
            "content_type_id", "object_id", "field_name", "analysis_type", "name"
        )
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    return sum(row["n"] - 1 for row in rows)
