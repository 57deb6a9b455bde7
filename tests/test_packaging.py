"""What a release publishes: the wheel, the sdist, their metadata, the catalogs."""

from __future__ import annotations

import gettext
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.support.servers import which_or_skip

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "django_cloudinary_analysis"
LANGUAGES = ("de", "es", "fr", "pt_BR")


def build_wheel(out: Path) -> Path:
    """Build the wheel as a release would (no isolation: offline)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=out,
    )
    (wheel,) = out.glob("django_cloudinary_analysis-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top <= {
        "django_cloudinary_analysis",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }, top
    pkg = "django_cloudinary_analysis/"
    assert pkg + "py.typed" in names
    assert pkg + "migrations/0001_initial.py" in names
    assert any(
        n.startswith(pkg + "templates/admin/cloudinary_analysis/") for n in names
    )
    assert pkg + "rest_framework/urls.py" in names
    for lang in LANGUAGES:
        assert f"{pkg}locale/{lang}/LC_MESSAGES/django.mo" in names, lang
    assert not any(
        part in n for n in names for part in ("tests/", "example_project", "bench/")
    )


def test_published_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/METADATA"))
        meta = Parser().parsestr(archive.read(name).decode())
    extras = set(meta.get_all("Provides-Extra"))
    # no test/dev pins
    assert extras == {"async", "cloudinary", "drf", "local", "redis", "taggit"}
    requires = meta.get_all("Requires-Dist")
    assert not any(r.split(";")[0].strip().startswith("redis") for r in requires)
    assert any(r.startswith("celery[redis]") and "extra" in r for r in requires)
    assert not any("cloudinary-analysis" in r or "selenium" in r for r in requires)
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL")}
    assert {"Documentation", "Changelog", "Issues"} <= urls
    classifiers = meta.get_all("Classifier")
    for expected in (
        "Development Status ::",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Intended Audience :: Developers",
        "Topic ::",
    ):
        assert any(c.startswith(expected) for c in classifiers), expected


def test_sdist_has_the_docs_and_builds_without_warnings(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; "
            "print(b.build_sdist(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    log = out.stdout + out.stderr
    assert "no files found" not in log and "warning" not in log.lower(), log
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in names
    assert "django_cloudinary_analysis/locale/de/LC_MESSAGES/django.po" in names


# -- translations -----------------------------------------------------------------


def _catalog(mo: Path) -> dict[object, str]:
    with mo.open("rb") as fh:
        return dict(gettext.GNUTranslations(fh)._catalog)  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_is_complete_and_compiled(lang, tmp_path):
    msgfmt = which_or_skip("msgfmt", "gettext")
    po = PKG / "locale" / lang / "LC_MESSAGES" / "django.po"
    fresh = tmp_path / "django.mo"
    result = subprocess.run(
        [msgfmt, "--check", "--statistics", "-o", str(fresh), str(po)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr
    shipped = _catalog(po.with_suffix(".mo"))
    assert shipped == _catalog(fresh), "the .mo is stale: run compilemessages"
    assert len(shipped) > 150


def test_makemessages_finds_nothing_new(tmp_path):
    which_or_skip("xgettext", "gettext")
    copy = tmp_path / "django_cloudinary_analysis"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": ""}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "makemessages",
            "--settings=tests.settings",
            *(f"--locale={lang}" for lang in LANGUAGES),
        ],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )
    for lang in LANGUAGES:
        rel = Path("locale") / lang / "LC_MESSAGES" / "django.po"
        assert _msgids(copy / rel) == _msgids(PKG / rel), (
            f"{rel}: marked strings changed; run makemessages and translate"
        )


def _msgids(po: Path) -> set[tuple[str, ...]]:
    """(msgctxt, msgid, msgid_plural) of each active entry of a catalogue."""
    found = set()
    for block in po.read_text().split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        parts: dict[str, str] = {}
        key = ""
        for line in lines:
            if line.startswith('"'):
                parts[key] += line[1:-1]
            else:
                key, _, value = line.partition(" ")
                parts[key] = value[1:-1]
        if "msgid" in parts:
            found.add(
                tuple(parts.get(k, "") for k in ("msgctxt", "msgid", "msgid_plural"))
            )
    return found


def test_bare_pytest_finds_the_tests_package():
    """``pytest`` works like ``python -m pytest`` (``pythonpath`` setting)."""
    script = Path(sys.executable).with_name("pytest")
    if not script.exists():
        pytest.skip("no pytest console script beside this interpreter")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [
            str(script),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_conf.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tox_cell_fails_on_another_django(monkeypatch):
    import django

    from tests.conftest import pytest_sessionstart

    running = "{}.{}".format(*django.VERSION[:2])
    monkeypatch.setenv("TOX_DJANGO", running)
    pytest_sessionstart(None)  # type: ignore[arg-type]
    monkeypatch.setenv("TOX_DJANGO", "3.2")
    with pytest.raises(pytest.UsageError, match=r"names Django 3\.2"):
        pytest_sessionstart(None)  # type: ignore[arg-type]
