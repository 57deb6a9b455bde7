"""Read paths: the REST API list and the admin changelists on a big database.

Run: ``.venv/bin/python bench/read_paths.py [--quick]``

PostgreSQL holds 100k analyses (50k ``benchapp.MediaPhoto`` objects ×
``google_tagging`` and ``ai_vision_moderation``, realistic ``result`` and
``raw`` JSON) and 1M tags (20 per tagging analysis), inserted server-side
with ``generate_series`` and analysed (``--quick``: a tenth). Django's test
``Client``, logged in as a superuser, then requests each page at page sizes
10 and 100, alternating, and counts the queries of each.

Targets: the number of queries does not depend on the page size, and the
median latency ratio page 100 / page 10 is ≤ 4.
``main(argv)`` returns the numbers as a dict for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common
from bench._common import Figure, median

TITLE = "Read paths"
SECTION = "## Read paths"
TARGET_RATIO = 4.0
SIZES = (10, 100)
TAGS_PER_ANALYSIS = 20
#: Label → URL; the admin's page size is its ModelAdmin's ``list_per_page``.
PAGES = {
    "API list (analyses)": "/api/analysis/analyses/?page_size={size}",
    "admin changelist: Analysis": "/admin/cloudinary_analysis/analysis/",
    "admin changelist: MediaTag": "/admin/cloudinary_analysis/mediatag/",
}


#: Why the ratios stay low, from the query timings the section lists.
NOTES = (
    "The pages cost about the same at both sizes because the time goes into "
    "queries over the whole table, not into the rows shown: the page query "
    "sorts every row by the model's default ordering (`-created_at, -pk` for "
    "analyses, `-confidence, name` for tags; no index leads with those "
    "columns), each list filter reads the distinct values of its column "
    "(`backend`, `analysis_type`, the content types in use) and the admin counts the "
    "rows twice (the paginator's count and the full result count). The rows of "
    "a page then cost a constant number of queries (tags prefetched, objects "
    "loaded once per page). Not changed here, for the owners of `models.py` "
    "and `admin.py`: indexes matching the default orderings would let the page "
    "queries read only their page; the list filters could take their choices "
    "from the registry and the settings instead of `DISTINCT` over the table; "
    "`show_full_result_count = False` would save a count on the tag "
    "changelist."
)


# -- child ------------------------------------------------------------------------


def _populate(analyses: int) -> dict[str, Any]:
    """Fill the database server-side; return the row counts and the time taken."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from bench.benchapp.models import MediaPhoto
    from django_cloudinary_analysis.models import params_hash
    from django_cloudinary_analysis.options import effective_params
    from tests.support.api_samples import sample_response

    _common.migrate()
    started = time.perf_counter()
    objects = analyses // 2
    ct = ContentType.objects.get_for_model(MediaPhoto).pk
    moderation_params = effective_params(_spec(MediaPhoto, "ai_vision_moderation"))
    rows = {
        "google_tagging": {
            "params": {},
            "result": {
                "answers": {},
                "responses": [],
                "caption": None,
                "quality": None,
            },
            "raw": sample_response("google_tagging"),
        },
        "ai_vision_moderation": {
            "params": moderation_params,
            "result": {
                "answers": {q: "no" for q in moderation_params["rejection_questions"]},
                "responses": [],
                "caption": None,
                "quality": None,
            },
            "raw": sample_response("ai_vision_moderation", moderation_params),
        },
    }
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO benchapp_mediaphoto (moderation_status, title, image) "
            "SELECT 'approved', 'photo ' || g, 'bench/photo-' || g || '.jpg' "
            "FROM generate_series(1, %s) AS g",
            [objects],
        )
        for order, (kind, data) in enumerate(rows.items()):
            cur.execute(
                "INSERT INTO cloudinary_analysis_analysis (content_type_id, "
                "object_id, field_name, file_name, analysis_type, params, "
                "params_hash, backend, status, allow_reuse, content_key, "
                "request_id, attempts, error_code, error_message, result, raw, "
                "task_id, created_at, started_at, finished_at) "
                "SELECT %s, p.id::text, 'image', p.image, %s, %s::jsonb, %s, "
                "'cloudinary', 'succeeded', true, 'sha256:' || md5(p.image) || "
                "md5(p.title), 'req-' || p.id, 1, '', '', %s::jsonb, %s::jsonb, "
                "'task-' || p.id, "
                "now() - (p.id * 2 + %s) * interval '1 second', "
                "now() - (p.id * 2 + %s) * interval '1 second', "
                "now() - (p.id * 2 + %s) * interval '1 second' + interval '1 s' "
                "FROM benchapp_mediaphoto p",
                [
                    ct,
                    kind,
                    json.dumps(data["params"]),
                    params_hash(data["params"]),
                    json.dumps(data["result"]),
                    json.dumps(data["raw"]),
                    order,
                    order,
                    order,
                ],
            )
        cur.execute(
            "INSERT INTO cloudinary_analysis_mediatag (analysis_id, "
            "content_type_id, object_id, field_name, name, label, confidence, "
            "analysis_type, box) "
            "SELECT a.id, a.content_type_id, a.object_id, 'image', "
            "'tag-' || ((a.id * 7 + k) %% 500), 'Tag ' || ((a.id * 7 + k) %% 500), "
            "round((0.5 + ((a.id * 13 + k * 31) %% 500) / 1000.0)::numeric, 4), "
            "'google_tagging', NULL "
            "FROM cloudinary_analysis_analysis a "
            "CROSS JOIN generate_series(1, %s) AS k "
            "WHERE a.analysis_type = 'google_tagging'",
            [TAGS_PER_ANALYSIS],
        )
        cur.execute("UPDATE benchapp_mediaphoto SET moderation_status = 'approved'")
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM cloudinary_analysis_analysis")
        n_analyses = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM cloudinary_analysis_mediatag")
        n_tags = cur.fetchone()[0]
    return {
        "objects": objects,
        "analyses": n_analyses,
        "tags": n_tags,
        "seconds": time.perf_counter() - started,
    }


