"""Promises 4 and 5, and the claim: quotas, deduplication, duplicate deliveries."""

from __future__ import annotations

import re
import time

import pytest
from django.db import transaction

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    QuotaState,
)
from tests.integration.conftest import BOTH_DATABASES, It
from tests.integration.harness import image, tag_duplicates, wait_finished
from tests.models import Photo, UUIDPhoto

pytestmark = pytest.mark.integration

PHOTO_TYPES = ("google_tagging", "ai_vision_moderation", "image_quality")


def test_exhausted_quota_stops_its_feature_until_the_reset_only(it: It) -> None:
    objects = 20
    before_block = 5
    concurrency = 4
    # A whole second, so the ISO reset_time the API reports is exact.
    reset_at = int(time.time()) + 12
    it.fake.set_quota(
        "google_tagging",
        remaining=before_block,
        limit=1000,
        reset_time=reset_at,
        period=3600,
    )
    with transaction.atomic():
        for n in range(objects):
            Photo.objects.create(image=image(f"quota-{n}.png", 30_000 + n))

    counts = wait_finished(
        timeout=120, workers=[it.worker], expect=objects * 3, what="quota run"
    )
    assert counts == {AnalysisStatus.SUCCEEDED: objects * 3}

    records = [r for r in it.fake.records if r.endpoint == "analyze"]
    google = [r for r in records if r.analysis_type == "google_tagging"]
    others = [r for r in records if r.analysis_type != "google_tagging"]
    answered = [r for r in google if r.status == 200]
    refused = [r for r in google if r.status == 429]
    # The answer that spent the last unit said remaining 0 and when it resets.
    exhausted_at = answered[before_block - 1].time
    assert all(r.time < reset_at for r in answered[:before_block])
    # Only requests already in flight when the quota ran out met a 429 ...
    assert len(refused) <= concurrency
    assert all(r.time < exhausted_at + 2 for r in refused)
    # ... and nothing of that feature was sent again before the reset.
    during_block = [r for r in google if exhausted_at + 2 <= r.time < reset_at]
    assert during_block == []
    assert len(answered) == objects
    assert all(r.time >= reset_at for r in answered[before_block:])
    # The other quota features went on while google_tagging waited.
    others_during = [r for r in others if exhausted_at <= r.time < reset_at]
    assert others_during, "other features stopped too"
    assert all(r.status == 200 for r in others)
    assert len(others) == objects * 2
    assert QuotaState.objects.filter(feature="google_tagging").exists()

    it.figure(
        f"quota: google_tagging reported remaining 0 after {before_block} calls "
        f"with a reset {reset_at - exhausted_at:.1f} s later -> {len(refused)} "
        f"429s (requests already in flight, at most {concurrency}), 0 "
        f"google_tagging calls until the reset, {len(others_during)} of "
        f"{len(others)} ai_vision/object_detection calls made during the block; "
        f"after the reset {objects}/{objects} google_tagging analyses succeeded"
    )


