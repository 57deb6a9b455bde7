"""Backfill or re-run analyses for models that use the AnalyzedMedia mixin."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_cloudinary_analysis import analysis_types, recovery, services
from django_cloudinary_analysis.mixins import AnalyzedMedia, media_models


class Command(BaseCommand):
    help = (
        "Queue analyses for objects of models using AnalyzedMedia: those never "
        "analysed (default), failed ones (--failed), lost ones (--stuck) or "
        "everything (--force). "
        "Safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "models",
            nargs="*",
            metavar="app_label.Model",
            help="Models to process (default: every model using the mixin).",
        )
        parser.add_argument(
            "--type",
            dest="types",
            action="append",
            metavar="ANALYSIS_TYPE",
            help="Only this analysis type (repeatable).",
        )
        parser.add_argument(
            "--field",
            dest="fields",
            action="append",
            metavar="FIELD",
            help="Only this file field (repeatable).",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--missing",
            action="store_const",
            dest="rerun",
            const=services.Rerun.MISSING,
            help="Only analyses never run for the current files (the default).",
        )
        mode.add_argument(
            "--failed",
            action="store_const",
            dest="rerun",
            const=services.Rerun.FAILED,
            help="Only analyses whose newest run failed or was skipped.",
        )
        mode.add_argument(
            "--force",
            action="store_const",
            dest="rerun",
            const=services.Rerun.ALL,
            help="Run everything again and do not reuse earlier results.",
        )
        mode.add_argument(
            "--stuck",
            action="store_true",
            help="Queue again analyses, Cloudinary pushes and uploader emails "
            "whose message was lost: pending for STUCK_AFTER seconds or refused "
            "by the broker, claimed without news for RUNNING_TIMEOUT seconds "
            "(what the recover_stuck task does).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=500,
            help="Objects read and queued per batch, paging by primary key "
            "(default: 500). Memory and queries per batch stay flat.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be queued without queueing anything.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stuck"]:
            with transaction.atomic():
                counts = recovery.recover_stuck()
            self.stdout.write(
                self.style.SUCCESS(
                    f"Done: queued again {counts['queued']} queued analyses, "
                    f"{counts['running']} running, {counts['retrying']} retrying; "
                    f"polled {counts['waiting']} waiting. Cloudinary pushes: "
                    f"{counts['syncs_queued']} pending, {counts['syncs_claimed']} "
                    f"running. Emails: {counts['notifications_queued']} pending, "
                    f"{counts['notifications_claimed']} sending."
                )
            )
            return
        rerun = options["rerun"] or services.Rerun.MISSING
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        for name in options["types"] or ():
            if name not in analysis_types.ANALYSIS_TYPES:
                raise CommandError(
                    f"unknown analysis type {name!r}; known: "
                    + ", ".join(sorted(analysis_types.ANALYSIS_TYPES))
                )
        models = self._models(options["models"])
        progress = self.stdout.isatty()
        totals: Counter[str] = Counter()
        started = time.monotonic()
        for model in models:
            counts = self._process(model, rerun, batch_size, options, progress)
            totals.update(counts)
            self.stdout.write(
                f"{model._meta.label}: {counts['objects']} objects, "
                f"{counts['queued']} analyses "
                f"{'would be queued' if options['dry_run'] else 'queued'}"
            )
        verb = "would queue" if options["dry_run"] else "queued"
        self.stdout.write(
            self.style.SUCCESS(
                f"Done: {totals['objects']} objects, {verb} {totals['queued']} "
                f"analyses in {time.monotonic() - started:.1f} s."
            )
        )

    def _models(self, labels: list[str]) -> list[type[AnalyzedMedia]]:
        if not labels:
            found = media_models(proxies=True)
            if not found:
                raise CommandError("no model uses the AnalyzedMedia mixin")
            return found
        models = []
        for label in labels:
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError) as exc:
                raise CommandError(f"unknown model {label!r}: {exc}") from exc
            if not issubclass(model, AnalyzedMedia):
                raise CommandError(f"{label} does not use the AnalyzedMedia mixin")
            models.append(model)
        return models

    def _process(
        self,
        model: type[AnalyzedMedia],
        rerun: services.Rerun,
        batch_size: int,
        options: dict[str, Any],
        progress: bool,
    ) -> Counter[str]:
        counts: Counter[str] = Counter()
        total = model._default_manager.count() if progress else 0
        last_pk = None
        queryset = model._default_manager.order_by("pk")
        while True:
            # Keyset pagination: flat memory, and a re-run resumes cheaply.
            page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
            batch = list(page[:batch_size])
            if not batch:
                break
            last_pk = batch[-1].pk
            with transaction.atomic():
                queued = services.schedule_many(
                    batch,
                    fields=options["fields"],
                    types=options["types"],
                    rerun=rerun,
                    dry_run=options["dry_run"],
                )
            counts["objects"] += len(batch)
            counts["queued"] += len(queued)
            if progress and total:
                done = counts["objects"]
                bar = "#" * int(30 * done / total)
                self.stdout.write(
                    f"\r{model._meta.label} [{bar:<30}] {done}/{total}", ending=""
                )
                self.stdout.flush()
        if progress and total:
            self.stdout.write("")
        return counts
