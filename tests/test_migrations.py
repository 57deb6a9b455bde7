"""Migrations match the models (any DEFAULT_AUTO_FIELD); renames keep data."""

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


@pytest.mark.django_db(transaction=True)
def test_vocabulary_renames_keep_the_data():
    """0006 renames MediaTag.source and ModerationDecision.source, rows kept."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from tests.models import Photo

    app = "cloudinary_analysis"
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes(app)
    executor.migrate([(app, "0005_accountability")])
    try:
        old = (
            MigrationExecutor(connection)
            .loader.project_state([(app, "0005_accountability")])
            .apps
        )
        ct = ContentType.objects.get_for_model(Photo)
        analysis = old.get_model(app, "Analysis").objects.create(
            content_type_id=ct.pk,
            object_id="1",
            field_name="image",
            analysis_type="coco",
        )
        old.get_model(app, "MediaTag").objects.create(
            analysis=analysis,
            content_type_id=ct.pk,
            object_id="1",
            field_name="image",
            name="cat",
            label="cat",
            source="coco",
        )
        old.get_model(app, "ModerationDecision").objects.create(
            content_type_id=ct.pk, object_id="1", status="rejected", source="human"
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    new = MigrationExecutor(connection).loader.project_state(latest).apps
    tag = new.get_model(app, "MediaTag").objects.get(name="cat")
    decision = new.get_model(app, "ModerationDecision").objects.get(object_id="1")
    assert (tag.analysis_type, decision.decided_by_kind) == ("coco", "human")
