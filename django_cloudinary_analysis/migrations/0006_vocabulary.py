"""One vocabulary (issue 11): the fields say what they hold. Data is kept."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cloudinary_analysis", "0005_accountability"),
    ]

    operations = [
        # The analysis type that found the tag.
        migrations.RenameField(
            model_name="mediatag", old_name="source", new_name="analysis_type"
        ),
        migrations.AlterField(
            model_name="mediatag",
            name="analysis_type",
            field=models.CharField(
                help_text="The analysis type that produced the tag.",
                max_length=40,
                verbose_name="analysis type",
            ),
        ),
        # Who decided: automatic, human, or the app when the file changed.
        migrations.RenameField(
            model_name="moderationdecision",
            old_name="source",
            new_name="decided_by_kind",
        ),
    ]
