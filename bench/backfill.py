"""Backfill: ``analyze_media`` scheduling 10k and 100k objects.

Run: ``.venv/bin/python bench/backfill.py [--quick]``

For each size a fresh SQLite file database gets that many
``benchapp.MediaPhoto`` rows (``bulk_create`` with ``AUTO_ANALYZE`` off, so
nothing is queued while creating them); then a fresh process runs
``manage.py analyze_media benchapp.MediaPhoto --type google_tagging``, which
creates one analysis per object and publishes one task per analysis to a
real ``redis-server`` (no worker runs: only the scheduling is measured).
That process reports its time and its peak RSS (VmHWM: ``ru_maxrss`` would
include the runner that forked it), and its RSS before and after.

Target: peak RSS(100k) ≤ 1.2 × peak RSS(10k). Objects/s is reported.
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
from bench._common import Figure

TITLE = "Backfill"
SECTION = "## Backfill"
TARGET_RSS_RATIO = 1.2
ANALYSIS_TYPE = "google_tagging"
BATCH_SIZE = 500


# -- child ------------------------------------------------------------------------


def _prepare(objects: int) -> dict[str, Any]:
    """Create the objects with automatic analysis off."""
    from django.conf import settings
    from django.test.utils import override_settings

    from bench.benchapp.models import MediaPhoto

    _common.migrate()
    conf = {**settings.CLOUDINARY_ANALYSIS, "AUTO_ANALYZE": False}
    started = time.perf_counter()
    with override_settings(CLOUDINARY_ANALYSIS=conf):
        for start in range(0, objects, 10_000):
            MediaPhoto.objects.bulk_create(
                MediaPhoto(title=f"photo {i}", image=f"bench/photo-{i}.jpg")
                for i in range(start, min(start + 10_000, objects))
            )
    return {
        "objects": MediaPhoto.objects.count(),
        "seconds": time.perf_counter() - started,
    }


def _schedule() -> dict[str, Any]:
    """Run the command once in this fresh process; report time and memory."""
    from django.core.management import call_command

    from django_cloudinary_analysis.models import Analysis
    from tests.celery_app import app

    baseline = _common.peak_rss_mb()
    rss_before = _common.current_rss_mb()
    out = io.StringIO()
    cpu = time.process_time()
    started = time.perf_counter()
    call_command(
        "analyze_media",
        "benchapp.MediaPhoto",
        types=[ANALYSIS_TYPE],
        batch_size=BATCH_SIZE,
        stdout=out,
    )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = _common.peak_rss_mb()
    rss_after = _common.current_rss_mb()
    with app.connection_for_write() as conn:
        messages = conn.default_channel.client.llen("celery")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "analyses": Analysis.objects.count(),
        "messages": messages,
        "output": out.getvalue().strip().splitlines()[-1],
    }


# -- parent -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k objects")
    parser.add_argument(
        "--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), help="objects"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or ((1_000, 10_000) if args.quick else (10_000, 100_000))

    info = _common.machine()
    svc = _common.services()
    redis = svc.redis()
    _common.log(f"{TITLE}: analyze_media on {sizes[0]} and {sizes[1]} objects")
    runs = []
    for size in sizes:
        env = _common.bench_env(
            svc.new_database("sqlite", f"backfill{size}"),
            media_root=svc.media_root("backfill"),
            broker_url=redis.url,
        )
        prepared = _common.run_child(
            __file__, {"step": "prepare", "objects": size}, env
        )
        redis.flushall()
        run = _common.run_child(__file__, {"step": "schedule"}, env)
        redis.flushall()
        run.update(
            objects=prepared["objects"],
            prepare_seconds=prepared["seconds"],
            rate=prepared["objects"] / run["seconds"],
        )
        runs.append(run)
        _common.log(
            f"  {size} objects: {run['rate']:.0f} objects/s, peak RSS "
            f"{run['peak_rss_mb']:.1f} MB (baseline {run['baseline_rss_mb']:.1f})"
        )
    load_after = round(os.getloadavg()[0], 2)

    small, large = runs
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    growth = (large["peak_rss_mb"] - large["baseline_rss_mb"]) - (
        small["peak_rss_mb"] - small["baseline_rss_mb"]
    )
    figures = [
        Figure(
            f"scheduling rate, {run['objects']} objects",
            run["rate"],
            f"{run['rate']:.0f} objects/s ({run['seconds']:.1f} s, "
            f"{run['cpu_seconds'] / run['objects'] * 1000:.2f} ms CPU per object)",
        )
        for run in runs
    ]
    figures += [
        Figure(
            f"peak RSS, {run['objects']} objects",
            run["peak_rss_mb"],
            f"{run['peak_rss_mb']:.1f} MB (before the command "
            f"{run['baseline_rss_mb']:.1f} MB)",
        )
        for run in runs
    ]
    figures.append(
        Figure(
            f"peak RSS {large['objects']} / {small['objects']}",
            ratio,
            f"{ratio:.3f}× ({growth:+.1f} MB more growth)",
            f"≤ {TARGET_RSS_RATIO}×",
            ratio <= TARGET_RSS_RATIO,
        )
    )
    result = {
        "benchmark": "backfill",
        "title": TITLE,
        "command": _common.command("bench/backfill.py", argv),
        "machine": info,
        "load_after": load_after,
        "database": "sqlite",
        "analysis_type": ANALYSIS_TYPE,
        "batch_size": BATCH_SIZE,
        "runs": runs,
        "rss_ratio": ratio,
        "figures": _common.figures_dicts(figures),
        "targets_met": {figures[-1].name: figures[-1].met},
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
        "A fresh SQLite file database per size holds that many "
        "`benchapp.MediaPhoto` rows (created with `bulk_create` and "
        "`AUTO_ANALYZE` off); a fresh process then runs `analyze_media "
        f"benchapp.MediaPhoto --type {result['analysis_type']}` (batches of "
        f"{result['batch_size']}), which creates one analysis per object and "
        "publishes one task per analysis to a real `redis-server` (no worker: "
        "only the scheduling is measured). Peak RSS is that process's high-water "
        "mark (`VmHWM`; Linux's `ru_maxrss` keeps the forking runner's across "
        "`exec`); *peak before* is the same when the command started (Django "
        "and the app loaded).",
        "",
        "| objects | seconds | objects/s | CPU ms per object | analyses | "
        "messages | peak RSS MB | peak before MB | RSS before → after MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['objects']:,} | {run['seconds']:.1f} | {run['rate']:.0f} "
            f"| {run['cpu_seconds'] / run['objects'] * 1000:.2f} "
            f"| {run['analyses']:,} | {run['messages']:,} "
            f"| {run['peak_rss_mb']:.1f} | {run['baseline_rss_mb']:.1f} "
            f"| {run['rss_before_mb']:.1f} → {run['rss_after_mb']:.1f} |"
        )
    met = result["rss_ratio"] <= TARGET_RSS_RATIO
    small, large = result["runs"]
    lines += [
        "",
        f"Peak RSS {large['objects']:,} / {small['objects']:,} objects: "
        f"**{result['rss_ratio']:.3f}×** (target ≤ {TARGET_RSS_RATIO}×, "
        f"{'met' if met else '**missed**'}).",
        "",
        "Memory stays flat because the command pages through the objects by "
        "primary key and each batch commits — and publishes its messages — "
        "before the next is read; the messages wait in Redis, not in the "
        "process. The rate is bound by publishing: of the CPU per object above, "
        "about a millisecond is Celery publishing the object's one message "
        "(see *Save path* for why). With the batched enqueue proposed there, a "
        "batch of 500 would go out in one Redis pipeline at about half the CPU "
        "per message (measured in *Pipeline throughput*).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if _common.is_child():
        _common.child_main({"prepare": _prepare, "schedule": _schedule})
    else:
        outcome = main()
        sys.exit(0 if all(outcome["targets_met"].values()) else 1)
