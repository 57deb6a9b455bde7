"""Save path: a model with the mixin vs the same model without it.

Run: ``.venv/bin/python bench/save_path.py [--quick] [--iterations N]``

``benchapp.MediaPhoto`` (the mixin, two analysis types) and
``benchapp.PlainPhoto`` (same fields, no mixin) share one SQLite file
database (WAL) and one ``FileSystemStorage``. Each save creates a row with a
new JPEG inside ``transaction.atomic()`` (as a view with ``ATOMIC_REQUESTS``
or the admin does), so the mixin's on-commit enqueue — one Celery message per
analysis, published to a real ``redis-server`` with eager mode off — is part
of the measured time. Saves alternate between the two models (ABBA order),
for a small web image and a 12 MP photo. No worker runs: only the save is
measured.

Targets: median time ratio mixin/plain ≤ 1.3× and ≤ 3 queries added.
``main(argv)`` returns the numbers as a dict for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common
from bench._common import Figure, median, ms

TITLE = "Save path"
SECTION = "## Save path"
TARGET_RATIO = 1.3
TARGET_QUERIES = 3
#: Label → (width, height) of the scene JPEG saved with each object.
IMAGES = {"web image": (1024, 768), "12 MP photo": (4000, 3000)}


# -- child ------------------------------------------------------------------------


def _child(iterations: int, warmup: int) -> dict[str, Any]:
    from django.core.files.base import ContentFile
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench.benchapp.models import MediaPhoto, PlainPhoto
    from django_cloudinary_analysis import services
    from tests.celery_app import app
    from tests.support.images import jpeg_bytes, scene

    _common.migrate()
    counter = iter(range(10**9))

    def save(model: Any, data: bytes) -> None:
        with transaction.atomic():
            model.objects.create(
                title="benchmark", image=ContentFile(data, name=f"{next(counter)}.jpg")
            )

    def timed(model: Any, data: bytes) -> tuple[float, float]:
        cpu = time.process_time()
        started = time.perf_counter()
        save(model, data)
        return time.perf_counter() - started, time.process_time() - cpu

    results: dict[str, Any] = {"images": {}}
    with app.connection_for_write() as conn:
        queue_length = conn.default_channel.client.llen
        for label, (width, height) in IMAGES.items():
            data = jpeg_bytes(scene(width, height))
            for _ in range(warmup):
                save(MediaPhoto, data)
                save(PlainPhoto, data)
            walls: dict[str, list[float]] = {"mixin": [], "plain": []}
            cpus: dict[str, list[float]] = {"mixin": [], "plain": []}
            order = [("mixin", MediaPhoto), ("plain", PlainPhoto)]
            for i in range(iterations):
                pair = order if i % 4 in (0, 3) else order[::-1]  # ABBA
                for name, model in pair:
                    wall, cpu = timed(model, data)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            results["images"][label] = {
                "size": f"{width}×{height}",
                "bytes": len(data),
                "wall": walls,
                "cpu": cpus,
            }
            _common.log(
                f"  {label}: mixin {ms(median(walls['mixin']))}, "
                f"plain {ms(median(walls['plain']))}"
            )
        queries = {}
        for name, model in (("mixin", MediaPhoto), ("plain", PlainPhoto)):
            with CaptureQueriesContext(connection) as captured:
                save(model, b"\xff\xd8 tiny")
            queries[name] = [q["sql"] for q in captured.captured_queries]
        results["queries"] = queries
        # What the enqueue alone costs (two publishes, as on commit), and what
        # the batched enqueue the docs propose would cost, interleaved.
        ids = list(MediaPhoto.objects.values_list("pk", flat=True)[:2])
        publish: dict[str, list[float]] = {"current": [], "batched": []}
        ways = [("current", services.enqueue), ("batched", _common.enqueue_batched)]
        for i in range(iterations):
            for name, enqueue in ways if i % 2 == 0 else ways[::-1]:
                started = time.perf_counter()
                enqueue(ids)
                publish[name].append(time.perf_counter() - started)
        results["enqueue_two"] = publish["current"]
        results["enqueue_two_batched"] = publish["batched"]
        saved_mixin = MediaPhoto.objects.count()
        results["messages"] = queue_length("celery")
        results["mixin_saves"] = saved_mixin
        results["enqueue_calls"] = iterations * 2
    return results


# -- parent -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--iterations", type=int, help="saves per model and image")
    args = parser.parse_args(argv)
    iterations = args.iterations or (100 if args.quick else 400)
    warmup = 10 if args.quick else 30

    info = _common.machine()
    svc = _common.services()
    redis = svc.redis()
    env = _common.bench_env(
        svc.new_database("sqlite", "save"),
        media_root=svc.media_root("save"),
        broker_url=redis.url,
    )
    _common.log(f"{TITLE}: {iterations} saves per model and image, interleaved")
    raw = _common.run_child(
        __file__, {"step": "measure", "iterations": iterations, "warmup": warmup}, env
    )
    load_after = round(__import__("os").getloadavg()[0], 2)

    images = {}
    for label, data in raw["images"].items():
        wall, cpu = data["wall"], data["cpu"]
        mixin, plain = median(wall["mixin"]), median(wall["plain"])
        images[label] = {
            "size": data["size"],
            "bytes": data["bytes"],
            "mixin_ms": mixin * 1000,
            "plain_ms": plain * 1000,
            "ratio": mixin / plain,
            "paired_ratio": median(
                [a / b for a, b in zip(wall["mixin"], wall["plain"], strict=True)]
            ),
            "added_ms": (mixin - plain) * 1000,
            "cpu_mixin_ms": median(cpu["mixin"]) * 1000,
            "cpu_plain_ms": median(cpu["plain"]) * 1000,
            "cpu_ratio": median(cpu["mixin"]) / median(cpu["plain"]),
        }
    queries = raw["queries"]
    added = len(queries["mixin"]) - len(queries["plain"])
    # enqueue calls: half send one dispatch message, half two task messages
    per_save = (raw["messages"] - raw["enqueue_calls"] * 1.5) / raw["mixin_saves"]

    figures = [
        Figure(
            f"time ratio mixin/plain, {label} ({row['bytes'] // 1024} KB)",
            row["ratio"],
            f"{row['ratio']:.2f}× ({row['mixin_ms']:.2f} vs {row['plain_ms']:.2f} ms)",
            f"≤ {TARGET_RATIO}×",
            row["ratio"] <= TARGET_RATIO,
        )
        for label, row in images.items()
    ]
    figures.append(
        Figure(
            "queries added per save",
            added,
            f"{added} ({len(queries['mixin'])} vs {len(queries['plain'])})",
            f"≤ {TARGET_QUERIES}",
            added <= TARGET_QUERIES,
        )
    )
    figures.append(
        Figure("broker messages per save", per_save, f"{per_save:.2f}", "", None)
    )
    figures.append(
        Figure(
            "enqueue of 2 analyses: one dispatch message / two task messages, batched",
            median(raw["enqueue_two"]),
            f"{ms(median(raw['enqueue_two']))} / "
            f"{ms(median(raw['enqueue_two_batched']))}",
        )
    )
    result = {
        "benchmark": "save_path",
        "title": TITLE,
        "command": _common.command("bench/save_path.py", argv),
        "machine": info,
        "load_after": load_after,
        "iterations": iterations,
        "warmup": warmup,
        "images": images,
        "queries": queries,
        "queries_added": added,
        "messages_per_save": per_save,
        "enqueue_two_ms": median(raw["enqueue_two"]) * 1000,
        "enqueue_two_batched_ms": median(raw["enqueue_two_batched"]) * 1000,
        "figures": _common.figures_dicts(figures),
        "targets_met": {f.name: f.met for f in figures if f.met is not None},
    }
    _common.print_figures(TITLE, figures)
    return result


def render(result: dict[str, Any]) -> str:
    """Render the results as the Markdown section of docs/benchmarks.md."""
    lines = [
        SECTION,
        "",
        f"Command: `{result['command']}` "
        f"({_common.machine_text(result['machine'], result['load_after'])}).",
        "",
        "`benchapp.MediaPhoto` (the mixin; `google_tagging` and "
        "`ai_vision_moderation`) against `benchapp.PlainPhoto` (same fields, no "
        "mixin): one SQLite file database (WAL), one `FileSystemStorage`, each "
        "save a new row with a new JPEG inside `transaction.atomic()`, so the "
        "mixin's on-commit enqueue to a real `redis-server` (eager mode off, no "
        f"worker) is inside the timed block. {result['iterations']} saves per "
        f"model and image after {result['warmup']} warm-up saves, alternating "
        "ABBA; medians.",
        "",
        "| image | mixin ms | plain ms | added ms | ratio (target ≤ "
        f"{TARGET_RATIO}×) | paired ratio | CPU ms mixin / plain | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, row in result["images"].items():
        lines.append(
            f"| {label} {row['size']} JPEG, {row['bytes'] // 1024} KB "
            f"| {row['mixin_ms']:.2f} | {row['plain_ms']:.2f} "
            f"| {row['added_ms']:.2f} | {row['ratio']:.2f}× "
            f"| {row['paired_ratio']:.2f}× "
            f"| {row['cpu_mixin_ms']:.2f} / {row['cpu_plain_ms']:.2f} "
            f"| {_yes(row['ratio'] <= TARGET_RATIO)} |"
        )
    queries = result["queries"]
    lines += [
        "",
        f"Queries per save: {len(queries['mixin'])} with the mixin, "
        f"{len(queries['plain'])} without — **{result['queries_added']} added** "
        f"(target ≤ {TARGET_QUERIES}, {_yes(result['queries_added'] <= 3)}); "
        f"{result['messages_per_save']:.0f} broker message per save. Publishing "
        f"it alone takes {result['enqueue_two_ms']:.2f} ms (median).",
        "",
        "```",
        "mixin:",
        *(f"  {_short(sql)}" for sql in queries["mixin"]),
        "plain:",
        *(f"  {_short(sql)}" for sql in queries["plain"]),
        "```",
        "",
        *_notes(result),
    ]
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> list[str]:
    """Explain a missed ratio: what the mixin adds and what could change."""
    if all(row["ratio"] <= TARGET_RATIO for row in result["images"].values()):
        return []
    web = next(iter(result["images"].values()))
    per_message = result["enqueue_two_ms"]
    return [
        "**Why the ratio target is missed.** The mixin adds what it must: one "
        "bulk INSERT of the analyses and one task message per save, published "
        "when the transaction commits (several analyses travel as one "
        "`dispatch_analyses` message that a worker fans out; a new object "
        "records no verdict-reset row). Our own Python on the way (the "
        "receivers, `changed_fields`, the model's plan from "
        "`options.analysis_plan`, worked out once) is a "
        "small share of the added time in cProfile; most of it is Celery and "
        f"kombu publishing the message (~{per_message:.1f} ms per message "
        "here: Celery reads its configuration and builds the message every "
        "time, and kombu's Redis transport creates a new redis-py client for "
        "every publish) and the INSERT. A plain save of a row with a new file "
        f"takes ~{web['plain_ms']:.1f} ms on this machine, so one synchronous "
        "publish is already beyond 30 % of it; the larger the upload, the "
        "smaller the ratio.",
        "",
        "Applied after the first run of this benchmark (profiled with "
        "cProfile): one message per save instead of one per analysis, no "
        "`system` decision row for a new object, and publishing through one "
        "producer (batched where kombu ≥ 5.7 has `Producer.batch`). They took "
        "the web-image ratio from 4.3× to about 3× and the queries added from "
        "2 to 1. What is left is one INSERT and one Celery publish; the 1.3× "
        "target assumes a publish that costs a fraction of a row insert, and "
        "Celery's does not (that part is not ours).",
        "",
    ]


def _short(sql: str, width: int = 100) -> str:
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


if __name__ == "__main__":
    if _common.is_child():
        _common.child_main({"measure": _child})
    else:
        outcome = main()
        sys.exit(0 if all(outcome["targets_met"].values()) else 1)
