"""One test per system check id (see the ledger in checks.py)."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import Storage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps

from django_cloudinary_analysis import checks
from django_cloudinary_analysis.mixins import AnalyzedMedia

CLOUDINARY = "django_cloudinary_analysis.backends.cloudinary.CloudinaryBackend"


def ids(messages) -> list[str]:
    return [m.id for m in messages]


@pytest.fixture
def analysis_settings(settings, monkeypatch):
    """Replace CLOUDINARY_ANALYSIS wholesale; no CLOUDINARY_URL around."""
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)

    def set_(**values):
        settings.CLOUDINARY_ANALYSIS = values

    return set_


def test_default_test_settings_are_clean():
    assert checks.check_settings() == []
    assert checks.check_models() == []


def test_w003_missing_credentials_warn_in_development(analysis_settings):
    analysis_settings(BACKEND=CLOUDINARY, CLOUD_NAME="c", MEDIA_BASE_URL="https://x")
    messages = checks.check_settings()
    assert ids(messages) == ["cloudinary_analysis.W003"]
    assert messages[0].level == checks.checks.WARNING
    assert "API_KEY, API_SECRET" in messages[0].msg
    assert "CLOUDINARY_URL" in messages[0].hint
    # migrate, makemigrations, createsuperuser and runserver run these checks:
    # a warning never stops them.
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def test_e001_missing_credentials_under_check_deploy(analysis_settings):
    analysis_settings(BACKEND=CLOUDINARY, CLOUD_NAME="c", MEDIA_BASE_URL="https://x")
    messages = checks.check_deploy()
    assert ids(messages) == ["cloudinary_analysis.E001"]
    assert "API_KEY, API_SECRET" in messages[0].msg
    with pytest.raises(SystemCheckError, match=r"cloudinary_analysis\.E001"):
        call_command("check", "--deploy", "--tag", checks.TAG, stdout=io.StringIO())


@pytest.mark.django_db
def test_missing_credentials_fail_the_first_analysis_with_a_reason(
    analysis_settings, image_file, django_capture_on_commit_callbacks
):
    from django_cloudinary_analysis.models import Analysis
    from tests.models import Photo

    analysis_settings(BACKEND=CLOUDINARY, MEDIA_BASE_URL="https://x")
    with django_capture_on_commit_callbacks(execute=True):
        Photo.objects.create(image=image_file("a.png"))
    rows = list(Analysis.objects.all())
    assert rows and {a.status for a in rows} == {"failed"}
    assert {a.error_code for a in rows} == {"configuration"}
    assert all("credentials are missing" in a.error_message for a in rows)
    assert all("CLOUDINARY_URL" in a.error_message for a in rows)


def test_e001_satisfied_by_cloudinary_url(analysis_settings, monkeypatch):
    analysis_settings(BACKEND=CLOUDINARY, MEDIA_BASE_URL="https://x")
    monkeypatch.setenv("CLOUDINARY_URL", "cloudinary://key:s3cret@cloud")
    assert checks.check_settings() == []


def test_e002_unknown_site_wide_type(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        DEFAULT_ANALYSES=["google_tagging", "nudity_detector"],
    )
    messages = checks.check_settings()
    assert ids(messages) == ["cloudinary_analysis.E002"]
    assert "nudity_detector" in messages[0].msg


def _model_messages(model):
    config = model._meta.apps.get_app_config("tests")
    return [m for m in checks.check_models(app_configs=[config]) if m.obj is model]


@isolate_apps("tests")
def test_e003_unknown_type_in_model_config():
    class Bad(AnalyzedMedia):
        image = models.ImageField()

        class AnalysisMeta:
            analyses = ["google_tagging", "cat_detector"]

    messages = _model_messages(Bad)
    assert ids(messages) == ["cloudinary_analysis.E003"]
    assert "cat_detector" in messages[0].msg


@isolate_apps("tests")
def test_e004_extras_on_a_type_that_takes_none_and_missing_required():
    class Bad(AnalyzedMedia):
        image = models.ImageField()

        class AnalysisMeta:
            analyses = [
                ("google_tagging", {"prompts": ["x"]}),
                "ai_vision_tagging",
                ("ai_vision_general", {"prompts": [f"q{i}" for i in range(11)]}),
            ]

    messages = _model_messages(Bad)
    assert ids(messages) == ["cloudinary_analysis.E004"] * 3


def test_e005_bad_import_path(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        MODERATION_POLICY="myproject.nope.Policy",
    )
    messages = checks.check_settings()
    assert ids(messages) == ["cloudinary_analysis.E005"]
    assert "MODERATION_POLICY" in messages[0].msg


@isolate_apps("tests")
def test_e006_field_that_is_not_a_file_field():
    class Bad(AnalyzedMedia):
        title = models.CharField(max_length=10)

        class AnalysisMeta:
            fields = ["title", "nowhere"]
            analyses = ["google_tagging"]

    messages = _model_messages(Bad)
    assert ids(messages) == ["cloudinary_analysis.E006"] * 2


@isolate_apps("tests")
def test_e006_not_for_a_cloudinary_field_subclass():
    from cloudinary.models import CloudinaryField

    class MyCloudinaryField(CloudinaryField):
        pass

    class Good(AnalyzedMedia):
        picture = MyCloudinaryField("image")

        class AnalysisMeta:
            fields = ["picture"]
            analyses = ["google_tagging"]

    assert _model_messages(Good) == []
    from django_cloudinary_analysis.mixins import file_field_names

    assert file_field_names(Good) == ["picture"]


@isolate_apps("tests")
def test_e007_unreadable_config():
    class Bad(AnalyzedMedia):
        image = models.ImageField()

        class AnalysisMeta:
            analyses = [42]

    messages = _model_messages(Bad)
    assert ids(messages) == ["cloudinary_analysis.E007"]


def test_e008_async_without_webhook_url(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        ASYNC_TYPES=["ai_vision_moderation"],
        WEBHOOK_URL="/relative/",
    )
    assert ids(checks.check_settings()) == ["cloudinary_analysis.E008"]


def test_e009_on_failure_value(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        ON_FAILURE="approve",
    )
    assert ids(checks.check_settings()) == ["cloudinary_analysis.E009"]


def test_e010_malformed_cloudinary_url(analysis_settings, monkeypatch):
    analysis_settings(BACKEND=CLOUDINARY, MEDIA_BASE_URL="https://x")
    monkeypatch.setenv("CLOUDINARY_URL", "cloudinary://only-a-key@cloud")
    messages = checks.check_settings()
    assert ids(messages) == ["cloudinary_analysis.E010"]
    assert "API secret" in messages[0].msg


def test_e011_label_rules(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        LABEL_RULES=[{"type": "human_anatomy"}, {"type": "nope", "review": 0.5}],
    )
    assert ids(checks.check_settings()) == ["cloudinary_analysis.E011"] * 2


class AbsoluteURLStorage(Storage):
    """Like django-cloudinary-storage: absolute URLs; refuses to be built here."""

    def __init__(self, **options):
        raise AssertionError("system checks must not instantiate storages")


def test_w001_not_for_a_storage_with_absolute_urls(analysis_settings, settings):
    settings.MEDIA_URL = "/media/"
    settings.STORAGES = {  # Django resets default_storage: it is lazy again
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_checks.AbsoluteURLStorage"},
    }
    analysis_settings(BACKEND=CLOUDINARY, CLOUD_NAME="c", API_KEY="k", API_SECRET="s")
    assert checks.check_settings() == []


def test_w001_file_system_storage_options_base_url(analysis_settings, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"base_url": "https://files.example.org/"},
        },
    }
    settings.MEDIA_URL = "/media/"
    analysis_settings(BACKEND=CLOUDINARY, CLOUD_NAME="c", API_KEY="k", API_SECRET="s")
    assert checks.check_settings() == []


def test_w001_relative_media_url(analysis_settings, settings):
    settings.MEDIA_URL = "/media/"
    analysis_settings(BACKEND=CLOUDINARY, CLOUD_NAME="c", API_KEY="k", API_SECRET="s")
    messages = checks.check_settings()
    assert ids(messages) == ["cloudinary_analysis.W001"]
    assert "MEDIA_BASE_URL" in messages[0].hint
    assert "FileSystemStorage" in messages[0].msg


def test_w002_async_type_that_cannot_be_async(analysis_settings):
    analysis_settings(
        BACKEND="django_cloudinary_analysis.backends.memory.MemoryBackend",
        ASYNC_TYPES=["google_logo_detection"],
        WEBHOOK_URL="https://example.com/hook/",
    )
    assert ids(checks.check_settings()) == ["cloudinary_analysis.W002"]


def test_secret_never_in_check_messages(analysis_settings, monkeypatch):
    analysis_settings(BACKEND=CLOUDINARY, MEDIA_BASE_URL="https://x")
    monkeypatch.setenv("CLOUDINARY_URL", "cloudinary://:hunter2-secret@cloud")
    text = " ".join(f"{m.msg} {m.hint}" for m in checks.check_settings())
    assert "hunter2" not in text


def test_every_ledger_id_has_a_test():
    import re

    ledger = re.findall(r"^([EW]\d{3}) ", checks.__doc__ or "", flags=re.M)
    with open(__file__) as fh:
        source = fh.read()
    missing = [i for i in ledger if f"test_{i.lower()}_" not in source]
    assert ledger and missing == []