def _spec(model: Any, kind: str) -> Any:
    from django_cloudinary_analysis.mixins import analysis_config

    return next(s for s in analysis_config(model)["image"] if s.type == kind)


def _measure(rounds: int, warmup: int) -> dict[str, Any]:
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_cloudinary_analysis.models import Analysis, MediaTag

    user = get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password"
    )
    client = Client()
    client.force_login(user)
    admins = {
        "admin changelist: Analysis": admin.site._registry[Analysis],
        "admin changelist: MediaTag": admin.site._registry[MediaTag],
    }

    def get(label: str, size: int) -> tuple[float, int]:
        model_admin = admins.get(label)
        if model_admin is not None:
            model_admin.list_per_page = size
        url = PAGES[label].format(size=size)
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
        return elapsed, len(response.content)

    results: dict[str, Any] = {}
    for label in PAGES:
        for size in SIZES:
            for _ in range(warmup):
                get(label, size)
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        sizes_bytes: dict[int, int] = {}
        for i in range(rounds):
            order = SIZES if i % 2 == 0 else SIZES[::-1]
            for size in order:
                elapsed, length = get(label, size)
                times[size].append(elapsed)
                sizes_bytes[size] = length
        queries: dict[int, list[str]] = {}
        for size in SIZES:
            with CaptureQueriesContext(connection) as captured:
                get(label, size)
            queries[size] = [
                f"{float(q['time']) * 1000:7.1f} ms  {q['sql']}"
                for q in captured.captured_queries
            ]
        results[label] = {
            "times": {str(k): v for k, v in times.items()},
            "bytes": {str(k): v for k, v in sizes_bytes.items()},
            "queries": {str(k): v for k, v in queries.items()},
        }
        _common.log(
            f"  {label}: {median(times[SIZES[0]]) * 1000:.0f} ms / "
            f"{median(times[SIZES[1]]) * 1000:.0f} ms, queries "
            f"{len(queries[SIZES[0]])} / {len(queries[SIZES[1]])}"
        )
    return results


def _child(analyses: int, rounds: int, warmup: int) -> dict[str, Any]:
    populated = _populate(analyses)
    _common.log(
        f"  populated {populated['analyses']} analyses and {populated['tags']} tags "
        f"in {populated['seconds']:.1f} s"
    )
    return {"populated": populated, "pages": _measure(rounds, warmup)}


