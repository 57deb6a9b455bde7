"""The tests mirror the package: a test module per module, so the mirror cannot rot.

``django_cloudinary_analysis/a/b.py`` is tested in ``tests/test_a_b.py`` (a
package's ``__init__`` in ``tests/test_a.py``; leading underscores dropped),
and more test modules of it may follow that name (``tests/test_a_b_states.py``).
A module tested elsewhere is listed in ``TESTED_IN`` with where; one with
nothing of its own to test in ``DECLARATIVE``; a test module about no single
module in ``CROSS_CUTTING`` (``tests/integration/`` is the end-to-end suite,
organised by scenario). Each list is checked both ways: an entry that
no longer applies fails too, so the lists shrink as tests move home.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.test_layering import _modules

TESTS = Path(__file__).resolve().parent
ROOT = "django_cloudinary_analysis"

#: Modules with nothing of their own to test: docstrings, re-exports, route
#: lists, empty packages. Their content is exercised by their users' tests.
DECLARATIVE = {
    ROOT: "the version string",
    f"{ROOT}.statuses": "two TextChoices enums and two tuples of their members",
    f"{ROOT}.apps": "AppConfig.ready connects receivers: tests/test_receivers.py",
    f"{ROOT}.urls": "routes, requested by the webhook and accountability tests",
    f"{ROOT}.accountability": "a docstring",
    f"{ROOT}.admin": "re-exports; importing it registers the admins",
    f"{ROOT}.backends": "re-exports backends.base",
    f"{ROOT}.management": "an empty package",
    f"{ROOT}.management.commands": "an empty package",
}

#: Modules whose tests live under another name, with where. Most are parts of
#: a package tested through the names the package exports (``services.run``,
#: ``AnalyzeClient``, the API's routes): move them home as they grow.
TESTED_IN = {
    f"{ROOT}.analyses": ("test_deprecation",),
    f"{ROOT}.tag_querysets": ("test_statement_counts",),
    f"{ROOT}.analysis_querysets": (
        "test_statement_counts",
        "test_services_reuse_one_sender",
    ),
    f"{ROOT}.accountability.summaries": ("test_accountability_dashboard",),
    f"{ROOT}.accountability.decision_facts": ("test_accountability_dashboard",),
    f"{ROOT}.management.commands.summarise_decisions": (
        "test_accountability_dashboard",
    ),
    f"{ROOT}.client.errors": ("test_client",),
    f"{ROOT}.accountability.admin": ("test_accountability_export",),
    f"{ROOT}.accountability.admin_views": ("test_accountability_dashboard",),
    f"{ROOT}.accountability.charts": ("test_accountability_dashboard",),
    f"{ROOT}.accountability.models": ("test_accountability_statements",),
    f"{ROOT}.accountability.notify": ("test_accountability_statements",),
    f"{ROOT}.accountability.receivers": (
        "test_accountability_statements",
        "test_accountability_appeals",
    ),
    f"{ROOT}.accountability.views": ("test_accountability_appeals",),
    f"{ROOT}.admin.workspace_data": ("test_admin_workspace",),
    f"{ROOT}.backends.base": ("test_backends_local", "test_sources"),
    f"{ROOT}.backends.local.backend": ("test_backends_local",),
    f"{ROOT}.backends.local.decoding": ("test_backends_local",),
    f"{ROOT}.backends.local.moderation": ("test_backends_local",),
    f"{ROOT}.backends.local.quality": ("test_backends_local",),
    f"{ROOT}.backends.local.text": ("test_backends_local",),
    # The in-memory backend is the unit suite's backend: every pipeline test.
    f"{ROOT}.backends.memory": ("test_services",),
    f"{ROOT}.client.config": ("test_client_options",),
    f"{ROOT}.client.credentials": ("test_client",),
    f"{ROOT}.client.methods": ("test_client",),
    f"{ROOT}.client.protocol": ("test_client", "test_client_aio"),
    f"{ROOT}.client.results": ("test_client",),
    f"{ROOT}.client.retry": ("test_client", "test_client_options"),
    f"{ROOT}.client.sync": ("test_client",),
    f"{ROOT}.credentials": ("test_conf",),
    f"{ROOT}.management.commands.export_decisions": ("test_accountability_export",),
    f"{ROOT}.models": ("test_services", "test_querysets"),
    f"{ROOT}.rest_framework.appeals": ("test_accountability_appeals",),
    f"{ROOT}.rest_framework.fields": ("test_rest_framework",),
    f"{ROOT}.rest_framework.filters": ("test_rest_framework",),
    f"{ROOT}.rest_framework.pagination": ("test_rest_framework",),
    f"{ROOT}.rest_framework.permissions": ("test_rest_framework",),
    f"{ROOT}.rest_framework.schema": ("test_rest_framework",),
    f"{ROOT}.rest_framework.serializers": ("test_rest_framework",),
    f"{ROOT}.rest_framework.urls": ("test_rest_framework",),
    f"{ROOT}.rest_framework.views": ("test_rest_framework",),
    f"{ROOT}.services.dispatch": ("test_verdict", "test_tasks"),
    f"{ROOT}.services.quota": ("test_services",),
    f"{ROOT}.services.remote": ("test_async",),
    f"{ROOT}.services.results": ("test_services",),
    f"{ROOT}.services.reuse": ("test_services", "test_verdict"),
    f"{ROOT}.services.running": ("test_services",),
    f"{ROOT}.services.scheduling": ("test_services", "test_verdict"),
    f"{ROOT}.services.verdicts": ("test_verdict", "test_verdict_state_machine"),
    f"{ROOT}.writeback": ("test_writeback_checks", "test_writeback_tags"),
    f"{ROOT}.writeback.models": ("test_writeback_cloudinary_sync",),
    f"{ROOT}.writeback.options": ("test_writeback_alt_text", "test_writeback_tags"),
    f"{ROOT}.writeback.receivers": ("test_writeback_alt_text", "test_writeback_tags"),
}

#: Test modules about no single module of the package.
CROSS_CUTTING = {
    "test_layout": "this file",
    "test_layering": "the import graph",
    "test_statement_counts": "the worker's SQL statements per analysis",
    "test_migrations": "migrations against the models",
    "test_packaging": "the wheel and the sdist",
    "test_contract": "the fake API and the SDK against the API contract",
    "test_fake_api": "tests/support/fake_api.py",
    "test_support_servers": "tests/support/servers.py",
    "test_example_project": "example_project/",
    "test_fuzz_endpoints": "the webhook and the API's write endpoints, fuzzed",
    "test_error_reports": "Django's error reports show no secret",
    "test_dedup_privacy": "a reused result shows nothing of its donor",
    "test_verdict_browser": "the admin form keeps a verdict, in Chromium",
}


def mirror(module: str) -> str:
    """``django_cloudinary_analysis.client._config`` → ``test_client_config``."""
    parts = [part.lstrip("_") for part in module.split(".")[1:]]
    return "_".join(["test", *parts])


def module_name(module: str) -> str:
    """The key ``TESTED_IN`` and ``DECLARATIVE`` use (underscores dropped)."""
    head, *rest = module.split(".")
    return ".".join([head, *(part.lstrip("_") for part in rest)])


@cache
def _test_modules() -> dict[str, Path]:
    return {path.stem: path for path in TESTS.glob("test_*.py")}


@cache
def package_modules() -> dict[str, str]:
    """Every module of the package by its listed name, with its real name."""
    return {module_name(name): name for name in _modules()}


def refers_to(test_module: str, module: str) -> bool:
    """Whether a test module imports ``module``, a sibling, or names its file."""
    path = _test_modules()[test_module]
    source = path.read_text()
    if "/".join(module.split(".")[1:]) + ".py" in source:
        return True  # named by its path in the package: "credentials.py"
    if ".management.commands." in module and f'"{module.rpartition(".")[2]}"' in source:
        return True  # call_command("export_decisions")
    package = module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == module or (package != ROOT and name.startswith(package)):
                return True
    return False


def test_every_module_of_the_package_has_a_test_module() -> None:
    missing = [
        f"{listed}: add tests/{mirror(listed)}.py"
        for listed in package_modules()
        if mirror(listed) not in _test_modules()
        and listed not in TESTED_IN
        and listed not in DECLARATIVE
    ]
    assert missing == []


def test_the_lists_name_modules_that_exist_and_need_them() -> None:
    modules = package_modules()
    for listed in [*TESTED_IN, *DECLARATIVE]:
        assert listed in modules, f"{listed} is no module of the package"
        assert mirror(listed) not in _test_modules(), (
            f"{listed} has tests/{mirror(listed)}.py now: drop it from the list"
        )
    assert not set(TESTED_IN) & set(DECLARATIVE)


def test_where_a_module_is_tested_is_true() -> None:
    for listed, homes in TESTED_IN.items():
        real = package_modules()[listed]
        for home in homes:
            assert home in _test_modules(), f"{listed}: no tests/{home}.py"
            assert refers_to(home, real), f"tests/{home}.py does not use {real}"


def test_every_test_module_belongs_somewhere() -> None:
    mirrors = {mirror(listed) for listed in package_modules()}
    homes = {home for places in TESTED_IN.values() for home in places}
    orphans = [
        name
        for name in _test_modules()
        if name not in mirrors
        and name not in homes
        and name not in CROSS_CUTTING
        # A second test module of one module: test_writeback_tags_states.
        and not any(name.startswith(f"{m}_") for m in mirrors if m != "test")
    ]
    assert orphans == [], "name them after their module or list them here"
    assert set(CROSS_CUTTING) <= set(_test_modules())


def test_plain_pytest_runs_the_suite_like_python_m_pytest(tmp_path: Path) -> None:
    # ``python -m pytest`` puts the working directory on sys.path, the
    # ``pytest`` script does not: only the pytest settings' ``pythonpath``
    # lets it import tests.settings.
    script = Path(sys.executable).parent / "pytest"
    if not script.exists():
        pytest.skip("no pytest script beside this interpreter")
    # The caller's PYTEST_ADDOPTS (tox passes "-q" through) would change the
    # listing's format.
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")
    }
    done = subprocess.run(
        [str(script), "--collect-only", "-q", "-p", "no:cacheprovider", __file__],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_plain_pytest_runs_the_suite_like_python_m_pytest" in done.stdout
