"""Promise 7: bad input ends in a visible status with a reason; workers survive."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.test import override_settings

from django_cloudinary_analysis import services
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.mixins import content_type_for
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    params_hash,
)
from tests.integration import harness
from tests.integration.conftest import It
from tests.integration.harness import image, wait_finished
from tests.models import Article, Photo
from tests.support.servers import REPO_ROOT, subprocess_env

pytestmark = pytest.mark.integration

SKIPPED, FAILED, SUCCEEDED, CANCELLED = (
    AnalysisStatus.SKIPPED,
    AnalysisStatus.FAILED,
    AnalysisStatus.SUCCEEDED,
    AnalysisStatus.CANCELLED,
)
TOO_MANY_QUESTIONS = [f"Does the image show thing {n}?" for n in range(11)]


@dataclass
class Case:
    """One bad input: how to make it and what the faulted analyses must show."""

    name: str
    status: str
    #: Text the stored reason (error_message) must contain.
    reason: str
    #: Which analyses of the case object the expectation applies to.
    types: tuple[str, ...] = ("google_tagging", "ai_vision_moderation", "image_quality")
    error_code: str | None = None
    #: Requests the server may see per faulted analysis (None: not checked).
    requests: int | None = None


CASES = [
    Case("non-image file", SKIPPED, "is not an image", requests=0),
    Case("empty file", SKIPPED, "is empty", requests=0),
    Case("missing file", SKIPPED, "missing from storage", requests=0),
    Case("file deleted before the worker", SKIPPED, "missing", requests=0),
    Case("object deleted before the worker", CANCELLED, "deleted", requests=0),
    Case("content replaced before the worker", CANCELLED, "replaced", requests=0),
    Case("relative media URL, no base URL", SKIPPED, "MEDIA_BASE_URL", requests=0),
    Case(
        "invalid credentials (401)",
        FAILED,
        "credentials",
        error_code="MA_00401",
        requests=1,
    ),
    Case(
        "unsubscribed add-on (403)",
        FAILED,
        "subscription",
        types=("ai_vision_tagging",),
        error_code="MA_00403",
        requests=1,
    ),
    Case(
        "404",
        FAILED,
        "not found",
        types=("google_tagging",),
        error_code="MA_00404",
        requests=1,
    ),
    Case("malformed JSON", FAILED, "non-JSON body", types=("google_tagging",)),
    Case(
        "HTML error page (502)",
        FAILED,
        "gave up after 5 attempts",
        types=("google_tagging",),
        requests=5,
    ),
    Case(
        "truncated JSON",
        FAILED,
        "gave up after 5 attempts",
        types=("google_tagging",),
        requests=5,
    ),
    Case(
        "read timeout",
        FAILED,
        "gave up after 5 attempts",
        types=("google_tagging",),
        requests=5,
    ),
    Case(
        "connection reset",
        FAILED,
        "gave up after 5 attempts",
        types=("google_tagging",),
        requests=5,
    ),
    Case(
        "500 on every attempt",
        FAILED,
        "gave up after 5 attempts",
        types=("google_tagging",),
        requests=5,
    ),
    Case(
        "unknown analysis type in the config",
        FAILED,
        "google_taging",
        types=("google_taging",),
        requests=0,
    ),
    Case(
        "extras over the 10-item limit",
        FAILED,
        "1 to 10 items",
        types=("ai_vision_moderation",),
        requests=0,
    ),
]
#: Server faults per case, keyed by a text of the case object's file name.
FAULTS = {
    "404": "not_found",
    "malformed JSON": "malformed",
    "HTML error page (502)": "bad_gateway",
    "truncated JSON": "truncated",
    "read timeout": "timeout",
    "connection reset": "reset",
    "500 on every attempt": "server_error",
}


def slug(name: str) -> str:
    """Return a file-name-safe form of a case name."""
    return "bad-" + "".join(c if c.isalnum() else "-" for c in name.lower())[:40]


@contextmanager
def queue(name: str) -> Iterator[None]:
    """Send the analyses scheduled inside to the workers of queue ``name``."""
    conf = {**app_settings.user_settings, "QUEUE": name}
    with override_settings(CLOUDINARY_ANALYSIS=conf):
        yield


def unscheduled(obj: Any, analysis_type: str, params: dict[str, Any]) -> Analysis:
    """Queue a row the config could produce but ``schedule`` would not today."""
    analysis = Analysis.objects.create(
        content_type=content_type_for(obj),
        object_id=str(obj.pk),
        field_name="image",
        file_name=obj.image.name,
        analysis_type=analysis_type,
        params=params,
        params_hash=params_hash(params),
        backend="cloudinary",
    )
    transaction.on_commit(lambda: services.enqueue([analysis.pk]))
    return analysis


@dataclass
class Target:
    """The object of a case, and which of its analyses the case is about."""

    obj: Any
    #: Only the analyses of this file (the object's file changed since).
    file_name: str | None = None
    #: Only these analyses (rows queued beside the object's own).
    ids: tuple[int, ...] | None = None

    def analyses(self) -> list[Analysis]:
        """Return the analyses the case checks."""
        qs = Analysis.objects.filter(
            content_type=content_type_for(self.obj), object_id=str(self.obj.pk)
        )
        if self.file_name:
            qs = qs.filter(file_name=self.file_name)
        if self.ids is not None:
            qs = qs.filter(pk__in=self.ids)
        return list(qs)


def make_cases(it: It, kind: str) -> dict[str, Target]:
    """Create every case's object inside the transactions a site would use."""
    made: dict[str, Target] = {}

    def photo(name: str, content: bytes | None = None, **kw: Any) -> Photo:
        file = (
            ContentFile(content, name=f"{slug(name)}.png")
            if content is not None
            else image(f"{slug(name)}.png", 70_000 + len(made))
        )
        return Photo.objects.create(image=file, **kw)

    for case in CASES:
        name = case.name
        if name in FAULTS:
            it.fake.add_fault(
                FAULTS[name],
                source=slug(name),
                analysis_type="google_tagging",
                size=20_000_000,
                hang_seconds=2.5,
            )
    it.fake.set_subscribed("ai_vision_tagging", False)

    with transaction.atomic():
        made["non-image file"] = Target(
            Photo.objects.create(
                image=ContentFile(b"just some text\n", name="bad-notes.txt")
            )
        )
        made["empty file"] = Target(photo("empty file", b""))
        made["missing file"] = Target(
            Photo.objects.create(image="photos/bad-missing.png")
        )
        gone = photo("file deleted before the worker")
        default_storage.delete(gone.image.name)
        made["file deleted before the worker"] = Target(gone)
        doomed = photo("object deleted before the worker")
        # Deleted behind the app's back (raw SQL, no signal): the queued
        # analyses find no object.
        Photo.objects.filter(pk=doomed.pk)._raw_delete("default")
        made["object deleted before the worker"] = Target(doomed)
        replaced = photo("content replaced before the worker")
        made["content replaced before the worker"] = Target(
            replaced, file_name=replaced.image.name
        )
        replaced.image = image("bad-replacement.png", 79_999)
        replaced.save()
        for name in FAULTS:
            made[name] = Target(photo(name))
        article = Article.objects.create(
            cover=image(f"{slug('unsubscribed add-on (403)')}.png", 79_998)
        )
        made["unsubscribed add-on (403)"] = Target(article)
        odd = photo("unknown analysis type in the config")
        row = unscheduled(odd, "google_taging", {})
        made["unknown analysis type in the config"] = Target(odd, ids=(row.pk,))
        greedy = photo("extras over the 10-item limit")
        row = unscheduled(
            greedy, "ai_vision_moderation", {"rejection_questions": TOO_MANY_QUESTIONS}
        )
        made["extras over the 10-item limit"] = Target(greedy, ids=(row.pk,))
    with queue(f"nobase-{kind}"), transaction.atomic():
        made["relative media URL, no base URL"] = Target(
            photo("relative media URL, no base URL")
        )
    with queue(f"badcreds-{kind}"), transaction.atomic():
        made["invalid credentials (401)"] = Target(photo("invalid credentials (401)"))
    return made


