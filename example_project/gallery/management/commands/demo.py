"""``manage.py demo``: migrate, seed the samples, print the report, serve."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.urls import NoReverseMatch, reverse

HOST = "127.0.0.1"


def site_urls(base: str) -> list[tuple[str, str]]:
    """Return (label, URL) for the pages the demo points at, as wired."""
    names = [
        ("Home", "home"),
        ("Admin", "admin:index"),
        ("API", "api-root"),
        ("Analyses", "cloudinary_analysis_api:analysis-list"),
        ("Queue", "cloudinary_analysis_api:moderation-list"),
        ("Webhook", "cloudinary_analysis:webhook"),
    ]
    urls = []
    for label, name in names:
        with contextlib.suppress(NoReverseMatch):
            urls.append((label, base + reverse(name)))
    return urls


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
        for label, url in site_urls(base):
            self.stdout.write(f"{label + ':':<10} {url}")
        if options["no_serve"]:
            return
        self.stdout.write(
            "The APIs take the demo user too: "
            f"curl -u admin:admin {base}{reverse('api-root')}photos/"
        )
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
