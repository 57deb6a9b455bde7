"""Promise 6: a broker outage fails no save, loses nothing and pays nothing twice.

redis-server is stopped while uploads go on and restarted empty (it keeps no
data on disk, like a flushed Redis): messages published before the stop and
not yet consumed are lost with it. The recovery (``recover_stuck``, what the
periodic task runs) then queues again everything left queued.
"""

from __future__ import annotations

import time

import pytest

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import Analysis, AnalysisStatus
from tests.integration import harness
from tests.integration.conftest import BOTH_DATABASES, It
from tests.integration.harness import image, statuses, tag_duplicates, wait_finished
from tests.models import Photo
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration

#: Uploads before the outage, during it and after the restart.
BEFORE, DURING, AFTER = 20, 10, 10
TYPES = 3


@BOTH_DATABASES
def test_broker_outage_loses_nothing_and_bills_nothing_twice(it: It) -> None:
    # A Redis of its own: stopping the session's would disturb other tests.
    with RedisServer() as redis:
        worker = it.stack.start_worker("outage", broker_url=redis.url, concurrency=2)
        try:
            it.fake.add_fault("latency", latency_ms=100)  # work is in flight
            with harness.celery_broker(redis.url):
                seed = iter(range(30_000, 31_000))
                # Autocommit: each save commits, then publishes.
                for n in range(BEFORE):
                    Photo.objects.create(image=image(f"before-{n}.png", next(seed)))
                redis.stop()
                started = time.monotonic()
                for n in range(DURING):
                    Photo.objects.create(image=image(f"during-{n}.png", next(seed)))
                save_seconds = (time.monotonic() - started) / DURING
                # Each upload saved while Redis was down records why its work
                # waits. (A worker fanning out an earlier upload's message as
                # Redis stopped records the same reason for it: no upload of
                # "before" is counted here, whichever way the race goes.)
                refused = Analysis.objects.filter(
                    error_code="enqueue_failed", file_name__startswith="photos/during-"
                ).count()
                at_restart = statuses()
                redis.start()  # empty: what was not consumed yet is gone
                for n in range(AFTER):
                    Photo.objects.create(image=image(f"after-{n}.png", next(seed)))
                # The periodic task, run once the broker is back (STUCK_AFTER=0).
                recovered = services.recover_stuck(queued_after=0)
                total = (BEFORE + DURING + AFTER) * TYPES
                counts = wait_finished(
                    timeout=180, workers=[worker], expect=total, what="after outage"
                )
        finally:
            worker.stop(timeout=10)

    assert Photo.objects.count() == BEFORE + DURING + AFTER, "a save failed"
    assert refused == DURING * TYPES, "a refused publish left no reason"
    assert counts == {AnalysisStatus.SUCCEEDED: total}, "an analysis was lost"
    assert Analysis.objects.count() == total, "an analysis was duplicated"
    assert tag_duplicates() == 0
    billable = it.fake.billable_by_source()
    assert sum(billable.values()) == total
    assert max(billable.values()) == 1, "an image was billed twice"

    it.figure(
        f"outage: redis-server stopped after {BEFORE} uploads, {DURING} uploads "
        f"saved while it was down ({save_seconds:.2f} s each, 0 failed, "
        f"{refused} analyses recorded enqueue_failed), restarted empty with "
        f"{at_restart.get(AnalysisStatus.QUEUED, 0)} analyses queued; "
        f"recover_stuck queued {recovered['queued']} again: all {total} "
        f"succeeded, 0 lost, 0 billed twice"
    )
