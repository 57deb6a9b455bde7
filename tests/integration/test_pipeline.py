"""Promise 1: uploads saved in the web process are analysed by a real worker."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.db import transaction

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from tests.integration.conftest import BOTH_DATABASES, It
from tests.integration.harness import image, tag_duplicates, wait_finished
from tests.models import Photo

pytestmark = pytest.mark.integration

HAPPY_OBJECTS = 50
TYPES = ("google_tagging", "ai_vision_moderation", "image_quality")


@BOTH_DATABASES
def test_happy_path_50_uploads_are_analysed_tagged_and_judged(it: It) -> None:
    started = time.monotonic()
    photos = []
    for n in range(HAPPY_OBJECTS):
        # One transaction per upload, as a view saving a form would do.
        with transaction.atomic():
            photos.append(
                Photo.objects.create(title=f"p{n}", image=image(f"happy-{n}.png", n))
            )
    expected = HAPPY_OBJECTS * len(TYPES)

    counts = wait_finished(
        timeout=120, workers=[it.worker], expect=expected, what="happy path"
    )
    elapsed = time.monotonic() - started

    assert counts == {AnalysisStatus.SUCCEEDED: expected}
    assert Analysis.objects.count() == expected
    per_type = {
        t: Analysis.objects.filter(analysis_type=t, status="succeeded").count()
        for t in TYPES
    }
    assert per_type == dict.fromkeys(TYPES, HAPPY_OBJECTS)
    # google_tagging's sample answers five labels, cat first.
    assert MediaTag.objects.filter(analysis_type="google_tagging").count() == (
        5 * HAPPY_OBJECTS
    )
    assert Photo.objects.tagged("cat").count() == HAPPY_OBJECTS
    assert tag_duplicates() == 0
    verdicts = {p.pk: p.moderation_status for p in Photo.objects.all()}
    assert ModerationStatus.PENDING not in verdicts.values()
    assert set(verdicts.values()) <= {
        ModerationStatus.APPROVED,
        ModerationStatus.REJECTED,
        ModerationStatus.REVIEW,
    }
    for photo in photos:
        latest = ModerationDecision.objects.for_object(photo).first()
        assert latest is not None and latest.decided_by_kind == "auto"
        assert latest.status == verdicts[photo.pk]
    # One billable call per analysis, none repeated.
    assert it.fake.billable_calls == expected
    assert it.fake.count(endpoint="analyze") == expected
    assert max(it.fake.billable_by_source().values()) == 1

    verdict_counts = dict(Counter(verdicts.values()))
    it.figure(
        f"happy path: {HAPPY_OBJECTS} uploads -> {expected}/{expected} analyses "
        f"succeeded through Redis and the worker in {elapsed:.1f} s, "
        f"{MediaTag.objects.count()} tags, verdicts {verdict_counts}, "
        f"{it.fake.billable_calls} billable calls, 0 duplicate tags"
    )
