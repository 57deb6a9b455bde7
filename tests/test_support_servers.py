"""Real servers for the integration suite start, answer and clean up."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.support import servers
from tests.support.servers import (
    CeleryWorker,
    PostgresServer,
    RedisServer,
    ServiceError,
    find_free_port,
    wait_until,
    which_or_skip,
    worker_env,
)


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    yield from servers.redis_server_fixture()


@pytest.fixture
def celery_client(redis_server: RedisServer) -> Iterator[Celery]:
    client = Celery(
        "tests-client",
        broker=redis_server.url,
        backend=redis_server.url,
        set_as_current=False,
    )
    yield client
    client.close()


def test_find_free_port_returns_a_bindable_port() -> None:
    port = find_free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_which_or_skip_finds_binaries_on_path_and_in_extra_dirs(
    tmp_path: Path,
) -> None:
    tool = tmp_path / "dca-fake-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)

    assert which_or_skip("sh", "dash").endswith("/sh")
    assert which_or_skip("dca-fake-tool", "x", extra_dirs=[tmp_path]) == str(tool)


def test_which_or_skip_skips_naming_the_debian_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(servers.REQUIRE_SERVICES_ENV, raising=False)

    with pytest.raises(pytest.skip.Exception, match="apt-get install dca-pkg"):
        which_or_skip("dca-no-such-binary", "dca-pkg")


def test_which_or_skip_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(servers.REQUIRE_SERVICES_ENV, "1")

    with pytest.raises(pytest.fail.Exception, match="dca-pkg"):
        which_or_skip("dca-no-such-binary", "dca-pkg")


def test_worker_env_names_what_tests_settings_read() -> None:
    env = worker_env(
        "redis://127.0.0.1:1/0",
        result_backend="redis://127.0.0.1:1/1",
        sqlite_path="/tmp/db.sqlite3",
        media_root="/tmp/media",
        extra={"X": "1"},
    )

    assert env == {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:1/1",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "TESTS_SQLITE_PATH": "/tmp/db.sqlite3",
        "TESTS_MEDIA_ROOT": "/tmp/media",
        "X": "1",
    }


@pytest.mark.integration
def test_redis_starts_on_a_free_port_and_answers(redis_server: RedisServer) -> None:
    import redis

    conn = redis.Redis.from_url(redis_server.url)
    conn.set("dca-key", "value")

    assert redis_server.ping()
    assert conn.get("dca-key") == b"value"
    assert redis_server.url.startswith("redis://127.0.0.1:")
    conn.close()


@pytest.mark.integration
def test_redis_stop_removes_its_directory_and_process() -> None:
    server = RedisServer().start()
    tmpdir, process = server.tmpdir, server.process
    assert tmpdir is not None and tmpdir.exists()
    assert process is not None

    server.stop()

    assert process.poll() is not None
    assert not tmpdir.exists()
    assert not server.ping()


@pytest.mark.integration
def test_postgres_starts_and_accepts_a_psycopg_connection() -> None:
    psycopg = pytest.importorskip("psycopg")

    with PostgresServer() as server:
        assert server.dsn == (
            f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
        )
        with psycopg.connect(server.dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            user = conn.execute("SELECT current_user").fetchone()
        dsn = server.create_database("dca_tests")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE t (id serial PRIMARY KEY)")
            conn.execute("INSERT INTO t DEFAULT VALUES")
            count = conn.execute("SELECT count(*) FROM t").fetchone()
        tmpdir = server.tmpdir

    assert version is not None and version[0]
    assert user == ("postgres",)
    assert count == (1,)
    assert tmpdir is not None and not tmpdir.exists()


@pytest.mark.integration
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_celery_worker_runs_a_task_from_redis(
    redis_server: RedisServer, celery_client: Celery, pool: str
) -> None:
    env = worker_env(redis_server.url, result_backend=redis_server.url)
    worker = CeleryWorker(env=env, pool=pool, concurrency=2)

    try:
        with worker:
            result = celery_client.send_task("tests.ping", args=["hello"])
            assert result.get(timeout=30) == "hello"

        assert not worker.is_alive()
        log = worker.log_text()
        assert "ready." in log
        assert "tests.ping" in log
    finally:
        worker.close()


@pytest.mark.integration
def test_celery_worker_survives_sigkill_and_restart(
    redis_server: RedisServer, celery_client: Celery
) -> None:
    env = worker_env(redis_server.url, result_backend=redis_server.url)
    worker = CeleryWorker(env=env, concurrency=1)
    try:
        worker.start()
        first_main = worker.pid
        pool_pid = celery_client.send_task("tests.worker_pid").get(timeout=30)
        assert pool_pid != first_main

        worker.kill(signal.SIGKILL)

        assert not worker.is_alive()
        # The pool child died with its group (a zombie until its reaper runs).
        wait_until(lambda: _dead(pool_pid), timeout=10, what="pool child death")

        worker.restart()

        assert worker.is_alive()
        assert worker.pid != first_main
        assert worker.starts == 2
        assert celery_client.send_task("tests.ping").get(timeout=30) == "pong"
        assert worker.log_text().count("ready.") == 2
    finally:
        worker.close()


@pytest.mark.integration
def test_a_worker_that_cannot_start_reports_its_log(redis_server: RedisServer) -> None:
    worker = CeleryWorker(
        env=worker_env(redis_server.url), app="tests.no_such_module", startup_timeout=30
    )

    try:
        with pytest.raises(ServiceError, match="exited"):
            worker.start()

        assert "no_such_module" in worker.log_text()
    finally:
        worker.close()
