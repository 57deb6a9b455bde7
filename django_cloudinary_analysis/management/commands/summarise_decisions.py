"""Sum past days of decisions for the accountability dashboard ahead of a view."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_cloudinary_analysis.accountability import summaries


class Command(BaseCommand):
    help = (
        "Sum every past day of moderation decisions the dashboard has not "
        "summed yet (or that changed since), so that no page view has to: "
        "run it after installing or after summaries.forget()."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Drop every summary first (after changing decisions without "
            "model signals, e.g. with QuerySet.update() or SQL).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rebuild"]:
            summaries.forget()
        summary, summed = summaries.summarise()
        self.stdout.write(
            f"{summed} day(s) summed"
            + ("" if summary is None else f"; days before {summary.cutoff} ready")
        )
