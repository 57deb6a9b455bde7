"""Promise 6: async analyses finish through signed webhooks; bad ones change nothing."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest
from django.db import transaction

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
)
from tests.integration import harness
from tests.integration.conftest import It
from tests.integration.harness import image, statuses, wait_finished, wait_for
from tests.models import Photo
from tests.support.fake_api import notification_headers, post_notification

pytestmark = pytest.mark.integration

OBJECTS = 10
TYPES = ("google_tagging", "ai_vision_moderation", "image_quality")
MAX_AGE = 7200  # the WEBHOOK_MAX_AGE default
MAX_FUTURE = 300  # the WEBHOOK_MAX_FUTURE default


def snapshot() -> Any:
    """Return everything a delivery could change."""
    return (
        sorted(
            Analysis.objects.values_list(
                "pk", "status", "result", "error_code", "error_message", "finished_at"
            )
        ),
        sorted(MediaTag.objects.values_list("pk", "analysis_id", "name")),
        sorted(ModerationDecision.objects.values_list("pk", "status")),
        sorted(Photo.objects.values_list("pk", "moderation_status")),
    )


def dumps(payload: dict[str, Any]) -> bytes:
    """Serialise a notification the way the API does (compact JSON)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST a delivery; return the status and the outcome the view reports."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback
        return response.status, json.loads(response.read())["status"]


def test_async_analyses_complete_by_signed_webhooks_and_forgeries_change_nothing(
    it: It, settings: Any
) -> None:
    queue = f"async-{it.db_kind}"
    worker = it.stack.start_worker(
        "async", queue=queue, concurrency=2, DCA_IT_ASYNC_TYPES=",".join(TYPES)
    )
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "QUEUE": queue}
    url = it.stack.web.webhook_url
    secret = harness.API_SECRET
    expected = OBJECTS * len(TYPES)
    try:
        it.fake.hold_deliveries()
        with transaction.atomic():
            for n in range(OBJECTS):
                Photo.objects.create(image=image(f"hook-{n}.png", 60_000 + n))
        wait_for(
            lambda: statuses() == {AnalysisStatus.WAITING: expected},
            timeout=60,
            what="async analyses to wait for their webhooks",
            workers=[worker],
            describe=lambda: dict(statuses()),
        )
        tasks = it.fake.tasks
        assert len(tasks) == expected
        assert all(t.notification_url == url for t in tasks)
        before = snapshot()

        # Deliveries an attacker (or a broken proxy) could send while the
        # genuine ones are pending: each is refused and changes nothing.
        now = int(time.time())
        bad: dict[str, list[int]] = {}

        def send(kind: str, body: bytes, headers: dict[str, str]) -> None:
            bad.setdefault(kind, []).append(post_notification(url, body, headers))

        for task in tasks:
            genuine = dumps(task.payload())
            send("forged", genuine, notification_headers(genuine, "not-the-secret"))
            send(
                "stale",
                genuine,
                notification_headers(genuine, secret, now - MAX_AGE - 60),
            )
            send(
                "future",
                genuine,
                notification_headers(genuine, secret, now + MAX_FUTURE + 60),
            )
            tampered_payload = task.payload()
            tampered_payload["error"] = {"message": "forged failure", "code": "x"}
            tampered_payload["http_status"] = 500
            send(
                "tampered",
                dumps(tampered_payload),
                notification_headers(genuine, secret),
            )
            send("unsigned", genuine, {"Content-Type": "application/json"})
            send(
                "wrong algorithm",
                genuine,
                notification_headers(genuine, "not-the-secret", algorithm="sha256"),
            )
        assert all(set(codes) == {403} for codes in bad.values()), bad
        assert snapshot() == before, "a refused delivery changed something"

        # The genuine, signed deliveries complete every analysis.
        it.fake.release_deliveries()
        counts = wait_finished(
            timeout=60, workers=[worker], expect=expected, what="webhook deliveries"
        )
        assert counts == {AnalysisStatus.SUCCEEDED: expected}
        # The site stores a result before it answers 200: the fake records the
        # last deliveries once their answers are back.
        wait_for(
            lambda: len(it.fake.deliveries) >= expected,
            timeout=30,
            what="the fake API to record its deliveries' answers",
            describe=lambda: Counter(d.status for d in it.fake.deliveries),
        )
        deliveries = it.fake.deliveries
        assert Counter(d.status for d in deliveries) == {200: expected}
        assert (
            MediaTag.objects.filter(analysis_type="google_tagging").count()
            == 5 * OBJECTS
        )
        assert it.fake.billable_calls == expected

        # Replays, as sent and re-signed now, are acknowledged and ignored.
        after = snapshot()
        replays = []
        for task in tasks:
            first = task.deliveries[0]
            replays.append(post(url, first.body, first.headers))
            again = dumps(task.payload())
            replays.append(post(url, again, notification_headers(again, secret)))
        assert Counter(replays) == {(200, "duplicate"): 2 * expected}
        assert snapshot() == after, "a replayed delivery changed something"
    finally:
        it.fake.release_deliveries()
        worker.stop(timeout=10)

    refused = sum(len(codes) for codes in bad.values())
    it.figure(
        f"webhooks: {expected} async analyses -> {expected} signed deliveries, "
        f"{expected}/{expected} succeeded; {refused} bad deliveries "
        f"({', '.join(f'{len(v)} {k}' for k, v in bad.items())}) -> all 403, "
        f"0 rows changed; {len(replays)} replays (as sent and re-signed) -> "
        "200 duplicate, 0 rows changed"
    )
