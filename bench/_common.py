"""Shared parts of benchmarks 2–5: services, child processes, figures, Markdown.

Each benchmark's ``main(argv)`` runs in the parent process: it starts (or
reuses) the real services — ``redis-server``, a PostgreSQL cluster, the fake
Analyze API in its own process — builds one environment for
``bench.settings`` and runs the measuring code in a fresh child process
(``python bench/<name>.py --child <json>``), so every benchmark gets its own
Django setup, database and peak RSS. The child writes its numbers as JSON to
the file named by ``DCA_BENCH_OUT``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS = "bench.settings"
OUT_ENV = "DCA_BENCH_OUT"
#: Quota of the fake API: no benchmark run should ever meet a 429.
FAKE_QUOTA = 10_000_000

_database_names = itertools.count(1)


# -- figures ---------------------------------------------------------------------


@dataclass
class Figure:
    """One reported number with its target (``met`` is None without a target)."""

    name: str
    value: float | None
    display: str
    target: str = ""
    met: bool | None = None

    def line(self) -> str:
        """Return the figure as one printed line."""
        verdict = "" if self.met is None else ("  met" if self.met else "  MISSED")
        target = f"  (target {self.target})" if self.target else ""
        return f"  {self.name}: {self.display}{target}{verdict}"


def figures_dicts(figures: Sequence[Figure]) -> list[dict[str, Any]]:
    """Return the figures as JSON-ready dicts."""
    return [asdict(f) for f in figures]


def print_figures(title: str, figures: Sequence[Figure]) -> None:
    """Print a benchmark's figures under its title."""
    print(f"{title}:")
    for figure in figures:
        print(figure.line())


def median(values: Sequence[float]) -> float:
    """Return the median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


def ms(seconds: float) -> str:
    """Format seconds as milliseconds with sensible precision."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


# -- the machine and the command -------------------------------------------------


def machine() -> dict[str, Any]:
    """Return what the numbers depend on: CPUs, Python, platform, load."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average": round(os.getloadavg()[0], 2),
    }


def machine_text(info: dict[str, Any], load_after: float | None = None) -> str:
    """Return the machine line of a docs section."""
    load = f"load average {info['load_average']}"
    if load_after is not None:
        load += f" before, {load_after} after"
    return f"{info['cpus']} CPUs, Python {info['python']}, {info['platform']}, {load}"


def python_shown() -> str:
    """Return the interpreter as the docs show it (relative to the repository)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(ROOT))
    except ValueError:
        return "python"


def command(script: str, argv: Sequence[str]) -> str:
    """Return the exact command line that runs ``script`` with ``argv``."""
    return shlex.join([python_shown(), script, *argv])


# -- services -------------------------------------------------------------------


class Services:
    """Real services shared by the benchmarks of one process, started lazily."""

    def __init__(self) -> None:
        self._redis: Any = None
        self._postgres: Any = None
        self._fake: Any = None
        self.root = Path(tempfile.mkdtemp(prefix="dca-bench-"))

    def redis(self) -> Any:
        """Return a running ``RedisServer`` (emptied for each caller)."""
        from tests.support.servers import RedisServer

        if self._redis is None:
            self._redis = RedisServer().start()
        self._redis.flushall()
        return self._redis

    def postgres(self) -> Any:
        """Return a running ``PostgresServer``."""
        from tests.support.servers import PostgresServer

        if self._postgres is None:
            self._postgres = PostgresServer().start()
        return self._postgres

    def fake_api(self) -> Any:
        """Return a running out-of-process fake API (reset for each caller)."""
        from tests.support.servers import FakeAPIProcess

        if self._fake is None:
            # Its own process: its threads must not compete for our GIL.
            self._fake = FakeAPIProcess("--quota-limit", str(FAKE_QUOTA)).start()
        self._fake.control.reset()
        return self._fake

    def new_database(self, kind: str, name: str) -> dict[str, str]:
        """Create an empty database and return the environment that names it."""
        number = next(_database_names)
        if kind == "postgresql":
            dsn = self.postgres().create_database(f"bench_{name}_{number}")
            return {"TESTS_POSTGRES_DSN": dsn}
        if kind == "sqlite":
            folder = self.root / f"{name}-{number}"
            folder.mkdir(parents=True, exist_ok=True)
            return {"TESTS_SQLITE_PATH": str(folder / "db.sqlite3")}
        raise ValueError(f"unknown database kind {kind!r}")

    def media_root(self, name: str) -> Path:
        """Return an empty media directory for one benchmark."""
        folder = self.root / f"media-{name}-{next(_database_names)}"
        folder.mkdir(parents=True)
        return folder

    def close(self) -> None:
        """Stop every service and remove the temporary files."""
        import shutil

        for service in (self._fake, self._redis, self._postgres):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
        self._fake = self._redis = self._postgres = None
        shutil.rmtree(self.root, ignore_errors=True)


