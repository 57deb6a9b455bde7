"""Promise 3: a worker SIGKILLed mid-run loses and duplicates nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from contextlib import nullcontext

import pytest
from django.db import transaction

from django_cloudinary_analysis.models import Analysis, AnalysisStatus, MediaTag
from tests.integration import harness
from tests.integration.conftest import BOTH_DATABASES, It
from tests.integration.harness import (
    image,
    statuses,
    tag_duplicates,
    wait_finished,
    wait_for,
)
from tests.models import Photo

pytestmark = pytest.mark.integration

OBJECTS = 40
TYPES = 3
#: Seconds before Redis hands an unacknowledged message to another consumer.
VISIBILITY_TIMEOUT = 4


@BOTH_DATABASES
def test_worker_killed_mid_run_loses_and_duplicates_nothing(it: It) -> None:
    # One commit: one dispatch message fanned out to a task per analysis.
    _kill_mid_run(it, one_commit=True)


def test_worker_killed_mid_save_dispatches_loses_and_duplicates_nothing(
    it: It,
) -> None:
    # A commit per photo: each dispatch task runs one analysis itself, so the
    # kill lands in dispatch tasks too; their redelivery (same task id) takes
    # over the analyses they had claimed.
    _kill_mid_run(it, one_commit=False)


def _kill_mid_run(it: It, *, one_commit: bool) -> None:
    # A broker database of its own: the short visibility timeout must not
    # redeliver the main worker's messages.
    broker = it.stack.broker_url.rsplit("/", 1)[0] + "/3"
    worker = it.stack.start_worker(
        "crash",
        broker_url=broker,
        concurrency=4,
        extra_args=["--prefetch-multiplier=1"],
        DCA_IT_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
    )
    try:
        # Slow answers keep several analyses in flight when the kill lands.
        it.fake.add_fault("latency", latency_ms=250)
        expected = OBJECTS * TYPES
        commit = transaction.atomic() if one_commit else nullcontext()
        with harness.celery_broker(broker), commit:
            for n in range(OBJECTS):
                with transaction.atomic():
                    Photo.objects.create(image=image(f"crash-{n}.png", 20_000 + n))

        def mid_run() -> bool:
            counts = statuses()
            return (
                counts.get(AnalysisStatus.SUCCEEDED, 0) >= expected // 4
                and counts.get(AnalysisStatus.RUNNING, 0) >= 1
            )

        wait_for(
            mid_run,
            timeout=60,
            what="the crash run to be mid-way",
            workers=[worker],
            describe=lambda: dict(statuses()),
        )
        first_pid = worker.pid
        worker.kill(signal.SIGKILL)
        at_kill = statuses()
        requests_at_kill = it.fake.count(endpoint="analyze")
        killed_at = time.monotonic()

        worker.restart()
        assert worker.pid != first_pid
        counts = wait_finished(
            timeout=120, workers=[worker], expect=expected, what="after the restart"
        )
        recovered_in = time.monotonic() - killed_at
        log = worker.log_text(since_start=True)
    finally:
        worker.stop(timeout=10)

    assert counts == {AnalysisStatus.SUCCEEDED: expected}, "an analysis was lost"
    assert Analysis.objects.count() == expected, "an analysis was duplicated"
    assert tag_duplicates() == 0
    assert (
        MediaTag.objects.filter(analysis_type="google_tagging").count() == 5 * OBJECTS
    )
    billable = it.fake.billable_by_source()
    resent = sum(n - 1 for n in billable.values() if n > 1)
    running = at_kill.get(AnalysisStatus.RUNNING, 0)
    # Only a request in flight when the worker died can be sent twice.
    assert resent <= running
    assert max(billable.values()) <= 2
    takeovers = log.count("redelivered after its worker was lost; taking over")
    assert takeovers <= running
    by_type = Counter(t for t, _ in billable)
    assert by_type == dict.fromkeys(
        ("google_tagging", "ai_vision_moderation", "image_quality"), OBJECTS
    )

    it.figure(
        f"crash ({'one commit' if one_commit else 'a commit per photo'}): "
        f"SIGKILL of the worker group with {running} analyses running and "
        f"{at_kill.get(AnalysisStatus.SUCCEEDED, 0)}/{expected} done "
        f"({requests_at_kill} requests sent); restarted, all {expected} succeeded "
        f"{recovered_in:.1f} s later: 0 lost, 0 duplicate rows, 0 duplicate tags; "
        f"{takeovers} redeliveries took over rows left running, {resent} requests "
        f"re-sent (in flight at the kill, at most {running})"
    )
