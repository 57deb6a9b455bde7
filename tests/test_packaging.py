"""The wheel ships the package with its data, and nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents(tmp_path):
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
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("django_cloudinary_analysis-*.whl")
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
    assert not any(
        part in n for n in names for part in ("tests/", "example_project", "bench/")
    )
