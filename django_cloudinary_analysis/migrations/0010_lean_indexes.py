"""Fewer index writes per run: every UPDATE of an analysis rewrites each of
its table's indexes (the status is indexed, so none is a HOT update).

Dropped: the single-column content type indexes that a composite index
already starts with (analyses, tags, decisions, review claims) and
``remote_task_id``'s LIKE index (nothing searches it by pattern). The unique
index on ``remote_task_id`` and the index on ``reused_from`` become partial:
only rows that have one are indexed.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cloudinary_analysis", "0009_one_sender"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterField(
            model_name="analysis",
            name="content_type",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        migrations.AlterField(
            model_name="analysis",
            name="remote_task_id",
            field=models.CharField(
                blank=True, max_length=512, null=True, verbose_name="remote task id"
            ),
        ),
        migrations.AlterField(
            model_name="analysis",
            name="reused_from",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="cloudinary_analysis.analysis",
                verbose_name="reused from",
            ),
        ),
        migrations.AlterField(
            model_name="mediatag",
            name="content_type",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        migrations.AlterField(
            model_name="moderationdecision",
            name="content_type",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        migrations.AlterField(
            model_name="reviewclaim",
            name="content_type",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        migrations.AddIndex(
            model_name="analysis",
            index=models.Index(
                condition=models.Q(("reused_from__isnull", False)),
                fields=["reused_from"],
                name="dca_analysis_reused_from_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="analysis",
            constraint=models.UniqueConstraint(
                condition=models.Q(("remote_task_id__isnull", False)),
                fields=("remote_task_id",),
                name="dca_analysis_remote_task",
            ),
        ),
    ]
