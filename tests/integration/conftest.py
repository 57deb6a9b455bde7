"""Session services for the integration suite and the per-test switch to them.

Session fixtures start a real ``redis-server``, the fake Analyze API (in this
process), and per database kind a shared database, a Celery worker and a
``runserver`` for webhooks. The autouse ``it`` fixture points the test thread
at them for one test and cleans up afterwards; see ``harness`` for why the
test process keeps ``tests.settings``.

Tests run on SQLite unless marked ``@BOTH_DATABASES`` (SQLite and PostgreSQL);
each prints its figures, and the terminal summary repeats them all.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import harness
from tests.integration.harness import FIGURES, SCAN, LiveDB, Stack
from tests.support import servers
from tests.support.fake_api import FakeAnalyzeAPI
from tests.support.servers import PostgresServer, RedisServer

#: Run a test on SQLite and on PostgreSQL (a session-scoped fixture parameter).
BOTH_DATABASES = pytest.mark.parametrize(
    "live_db", ["sqlite", "postgresql"], indirect=True, scope="session"
)

#: Environment variable naming a file to write the figures to (JSON).
FIGURES_ENV = "DCA_FIGURES_PATH"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every integration test on SQLite unless it asks for more."""
    if "live_db" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "live_db" in (names if isinstance(names, (list, tuple)) else [names]):
            return
        if isinstance(names, str) and "live_db" in names.split(","):
            return
    metafunc.parametrize("live_db", ["sqlite"], indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run the secrets scan last: it scans what every other test left behind."""
    last = [item for item in items if item.get_closest_marker("scan_last")]
    if last:
        rest = [item for item in items if not item.get_closest_marker("scan_last")]
        items[:] = rest + last


def pytest_configure(config: pytest.Config) -> None:
    """Register this suite's marker."""
    config.addinivalue_line(
        "markers", "scan_last: run after every other test (the secrets scan)"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print every figure the integration tests reported."""
    if not FIGURES:
        return
    terminalreporter.section("integration figures")
    for nodeid, lines in FIGURES.items():
        terminalreporter.write_line(nodeid)
        for line in lines:
            terminalreporter.write_line("    " + line)
    path = os.environ.get(FIGURES_ENV)
    if path:
        Path(path).write_text(json.dumps(FIGURES, indent=2) + "\n")


# -- session services ---------------------------------------------------------------


@pytest.fixture(scope="session")
def it_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the session's directory: media, databases, logs."""
    root = tmp_path_factory.mktemp("integration")
    for name in ("media", "db", "logs"):
        (root / name).mkdir()
    return root


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Yield a real redis-server on a free loopback port."""
    yield from servers.redis_server_fixture()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Yield a throwaway PostgreSQL cluster (skips naming the Debian package)."""
    yield from servers.postgres_server_fixture()


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeAnalyzeAPI]:
    """Yield the fake Analyze API, serving from threads of this process."""
    api = FakeAnalyzeAPI(
        api_key=harness.API_KEY,
        api_secret=harness.API_SECRET,
        oauth_token=harness.OAUTH_TOKEN,
        webhook_delay=0.2,
        webhook_retry_delay=0.5,
        seed=6,
    )
    with api:
        yield api


@pytest.fixture(scope="session")
def live_db(
    request: pytest.FixtureRequest, it_root: Path, django_db_blocker: Any
) -> Iterator[LiveDB]:
    """Yield a migrated database of the parametrised kind, shared with workers."""
    from django.core.management import call_command

    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        env = {"TESTS_SQLITE_PATH": str(it_root / "db" / "integration.sqlite3")}
    elif kind == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        env = {"TESTS_POSTGRES_DSN": server.create_database("dca_integration")}
    else:
        raise ValueError(f"unknown database kind {kind!r}")
    db = LiveDB(kind, env)
    with db.active(), django_db_blocker.unblock():
        call_command("migrate", verbosity=0, interactive=False)
    yield db
    with django_db_blocker.unblock():
        db.close()


@pytest.fixture(scope="session")
def stack(
    live_db: LiveDB,
    redis_server: RedisServer,
    fake_api: FakeAnalyzeAPI,
    it_root: Path,
) -> Iterator[Stack]:
    """Yield the database's web server and main worker (4 processes)."""
    log_dir = it_root / "logs"
    # The web server's port is known before it starts: the stack's
    # environment (webhook and media URLs) needs it, and it needs that.
    web = harness.WebServer({}, log_dir / f"web-{live_db.kind}.log")
    stack = Stack(
        db=live_db,
        broker_url=redis_server.url,
        fake=fake_api,
        media_root=it_root / "media",
        log_dir=log_dir,
        web=web,
    )
    web.env = stack.env()
    try:
        stack.web.start()
        stack.worker = stack.start_worker("main", concurrency=4)
        yield stack
    finally:
        _scan_logs(stack)
        stack.close()


def _scan_logs(stack: Stack) -> None:
    for worker in stack.workers:
        SCAN.scan(f"log of worker {worker.log_path.name}", worker.log_text())
    if stack.web.log_path.exists():
        SCAN.scan(f"log of {stack.web.log_path.name}", stack.web.log_path.read_text())


@pytest.fixture(scope="session")
def test_log(it_root: Path) -> Iterator[logging.Handler]:
    """Yield a DEBUG file handler the ``it`` fixture attaches to the root logger."""
    handler = logging.FileHandler(it_root / "logs" / "test-process.log")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    yield handler
    handler.close()


# -- per test ----------------------------------------------------------------------


class It:
    """What an integration test works with."""

    def __init__(self, request: pytest.FixtureRequest, stack: Stack) -> None:
        self.request = request
        self.stack = stack
        self.fake = stack.fake
        self.worker = stack.worker
        self.db_kind = stack.db.kind

    def figure(self, line: str) -> None:
        """Report a figure (shown in the terminal summary)."""
        harness.report(self.request.node.nodeid, f"[{self.db_kind}] {line}")


@pytest.fixture(autouse=True)
def it(
    request: pytest.FixtureRequest,
    stack: Stack,
    settings: Any,
    django_db_blocker: Any,
    test_log: logging.Handler,
) -> Iterator[It]:
    """Point this test at the shared database, the broker and the fake API."""
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(test_log)
    root.setLevel(logging.DEBUG)
    try:
        with (
            stack.db.active(),
            django_db_blocker.unblock(),
            harness.celery_broker(stack.broker_url),
        ):
            for key, value in stack.test_settings().items():
                setattr(settings, key, value)
            stack.fake.reset()
            harness.clear_rows()
            assert stack.worker is not None and stack.worker.is_alive(), (
                "the main worker is not running"
            )
            try:
                yield It(request, stack)
            finally:
                for table, text in harness.dump_rows():
                    SCAN.scan(f"stored rows of {table}", text)
                harness.clear_rows()
    finally:
        root.removeHandler(test_log)
        root.setLevel(old_level)
        test_log.flush()
