"""Run the benchmarks, print each figure with its target, update the docs.

Run: ``make bench`` (``.venv/bin/python bench/run_all.py``), or
``make bench BENCH_ARGS=--quick`` for reduced sizes (printed only: the docs
keep the last full run unless ``--docs PATH`` says where to write). The
accountability benchmark (8, a million decisions: five minutes or more)
runs only when named: ``bench/run_all.py --only export_decisions``.

Each benchmark module's ``main(argv)`` runs in turn (``--quick`` is passed
on) and returns a dict; the services the benchmarks share (redis-server,
PostgreSQL, the fake Analyze API) start once. ``docs/benchmarks.md`` is
rewritten with the exact command, a summary table and one section per
benchmark; a benchmark that fails keeps its previous section. Nothing here
asserts timing: the exit status is 0 even when a target is missed (1 when a
benchmark could not run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common

DOCS = _common.ROOT / "docs" / "benchmarks.md"
#: (number, module, docs heading) in the order they run and appear.
BENCHMARKS = (
    ("1", "client_overhead", "## Client overhead"),
    ("2", "save_path", "## Save path"),
    ("3", "pipeline_throughput", "## Pipeline throughput"),
    ("4", "read_paths", "## Read paths"),
    ("5", "backfill", "## Backfill"),
    ("6", "local_backend", "## Local backend"),
    ("7", "lean_pipeline", "## Lean pipeline: against hand-written code"),
    ("8", "export_decisions", "## Accountability: audit export and dashboard"),
)
#: Run only when named with ``--only`` (too long for the ten minutes of a full run).
ON_REQUEST = frozenset({"export_decisions"})
#: Arguments of the full run where a benchmark's own default would not leave
#: the others enough of the ten minutes ``make bench`` may take.
FULL_ARGS = {"client_overhead": ("--rounds", "10")}
TOOK = re.compile(r"^\(.+ took \d+ s\.\)$")
TITLES = {
    "client_overhead": "Client overhead",
    "save_path": "Save path",
    "pipeline_throughput": "Pipeline throughput",
    "read_paths": "Read paths",
    "backfill": "Backfill",
    "local_backend": "Local backend",
    "lean_pipeline": "Lean pipeline",
    "export_decisions": "Accountability: audit export and dashboard",
}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the summary and write the docs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[name for _n, name, _h in BENCHMARKS],
        help="run only these (the docs keep the others' sections)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave the docs")
    parser.add_argument(
        "--docs",
        type=Path,
        help="the file to write (default: docs/benchmarks.md, which only a full "
        "run writes: it holds the last full results)",
    )
    args = parser.parse_args(argv)

    machine = _common.machine()
    started = time.perf_counter()
    outcomes: dict[str, dict[str, Any]] = {}
    try:
        for number, name, _heading in BENCHMARKS:
            if args.only and name not in args.only:
                continue
            if not args.only and name in ON_REQUEST:
                continue
            outcomes[name] = _run_one(number, name, args.quick)
    finally:
        _common.close_services()
    elapsed = time.perf_counter() - started

    rows = summary_rows(outcomes)
    print()
    print(f"Summary ({elapsed / 60:.1f} min):")
    for row in rows:
        met = {True: "met", False: "MISSED", None: ""}[row["met"]]
        target = f"  (target {row['target']})" if row["target"] else ""
        print(f"  {row['number']}. {row['figure']}: {row['result']}{target}  {met}")
    if args.quick and args.docs is None:
        print("quick run: docs/benchmarks.md keeps the last full run")
    elif not args.no_write:
        path = args.docs or DOCS
        write_docs(path, outcomes, rows, argv, machine, elapsed)
        print(f"wrote {path}")
    return 1 if any("error" in o for o in outcomes.values()) else 0


def _run_one(number: str, name: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark's main(); return its result or the error."""
    argv = ["--quick"] if quick else list(FULL_ARGS.get(name, ()))
    if name == "local_backend":
        argv.append("--no-write")  # run_all writes the whole file
    print(f"\n=== {number}. {TITLES[name]} ===", flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        result = module.main(argv)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}".strip()[:300]}
    seconds = time.perf_counter() - started
    print(f"({TITLES[name]} took {seconds:.0f} s)", flush=True)
    if not isinstance(result, dict):
        return {"error": "main() returned no results"}
    return {"result": result, "seconds": seconds, "module": module}


# -- the summary ---------------------------------------------------------------------


