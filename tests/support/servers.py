"""Start real servers for the integration tests and clean up after them.

Each server runs on a free loopback port in its own temporary directory:
``RedisServer`` (Debian's ``redis-server``), ``PostgresServer`` (``initdb`` and
``postgres`` from ``/usr/lib/postgresql/*/bin`` or ``PATH``), ``CeleryWorker``
(``celery -A tests.celery_app worker`` as a subprocess) and ``FakeAPIProcess``
(``tests.support.fake_api`` in its own process). A missing binary skips the
test naming the Debian package to install, or fails it when
``CLOUDINARY_ANALYSIS_REQUIRE_SERVICES=1`` (CI).

The ``*_fixture`` generator functions make session fixtures in one line each
(``yield from servers.redis_server_fixture()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from tests.support.fake_api import FakeAPIControl

logger = logging.getLogger(__name__)

REQUIRE_SERVICES_ENV = "CLOUDINARY_ANALYSIS_REQUIRE_SERVICES"
REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service did not start or stop as expected."""


def services_required() -> bool:
    """Return whether a missing service must fail the run instead of skipping."""
    return os.environ.get(REQUIRE_SERVICES_ENV, "") not in ("", "0")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def which_or_skip(
    binary: str, debian_package: str, *, extra_dirs: Sequence[str | Path] = ()
) -> str:
    """Return the path of ``binary`` or skip (fail in CI) naming its package."""
    found = shutil.which(binary)
    for directory in extra_dirs:
        if found:
            break
        candidate = Path(directory) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found = str(candidate)
    if not found:
        skip_or_fail(
            f"{binary} not found: install the Debian package {debian_package} "
            f"(apt-get install {debian_package})"
        )
    return found


def find_free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    process: subprocess.Popen[Any] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``predicate`` until true; raise ``ServiceError`` with the log tail."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"{what}: process exited with {process.returncode}\n" + _tail(log_path)
            )
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"{what}: not ready after {timeout}s\n" + _tail(log_path)
            )
        time.sleep(interval)


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _exited_unreaped(process: subprocess.Popen[Any], timeout: float) -> bool:
    """Wait until ``process`` exits, leaving it unreaped; return whether it did.

    An unreaped (zombie) leader keeps its pid, and so its process group id,
    from being reused: signalling the group stays safe until ``wait()``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = os.waitid(
                os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT
            )
        except ChildProcessError:  # already reaped elsewhere
            return True
        if info is not None and info.si_pid == process.pid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _terminate(
    process: subprocess.Popen[Any] | None,
    sig: int = signal.SIGTERM,
    timeout: float = 20.0,
    *,
    group: bool = False,
) -> None:
    """Send ``sig``, wait, then SIGKILL (the whole group when ``group``)."""
    if process is None or process.returncode is not None:
        # Reaped already: its pid may belong to another process group now
        # (PostgreSQL backends lead their own), so signal nothing.
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)
    if not _exited_unreaped(process, timeout):
        logger.warning("pid %s ignored signal %s: killing it", process.pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        _exited_unreaped(process, 10)
    if group:
        # Pool children of a killed main process must not outlive the test;
        # the leader is not reaped yet, so the group id is still ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.binary = binary or which_or_skip("redis-server", "redis-server")
        self.host = LOOPBACK
        self.port = port or 0
        self.startup_timeout = startup_timeout
        self.tmpdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url}>"

    @property
    def url(self) -> str:
        """Return the ``redis://`` URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """Return the server's log file."""
        assert self.tmpdir is not None, "not started"
        return self.tmpdir / "redis.log"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dca-redis-"))
        # The port may be taken between choosing and binding it: try again.
        for attempt in range(3):
            if not self.port or attempt:
                self.port = find_free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        "--port",
                        str(self.port),
                        "--bind",
                        self.host,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self.tmpdir),
                        "--daemonize",
                        "no",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.tmpdir,
                )
            try:
                wait_until(
                    self.ping,
                    timeout=self.startup_timeout,
                    what="redis-server",
                    process=self.process,
                    log_path=self.log_path,
                )
                return self
            except ServiceError:
                _terminate(self.process, signal.SIGKILL)
                if attempt == 2 or "in use" not in _tail(self.log_path):
                    self._cleanup()
                    raise
        raise AssertionError("unreachable")

    def command(self, *args: str) -> bytes:
        """Send one inline command and return the first reply line."""
        with socket.create_connection((self.host, self.port), timeout=2) as sock:
            sock.sendall(" ".join(args).encode() + b"\r\n")
            return sock.makefile("rb").readline().rstrip(b"\r\n")

    def ping(self) -> bool:
        """Return whether the server answers PING."""
        try:
            return self.command("PING") == b"+PONG"
        except OSError:
            return False

    def flushall(self) -> None:
        """Delete every key."""
        self.command("FLUSHALL")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        _terminate(self.process)
        self.process = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def find_postgres_bindir() -> Path | None:
    """Return the directory of ``initdb``/``postgres``, newest version first."""
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))

    candidates = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda p: version(p / "initdb"),
        reverse=True,
    )
    return candidates[0] if candidates else None