def requests_for(it: It, analysis: Analysis) -> int:
    """Return how many requests the server got for this very analysis."""
    source = urljoin(it.stack.web.url + "/", default_storage.url(analysis.file_name))
    return sum(
        1
        for r in it.fake.records
        if r.analysis_type == analysis.analysis_type
        and r.source == source
        and {k: v for k, v in r.body.items() if k not in ("source", "async")}
        == analysis.params
    )


def test_bad_input_ends_visibly_and_the_workers_survive(it: It) -> None:
    kind = it.db_kind
    nobase = it.stack.start_worker(
        "nobase", queue=f"nobase-{kind}", concurrency=1, DCA_IT_MEDIA_BASE_URL=""
    )
    badcreds = it.stack.start_worker(
        "badcreds",
        queue=f"badcreds-{kind}",
        concurrency=1,
        DCA_IT_API_SECRET=harness.WRONG_SECRET,
    )
    workers = [it.worker, nobase, badcreds]
    pids = [w.pid for w in workers]
    try:
        made = make_cases(it, kind)
        wait_finished(timeout=180, workers=workers, what="bad input")
        problems: list[str] = []
        rows: list[str] = []
        for case in CASES:
            target = made[case.name]
            analyses = target.analyses()
            faulted = [a for a in analyses if a.analysis_type in case.types]
            others = [a for a in analyses if a.analysis_type not in case.types]
            if not faulted:
                problems.append(f"{case.name}: no analysis of {case.types}")
                continue
            for a in faulted:
                if a.status != case.status or case.reason not in a.error_message:
                    problems.append(
                        f"{case.name}: {a.analysis_type} is {a.status} "
                        f"({a.error_code}: {a.error_message[:200]!r}), expected "
                        f"{case.status} with {case.reason!r}"
                    )
                if case.error_code and a.error_code != case.error_code:
                    problems.append(f"{case.name}: error code {a.error_code}")
                if case.requests is not None:
                    sent = requests_for(it, a)
                    if sent != case.requests:
                        problems.append(
                            f"{case.name}: {sent} requests, expected {case.requests}"
                        )
            # Faults aimed at one type must not leak into the others.
            leaked = [
                (a.analysis_type, a.status) for a in others if a.status != SUCCEEDED
            ]
            if leaked and case.status != CANCELLED:
                problems.append(f"{case.name}: other analyses {leaked}")
            first = faulted[0]
            rows.append(
                f"{case.name}: {first.status} ({first.error_code}) "
                f"{first.error_message[:90]!r}"
            )

        # The workers are the same processes and still do work.
        assert [w.pid for w in workers] == pids
        assert all(w.is_alive() for w in workers)
        it.fake.clear_faults()
        with transaction.atomic():
            alive = Photo.objects.create(image=image("bad-after.png", 79_997))
        after = Analysis.objects.for_object(alive)
        wait_finished(after, timeout=60, workers=workers, expect=3)
        assert set(after.values_list("status", flat=True)) == {SUCCEEDED}
    finally:
        it.fake.set_subscribed("ai_vision_tagging", True)
        for worker in (nobase, badcreds):
            worker.stop(timeout=10)

    for row in rows:
        it.figure("bad input: " + row)
    it.figure(
        f"bad input: {len(CASES)} cases, each ended in a visible status with a "
        f"reason; the {len(workers)} workers kept their pids and analysed a "
        "new upload afterwards"
    )
    assert not problems, "\n".join(problems)


