"""Pipeline throughput: analyses/s through real Redis and a real Celery worker.

Run: ``.venv/bin/python bench/pipeline_throughput.py [--quick] [-n N]
[--sides ours,fanout,hand,serial,overlap,batch] [--only-0ms] [--profile DIR]
[--quiet-task-logs]``

N analyses (``benchapp.MediaPhoto``: N/2 objects × ``google_tagging`` and
``ai_vision_moderation``, each object its own small PNG so nothing is
reused) are queued in a real ``redis-server``, one ``dispatch_analyses``
message per save as uploads publish them; then a ``celery worker`` (prefork,
concurrency 8, ``-l info``, the app's logger at INFO, ``CELERY_DB_REUSE_MAX``)
starts and runs them against the fake Analyze API in its own process, on
PostgreSQL (eight processes writing at once; SQLite would serialise them).
Throughput is N over the time from the first claim (``started_at``) to the
last result (``finished_at``).

Sides (``SIDES``), each its own worker run with the same settings: ``ours``
(the app: the dispatch task runs a save's first analysis and fans the other
out), ``fanout`` (every analysis its own task: the worker before issue 13),
``hand`` (``bench/benchapp/handwritten.py``: one plain task per analysis,
the reference), and on request ``serial`` (a save's analyses one after the
other in one task), ``overlap`` (a measuring prototype: a save's API calls
overlapping in threads, ``bench/benchapp/overlap.py``) and ``batch`` (one
message per 500 objects, as a backfill publishes). *CPU per analysis* is each
process tree's CPU time over the run divided by N: it does not depend on
the load of this shared machine, unlike the rates.

At 50 ms of API latency the limit is concurrency ÷ latency = 160/s; the
target is ≥ 0.9 of it. At 0 ms the runs show the pure overhead per analysis;
one more run of ours at 0 ms with the app's logger at DEBUG splits it with
the worker's own timings (Celery's "succeeded in", the backend's "done in")
into API call, our code and the database, and the broker; the same pieces
are also timed alone in one process.

``main(argv)`` returns the numbers as a dict for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common
from bench._common import Figure, median

TITLE = "Pipeline throughput"
SECTION = "## Pipeline throughput"
CONCURRENCY = 8
LATENCIES_MS = (50, 0)
TARGET_FRACTION = 0.9
TYPES = ("google_tagging", "ai_vision_moderation")
UNFINISHED = ("queued", "running", "retrying", "waiting")
#: What runs by default: ours (one message per save, as uploads publish
#: them, which the worker runs in one task), ``fanout`` (the same messages,
#: each fanned out as one task per analysis: the worker before issue 13) and
#: the hand-written task. ``batch``: ours, one message per 500 objects, as a
#: backfill publishes them.
SIDES = ("ours", "fanout", "hand")
#: How many of a save's analyses the dispatch task runs itself, per side
#: (``tasks.RUN_IN_TASK``; ours: the app's default).
RUN_IN_TASK = {"fanout": 0, "serial": 2}
SIDE_NAMES = {
    "ours": "ours, one message per save",
    "fanout": "ours, one message per save fanned out (before)",
    "overlap": "ours, a save's API calls overlapping (prototype)",
    "serial": "ours, a save's analyses one after another in one task",
    "batch": "ours, one message per 500 objects",
    "hand": "hand-written task",
    "split": "ours, app logging at DEBUG",
}
ALL_SIDES = ("ours", "fanout", "hand", "batch", "overlap", "serial")
#: Messages per enqueue call when comparing one-by-one and batched publishing.
BULK = 100

TASK_DONE = re.compile(
    r"Task cloudinary_analysis\.(?:run|dispatch)_analys[ie]s\[[^\]]+\] "
    r"succeeded in ([0-9.]+)s"
)
API_DONE = re.compile(r"cloudinary (\w+) done in ([0-9.]+) ms")


# -- child ------------------------------------------------------------------------


def _prepare(objects: int) -> dict[str, Any]:
    """Create the objects and their files (no analysis is scheduled)."""
    from django.conf import settings

    from bench.benchapp.models import HandPhoto, MediaPhoto
    from tests.support.images import png_bytes

    _common.migrate()
    folder = Path(settings.MEDIA_ROOT) / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(objects):
        name = f"bench/pipeline-{i}.png"
        (folder / f"pipeline-{i}.png").write_bytes(png_bytes(i, (16, 16)))
        rows.append(MediaPhoto(title=f"photo {i}", image=name))
    # bulk_create sends no signals: nothing is analysed yet.
    MediaPhoto.objects.bulk_create(rows, batch_size=1000)
    # The hand-written side: one object per analysis, the same files.
    HandPhoto.objects.bulk_create(
        [HandPhoto(title=row.title, image=row.image.name) for row in rows * 2],
        batch_size=1000,
    )
    return {"objects": MediaPhoto.objects.count()}


def _clear_rows() -> None:
    from django_cloudinary_analysis.models import (
        Analysis,
        Appeal,
        MediaTag,
        ModerationDecision,
        Notification,
        StatementOfReasons,
    )

    # Rows that point at decisions go first (rejections get a statement).
    for model in (
        Notification,
        Appeal,
        StatementOfReasons,
        MediaTag,
        ModerationDecision,
        Analysis,
    ):
        qs = model.objects.all()
        qs._raw_delete(qs.db)


def _schedule(objects: int, per_save: bool = True) -> dict[str, Any]:
    """Queue one analysis per object and type (published on commit).

    ``per_save``: one transaction, hence one message, per object, as uploads
    publish them; else batches of 500 objects (one message of 1000 ids each,
    as a backfill publishes them).
    """
    from django.db import transaction

    from bench.benchapp.models import MediaPhoto
    from django_cloudinary_analysis import services

    _clear_rows()
    objs = list(MediaPhoto.objects.order_by("pk")[:objects])
    started = time.perf_counter()
    queued = 0
    size = 1 if per_save else 500
    for i in range(0, len(objs), size):
        with transaction.atomic():
            queued += len(services.schedule_many(objs[i : i + size], new_content=True))
    return {"queued": queued, "seconds": time.perf_counter() - started}


def _schedule_hand(objects: int) -> dict[str, Any]:
    """Queue the hand-written task for ``objects`` photos, one message each
    (what its on-commit receiver publishes per save)."""
    from bench.benchapp.handwritten import analyze_photo
    from bench.benchapp.models import HandPhoto

    HandPhoto.objects.update(analysis=None)
    pks = list(HandPhoto.objects.order_by("pk").values_list("pk", flat=True))
    pks = pks[:objects]
    started = time.perf_counter()
    for pk in pks:
        analyze_photo.delay(pk)
    return {"queued": len(pks), "seconds": time.perf_counter() - started}


def _pieces(calls: int) -> dict[str, Any]:
    """Time API call, services.run (memory backend) and publishing alone."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    from bench.benchapp.models import MediaPhoto
    from django_cloudinary_analysis import services
    from django_cloudinary_analysis.backends.base import get_backend
    from django_cloudinary_analysis.backends.memory import MemoryBackend
    from django_cloudinary_analysis.models import Analysis
    from django_cloudinary_analysis.sources import get_resolver
    from tests.celery_app import app
    from tests.support.api_samples import sample_analysis

    objs = list(MediaPhoto.objects.order_by("pk")[: max(calls // 2, 1)])
    out: dict[str, Any] = {}

    # 1. The API call through the real backend (client, HTTP, JSON).
    backend = get_backend()
    media = [get_resolver()(obj, "image") for obj in objs]
    params = {
        t: services.effective_params(s)
        for t, s in zip(TYPES, _specs(MediaPhoto), strict=True)
    }
    for i in range(20):
        backend.analyze(TYPES[i % 2], media[0], params[TYPES[i % 2]])
    wall, cpu = [], []
    for i in range(calls):
        kind = TYPES[i % 2]
        c0, t0 = time.process_time(), time.perf_counter()
        backend.analyze(kind, media[i // 2 % len(media)], params[kind])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out["api"] = {"wall": median(wall), "cpu": median(cpu)}

    # 2. services.run with an instant backend: claim, load, digest, store, decide.
    _clear_rows()
    planned = services.schedule_many(objs, new_content=True, dry_run=True)
    rows = Analysis.objects.bulk_create(planned)  # no enqueue: run them here
    memory = "django_cloudinary_analysis.backends.memory.MemoryBackend"
    conf = dict(settings.CLOUDINARY_ANALYSIS)
    conf["BACKEND"] = memory
    MemoryBackend.reset()
    for kind in TYPES:
        MemoryBackend.set_result(kind, sample_analysis(kind, params[kind]))
    wall, cpu, queries = [], [], []
    with override_settings(CLOUDINARY_ANALYSIS=conf):
        for analysis in rows:
            with CaptureQueriesContext(connection) as captured:
                c0, t0 = time.process_time(), time.perf_counter()
                outcome = services.run(analysis.pk)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            assert outcome.status == "succeeded", outcome
            queries.append(len(captured.captured_queries))
    out["run"] = {"wall": median(wall), "cpu": median(cpu), "queries": queries}

    # 3. Publishing one task message (what on-commit enqueue does per analysis).
    ids = [a.pk for a in rows]
    wall, cpu = [], []
    for i in range(calls):
        c0, t0 = time.process_time(), time.perf_counter()
        services.enqueue([ids[i % len(ids)]])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out["publish"] = {"wall": median(wall), "cpu": median(cpu)}
    # A backfill batch: many ids as one dispatch message vs fanned-out tasks.
    bulk: dict[str, list[float]] = {"current": [], "batched": []}
    ways = [("current", services.enqueue), ("batched", _common.enqueue_batched)]
    for i in range(6):
        for name, enqueue in ways if i % 2 == 0 else ways[::-1]:
            c0 = time.process_time()
            enqueue(ids[:BULK])
            bulk[name].append((time.process_time() - c0) / BULK)
    out["bulk_publish_cpu"] = {name: median(v) for name, v in bulk.items()}
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("celery")
    _clear_rows()
    return out


def _specs(model: Any) -> list[Any]:
    from django_cloudinary_analysis.mixins import analysis_config

    return analysis_config(model)["image"]


# -- parent -----------------------------------------------------------------------


#: Finished analyses, per side: ours by status, the hand-written by its JSON.
DONE_SQL = {
    "ours": "SELECT count(*) FILTER (WHERE status <> ALL(%s)) "
    "FROM cloudinary_analysis_analysis",
    "hand": "SELECT count(*) FROM benchapp_handphoto WHERE analysis IS NOT NULL",
}
#: Seconds between two looks at the database while a run goes on.
POLL = 0.05


def _wait_finished(
    dsn: str, side: str, expect: int, timeout: float, worker: Any
) -> dict[str, float]:
    """Wait until ``expect`` analyses are done; return when the first and the
    last were seen done (``time.time()``), the same way for both sides."""
    import psycopg

    deadline = time.monotonic() + timeout
    params = None if side == "hand" else (list(UNFINISHED),)
    first: tuple[float, int] | None = None
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            (done,) = conn.execute(DONE_SQL[_kind(side)], params).fetchone()
            now = time.time()
            if done and first is None:
                first = (now, done)
            if done >= expect:
                assert first is not None
                return {
                    "first_seen": first[0],
                    "first_done": first[1],
                    "last_seen": now,
                }
            if not worker.is_alive():
                raise RuntimeError("the worker died:\n" + worker.log_text()[-3000:])
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{expect - done} of {expect} analyses unfinished after {timeout} s"
                )
            time.sleep(POLL)


def _kind(side: str) -> str:
    return "hand" if side == "hand" else "ours"


def _run_stats(dsn: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        first, last, mean_attempts = conn.execute(
            "SELECT extract(epoch FROM min(started_at)), "
            "extract(epoch FROM max(finished_at)), avg(attempts) "
            "FROM cloudinary_analysis_analysis"
        ).fetchone()
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM cloudinary_analysis_analysis "
                "GROUP BY status"
            ).fetchall()
        )
        tags = conn.execute("SELECT count(*) FROM cloudinary_analysis_mediatag")
        decisions = conn.execute(
            "SELECT count(*) FROM cloudinary_analysis_moderationdecision"
        )
        return {
            "first_start": float(first),
            "last_finish": float(last),
            "statuses": statuses,
            "mean_attempts": float(mean_attempts),
            "tags": tags.fetchone()[0],
            "decisions": decisions.fetchone()[0],
        }


def _log_split(text: str, analyses: int) -> dict[str, Any]:
    """Task and API time per analysis from the worker's log (a dispatch task
    may run a save's analyses itself, so the totals are divided by them)."""
    task = [float(s) for s in TASK_DONE.findall(text)]
    api = [float(ms) / 1000 for _kind, ms in API_DONE.findall(text)]
    return {
        "tasks_logged": len(task),
        "task_mean": sum(task) / analyses,
        "api_mean": sum(api) / analyses,
    }


def _one_run(
    latency_ms: int,
    n: int,
    env: dict[str, str],
    dsn: str,
    services: dict[str, Any],
    log_dir: Path,
    side: str = "ours",
    profile: Path | None = None,
    label: str = "",
    loglevel: str = "info",
) -> dict[str, Any]:
    """One worker run of ``side`` (see ``SIDES``)."""
    from tests.support.servers import CeleryWorker

    label = label or f"{side}-{latency_ms}ms"

    fake = services["fake_api"]
    fake.control.reset()
    if latency_ms:
        fake.control.add_fault("latency", latency_ms=latency_ms)
    if side == "hand":
        scheduled = _common.run_child(
            __file__, {"step": "schedule_hand", "objects": n}, env
        )
    else:
        scheduled = _common.run_child(
            __file__,
            {"step": "schedule", "objects": n // 2, "per_save": side != "batch"},
            env,
        )
    if side in RUN_IN_TASK:
        env = {**env, "DCA_BENCH_RUN_IN_TASK": str(RUN_IN_TASK[side])}
    if side == "overlap":
        env = {**env, "DCA_BENCH_OVERLAP": "1"}
    worker = CeleryWorker(
        env=env,
        app="tests.celery_app",
        pool="prefork",
        concurrency=CONCURRENCY,
        loglevel=loglevel,
        hostname=f"bench-{label}-{os.getpid()}@%h",
        log_path=log_dir / f"worker-{label}.log",
    )
    worker.start()
    spy = _start_profile(worker.pid, profile, label)
    ready = time.time()
    roots = {name: service.process.pid for name, service in services.items()}
    roots["worker"] = worker.pid
    cpu_before = _common.tree_cpu_seconds(roots)
    main_before = _common.own_cpu_seconds(worker.pid)
    busy_before, clock_before = _common.machine_busy_seconds(), time.monotonic()
    try:
        seen = _wait_finished(dsn, side, scheduled["queued"], max(180.0, n / 5), worker)
        cpu_after = _common.tree_cpu_seconds(roots)
        main_after = _common.own_cpu_seconds(worker.pid)
        busy = (_common.machine_busy_seconds() - busy_before) / (
            time.monotonic() - clock_before
        )
    finally:
        _stop_profile(spy)
        worker.stop()
    done = time.time()
    queued = scheduled["queued"]
    cpu = {name: (cpu_after[name] - cpu_before[name]) / queued for name in roots}
    api_stats = fake.control.stats()
    # Polled the same way for both sides (the hand-written rows keep no times).
    polled = (queued - seen["first_done"]) / max(
        seen["last_seen"] - seen["first_seen"], POLL
    )
    run: dict[str, Any] = {
        "side": side,
        "latency_ms": latency_ms,
        "queued": queued,
        "schedule_seconds": scheduled["seconds"],
        "polled_rate": polled,
        "ready_to_done_seconds": done - ready,
        "api_requests": api_stats["requests"],
        "api_billable": api_stats["billable_calls"],
        "cpu_per_analysis": cpu,
        # The worker's main process (broker, acks, handing tasks to the pool).
        "worker_main_cpu_per_analysis": (main_after - main_before) / queued,
        "machine_cpus_busy": busy,
    }
    if side == "hand":
        run.update(
            rate=polled,
            span_seconds=queued / polled,
            statuses={"succeeded": queued},
        )
    else:
        stats = _run_stats(dsn)
        span = stats["last_finish"] - stats["first_start"]
        split = _log_split(worker.log_text(), queued)
        slot = CONCURRENCY * span / queued
        run.update(
            rate=queued / span,
            span_seconds=span,
            statuses=stats["statuses"],
            mean_attempts=stats["mean_attempts"],
            tags=stats["tags"],
            decisions=stats["decisions"],
            split={
                **split,
                "slot": slot,
                "ours_and_db": max(split["task_mean"] - split["api_mean"], 0.0),
                "broker_and_worker": max(slot - split["task_mean"], 0.0),
            },
        )
    # How much of the machine the pipeline got: it shares it with others.
    run["cpus_used"] = sum(cpu.values()) * queued / run["span_seconds"]
    return run


def _start_profile(pid: int | None, folder: Path | None, name: str) -> Any:
    """py-spy on the worker and its pool (``--profile``), or None."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if folder is None or pid is None or not Path(spy).exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "250",
         "--format", "raw", "--output", str(folder / f"{name}.txt")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop_profile(spy: Any) -> None:
    import signal

    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 400 and 200")
    parser.add_argument("-n", type=int, help="analyses at 50 ms (default 2000)")
    parser.add_argument("--n0", type=int, help="analyses at 0 ms (default 600)")
    parser.add_argument("--calls", type=int, help="calls per piece timed alone")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated, of {', '.join(ALL_SIDES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--only-0ms", action="store_true", help="skip the runs at 50 ms"
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the workers at 0 ms into this folder"
    )
    parser.add_argument(
        "--worker-loglevel", default="info", help="celery worker -l (%(default)s)"
    )
    parser.add_argument(
        "--quiet-task-logs",
        action="store_true",
        help="Celery's per-task INFO lines off (README: workers in production)",
    )
    args = parser.parse_args(argv)
    n = args.n or (400 if args.quick else 2000)
    # At 0 ms the run measures CPU per analysis, which needs fewer of them.
    n0 = args.n0 or (200 if args.quick else 600)
    n, n0 = n + n % 2, n0 + n0 % 2
    calls = args.calls or (60 if args.quick else 120)
    sides = [side for side in args.sides.split(",") if side]
    unknown = set(sides) - set(ALL_SIDES)
    if unknown or "ours" not in sides:
        parser.error(f"--sides needs ours, and knows {', '.join(ALL_SIDES)}")

    info = _common.machine()
    svc = _common.services()
    services = {
        "redis": svc.redis(),
        "fake_api": svc.fake_api(),
        "postgres": svc.postgres(),
    }
    database = svc.new_database("postgresql", "pipeline")
    dsn = database["TESTS_POSTGRES_DSN"]
    env = _common.bench_env(
        database,
        media_root=svc.media_root("pipeline"),
        broker_url=services["redis"].url,
        api_url=services["fake_api"].base_url,
        # Production-like logging: the worker and the app's logger at INFO.
        DCA_BENCH_LOG_LEVEL="INFO",
        # Keep database connections across tasks: by default Celery's Django
        # fixup closes them around every task (see bench/settings.py).
        DCA_BENCH_DB_REUSE_MAX="1000",
    )
    if args.quiet_task_logs:
        env["DCA_BENCH_QUIET_TASKS"] = "1"
    # The split run reads the backend's per-call "done in" DEBUG lines and
    # Celery's per-task "succeeded in" lines.
    debug_env = {**env, "DCA_BENCH_LOG_LEVEL": "DEBUG"}
    debug_env.pop("DCA_BENCH_QUIET_TASKS", None)
    log_dir = svc.root / "pipeline-logs"
    log_dir.mkdir(exist_ok=True)
    _common.log(
        f"{TITLE}: N = {n} at {LATENCIES_MS[0]} ms and {n0} at 0 ms, "
        f"concurrency {CONCURRENCY}, PostgreSQL, sides {', '.join(sides)}"
    )
    _common.run_child(__file__, {"step": "prepare", "objects": max(n, n0) // 2}, env)
    runs: dict[str, dict[str, Any]] = {}
    plan: list[tuple[str, int, int, dict[str, str]]] = []
    for latency, size in zip(LATENCIES_MS, (n, n0), strict=True):
        if latency and args.only_0ms:
            continue
        # Alternate the order, so a change of load falls on both sides alike.
        order = sides if latency else sides[::-1]
        plan += [(side, latency, size, env) for side in order]
    plan.append(("split", 0, n0, debug_env))
    for side, latency, size, run_env in plan:
        run = _one_run(
            latency,
            size,
            run_env,
            dsn,
            services,
            log_dir,
            side="ours" if side == "split" else side,
            profile=args.profile if latency == 0 else None,
            label=f"{side}-{latency}ms",
            # The split reads Celery's INFO "succeeded in" lines.
            loglevel="info" if side == "split" else args.worker_loglevel,
        )
        runs[f"{side}@{latency}"] = run
        cpu = run["cpu_per_analysis"]
        _common.log(
            f"  {side} at {latency} ms: {run['rate']:.1f} analyses/s "
            f"({run['queued']} in {run['span_seconds']:.1f} s), CPU ms per "
            "analysis "
            + " + ".join(f"{k} {v * 1000:.2f}" for k, v in cpu.items())
            + f" = {sum(cpu.values()) * 1000:.2f} (worker main "
            f"{run['worker_main_cpu_per_analysis'] * 1000:.2f}); machine busy "
            f"{run['machine_cpus_busy']:.2f}"
        )
    pieces = _common.run_child(__file__, {"step": "pieces", "calls": calls}, env)
    load_after = round(os.getloadavg()[0], 2)

    limit = CONCURRENCY / (LATENCIES_MS[0] / 1000)
    cpus = info["cpus"] or 1
    figures = []
    for key, run in runs.items():
        side, latency = key.split("@")
        cpu = run["cpu_per_analysis"]
        total = sum(cpu.values())
        fraction = run["rate"] / limit if int(latency) else None
        figures.append(
            Figure(
                f"{SIDE_NAMES[side]} at {latency} ms (N = {run['queued']})",
                run["rate"],
                f"{run['rate']:.1f} analyses/s"
                + (f" = {fraction:.2f} of the {limit:.0f}/s limit" if fraction else "")
                + f"; CPU {total * 1000:.1f} ms per analysis ("
                + ", ".join(f"{k} {v * 1000:.1f}" for k, v in cpu.items())
                + f") → at most {cpus / total:.0f}/s on {cpus} CPUs",
                f"≥ {TARGET_FRACTION} of the limit" if key == "ours@50" else "",
                fraction >= TARGET_FRACTION if fraction and key == "ours@50" else None,
            )
        )
    at50, at0 = runs.get("ours@50"), runs["ours@0"]
    fraction = at50["rate"] / limit if at50 else None
    cpu_total = sum(at0["cpu_per_analysis"].values())
    split = runs["split@0"]["split"]
    figures.append(
        Figure(
            "0 ms, app at DEBUG: worker process time per analysis",
            split["slot"],
            f"{split['slot'] * 1000:.1f} ms = API call "
            f"{split['api_mean'] * 1000:.1f} + our code and DB "
            f"{split['ours_and_db'] * 1000:.1f} + broker and worker "
            f"{split['broker_and_worker'] * 1000:.1f}",
        )
    )
    queries = pieces["run"]["queries"]
    figures.append(
        Figure(
            "alone, one process: API call / services.run / publish",
            None,
            f"{pieces['api']['wall'] * 1000:.1f} / "
            f"{pieces['run']['wall'] * 1000:.1f} "
            f"({median(queries):.0f} queries) / "
            f"{pieces['publish']['wall'] * 1000:.1f} ms",
        )
    )
    result = {
        "benchmark": "pipeline_throughput",
        "title": TITLE,
        "command": _common.command("bench/pipeline_throughput.py", argv),
        "machine": info,
        "load_after": load_after,
        "n": n,
        "n0": n0,
        "concurrency": CONCURRENCY,
        "database": "postgresql",
        "pool": "prefork",
        "limit": limit,
        "fraction": fraction,
        "cpu_per_analysis_0ms": cpu_total,
        "runs": runs,
        "pieces": pieces,
        "figures": _common.figures_dicts(figures),
        "targets_met": {f.name: f.met for f in figures if f.met is not None},
    }
    _common.print_figures(TITLE, figures)
    return result


def render(result: dict[str, Any]) -> str:
    """Render the results as the Markdown section of docs/benchmarks.md."""
    runs = result["runs"]
    pieces = result["pieces"]
    split = runs["split@0"]["split"]
    cpus = result["machine"]["cpus"] or 1
    lines = [
        SECTION,
        "",
        f"Command: `{result['command']}` "
        f"({_common.machine_text(result['machine'], result['load_after'])}).",
        "",
        "`benchapp.MediaPhoto` objects (`google_tagging` and "
        "`ai_vision_moderation`, one distinct PNG each, so nothing is reused) "
        "get their analyses queued in a real `redis-server`, one message per "
        "save as uploads publish them; then a Celery worker starts "
        f"({result['pool']}, concurrency {result['concurrency']}, "
        "`CELERY_DB_REUSE_MAX = 1000`, `-l info` and the app's logger at INFO) "
        "and runs them with the Cloudinary backend against the fake Analyze API "
        "(its own process), on **PostgreSQL 15** (eight writers; SQLite would "
        "serialise them). Rate = analyses ÷ (last `finished_at` − first "
        "`started_at`); the hand-written task "
        "(`bench/benchapp/handwritten.py`: one `HandPhoto` per analysis, "
        "`analyze_photo.delay(pk)` per save, the same worker and settings) "
        "keeps no times, so its rate is read by polling the database every "
        f"{POLL * 1000:.0f} ms. *CPU per analysis* is the CPU time of each "
        "process tree during the run (from `/proc`) divided by the analyses: "
        "it does not depend on what else the machine runs; *worker main* is "
        "the worker's main process alone (broker, acknowledgements, handing "
        "tasks to the pool), part of *worker*.",
        "",
        "| side | API latency | N | analyses/s | fraction of the limit (target ≥ "
        f"{TARGET_FRACTION}) | CPU ms per analysis = worker (main) + PostgreSQL "
        "+ fake API + Redis | at most /s on "
        f"{cpus} CPUs | CPUs used (machine busy) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for key, run in runs.items():
        side = key.split("@")[0]
        latency = run["latency_ms"]
        limit = result["concurrency"] / (latency / 1000) if latency else None
        shown = "–"
        if limit:
            fraction = run["rate"] / limit
            met = fraction >= TARGET_FRACTION
            shown = f"{fraction:.2f}" + ("" if met else " **(no)**")
        cpu = run["cpu_per_analysis"]
        total = sum(cpu.values())
        lines.append(
            f"| {SIDE_NAMES[side]} | {latency} ms | {run['queued']} "
            f"| {run['rate']:.1f} | {shown} | {total * 1000:.1f} = "
            f"{cpu['worker'] * 1000:.1f} "
            f"({run['worker_main_cpu_per_analysis'] * 1000:.1f}) + "
            f"{cpu['postgres'] * 1000:.1f} + {cpu['fake_api'] * 1000:.1f} + "
            f"{cpu['redis'] * 1000:.1f} | {cpus / total:.0f} "
            f"| {run['cpus_used']:.2f} ({run['machine_cpus_busy']:.2f}) |"
        )
    queries = pieces["run"]["queries"]
    lines += [
        "",
        "Where a worker process's time goes at 0 ms, per analysis, from the "
        "worker's own log lines (the split run: the app's logger at DEBUG for "
        "the backend's *done in* lines; 8 processes share the CPUs, so these "
        "include waiting for one):",
        "",
        "| piece | ms per analysis |",
        "|---|---:|",
        f"| worker process time (8 × span ÷ N) | {split['slot'] * 1000:.1f} |",
        "| task runtime (Celery's *succeeded in*, summed over the tasks) | "
        f"{split['task_mean'] * 1000:.1f} |",
        f"| — API call (the backend's *done in*) | {split['api_mean'] * 1000:.1f} |",
        f"| — our code and the database (the rest of the task) | "
        f"{split['ours_and_db'] * 1000:.1f} |",
        f"| broker and worker overhead (outside the task) | "
        f"{split['broker_and_worker'] * 1000:.1f} |",
        "",
        "The same pieces timed alone in one process, nothing else of the "
        "pipeline running (medians):",
        "",
        "| piece | wall ms | CPU ms |",
        "|---|---:|---:|",
        "| API call (`CloudinaryBackend.analyze`, fake API at 0 ms) "
        f"| {pieces['api']['wall'] * 1000:.2f} | {pieces['api']['cpu'] * 1000:.2f} |",
        f"| `services.run` with the memory backend ({median(queries):.0f} "
        "queries: claim, load, digest, store result and tags, verdict) "
        f"| {pieces['run']['wall'] * 1000:.2f} | {pieces['run']['cpu'] * 1000:.2f} |",
        "| publishing one task message (`services.enqueue`) "
        f"| {pieces['publish']['wall'] * 1000:.2f} "
        f"| {pieces['publish']['cpu'] * 1000:.2f} |",
        *_bulk_rows(pieces),
        "",
        *_notes(result),
    ]
    return "\n".join(lines)


def _bulk_rows(pieces: dict[str, Any]) -> list[str]:
    bulk = pieces.get("bulk_publish_cpu")
    if not bulk:
        return []
    return [
        f"| `services.enqueue` of {BULK} ids (one dispatch message), per id "
        f"| – | {bulk['current'] * 1000:.2f} |",
        f"| the same ids as task messages, batched (the worker's fan-out), per "
        f"message | – | {bulk['batched'] * 1000:.2f} |",
    ]


def _cpu_ms(result: dict[str, Any], key: str) -> float | None:
    run = result["runs"].get(key)
    return sum(run["cpu_per_analysis"].values()) * 1000 if run else None


def _notes(result: dict[str, Any]) -> list[str]:
    """What the sides say: Celery's own cost, the fan-out, the reference."""
    runs = result["runs"]
    cpus = result["machine"]["cpus"] or 1
    notes = []
    hand, ours = runs.get("hand@0"), runs["ours@0"]
    if hand:
        cpu = hand["cpu_per_analysis"]
        hand50 = runs.get("hand@50")
        reached = (
            f"; at 50 ms it reaches {hand50['rate']:.0f}/s = "
            f"{hand50['rate'] / result['limit']:.2f} of the limit with the "
            f"machine {hand50['machine_cpus_busy']:.1f} of {cpus} CPUs busy: "
            "at concurrency 8 a plain task is bound by the time each process "
            "spends per task besides the API call (8 ÷ rate − 50 ms = "
            f"{(CONCURRENCY / hand50['rate'] - 0.05) * 1000:.1f} ms), not by CPU"
            if hand50
            else ""
        )
        notes += [
            "**The reference.** The hand-written task costs "
            f"{sum(cpu.values()) * 1000:.1f} ms of CPU per analysis at 0 ms "
            f"(worker {cpu['worker'] * 1000:.1f}, of which the main process "
            f"{hand['worker_main_cpu_per_analysis'] * 1000:.1f}; PostgreSQL "
            f"{cpu['postgres'] * 1000:.1f})" + reached + ".",
            "",
        ]
    fan, serial = _cpu_ms(result, "fanout@0"), _cpu_ms(result, "serial@0")
    if fan is not None:
        ours_ms = _cpu_ms(result, "ours@0") or 0.0
        notes += [
            "**The fan-out.** A save publishes one `dispatch_analyses` "
            "message. Fanned out as one `run_analysis` task per analysis (the "
            f"worker before issue 13) it costs {fan:.1f} ms of CPU per "
            "analysis at 0 ms; the dispatch task running the first analysis "
            f"itself and fanning out the other (the app now) {ours_ms:.1f} ms"
            + (
                f"; running both in the one task, one after the other, "
                f"{serial:.1f} ms — but a save's analyses then wait for each "
                "other, so the app does not"
                if serial is not None
                else ""
            )
            + ". Each Celery task saved is the broker round trips, the "
            "acknowledgement, the pool's IPC and the tracer; the claims stay "
            "one per analysis.",
            "",
        ]
    total = sum(ours["cpu_per_analysis"].values())
    notes += [
        f"At {total * 1000:.1f} ms of CPU per analysis, {cpus} CPUs to "
        f"themselves could run at most {cpus / total:.0f} analyses/s; "
        f"{TARGET_FRACTION * result['limit']:.0f}/s needs at most "
        f"{cpus / (TARGET_FRACTION * result['limit']) * 1000:.1f} ms, and at "
        "concurrency 8 a worker process may spend at most "
        f"{(CONCURRENCY / (TARGET_FRACTION * result['limit']) - 0.05) * 1000:.1f}"
        " ms per analysis besides the 50 ms API call unless a save's API calls "
        "overlap.",
        "",
    ]
    return notes


if __name__ == "__main__":
    if _common.is_child():
        _common.child_main(
            {
                "prepare": _prepare,
                "schedule": _schedule,
                "schedule_hand": _schedule_hand,
                "pieces": _pieces,
            }
        )
    else:
        outcome = main()
        sys.exit(0 if all(outcome["targets_met"].values()) else 1)