def _postgres_os_user() -> pwd.struct_passwd | None:
    """Return the unprivileged account to run PostgreSQL as when we are root."""
    if os.geteuid() != 0:
        return None
    # PostgreSQL refuses to run as root; Debian's package creates `postgres`.
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceError("running as root and no postgres or nobody account exists")


class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth) on a free loopback port."""

    def __init__(
        self,
        *,
        bindir: str | Path | None = None,
        port: int | None = None,
        user: str = "postgres",
        dbname: str = "postgres",
        startup_timeout: float = 60.0,
    ) -> None:
        found = Path(bindir) if bindir else find_postgres_bindir()
        extra = [found] if found else []
        self.initdb = which_or_skip("initdb", "postgresql", extra_dirs=extra)
        # Resolved: a PATH symlink (/usr/local/bin/initdb here) would hide
        # the real bindir's other tools, pg_isready among them.
        self.bindir = Path(self.initdb).resolve().parent
        self.host = LOOPBACK
        self.port = port or 0
        self.user = user
        self.dbname = dbname
        self.startup_timeout = startup_timeout
        self.tmpdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._os_user = _postgres_os_user()

    def __repr__(self) -> str:
        return f"<PostgresServer {self.dsn!r}>"

    @property
    def dsn(self) -> str:
        """Return the libpq keyword DSN of the default database."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        """Return the libpq keyword DSN of another database on this server."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    @property
    def url(self) -> str:
        """Return a ``postgresql://`` URL of the default database."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def log_path(self) -> Path:
        """Return the server's log file."""
        assert self.tmpdir is not None, "not started"
        return self.tmpdir / "postgres.log"

    def _popen_user(self) -> dict[str, Any]:
        if self._os_user is None:
            return {}
        return {
            "user": self._os_user.pw_uid,
            "group": self._os_user.pw_gid,
            "extra_groups": [],
        }

    def start(self) -> PostgresServer:
        """Create a cluster in a temp dir, start it and wait until it accepts."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dca-pg-"))
        if self._os_user is not None:
            os.chown(self.tmpdir, self._os_user.pw_uid, self._os_user.pw_gid)
        data = self.tmpdir / "data"
        try:
            with self.log_path.open("ab") as log:
                result = subprocess.run(
                    [
                        self.initdb,
                        "-D",
                        str(data),
                        "-U",
                        self.user,
                        "-A",
                        "trust",
                        "-E",
                        "UTF8",
                        "--no-locale",
                        "--no-sync",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.tmpdir,
                    timeout=120,
                    check=False,
                    **self._popen_user(),
                )
            if result.returncode != 0:
                raise ServiceError("initdb failed\n" + _tail(self.log_path))
            for attempt in range(3):
                if not self.port or attempt:
                    self.port = find_free_port()
                if self._start_postgres(data):
                    return self
            raise ServiceError("postgres did not start\n" + _tail(self.log_path))
        except BaseException:
            self.stop()
            raise

    def _start_postgres(self, data: Path) -> bool:
        assert self.tmpdir is not None
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.tmpdir),
                    "-c",
                    f"listen_addresses={self.host}",
                    # Durability is worthless for a throwaway test cluster.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.tmpdir,
                **self._popen_user(),
            )
        try:
            wait_until(
                self.is_ready,
                timeout=self.startup_timeout,
                what="postgres",
                process=self.process,
                log_path=self.log_path,
            )
            return True
        except ServiceError:
            _terminate(self.process, signal.SIGKILL)
            if "in use" in _tail(self.log_path):
                return False
            raise

    def is_ready(self) -> bool:
        """Return whether the server accepts connections (``pg_isready``)."""
        pg_isready = self.bindir / "pg_isready"
        if not pg_isready.exists():
            # Not a bare TCP connect: the postmaster accepts before recovery
            # ends and answers "the database system is starting up".
            try:
                import psycopg
            except ImportError:
                try:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                    return True
                except OSError:
                    return False
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True
        result = subprocess.run(
            [str(pg_isready), "-q", "-h", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """Create a database and return its DSN (needs psycopg)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the cluster."""
        # SIGINT is PostgreSQL's "fast" shutdown: disconnect clients, exit.
        _terminate(self.process, signal.SIGINT, timeout=30)
        self.process = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment plus the repo on PYTHONPATH and ``extra``."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    env.update(extra or {})
    return env


def worker_env(
    broker_url: str,
    *,
    result_backend: str | None = None,
    sqlite_path: str | Path | None = None,
    postgres_dsn: str | None = None,
    media_root: str | Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment variables a test worker needs (see tests/settings)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    if result_backend:
        env["CELERY_RESULT_BACKEND"] = result_backend
    if sqlite_path:
        env["TESTS_SQLITE_PATH"] = str(sqlite_path)
    if postgres_dsn:
        env["TESTS_POSTGRES_DSN"] = postgres_dsn
    if media_root:
        env["TESTS_MEDIA_ROOT"] = str(media_root)
    env.update(extra or {})
    return env


class CeleryWorker:
    """A ``celery worker`` subprocess for ``tests.celery_app``, logging to a file."""

    READY_PATTERN = re.compile(r"\bready\.\s*$", re.MULTILINE)

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        app: str = "tests.celery_app",
        pool: str = "prefork",
        concurrency: int = 2,
        queues: Sequence[str] = ("celery",),
        loglevel: str = "info",
        hostname: str | None = None,
        extra_args: Sequence[str] = (),
        log_path: str | Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.env = dict(env or {})
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.queues = list(queues)
        self.loglevel = loglevel
        self.hostname = hostname or f"dca-test-{os.getpid()}-{time.monotonic_ns()}@%h"
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self._own_tmpdir: Path | None = None
        if log_path is None:
            self._own_tmpdir = Path(tempfile.mkdtemp(prefix="dca-worker-"))
            log_path = self._own_tmpdir / "worker.log"
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"<CeleryWorker {self.hostname} pid={self.pid}>"

    @property
    def command(self) -> list[str]:
        """Return the worker's command line."""
        return [
            sys.executable, "-m", "celery",
            "-A", self.app,
            "worker",
            f"--pool={self.pool}",
            f"--concurrency={self.concurrency}",
            "-Q", ",".join(self.queues),
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l", self.loglevel,
            "-n", self.hostname,
            *self.extra_args,
        ]  # fmt: skip

    @property
    def pid(self) -> int | None:
        """Return the main process id, or None when not running."""
        return self.process.pid if self.process is not None else None

    def is_alive(self) -> bool:
        """Return whether the main process is running."""
        # Not poll(): reaping a dead leader would free its pid, and stop()
        # could then no longer sweep the pool left behind in its group.
        return (
            self.process is not None
            and self.process.returncode is None
            and not _exited_unreaped(self.process, 0)
        )

    def start(self) -> CeleryWorker:
        """Start the worker and wait for its "ready." log line."""
        if self.is_alive():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1}: {self.hostname}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=subprocess_env(self.env),
                # Its own process group, so a crash test can kill the pool too.
                start_new_session=True,
            )
        self.starts += 1
        try:
            self.wait_for_log(self.READY_PATTERN, timeout=self.startup_timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def log_text(self, *, since_start: bool = False) -> str:
        """Return the log (only this run's part with ``since_start``)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            if since_start:
                log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 30.0
    ) -> None:
        """Wait until this run's log matches ``pattern``."""
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        wait_until(
            lambda: bool(regex.search(self.log_text(since_start=True))),
            timeout=timeout,
            interval=0.1,
            what=f"celery worker waiting for {regex.pattern!r}",
            process=self.process,
            log_path=self.log_path,
        )

    def kill(self, sig: int = signal.SIGKILL, *, group: bool = True) -> None:
        """Send ``sig`` to the worker (and its pool: ``group``) and reap it."""
        if self.process is None or self.process.returncode is not None:
            return  # reaped: its pid is no longer ours to signal
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.process.pid, sig)
            else:
                os.kill(self.process.pid, sig)
        if sig == signal.SIGKILL:
            # Sweep the group again for late forks while the dead leader
            # still holds the group id, then reap it.
            _exited_unreaped(self.process, 30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM: finish running tasks), SIGKILL after timeout."""
        if self.process is None:
            return
        _terminate(self.process, signal.SIGTERM, timeout=timeout, group=True)

    def restart(self) -> CeleryWorker:
        """Stop (or reap a killed) worker and start it again."""
        self.stop()
        self.process = None
        return self.start()

    def close(self) -> None:
        """Stop and remove the log directory this object created."""
        self.stop()
        if self._own_tmpdir is not None:
            shutil.rmtree(self._own_tmpdir, ignore_errors=True)

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class FakeAPIProcess:
    """``python -m tests.support.fake_api`` in its own process, with its control."""

    def __init__(self, *args: str, startup_timeout: float = 20.0) -> None:
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dca-fakeapi-"))
        self.log_path = self.tmpdir / "fake_api.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.control: FakeAPIControl | None = None

    def __repr__(self) -> str:
        return f"<FakeAPIProcess {self.base_url or 'stopped'}>"

    def start(self) -> FakeAPIProcess:
        """Start the server and read its base URL from the first stdout line."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.fake_api",
                    "--port",
                    "0",
                    "--print-url",
                    *self.args,
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=subprocess_env(),
            )
        assert self.process.stdout is not None
        line = self._readline(self.process.stdout)
        if not line.startswith("http"):
            self.stop()
            raise ServiceError("fake API did not start\n" + _tail(self.log_path))
        self.base_url = line
        self.control = FakeAPIControl(self.base_url)
        return self

    def _readline(self, stream: IO[bytes]) -> str:
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        fd = stream.fileno()
        while b"\n" not in buffer and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buffer += chunk
        return buffer.decode(errors="replace").split("\n", 1)[0].strip()

    def stop(self) -> None:
        """Stop the server process and remove its directory."""
        _terminate(self.process)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> FakeAPIProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def redis_server_fixture() -> Iterator[RedisServer]:
    """Yield a started ``RedisServer`` (skip or fail when redis-server is missing)."""
    with RedisServer() as server:
        yield server


def postgres_server_fixture() -> Iterator[PostgresServer]:
    """Yield a started ``PostgresServer`` (skip or fail when PostgreSQL is missing)."""
    with PostgresServer() as server:
        yield server