def summary_rows(outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one row per figure: number, figure, result, target, met."""
    rows: list[dict[str, Any]] = []
    for number, name, _heading in BENCHMARKS:
        outcome = outcomes.get(name)
        if outcome is None:
            continue
        if "error" in outcome:
            rows.append(_row(number, TITLES[name], "did not run: " + outcome["error"]))
            continue
        result = outcome["result"]
        if name == "client_overhead":
            rows += _client_rows(number, result)
        elif name == "local_backend":
            rows += _local_rows(number, result)
        else:
            for figure in result["figures"]:
                rows.append(
                    _row(
                        number,
                        figure["name"],
                        figure["display"],
                        figure["target"],
                        figure["met"],
                    )
                )
    return rows


def _row(
    number: str, figure: str, result: str, target: str = "", met: bool | None = None
) -> dict[str, Any]:
    return {
        "number": number,
        "figure": figure,
        "result": result,
        "target": target,
        "met": met,
    }


def _client_rows(number: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    rates = result["calls_per_second"]
    ratios, targets = result["ratios"], result["targets"]
    met = result["targets_met"]
    rows = [
        _row(
            number,
            "calls/s: ours, bare requests loop, official SDK",
            ", ".join(
                f"{rates[k]:.0f}" if k in rates else "–"
                for k in ("ours", "bare", "sdk")
            ),
        )
    ]
    if "ours_vs_sdk" in ratios:
        rows.append(
            _row(
                number,
                "ours / SDK (calls/s)",
                f"{ratios['ours_vs_sdk']:.2f}×",
                f"≥ {targets['ours_vs_sdk']}×",
                met.get("sdk"),
            )
        )
    rows.append(
        _row(
            number,
            "ours / bare requests loop (calls/s)",
            f"{ratios['ours_vs_bare']:.2f}×",
            f"≥ {targets['ours_vs_bare']}×",
            met.get("bare"),
        )
    )
    return rows


def _local_rows(number: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in report.get("results", []):
        by_type.setdefault(row["type"], []).append(row)
    rows = []
    for kind, items in by_type.items():
        done = [r for r in items if "skipped" not in r]
        if not done:
            rows.append(_row(number, kind, "skipped: " + items[0]["skipped"]))
            continue
        rows.append(
            _row(
                number,
                f"{kind}: median ms / peak RSS MB per image size",
                "; ".join(
                    f"{r['image'].split(' JPEG')[0]} {r['median_ms']:.0f} ms, "
                    f"{r['peak_rss_mb']:.0f} MB"
                    for r in done
                ),
            )
        )
    return rows


# -- the docs ------------------------------------------------------------------------


def split_sections(text: str) -> tuple[str, dict[str, str]]:
    """Split Markdown into its preamble and ``## `` sections keyed by heading."""
    parts = text.split("\n## ")
    sections = {}
    for part in parts[1:]:
        heading = "## " + part.split("\n", 1)[0].strip()
        sections[heading] = "## " + part.rstrip("\n") + "\n"
    return parts[0], sections


def write_docs(
    path: Path,
    outcomes: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    argv: list[str],
    machine: dict[str, Any],
    elapsed: float,
) -> None:
    """Rewrite docs/benchmarks.md: command, summary, one section per benchmark."""
    old = path.read_text() if path.exists() else DOCS.read_text()
    _preamble, old_sections = split_sections(old)
    argv = [a for a in argv if a != "--no-write"]
    if "--docs" in argv:
        del argv[argv.index("--docs") : argv.index("--docs") + 2]
    shown = shlex.join([_common.python_shown(), "bench/run_all.py", *argv])
    make = "make bench" + (f" BENCH_ARGS='{' '.join(argv)}'" if argv else "")
    ran = [n for n, name, _h in BENCHMARKS if name in outcomes]
    usual = [n for n, name, _h in BENCHMARKS if name not in ON_REQUEST]
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run_all.py`; edit the benchmark modules, not this file.",
        "",
        f"Last run: `{make}` (runs `{shown}`), benchmarks "
        f"{', '.join(ran)}"
        + (
            ""
            if ran == usual
            else " (the others' rows and sections are from earlier runs)"
        )
        + f" in {elapsed / 60:.1f} min on "
        f"{_common.machine_text(machine, round(os.getloadavg()[0], 2))}. The "
        "machine is shared with other jobs, so absolute times are noisy; every "
        "ratio is measured side by side in one run (interleaved or paired), "
        "and CPU times are given where wall time misleads.",
        "",
        "## Summary",
        "",
        "| # | figure | result | target | met |",
        "|---|---|---|---|---|",
    ]
    new_rows: dict[str, list[str]] = {}
    for row in rows:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        new_rows.setdefault(row["number"], []).append(
            f"| {row['number']} | {row['figure']} | {row['result']} "
            f"| {row['target'] or '–'} | {met or '–'} |"
        )
    # Benchmarks left out with --only keep their rows from the last run.
    old_rows = _old_summary_rows(old_sections.get("## Summary", ""))
    for number, _name, _heading in BENCHMARKS:
        lines += new_rows.get(number) or old_rows.get(number, [])
    lines.append("")
    body = "\n".join(lines) + "\n"
    for _number, name, heading in BENCHMARKS:
        outcome = outcomes.get(name)
        section = None
        if outcome is not None and "result" in outcome:
            section = _render(name, outcome, old_sections.get(heading, ""))
        if section is None:
            section = old_sections.get(heading)
        if section:
            body += "\n" + section.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def _old_summary_rows(section: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip().isdigit():
            rows.setdefault(cells[1].strip(), []).append(line)
    return rows


def _render(name: str, outcome: dict[str, Any], old_section: str) -> str | None:
    module, result = outcome["module"], outcome["result"]
    render = getattr(module, "render", None)
    if render is not None:
        text = render(result)
    elif name == "client_overhead":
        text = render_client_overhead(result, old_section)
    else:
        return None
    return text + f"\n({TITLES[name]} took {outcome['seconds']:.0f} s.)\n"


def render_client_overhead(result: dict[str, Any], old_section: str) -> str:
    """Render benchmark 1's dict; keep the notes that followed its tables."""
    env = result["environment"]
    rates, cpu = result["calls_per_second"], result["cpu_us_per_call"]
    ratios, targets, met = result["ratios"], result["targets"], result["targets_met"]
    command = result["command"].strip()
    lines = [
        "## Client overhead",
        "",
        f"Command: `{_common.python_shown()} {command}` ({result['rounds']} "
        f"interleaved rounds × {result['calls_per_round']} calls per client; "
        f"{env['cpus']} CPUs, Python {env['python']}, requests {env['requests']}).",
        "",
        "One loopback HTTP/1.1 keep-alive server (TCP_NODELAY, its own process, "
        f"pre-built {result['body_bytes']}-byte `google_tagging` 200 body) answers "
        'all three clients in the same run. Each call sends `{"source": {"uri": '
        "…}}` with Basic auth and decodes the JSON answer: **ours** is "
        "`AnalyzeClient.google_tagging(url)` → `AnalysisResult`; **bare** a "
        "`requests.Session` loop; **sdk** the official `cloudinary_analysis` "
        "client (httpx + pydantic).",
        "",
        "| client | calls/s (median round) | client CPU µs/call (median) |",
        "|---|---:|---:|",
    ]
    names = {"ours": "ours", "bare": "bare requests loop", "sdk": "official SDK"}
    for key, label in names.items():
        if key in rates:
            lines.append(f"| {label} | {rates[key]:.0f} | {cpu[key]:.0f} |")
    lines += [
        "",
        "| ratio (median of paired rounds) | result | target | met |",
        "|---|---:|---:|---|",
    ]
    if "ours_vs_sdk" in ratios:
        lines.append(
            f"| ours / SDK | {ratios['ours_vs_sdk']:.2f}× "
            f"| ≥ {targets['ours_vs_sdk']}× | {'yes' if met['sdk'] else '**no**'} |"
        )
    lines.append(
        f"| ours / bare loop | {ratios['ours_vs_bare']:.2f}× "
        f"| ≥ {targets['ours_vs_bare']}× | {'yes' if met['bare'] else '**no**'} |"
    )
    notes = _notes_after_tables(old_section)
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def _notes_after_tables(section: str) -> str:
    """Return the paragraphs after a section's last table (its author's notes)."""
    lines = section.rstrip("\n").splitlines()
    last_table = max(
        (i for i, line in enumerate(lines) if line.startswith("|")), default=-1
    )
    if last_table < 0:
        return ""
    rest = [line for line in lines[last_table + 1 :] if not TOOK.match(line)]
    return "\n".join(rest).strip()


if __name__ == "__main__":
    sys.exit(main())