# -- parent -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k analyses, 100k tags")
    parser.add_argument("--analyses", type=int, help="analyses (default 100000)")
    parser.add_argument("--rounds", type=int, help="requests per page and size")
    args = parser.parse_args(argv)
    analyses = args.analyses or (10_000 if args.quick else 100_000)
    rounds = args.rounds or 5
    warmup = 1 if args.quick else 2

    info = _common.machine()
    svc = _common.services()
    env = _common.bench_env(
        svc.new_database("postgresql", "reads"), media_root=svc.media_root("reads")
    )
    _common.log(
        f"{TITLE}: {analyses} analyses, {analyses // 2 * TAGS_PER_ANALYSIS} tags, "
        f"PostgreSQL, {rounds} requests per page and size"
    )
    raw = _common.run_child(
        __file__,
        {"step": "run", "analyses": analyses, "rounds": rounds, "warmup": warmup},
        env,
    )
    load_after = round(os.getloadavg()[0], 2)

    small, large = (str(size) for size in SIZES)
    pages = {}
    figures = []
    for label, data in raw["pages"].items():
        times, queries = data["times"], data["queries"]
        ratio = median(times[large]) / median(times[small])
        constant = len(queries[small]) == len(queries[large])
        pages[label] = {
            "ms": {size: median(times[size]) * 1000 for size in (small, large)},
            "ratio": ratio,
            "queries": {size: len(queries[size]) for size in (small, large)},
            "constant": constant,
            "bytes": data["bytes"],
            "sql": queries[large],
        }
        figures.append(
            Figure(
                f"{label}: queries at page size {small} / {large}",
                len(queries[large]),
                f"{len(queries[small])} / {len(queries[large])}",
                "constant",
                constant,
            )
        )
        figures.append(
            Figure(
                f"{label}: median latency page {large} / page {small}",
                ratio,
                f"{ratio:.2f}× ({median(times[large]) * 1000:.0f} vs "
                f"{median(times[small]) * 1000:.0f} ms)",
                f"≤ {TARGET_RATIO:.0f}×",
                ratio <= TARGET_RATIO,
            )
        )
    result = {
        "benchmark": "read_paths",
        "title": TITLE,
        "command": _common.command("bench/read_paths.py", argv),
        "machine": info,
        "load_after": load_after,
        "database": "postgresql",
        "populated": raw["populated"],
        "rounds": rounds,
        "pages": pages,
        "figures": _common.figures_dicts(figures),
        "targets_met": {f.name: f.met for f in figures if f.met is not None},
    }
    _common.print_figures(TITLE, figures)
    return result


def render(result: dict[str, Any]) -> str:
    """Render the results as the Markdown section of docs/benchmarks.md."""
    populated = result["populated"]
    small, large = (str(size) for size in SIZES)
    lines = [
        SECTION,
        "",
        f"Command: `{result['command']}` "
        f"({_common.machine_text(result['machine'], result['load_after'])}).",
        "",
        f"**PostgreSQL 15** with {populated['analyses']:,} analyses "
        f"({populated['objects']:,} `benchapp.MediaPhoto` objects × "
        "`google_tagging` and `ai_vision_moderation`, with `result` and `raw` "
        f"JSON) and {populated['tags']:,} tags ({TAGS_PER_ANALYSIS} per tagging "
        f"analysis), inserted server-side in {populated['seconds']:.0f} s and "
        "`ANALYZE`d. Django's test `Client` logged in as a superuser; "
        f"{result['rounds']} requests per page and size after a warm-up, "
        "alternating sizes; the admin's size is its `list_per_page`, the API's "
        "`?page_size=` (a `PageNumberPagination` subclass in `bench/benchapp`).",
        "",
        f"| page | queries ({small} / {large}) | constant | ms at {small} "
        f"| ms at {large} | ratio (target ≤ {TARGET_RATIO:.0f}×) | met |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for label, row in result["pages"].items():
        lines.append(
            f"| {label} | {row['queries'][small]} / {row['queries'][large]} "
            f"| {'yes' if row['constant'] else '**no**'} "
            f"| {row['ms'][small]:.0f} | {row['ms'][large]:.0f} "
            f"| {row['ratio']:.2f}× "
            f"| {'yes' if row['ratio'] <= TARGET_RATIO else '**no**'} |"
        )
    lines += [
        "",
        NOTES,
        "",
        "Queries of each page at size 100, with their time in that request:",
        "",
    ]
    for label, row in result["pages"].items():
        lines += [f"*{label}*:", "", "```"]
        lines += [f"{_short(sql)}" for sql in row["sql"]]
        lines += ["```", ""]
    return "\n".join(lines)


def _short(sql: str, width: int = 170) -> str:
    return sql if len(sql) <= width else sql[: width - 1] + "…"


if __name__ == "__main__":
    if _common.is_child():
        _common.child_main({"run": _child})
    else:
        outcome = main()
        sys.exit(0 if all(outcome["targets_met"].values()) else 1)
