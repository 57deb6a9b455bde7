"""Export moderation decisions for audit, as CSV or JSON Lines (streamed)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cloudinary_analysis.accountability import export


class Command(BaseCommand):
    help = (
        "Write every moderation decision (object, content key, verdict, "
        "automated or human, reviewer, reasons, appeal and its outcome, times) "
        "as CSV or JSON Lines, oldest first, in constant memory."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since", help="ISO date or datetime; decisions from then on."
        )
        parser.add_argument(
            "--until", help="ISO date or datetime; a bare date includes that day."
        )
        parser.add_argument("--format", choices=export.FORMATS, default="csv")
        parser.add_argument(
            "--model",
            dest="models",
            action="append",
            metavar="app_label.Model",
            help="Only decisions about this model (repeatable).",
        )
        parser.add_argument(
            "--output", "-o", help="Write to this file instead of standard output."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = export.parse_moment(options["since"])
            until = export.parse_moment(options["until"], end=True)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        type_ids = None
        if options["models"]:
            type_ids = []
            for label in options["models"]:
                try:
                    model = apps.get_model(label)
                except (LookupError, ValueError) as exc:
                    raise CommandError(f"unknown model {label!r}") from exc
                type_ids.append(ContentType.objects.get_for_model(model).pk)
        rows = export.decisions(since=since, until=until, content_type_ids=type_ids)
        lines = export.lines(rows, options["format"])
        if not options["output"]:
            for line in lines:
                self.stdout.write(line, ending="")
            return
        written = 0
        with open(options["output"], "w", encoding="utf-8", newline="") as out:
            for line in lines:
                out.write(line)
                written += 1
        count = written - 1 if options["format"] == "csv" else written
        self.stderr.write(
            self.style.SUCCESS(f"{count} decisions written to {options['output']}")
        )