_services: Services | None = None


def services() -> Services:
    """Return this process's shared services (stopped at exit)."""
    global _services
    if _services is None:
        _services = Services()
        atexit.register(close_services)
    return _services


def close_services() -> None:
    """Stop the shared services now (``run_all`` calls this at the end)."""
    global _services
    if _services is not None:
        _services.close()
        _services = None


def bench_env(
    database: dict[str, str],
    *,
    media_root: Path,
    broker_url: str | None = None,
    api_url: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """Return the environment of a benchmark child or worker (``bench.settings``)."""
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "TESTS_MEDIA_ROOT": str(media_root),
        **database,
    }
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
        env["CELERY_TASK_ALWAYS_EAGER"] = "0"
    if api_url:
        env["DCA_IT_API_URL"] = api_url
    env.update(extra)
    return env


# -- child processes ------------------------------------------------------------


def run_child(
    script: str | Path,
    payload: dict[str, Any],
    env: dict[str, str],
    *,
    timeout: float = 900,
) -> dict[str, Any]:
    """Run ``script --child payload`` with ``env``; return the JSON it wrote."""
    from tests.support.servers import subprocess_env

    with tempfile.NamedTemporaryFile(
        prefix="dca-bench-out-", suffix=".json", delete=False
    ) as out:
        out_path = Path(out.name)
    try:
        child_env = subprocess_env({**env, OUT_ENV: str(out_path)})
        done = subprocess.run(
            [sys.executable, str(script), "--child", json.dumps(payload)],
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(script).name} child exited {done.returncode}")
        return json.loads(out_path.read_text())  # type: ignore[no-any-return]
    finally:
        out_path.unlink(missing_ok=True)


def child_main(handlers: dict[str, Callable[..., dict[str, Any]]]) -> None:
    """Run the child side: set Django up, call the named handler, write JSON."""
    payload = json.loads(sys.argv[2])
    setup_django()
    handler = handlers[payload.pop("step")]
    result = handler(**payload)
    Path(os.environ[OUT_ENV]).write_text(json.dumps(result))


def is_child() -> bool:
    """Return whether this process was started by ``run_child``."""
    return len(sys.argv) > 2 and sys.argv[1] == "--child"


def setup_django() -> None:
    """Configure Django from ``bench.settings`` and make the Celery app current."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django

    django.setup()
    import tests.celery_app  # noqa: F401 - the app tasks are sent with


def migrate() -> None:
    """Create every table, the bench app's included (it has no migrations)."""
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)


def log(message: str) -> None:
    """Print a progress line (flushed: children share the terminal)."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Measure a block's wall time in seconds (read ``[0]`` after the block)."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def _proc_table() -> dict[int, tuple[int, float]]:
    """Return pid → (ppid, CPU seconds of itself and its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                text = fh.read()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        table[int(entry.name)] = (int(fields[1]), ticks / tick)
    return table


def machine_busy_seconds() -> float:
    """Return the CPU seconds all CPUs spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(roots: dict[str, int | None]) -> dict[str, float]:
    """Return the CPU seconds each root process and its descendants used so far.

    Living descendants count with their own time; exited ones are in their
    parent's ``cutime`` once reaped, so nothing counts twice.
    """
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    totals = {}
    for name, root in roots.items():
        total, stack = 0.0, [root] if root in table else []
        while stack:
            pid = stack.pop()
            total += table[pid][1]
            stack.extend(children.get(pid, ()))
        totals[name] = total
    return totals


def own_cpu_seconds(pid: int | None) -> float:
    """Return the CPU seconds of process ``pid`` alone (its living children
    not counted), 0 when it is gone."""
    entry = _proc_table().get(pid or -1)
    return entry[1] if entry else 0.0


def enqueue_batched(analysis_ids: Sequence[int]) -> None:
    """Publish one task message per id, batched: what a worker's fan-out does.

    ``services.enqueue`` from the web process sends several ids as one
    ``dispatch_analyses`` message; the worker then publishes the task messages
    through one producer in one batch. This times that second half.
    """
    from django_cloudinary_analysis import services

    services.enqueue(analysis_ids, fan_out=False)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB.

    VmHWM, not ``ru_maxrss``: Linux carries the high-water mark of the
    process that forked (here the benchmark runner) across ``exec`` into
    ``ru_maxrss``, so a small child would report its parent's size.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Return this process's resident set size now, in MB (VmRSS)."""
    return _status_mb("VmRSS") or 0.0