def test_misconfigured_models_fail_the_system_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=REPO_ROOT,
        env=subprocess_env(
            {"DJANGO_SETTINGS_MODULE": "tests.integration.badapp.settings"}
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cloudinary_analysis.E003" in output
    assert "'google_taging'" in output
    assert "cloudinary_analysis.E004" in output
    assert "1 to 10 items, got 11" in output
    harness.report(
        "tests/integration/test_bad_input.py::"
        "test_misconfigured_models_fail_the_system_checks",
        "bad input: unknown analysis type and 11 rejection questions in a model's "
        "AnalysisMeta -> `manage.py check` exits 1 with cloudinary_analysis.E003 "
        "and E004",
    )


def test_huge_response_body_is_refused_with_a_reason(it: It) -> None:
    size = 20_000_000
    it.fake.add_fault(
        "huge", source="bad-huge", analysis_type="google_tagging", size=size
    )
    with transaction.atomic():
        photo = Photo.objects.create(image=image("bad-huge.png", 79_996))
    analyses = Analysis.objects.for_object(photo)
    wait_finished(analyses, timeout=60, workers=[it.worker], expect=3)
    huge = analyses.get(analysis_type="google_tagging")
    stored = len(json.dumps(huge.raw or {}))
    assert it.worker.is_alive()
    it.figure(
        f"bad input: huge response body ({size / 1e6:.0f} MB of valid JSON) -> "
        f"{huge.status} ({huge.error_code or 'no code'}) "
        f"{huge.error_message[:80]!r}; {stored / 1e6:.1f} MB stored in raw"
    )
    assert huge.status == FAILED
    assert "too large" in huge.error_message
    assert stored < 1_000_000
