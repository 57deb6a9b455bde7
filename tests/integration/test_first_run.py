"""Start where a user starts: the wheel, a fresh venv, the README, a real worker.

One shared venv gets only ``pip install "<wheel>[drf,redis]" Pillow`` (what
the README's Installation says); each test makes a fresh
``django-admin startproject`` site from the README's code blocks, runs
``migrate`` and a real Celery worker from that venv against redis-server and
the contract server, uploads an image and waits for the analyses. The second
test adds django-cloudinary-storage configured as its documentation (and the
README's "Using with Cloudinary storage") says, with a loopback stand-in for
Cloudinary's upload and Admin API.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.support.fake_api import FakeAnalyzeAPI
from tests.support.servers import LOOPBACK, RedisServer, skip_or_fail
from tests.test_packaging import build_wheel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TYPES = ("google_tagging", "ai_vision_moderation", "image_quality")
CHECK_ID = re.compile(r"cloudinary_analysis\.[EW]\d{3}")


@pytest.fixture(autouse=True)
def it() -> Iterator[None]:
    """This module runs its own site: not the suite's shared stack."""
    yield


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the built wheel installed as the README says, nothing more."""
    root = tmp_path_factory.mktemp("first-run")
    wheel = build_wheel(root)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(venv, f"{wheel}[drf,redis]", "Pillow")
    return venv


def pip(venv: Path, *requirements: str) -> None:
    """Install from the package index (the pip cache makes it quick)."""
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
        env=clean_env(venv),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        skip_or_fail(
            f"pip cannot install {' '.join(requirements)} (no package index?): "
            + result.stderr[-1500:]
        )


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no test settings, no credentials, the venv first."""
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    for key in ("PIP_CERT", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def readme_block(first_line: str) -> str:
    """The README's python code block whose first line is ``first_line``."""
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if block.splitlines()[0] == first_line:
            return block
    raise AssertionError(f"README has no block starting {first_line!r}")


def readme_installed_apps() -> list[str]:
    block = next(
        b
        for b in re.findall(r"```python\n(.*?)```", README, flags=re.S)
        if b.startswith("INSTALLED_APPS")
    )
    return re.findall(r'"([a-z_]+)"', block)


class Site:
    """A fresh ``startproject`` site in the user's venv."""

    def __init__(self, venv: Path, path: Path) -> None:
        self.venv = venv
        self.path = path
        self.env = clean_env(venv)
        self.worker: subprocess.Popen[bytes] | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "manage.py", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and result.returncode:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def shell(self, code: str) -> Any:
        """Run ``code`` in ``manage.py shell``; it prints one JSON value."""
        return json.loads(self.run("shell", "-c", code).stdout.strip().splitlines()[-1])

    def start_worker(self) -> None:
        self.log = (self.path / "worker.log").open("wb")
        self.worker = subprocess.Popen(
            [
                str(self.venv / "bin" / "celery"),
                "-A",
                "mysite",
                "worker",
                "-l",
                "info",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=self.path,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(5)
            self.log.close()

    def worker_log(self) -> str:
        return (self.path / "worker.log").read_text(errors="replace")[-4000:]

    def analyses(self) -> list[dict[str, Any]]:
        return self.shell(  # type: ignore[no-any-return]
            "import json; from django_cloudinary_analysis.models import Analysis; "
            "print(json.dumps(list(Analysis.objects.order_by('pk').values("
            "'object_id', 'analysis_type', 'status', 'error_code', 'error_message', "
            "'content_key', 'reused_from', 'backend'))))"
        )

    def wait_finished(self, count: int) -> list[dict[str, Any]]:
        """Poll until ``count`` analyses are finished (the worker runs them)."""
        finished = ("succeeded", "failed", "skipped", "cancelled")
        rows: list[dict[str, Any]] = []
        for _ in range(120):
            rows = self.analyses()
            if len(rows) >= count and all(r["status"] in finished for r in rows):
                return rows
            assert self.worker is not None and self.worker.poll() is None, (
                f"the worker exited:\n{self.worker_log()}"
            )
            time.sleep(1)
        raise AssertionError(f"analyses did not finish: {rows}\n{self.worker_log()}")


def site_broker(redis_server: RedisServer) -> str:
    """A Redis database of the site's own.

    The session's other workers listen on database 0 of the same server for
    the same task names: they would take the site's messages and find no rows.
    """
    return redis_server.url.rsplit("/", 1)[0] + "/9"


def make_site(venv: Path, root: Path, broker_url: str) -> Site:
    """``startproject`` + ``startapp`` + the README's Quick start blocks."""
    root.mkdir()
    subprocess.run(
        [str(venv / "bin" / "django-admin"), "startproject", "mysite", str(root)],
        check=True,
        env=clean_env(venv),
    )
    site = Site(venv, root)
    site.run("startapp", "photos")
    project = root / "mysite"
    for name in ("celery.py", "__init__.py"):
        block = readme_block(f"# yourproject/{name}")
        (project / name).write_text(block.replace("yourproject", "mysite"))
    (root / "photos" / "models.py").write_text(readme_block("# models.py"))
    settings = readme_block("# settings.py")
    assert "redis://localhost:6379/0" in settings
    with (project / "settings.py").open("a") as fh:
        apps = [*readme_installed_apps(), "photos"]
        fh.write(f"\nINSTALLED_APPS += {apps!r}\n")
        fh.write(settings.replace("redis://localhost:6379/0", broker_url))
    with (project / "urls.py").open("a") as fh:
        fh.write("\n" + readme_block("# urls.py"))
    return site


def point_at_contract_server(site: Site, fake: FakeAnalyzeAPI) -> None:
    """Test plumbing only: the Analyze API is the loopback contract server."""
    with (site.path / "mysite" / "settings.py").open("a") as fh:
        fh.write(f'\nCLOUDINARY_ANALYSIS["BASE_URL"] = {fake.base_url!r}\n')


UPLOAD = (
    "import io, json; from PIL import Image; "
    "from django.core.files.base import ContentFile; from photos.models import Photo; "
    "buf = io.BytesIO(); Image.new('RGB', (40, 30), (200, 80, 20)).save(buf, 'PNG'); "
    "photo = Photo.objects.create(image=ContentFile(buf.getvalue(), name='cat.png')); "
    "print(json.dumps(photo.pk))"
)


def test_readme_site_with_file_system_storage(
    user_venv: Path,
    tmp_path: Path,
    redis_server: RedisServer,
    fake_api: FakeAnalyzeAPI,
) -> None:
    site = make_site(user_venv, tmp_path / "site", site_broker(redis_server))
    point_at_contract_server(site, fake_api)
    site.run("makemigrations", "photos")
    migrated = site.run("migrate")  # no credentials anywhere yet
    assert "cloudinary_analysis.W003" in migrated.stderr + migrated.stdout
    deploy = site.run("check", "--deploy", check=False)
    assert deploy.returncode != 0 and "cloudinary_analysis.E001" in deploy.stderr

    site.env["CLOUDINARY_URL"] = (
        f"cloudinary://{fake_api.api_key}:{fake_api.api_secret}@{fake_api.cloud_name}"
    )
    check = site.run("check")
    assert not CHECK_ID.search(check.stdout + check.stderr)
    fake_api.clear_records()
    site.start_worker()
    try:
        pk = site.shell(UPLOAD)
        rows = site.wait_finished(len(TYPES))
    finally:
        site.stop_worker()
    assert {r["analysis_type"] for r in rows} == set(TYPES)
    assert {(r["status"], r["backend"]) for r in rows} == {
        ("succeeded", "cloudinary")
    }, [(r["status"], r["error_message"]) for r in rows]
    assert {r["object_id"] for r in rows} == {str(pk)}
    assert all(r["content_key"].startswith("sha256:") for r in rows)
    assert fake_api.billable_calls == len(TYPES)


# -- django-cloudinary-storage -------------------------------------------------------


class FakeCloudinary:
    """Cloudinary's upload API and the Admin API's resource details, on loopback.

    Uploads keep the bytes' MD5 as the asset's etag (as Cloudinary does) and
    give each upload its own public id, like ``use_filename`` with unique names.
    """

    def __init__(self) -> None:
        self.assets: dict[str, str] = {}
        self.admin_calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n"
                message = email.parser.BytesParser().parsebytes(head.encode() + body)
                fields: dict[str, Any] = {}
                for part in message.get_payload():
                    name = part.get_param("name", header="content-disposition")
                    fields[name] = part.get_payload(decode=True)
                data = fields["file"]
                folder = fields.get("folder", b"").decode()
                stem = "upload_" + secrets.token_hex(3)
                public_id = f"{folder}/{stem}" if folder else stem
                fake.assets[public_id] = hashlib.md5(data).hexdigest()
                self.reply(
                    {
                        "public_id": public_id,
                        "version": 1700000000,
                        "etag": fake.assets[public_id],
                        "resource_type": "image",
                        "type": "upload",
                        "format": "png",
                        "secure_url": f"https://res.cloudinary.com/x/{public_id}.png",
                    }
                )

            def do_GET(self) -> None:
                prefix = "/resources/image/upload/"
                path = unquote(self.path.split("?")[0])
                public_id = path.split(prefix, 1)[-1]
                fake.admin_calls += 1
                if prefix not in path or public_id not in fake.assets:
                    self.reply({"error": {"message": "Resource not found"}}, 404)
                else:
                    self.reply({"public_id": public_id, "etag": fake.assets[public_id]})

            def reply(self, payload: dict[str, Any], status: int = 200) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCloudinary:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_readme_site_with_django_cloudinary_storage(
    user_venv: Path,
    tmp_path: Path,
    redis_server: RedisServer,
    fake_api: FakeAnalyzeAPI,
) -> None:
    pip(user_venv, "django-cloudinary-storage")
    site = make_site(user_venv, tmp_path / "site", site_broker(redis_server))
    storage_settings = readme_block(
        "# settings.py (django-cloudinary-storage, as its documentation configures it)"
    )
    for placeholder, value in (
        ("your-cloud-name", fake_api.cloud_name),
        ("your-api-key", fake_api.api_key),
        ("your-api-secret", fake_api.api_secret),
    ):
        storage_settings = storage_settings.replace(placeholder, value)
    with FakeCloudinary() as cloudinary_host:
        with (site.path / "mysite" / "settings.py").open("a") as fh:
            fh.write("\n" + storage_settings)
            # Test plumbing only: uploads and the Admin API go to loopback.
            fh.write(
                "\nimport cloudinary\n"
                f"cloudinary.config(upload_prefix={cloudinary_host.url!r})\n"
            )
        point_at_contract_server(site, fake_api)
        site.run("makemigrations", "photos")
        migrated = site.run("migrate")
        # Credentials come from CLOUDINARY_STORAGE, and the storage's URLs
        # are absolute: neither W003 nor W001.
        assert not CHECK_ID.search(migrated.stderr + migrated.stdout)
        fake_api.clear_records()
        site.start_worker()
        try:
            first = site.shell(UPLOAD)
            rows = site.wait_finished(len(TYPES))
            second = site.shell(UPLOAD)  # the same bytes under a new public id
            rows = site.wait_finished(2 * len(TYPES))
        finally:
            site.stop_worker()
    by_object: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_object.setdefault(row["object_id"], []).append(row)
    assert set(by_object) == {str(first), str(second)}
    assert {r["status"] for r in rows} == {"succeeded"}, [
        (r["status"], r["error_message"]) for r in rows
    ]
    keys = {r["content_key"] for r in by_object[str(first)]}
    assert len(keys) == 1 and keys.pop().startswith("cloudinary-etag:")
    assert all(r["reused_from"] for r in by_object[str(second)])
    assert fake_api.billable_calls == len(TYPES)  # paid once for both uploads
    assert len(cloudinary_host.assets) == 2 and cloudinary_host.admin_calls >= 2
