"""Lean pipeline (issue 13): the app against the hand-written code it replaces.

Run: ``.venv/bin/python bench/lean_pipeline.py [--quick] [--rounds R]
[--only worker|save]``

The baseline is ``bench/benchapp/handwritten.py``: a ``post_save`` receiver
doing ``transaction.on_commit(lambda: analyze_photo.delay(pk))`` and a task
that loads the object, posts with a ``requests.Session`` and stores the JSON
with one UPDATE. Two measurements, each in interleaved rounds (the order of
the two sides alternates every round, so load from other jobs on this shared
machine falls on both alike); ratios are of medians over rounds.

* **Worker**: per analysis of ``google_tagging`` (the same request body on
  both sides, the fake Analyze API in its own process at 0 ms), the CPU of
  the measuring process plus the CPU of the database server's process tree
  (PostgreSQL when its package is installed, else SQLite in-process), and
  the SQL statements (BEGIN/COMMIT included). Ours is ``services.run`` with
  the Cloudinary backend, the task body a worker runs; the hand-written side
  is ``analyze_photo``'s body. Celery's own per-task cost, the same for
  both, is left out, which makes the ratio larger, not smaller.
* **Save**: one ``create()`` in ``transaction.atomic()`` of a model with the
  mixin (two analysis types) against the hand-written model and receiver,
  SQLite file database (WAL), the on-commit publish to a real
  ``redis-server`` inside the timed block.

``main(argv)`` returns the numbers as a dict for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common
from bench._common import Figure, median

TITLE = "Lean pipeline"
SECTION = "## Lean pipeline: against hand-written code"
WORKER_TARGET = 2.0
SAVE_TARGET = 1.15


# -- child ------------------------------------------------------------------------


def _png(seed: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (16, 16), (seed % 251, (seed // 251) % 251, 30))
    img.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _objects(model: Any, count: int, offset: int) -> list[Any]:
    from django.conf import settings

    folder = Path(settings.MEDIA_ROOT) / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(offset, offset + count):
        name = f"lean-{model.__name__.lower()}-{i}.png"
        (folder / name).write_bytes(_png(i))
        rows.append(model(title=f"photo {i}", image=f"bench/{name}"))
    model.objects.bulk_create(rows)  # no signals: nothing queued
    return list(model.objects.order_by("-pk")[:count])[::-1]


def _worker(rounds: int, per_round: int, db_pid: int | None) -> dict[str, Any]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench.benchapp import handwritten
    from bench.benchapp.models import HandPhoto, MediaPhoto
    from django_cloudinary_analysis import services
    from django_cloudinary_analysis.backends.base import get_backend
    from django_cloudinary_analysis.models import Analysis
    from django_cloudinary_analysis.services import scheduling
    from django_cloudinary_analysis.sources import get_resolver

    _common.migrate()
    scheduling.enqueue_or_record = lambda ids, **kw: True  # no publish: run below
    total = rounds * per_round + per_round + 1

    ours = _objects(MediaPhoto, total, 0)
    with transaction.atomic():
        services.schedule_many(ours, types=["google_tagging"], new_content=True)
    queue = list(
        Analysis.objects.filter(analysis_type="google_tagging")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    hands = [p.pk for p in _objects(HandPhoto, total, 10**6)]

    # The same request body on both sides (the hand-written side builds it).
    backend = get_backend()
    client = backend.client() if hasattr(backend, "client") else None
    same_body = None
    if client is not None:
        media = get_resolver()(ours[0], "image")
        ours_body = client.request_body("google_tagging", media.source)
        # The same file given to the hand-written body builder.
        hand_body = handwritten.request_body(ours[0])
        same_body = __import__("json").loads(hand_body) == ours_body

    def ours_one() -> None:
        services.run(queue.pop(0), task_id="bench")

    def hand_one() -> None:
        handwritten.analyze_photo.run(hands.pop(0))

    sides = {"ours": ours_one, "hand": hand_one}
    # Warm both (imports, connections, the client's session, caches).
    for _ in range(per_round):
        ours_one()
        hand_one()
    statements = {}
    for name, one in sides.items():
        with CaptureQueriesContext(connection) as captured:
            one()
        statements[name] = [q["sql"] for q in captured.captured_queries]

    cpu: dict[str, list[float]] = {"ours": [], "hand": []}
    db_cpu: dict[str, list[float]] = {"ours": [], "hand": []}
    roots = {"db": db_pid}
    for r in range(rounds):
        order = ["ours", "hand"] if r % 2 == 0 else ["hand", "ours"]
        for name in order:
            before_db = _common.tree_cpu_seconds(roots)["db"] if db_pid else 0.0
            before = time.process_time()
            for _ in range(per_round):
                sides[name]()
            cpu[name].append((time.process_time() - before) / per_round)
            after_db = _common.tree_cpu_seconds(roots)["db"] if db_pid else 0.0
            db_cpu[name].append((after_db - before_db) / per_round)
    # The worker's fan-out: dispatch_analyses publishing one save's two
    # run_analysis messages (its body), per analysis.
    pair = list(Analysis.objects.values_list("pk", flat=True)[:2])
    fanout = []
    for _ in range(rounds * 10):
        before = time.process_time()
        services.enqueue(pair, fan_out=False)
        fanout.append((time.process_time() - before) / len(pair))
    failed = Analysis.objects.exclude(status="succeeded").exclude(status="queued")
    return {
        "vendor": connection.vendor,
        "cpu": cpu,
        "db_cpu": db_cpu,
        "statements": statements,
        "fanout_cpu": fanout,
        "same_body": same_body,
        "not_succeeded": failed.count(),
        "hand_stored": HandPhoto.objects.exclude(analysis=None).count(),
    }


def _save(rounds: int, per_round: int) -> dict[str, Any]:
    from django.core.files.base import ContentFile
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench.benchapp.models import HandPhoto, MediaPhoto
    from tests.celery_app import app
    from tests.support.images import jpeg_bytes, scene

    _common.migrate()
    data = jpeg_bytes(scene(1024, 768))
    counter = iter(range(10**9))

    def save(model: Any) -> None:
        with transaction.atomic():
            model.objects.create(
                title="benchmark", image=ContentFile(data, name=f"{next(counter)}.jpg")
            )

    sides = {"ours": MediaPhoto, "hand": HandPhoto}
    for _ in range(per_round):
        save(MediaPhoto)
        save(HandPhoto)
    wall: dict[str, list[float]] = {"ours": [], "hand": []}
    cpu: dict[str, list[float]] = {"ours": [], "hand": []}
    for r in range(rounds):
        order = ["ours", "hand"] if r % 2 == 0 else ["hand", "ours"]
        for name in order:
            started, before = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                save(sides[name])
            wall[name].append((time.perf_counter() - started) / per_round)
            cpu[name].append((time.process_time() - before) / per_round)
    queries = {}
    for name, model in sides.items():
        with CaptureQueriesContext(connection) as captured:
            save(model)
        queries[name] = [q["sql"] for q in captured.captured_queries]
    with app.connection_for_write() as conn:
        messages = conn.default_channel.client.llen("celery")
    saves = MediaPhoto.objects.count() + HandPhoto.objects.count()
    return {
        "wall": wall,
        "cpu": cpu,
        "queries": queries,
        "messages": messages,
        "saves": saves,
    }


# -- parent -----------------------------------------------------------------------


def _run_worker(
    svc: Any, broker_url: str, api_url: str, rounds: int, per_round: int
) -> dict[str, Any]:
    """The worker measurement in its own child (PostgreSQL when installed)."""
    try:
        database = svc.new_database("postgresql", "lean")
        db_pid = svc.postgres().process.pid
    except BaseException as exc:  # pytest's Skipped when the package is missing
        _common.log(f"{TITLE}: no PostgreSQL ({exc}); the worker side on SQLite")
        database, db_pid = svc.new_database("sqlite", "lean"), None
    env = _common.bench_env(
        database,
        media_root=svc.media_root("lean-worker"),
        broker_url=broker_url,
        api_url=api_url,
        DCA_BENCH_DB_REUSE_MAX="1000",
    )
    _common.log(f"{TITLE}: worker, {rounds} rounds of {per_round} per side")
    return _common.run_child(
        __file__,
        {"step": "worker", "rounds": rounds, "per_round": per_round, "db_pid": db_pid},
        env,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both measurements, print the figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per side")
    parser.add_argument(
        "--per-round",
        type=int,
        default=50,
        help="analyses or saves per side and round (the database's CPU is read "
        "from /proc in clock ticks, 10 ms here: 50 make its resolution 0.2 ms)",
    )
    parser.add_argument(
        "--only",
        choices=("worker", "save"),
        help="run one of the two measurements (default: both)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (10 if args.quick else 30)
    per_round = args.per_round
    info = _common.machine()
    svc = _common.services()
    redis = svc.redis()

    worker = save = None
    if args.only in (None, "worker"):
        fake = svc.fake_api()
        worker = _run_worker(svc, redis.url, fake.base_url, rounds, per_round)
    if args.only in (None, "save"):
        env = _common.bench_env(
            svc.new_database("sqlite", "lean-save"),
            media_root=svc.media_root("lean-save"),
            broker_url=redis.url,
        )
        _common.log(f"{TITLE}: save, {rounds} rounds of {per_round} per side")
        save = _common.run_child(
            __file__, {"step": "save", "rounds": rounds, "per_round": per_round}, env
        )
    load_after = round(os.getloadavg()[0], 2)

    figures = []
    total = None
    if worker is not None:
        total = {
            side: median(
                [
                    a + b
                    for a, b in zip(
                        worker["cpu"][side], worker["db_cpu"][side], strict=True
                    )
                ]
            )
            for side in ("ours", "hand")
        }
        worker_ratio = total["ours"] / total["hand"]
        figures += [
            Figure(
                f"worker CPU per analysis, ours / hand-written ({worker['vendor']})",
                worker_ratio,
                f"{worker_ratio:.2f}× ({total['ours'] * 1000:.2f} vs "
                f"{total['hand'] * 1000:.2f} ms)",
                f"≤ {WORKER_TARGET}×",
                worker_ratio <= WORKER_TARGET,
            ),
            Figure(
                "SQL statements per analysis, ours / hand-written",
                len(worker["statements"]["ours"]),
                f"{len(worker['statements']['ours'])} / "
                f"{len(worker['statements']['hand'])}",
            ),
            Figure(
                "worker fan-out: CPU per analysis to publish its run_analysis message",
                median(worker["fanout_cpu"]),
                f"{median(worker['fanout_cpu']) * 1000:.2f} ms",
            ),
        ]
    if save is not None:
        save_ratio = median(save["wall"]["ours"]) / median(save["wall"]["hand"])
        figures.append(
            Figure(
                "save with 2 analysis types, ours / hand-written (SQLite WAL)",
                save_ratio,
                f"{save_ratio:.2f}× ({median(save['wall']['ours']) * 1000:.2f} vs "
                f"{median(save['wall']['hand']) * 1000:.2f} ms)",
                f"≤ {SAVE_TARGET}×",
                save_ratio <= SAVE_TARGET,
            )
        )
    result = {
        "benchmark": "lean_pipeline",
        "title": TITLE,
        "command": _common.command("bench/lean_pipeline.py", argv),
        "machine": info,
        "load_after": load_after,
        "rounds": rounds,
        "per_round": per_round,
        "worker": worker,
        "worker_total": total,
        "save": save,
        "figures": _common.figures_dicts(figures),
        "targets_met": {f.name: f.met for f in figures if f.met is not None},
    }
    _common.print_figures(TITLE, figures)
    return result


def render(result: dict[str, Any]) -> str:
    """Render the results as the Markdown section of docs/benchmarks.md."""
    worker, save = result["worker"], result["save"]
    if worker is None or save is None:
        raise ValueError("the section needs both measurements (run without --only)")

    def ms(values: list[float]) -> str:
        return f"{median(values) * 1000:.2f}"

    lines = [
        SECTION,
        "",
        f"Command: `{result['command']}` "
        f"({_common.machine_text(result['machine'], result['load_after'])}).",
        "",
        "The baseline is `bench/benchapp/handwritten.py`: a `post_save` receiver "
        "doing `transaction.on_commit(lambda: analyze_photo.delay(pk))` and a "
        "task that loads the object, posts with a `requests.Session` and stores "
        f"the JSON with one UPDATE. {result['rounds']} interleaved rounds of "
        f"{result['per_round']} per side (the order alternates every round); "
        "medians over rounds. The database's CPU is read from `/proc` in clock "
        f"ticks (10 ms), so its resolution is {10 / result['per_round']:.1f} ms "
        "per analysis.",
        "",
        f"**Worker** ({worker['vendor']}, fake API at 0 ms, same request body: "
        f"{worker['same_body']}): `services.run` with the Cloudinary backend "
        "against `analyze_photo`'s body, in one process; CPU of that process "
        "plus the database server's process tree. Celery's per-task cost (the "
        "same for both) is not in it.",
        "",
        "| side | CPU ms per analysis (process + database) | SQL statements |",
        "|---|---:|---:|",
    ]
    for side, label in (("ours", "ours"), ("hand", "hand-written")):
        lines.append(
            f"| {label} | {result['worker_total'][side] * 1000:.2f} = "
            f"{ms(worker['cpu'][side])} + {ms(worker['db_cpu'][side])} "
            f"| {len(worker['statements'][side])} |"
        )
    fig = {f["name"]: f for f in result["figures"]}
    worker_fig = next(f for n, f in fig.items() if n.startswith("worker CPU"))
    save_fig = next(f for n, f in fig.items() if n.startswith("save with"))
    lines += [
        "",
        f"Ratio **{worker_fig['display']}** (target ≤ {WORKER_TARGET}×: "
        f"{_yes(worker_fig['met'])}). The worker's fan-out (`dispatch_analyses` "
        "publishing a `run_analysis` message for each analysis of a save but the "
        "first, which it runs itself; batched) adds "
        f"{median(worker['fanout_cpu']) * 1000:.2f} ms of CPU per fanned-out "
        "analysis on top, and Celery's cost of running its task. "
        "Our statements for one analysis:",
        "",
        "```",
        *(f"  {_short(sql)}" for sql in worker["statements"]["ours"]),
        "```",
        "",
        "**Save** (SQLite WAL, a 1024×768 JPEG, the on-commit publish to a real "
        "`redis-server` inside the timed block, no worker):",
        "",
        "| side | wall ms | CPU ms | queries |",
        "|---|---:|---:|---:|",
    ]
    for side, label in (("ours", "ours (2 types)"), ("hand", "hand-written")):
        lines.append(
            f"| {label} | {ms(save['wall'][side])} | {ms(save['cpu'][side])} "
            f"| {len(save['queries'][side])} |"
        )
    lines += [
        "",
        f"Ratio **{save_fig['display']}** (target ≤ {SAVE_TARGET}×: "
        f"{_yes(save_fig['met'])}).",
        "",
    ]
    return "\n".join(lines)


def _short(sql: str, width: int = 100) -> str:
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


if __name__ == "__main__":
    if _common.is_child():
        _common.child_main({"worker": _worker, "save": _save})
    else:
        outcome = main()
        sys.exit(0 if all(outcome["targets_met"].values()) else 1)
