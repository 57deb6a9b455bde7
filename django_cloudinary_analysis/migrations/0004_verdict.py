"""Decisions remember their content; reused analyses carry their donor's key."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def backfill_reused_content_keys(apps: Any, schema_editor: Any) -> None:
    """Give rows that reused a result the content key of their donor.

    Before 0002 they kept an empty key, so deleting the donor made the
    content unknown and the next identical upload was paid again.
    """
    Analysis = apps.get_model("cloudinary_analysis", "Analysis")
    donors = Analysis.objects.filter(pk=models.OuterRef("reused_from_id"))
    Analysis.objects.filter(content_key="", reused_from__isnull=False).update(
        content_key=models.Subquery(donors.values("content_key")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cloudinary_analysis", "0003_writeback"),
    ]

    operations = [
        migrations.AddField(
            model_name="moderationdecision",
            name="content_key",
            field=models.CharField(
                blank=True,
                db_index=True,
                help_text="The content the verdict was given on: a human verdict "
                "applies to later uploads of the same content.",
                max_length=300,
                verbose_name="content key",
            ),
        ),
        migrations.AddField(
            model_name="moderationdecision",
            name="follows",
            field=models.ForeignKey(
                blank=True,
                help_text="The human decision on the same content this one applies.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="cloudinary_analysis.moderationdecision",
                verbose_name="follows",
            ),
        ),
        migrations.RunPython(
            backfill_reused_content_keys, migrations.RunPython.noop, elidable=True
        ),
    ]
