"""Migrations match the models, also under another DEFAULT_AUTO_FIELD."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
@pytest.mark.parametrize(
    "auto_field", ["django.db.models.BigAutoField", "django.db.models.AutoField"]
)
def test_no_missing_migrations(settings, auto_field):
    settings.DEFAULT_AUTO_FIELD = auto_field
    out = StringIO()
    call_command(
        "makemigrations",
        "cloudinary_analysis",
        "--check",
        "--dry-run",
        stdout=out,
        stderr=out,
    )
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_test_app_migrations_are_current():
    out = StringIO()
    call_command("makemigrations", "tests", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
