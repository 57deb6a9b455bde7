"""``manage.py demo``: migrate, seed the samples, print the report, serve."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Model

from gallery import tour
from gallery.models import Photo, Product

HOST = "127.0.0.1"


class Command(BaseCommand):
    """Run the whole example offline with one command."""

    help = (
        "Migrate the database, create the demo superuser and sample images, print "
        "what the analyses found, then serve the site on 127.0.0.1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Add --no-serve and --port."""
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Seed and print the report, then exit instead of serving.",
        )
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        """Migrate, seed, then run the development server without the reloader."""
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        call_command("seed_demo", stdout=self.stdout, stderr=self.stderr)
        base = f"http://{HOST}:{options['port']}"
        self.stdout.write("")
        objects: list[Model] = [*Photo.objects.all(), *Product.objects.all()]
        for line in tour.lines(base, objects):
            self.stdout.write(line)
        if options["no_serve"]:
            return
        self.stdout.write(
            self.style.SUCCESS(f"Serving on {base}/ — press Ctrl+C to stop.")
        )
        # call_command skips system checks unless told: the site's should run.
        call_command(
            "runserver",
            f"{HOST}:{options['port']}",
            use_reloader=False,
            skip_checks=False,
        )
