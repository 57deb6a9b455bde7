"""The analyze_media management command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_cloudinary_analysis.models import Analysis
from tests.models import Photo
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def photos(settings):
    """Photos stored without auto-analysis, as in a site adopting the app."""
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }

    def make(n):
        content = png_bytes(1)
        objs = []
        for i in range(n):
            photo = Photo(title=f"p{i}")
            photo.image.save(f"p{i}.png", ContentFile(content), save=False)
            objs.append(photo)
        Photo.objects.bulk_create(objs)
        settings.CLOUDINARY_ANALYSIS = {
            **settings.CLOUDINARY_ANALYSIS,
            "AUTO_ANALYZE": True,
        }
        return objs

    return make


def run(*args, **kwargs) -> str:
    out = StringIO()
    call_command("analyze_media", *args, stdout=out, **kwargs)
    return out.getvalue()


def test_backfill_then_rerun_is_a_noop(photos, django_capture_on_commit_callbacks):
    photos(5)
    with django_capture_on_commit_callbacks(execute=True):
        out = run("tests.Photo")
    assert "tests.Photo: 5 objects, 15 analyses queued" in out
    assert "Done: 5 objects, queued 15 analyses" in out
    assert set(Analysis.objects.values_list("status", flat=True)) == {"succeeded"}
    with django_capture_on_commit_callbacks(execute=True):
        assert "queued 0 analyses" in run("tests.Photo")


def test_dry_run_queues_nothing(photos):
    photos(3)
    out = run("tests.Photo", "--dry-run", "--type", "image_quality")
    assert "3 analyses would be queued" in out
    assert Analysis.objects.count() == 0


def test_failed_and_force(photos, memory_backend, django_capture_on_commit_callbacks):
    from django_cloudinary_analysis.exceptions import AuthError

    photos(2)
    memory_backend.set_error("image_quality", AuthError("no add-on", status_code=403))
    with django_capture_on_commit_callbacks(execute=True):
        run("tests.Photo")
    assert Analysis.objects.filter(status="failed").count() == 2
    memory_backend.errors.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert "queued 2 analyses" in run("tests.Photo", "--failed")
    with django_capture_on_commit_callbacks(execute=True):
        out = run("tests.Photo", "--force", "--type", "google_tagging")
    assert "queued 2 analyses" in out
    forced = Analysis.objects.filter(analysis_type="google_tagging", allow_reuse=False)
    assert forced.count() == 2


def test_query_count_is_constant_per_batch(photos, django_capture_on_commit_callbacks):
    photos(1000)

    def count(*args):
        with (
            django_capture_on_commit_callbacks(execute=False),
            CaptureQueriesContext(connection) as queries,
        ):
            run("tests.Photo", "--batch-size", "250", "--type", *args)
        return len(queries)

    four_batches = count("google_tagging")
    assert Analysis.objects.count() == 1000
    Analysis.objects.all().delete()
    Photo.objects.filter(
        pk__in=Photo.objects.order_by("pk").values("pk")[500:]
    ).delete()
    two_batches = count("google_tagging")
    # The same cost per batch of 250, whatever the total (one final empty page).
    assert four_batches - 1 == 2 * (two_batches - 1)


def test_unknown_model_and_type():
    with pytest.raises(CommandError, match="unknown model"):
        run("tests.Nope")
    with pytest.raises(CommandError, match="does not use the AnalyzedMedia"):
        run("tests.PlainPhoto")
    with pytest.raises(CommandError, match="unknown analysis type 'cats'"):
        run("--type", "cats")


def test_every_option_has_help_text():
    from django.core.management.base import BaseCommand

    from django_cloudinary_analysis.management.commands.analyze_media import Command

    base = {
        option
        for action in BaseCommand().create_parser("manage.py", "x")._actions
        for option in action.option_strings
    }
    parser = Command().create_parser("manage.py", "analyze_media")
    own = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    own = [a for a in own if not set(a.option_strings) & base]
    assert "--batch-size" in {o for a in own for o in a.option_strings}
    assert all(a.help for a in own), [a.dest for a in own if not a.help]