@BOTH_DATABASES
def test_identical_uploads_are_billed_once_and_resaves_cost_nothing(it: It) -> None:
    uploads, distinct, types = 100, 20, 2
    photos = []
    for n in range(uploads):
        if n == distinct:
            # Each image's first upload is analysed before its copies arrive
            # (concurrent copies: the next test).
            wait_finished(timeout=60, workers=[it.worker], expect=distinct * types)
        with transaction.atomic():  # one upload per request
            photos.append(
                UUIDPhoto.objects.create(
                    image=image(f"dedup-{n}.png", 40_000 + n % distinct)
                )
            )
    counts = wait_finished(
        timeout=120, workers=[it.worker], expect=uploads * types, what="dedup run"
    )
    assert counts == {AnalysisStatus.SUCCEEDED: uploads * types}
    billed = it.fake.billable_calls
    reused = Analysis.objects.exclude(reused_from=None).count()
    assert tag_duplicates() == 0
    assert (
        MediaTag.objects.filter(analysis_type="google_tagging").count() == 5 * uploads
    )

    # Saving again without touching the file queues and bills nothing.
    it.fake.clear_records()
    for photo in photos:
        photo.save()
    for photo in UUIDPhoto.objects.all():
        photo.save()
    services.schedule_many(list(UUIDPhoto.objects.all()))
    time.sleep(1)  # give a wrongly queued task the chance to call
    assert Analysis.objects.count() == uploads * types
    resave_calls = it.fake.count(endpoint="analyze")

    it.figure(
        f"dedup: {uploads} uploads of {distinct} distinct images x {types} types "
        f"-> {billed} billable calls (expected {distinct * types}), {reused} "
        f"analyses reused a result; re-saving all {uploads} objects -> "
        f"{resave_calls} calls"
    )
    assert resave_calls == 0
    assert billed == distinct * types, (
        f"{billed} billable calls for {distinct * types} distinct (file, type) pairs"
    )


@BOTH_DATABASES
def test_concurrent_identical_uploads_are_billed_once(it: It) -> None:
    uploads, distinct, types = 100, 20, 2
    # A bulk import: five copies of each image side by side, one commit.
    with transaction.atomic():
        for n in range(uploads):
            UUIDPhoto.objects.create(
                image=image(f"burst-{n}.png", 45_000 + n // (uploads // distinct))
            )
    counts = wait_finished(
        timeout=120, workers=[it.worker], expect=uploads * types, what="burst"
    )
    assert counts == {AnalysisStatus.SUCCEEDED: uploads * types}
    billed = it.fake.billable_calls
    it.figure(
        f"dedup, concurrent copies: {uploads} uploads of {distinct} distinct "
        f"images committed at once -> {billed} billable calls (ideal "
        f"{distinct * types})"
    )
    assert billed == distinct * types


@BOTH_DATABASES
def test_duplicate_deliveries_are_claimed_once_across_workers(it: It) -> None:
    objects, extra_deliveries = 30, 3
    main_offset = len(it.worker.log_text())
    second = it.stack.start_worker("claim", concurrency=4)
    try:
        with transaction.atomic():
            for n in range(objects):
                Photo.objects.create(image=image(f"claim-{n}.png", 50_000 + n))
        ids = list(Analysis.objects.values_list("pk", flat=True))
        # The same analyses again while the first deliveries run: what a
        # broker redelivery or a double click on "re-analyse" produces.
        for _ in range(extra_deliveries):
            services.enqueue(ids)
        expected = objects * len(PHOTO_TYPES)
        counts = wait_finished(
            timeout=120,
            workers=[it.worker, second],
            expect=expected,
            what="duplicate deliveries",
        )
        # Let the last duplicates reach a worker and find nothing to claim.
        deliveries = expected * (1 + extra_deliveries)
        pattern = re.compile(r"run_analysis\[[^]]+\] succeeded")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            main_log = it.worker.log_text()[main_offset:]
            second_log = second.log_text()
            ran = {
                "main": len(pattern.findall(main_log)),
                "second": len(pattern.findall(second_log)),
            }
            done = sum(ran.values())
            if done >= deliveries:
                break
            time.sleep(0.2)
    finally:
        second.stop(timeout=10)

    noops = (main_log + second_log).count("nothing to claim")
    assert counts == {AnalysisStatus.SUCCEEDED: expected}
    assert Analysis.objects.count() == expected
    assert it.fake.billable_calls == expected
    assert max(it.fake.billable_by_source().values()) == 1
    assert tag_duplicates() == 0
    assert noops == expected * extra_deliveries

    it.figure(
        f"claim: {deliveries} deliveries of {expected} analyses over 2 workers x 4 "
        f"processes (deliveries run: {ran}) -> {it.fake.billable_calls} API calls, "
        f"{noops} deliveries found nothing to claim, 0 duplicate tags"
    )
