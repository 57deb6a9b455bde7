"""Create the demo user and sample images, then print what the analyses found."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Model

from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.models import Analysis
from gallery import samples
from gallery.models import Photo, Product
from gallery.report import FieldReport, field_reports

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"


class Command(BaseCommand):
    """Seed the example site; running it again keeps what exists."""

    help = (
        "Create the demo superuser and the sample photos (each saved through the "
        "ORM, so the real signal → task → backend path analyses it), then print "
        "what was found. Idempotent: existing photos are kept, not duplicated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Add --timeout (for a real worker) and the demo user's name."""
        parser.add_argument(
            "--timeout",
            type=float,
            default=120.0,
            help="With a Celery broker, seconds to wait for the worker to finish "
            "the analyses before printing (default 120).",
        )
        parser.add_argument("--username", default=DEMO_USERNAME)
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args: Any, **options: Any) -> None:
        """Seed, wait for the analyses when a worker runs them, print the report."""
        self.ensure_superuser(options["username"], options["password"])
        eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
        self.stdout.write(
            f"Backend: {app_settings.BACKEND}\n"
            "Tasks: "
            + (
                "in-process (no CELERY_BROKER_URL)"
                if eager
                else "sent to the Celery worker at CELERY_BROKER_URL"
            )
        )
        photos, created = self.seed_photos()
        product, product_created = self.seed_product()
        created += int(product_created)
        self.stdout.write(
            f"Samples: {created} created, {len(photos) + 1 - created} kept "
            "(already in the database)"
        )
        objects: list[Model] = [*photos, product]
        if not eager:
            self.wait_for_worker(objects, options["timeout"])
        self.print_report(photos, product)

    # -- seeding ----------------------------------------------------------------

    def ensure_superuser(self, username: str, password: str) -> None:
        """Create the demo superuser unless a user with that name exists."""
        user_model = get_user_model()
        if user_model._default_manager.filter(username=username).exists():
            self.stdout.write(
                f"Demo superuser: {username} (exists; its password is unchanged, "
                f"{password!r} if the demo created it) — for local demo use only"
            )
            return
        user_model._default_manager.create_superuser(  # type: ignore[attr-defined]
            username=username, email=f"{username}@example.com", password=password
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo superuser: {username} / {password} (created) — for local "
                "demo use only"
            )
        )

    def seed_photos(self) -> tuple[list[Photo], int]:
        """Create the sample photos that do not exist yet, in order."""
        photos, created = [], 0
        for sample in samples.PHOTOS:
            photo = Photo.objects.filter(title=sample.title).order_by("pk").first()
            if photo is None:
                # Analyses are queued on commit: leave the transaction first.
                with transaction.atomic():
                    photo = Photo.objects.create(
                        title=sample.title,
                        image=ContentFile(sample.data(), name=sample.file_name),
                    )
                created += 1
            photos.append(photo)
        return photos, created

    def seed_product(self) -> tuple[Product, bool]:
        """Create the product with its two images unless it exists."""
        product = (
            Product.objects.filter(name=samples.PRODUCT_NAME).order_by("pk").first()
        )
        if product is not None:
            return product, False
        with transaction.atomic():
            product = Product.objects.create(
                name=samples.PRODUCT_NAME,
                photo=ContentFile(samples.product_photo(), name="coffee.jpg"),
                label_image=ContentFile(samples.product_label(), name="label.png"),
            )
        return product, True

    def wait_for_worker(self, objects: list[Model], timeout: float) -> None:
        """Poll until the worker has finished every analysis, or time out."""
        self.stdout.write("Waiting for the Celery worker to run the analyses…")
        deadline = time.monotonic() + timeout
        while True:
            pending = sum(
                Analysis.objects.for_object(obj).unfinished().count() for obj in objects
            )
            if not pending:
                return
            if time.monotonic() > deadline:
                raise CommandError(
                    f"{pending} analyses are still unfinished after {timeout:.0f} s: "
                    "is `celery -A example_project worker` running?"
                )
            time.sleep(0.5)

    # -- the report ---------------------------------------------------------------

    def print_report(self, photos: list[Photo], product: Product) -> None:
        """Print one row per file, then reuse, skips and failures with reasons."""
        header = (
            f"{'Object':<22} {'Field':<12} {'Quality':<25} {'Verdict':<9} "
            f"{'Analyses':<32} Text / tags"
        )
        self.stdout.write("\n" + header)
        self.stdout.write("-" * len(header))
        rows: list[tuple[str, Model, FieldReport]] = []
        for obj in [*photos, product]:
            # The verdict was written by the analyses, after this copy loaded.
            obj.refresh_from_db()
            for index, report in enumerate(field_reports(obj)):
                label = str(obj) if index == 0 else ""
                verdict = obj.moderation_status if index == 0 else ""  # type: ignore[attr-defined]
                self.stdout.write(
                    f"{label:<22.22} {report.field_name:<12} "
                    f"{report.quality_text:<25} {verdict:<9} "
                    f"{self.status_counts(report):<32} {self.findings(report)}"
                )
                rows.append((str(obj), obj, report))

        reused = [(name, r) for name, _, r in rows if r.reused]
        if reused:
            self.stdout.write("\nReused (identical file content, not analysed again):")
            for name, report in reused:
                donors = report.reused.values()
                owners = sorted({str(self.owner(a)) for a in donors})
                self.stdout.write(
                    f"  {name}: {', '.join(report.reused)} reused from "
                    f"{', '.join(owners)} "
                    f"(analyses {', '.join(f'#{a.pk}' for a in donors)})"
                )

        skipped: Counter[tuple[str, str]] = Counter()
        for _, _, report in rows:
            skipped.update(report.skipped.items())
        if skipped:
            self.stdout.write("\nSkipped (nothing is invented for these):")
            for (atype, reason), count in sorted(skipped.items()):
                files = "file" if count == 1 else "files"
                self.stdout.write(f"  {atype} skipped on {count} {files}: {reason}")

        failed = [(name, r) for name, _, r in rows if r.failed]
        if failed:
            self.stdout.write(self.style.WARNING("\nFailed:"))
            for name, report in failed:
                for atype, reason in report.failed.items():
                    self.stdout.write(f"  {name}: {atype} failed: {reason}")

        unfinished = [(name, r) for name, _, r in rows if r.unfinished]
        for name, report in unfinished:
            self.stdout.write(
                f"  {name}: still unfinished: {', '.join(report.unfinished)}"
            )

    @staticmethod
    def status_counts(report: FieldReport) -> str:
        """Return e.g. ``3 succeeded (3 reused), 2 skipped``."""
        counts = Counter(report.statuses.values())
        parts = []
        for status, count in sorted(counts.items()):
            part = f"{count} {status}"
            if status == "succeeded" and report.reused:
                part += f" ({len(report.reused)} reused)"
            parts.append(part)
        return ", ".join(parts) or "none"

    @staticmethod
    def findings(report: FieldReport) -> str:
        """Return the text read and the tags, or ``-``."""
        found = []
        if report.text:
            found.append(f"text “{report.text}”")
        tags = [t for t in report.tags if t != "text" or not report.text]
        if tags:
            found.append("tags: " + ", ".join(tags))
        return "; ".join(found) or "-"

    @staticmethod
    def owner(analysis: Analysis) -> Any:
        """Return the object an analysis belongs to (or its id when deleted)."""
        return analysis.content_object or f"object {analysis.object_id}"
