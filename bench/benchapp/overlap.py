"""A measuring prototype, not the app's code: ``dispatch_analyses`` running a
save's analyses with their API calls overlapping (one thread each), for the
pipeline benchmark's ``overlap`` side (``DCA_BENCH_OVERLAP=1`` in the worker).

The first analysis runs in the task's own thread; the others in a pool of
threads kept for the life of the worker process, each with its own database
connection kept open across tasks (as ``CELERY_DB_REUSE_MAX`` keeps the task
thread's). Retries go out as their own message, as in the app's task.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_pool: ThreadPoolExecutor | None = None
#: A message of more analyses than this (a backfill's batch) is fanned out.
OVERLAP_MAX = 4


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # created in the pool process, after the fork
        _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="overlap")
    return _pool


def install() -> None:
    """Replace the body of the registered ``dispatch_analyses`` task."""
    from celery import current_app

    from django_cloudinary_analysis import services
    from django_cloudinary_analysis.services import dispatch

    task = current_app.tasks["cloudinary_analysis.dispatch_analyses"]

    def run(analysis_ids: list[int]) -> int:
        ids = list(analysis_ids)
        if len(ids) > OVERLAP_MAX:
            services.enqueue_or_record(ids, fan_out=False)
            return len(ids)
        task_id = task.request.id or ""  # the request is thread-local

        def one(analysis_id: int) -> Any:
            return services.run(analysis_id, task_id=task_id, can_wait=True)

        pool = _executor(OVERLAP_MAX)
        futures: list[Future[Any]] = [pool.submit(one, i) for i in ids[1:]]
        outcomes = [one(ids[0]), *(f.result() for f in futures)]
        for analysis_id, outcome in zip(ids, outcomes, strict=True):
            if outcome.retry_in is not None:
                dispatch.publish(
                    dispatch.RUN_ANALYSIS, analysis_id, countdown=outcome.retry_in
                )
        return len(ids)

    task.run = run
