"""Publishing to the workers: the only module that talks to Celery.

Tasks are looked up by their registered names, so nothing in ``services``
imports ``tasks`` (which imports ``services``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.error_reports import hide_url_passwords
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


#: The app's Celery tasks by their registered names (``tasks.py`` registers
#: them; ``AppConfig.ready`` imports it), so this package never imports it.
RUN_ANALYSIS = "cloudinary_analysis.run_analysis"
DISPATCH_ANALYSES = "cloudinary_analysis.dispatch_analyses"
POLL_REMOTE = "cloudinary_analysis.poll_remote"


def registered_task(name: str) -> Any:
    """The registered task ``name`` of the current Celery app."""
    from celery import current_app

    return current_app.tasks[name]


def _broker_error(exc: Exception) -> str:
    """The error in words, without the password of a broker URL in it."""
    return hide_url_passwords(f"{type(exc).__name__}: {exc}", "***")[:500]


def enqueue_or_record(analysis_ids: Sequence[int], *, fan_out: bool = True) -> bool:
    """Enqueue; when the broker refuses, log it and record it on the analyses.

    Runs after the commit: raising would fail a request whose data is saved.
    The analyses stay ``queued`` with the reason ``enqueue_failed`` until
    ``recover_stuck`` (the periodic task or ``analyze_media --stuck``)
    queues them again.
    """
    try:
        enqueue(analysis_ids, fan_out=fan_out)
    except Exception as exc:
        from kombu.exceptions import OperationalError

        if registered_task(RUN_ANALYSIS).app.conf.task_always_eager and not isinstance(
            exc, OperationalError
        ):
            raise  # in-process, this is the task's own error, not the broker's
        reason = _broker_error(exc)
        logger.error(
            "%d analyses could not be queued (%s); recover_stuck queues them again",
            len(analysis_ids),
            reason,
            extra={"analysis_ids": list(analysis_ids)},
        )
        Analysis.objects.filter(
            pk__in=list(analysis_ids), status=AnalysisStatus.QUEUED
        ).update(
            error_code="enqueue_failed",
            error_message=f"the task could not be queued ({reason}); the "
            "recover_stuck task or `analyze_media --stuck` queues it again",
        )
        return False
    return True


def _publish_options(task: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    """The queue, and the arguments as the message shows them.

    Celery writes ``argsrepr``/``kwargsrepr`` into every message with its
    ``saferepr``, a pure-Python walk that costs a save more than the rest of
    the message; ids and numbers need only ``repr`` (cut at Celery's size).
    """
    options: dict[str, Any] = {"argsrepr": repr(args), "kwargsrepr": "{}"}
    limit = task.app.amqp.argsrepr_maxsize
    if len(options["argsrepr"]) > limit:
        options["argsrepr"] = options["argsrepr"][: limit - 3] + "..."
    if app_settings.QUEUE:
        options["queue"] = app_settings.QUEUE
    return options


def enqueue(analysis_ids: Iterable[int], *, fan_out: bool = True) -> None:
    """Send the analyses to the workers, one ``run_analysis`` task each.

    One task per analysis keeps retries and parallelism per analysis. From
    the web process (``fan_out``), several ids travel as one
    ``dispatch_analyses`` message that a worker fans out, so a save pays for
    one publish whatever the number of analyses (in-process, when Celery is
    eager, each analysis runs as its own task, in order). Messages published
    together share a producer and, where kombu can batch (5.7+, Redis), one
    round trip.
    """
    ids = list(analysis_ids)
    run_analysis = registered_task(RUN_ANALYSIS)
    eager = run_analysis.app.conf.task_always_eager
    if fan_out and len(ids) > 1 and not eager:
        dispatch_analyses = registered_task(DISPATCH_ANALYSES)
        message: tuple[Any, ...] = (ids,)
        dispatch_analyses.apply_async(
            message, **_publish_options(dispatch_analyses, message)
        )
        return
    if eager:
        for analysis_id in ids:
            args = (analysis_id,)
            run_analysis.apply_async(args, **_publish_options(run_analysis, args))
        return
    with run_analysis.app.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)
        with batch() if batch is not None else contextlib.nullcontext():
            for analysis_id in ids:
                args = (analysis_id,)
                run_analysis.apply_async(
                    args, producer=producer, **_publish_options(run_analysis, args)
                )


def enqueue_poll(analysis_id: int, countdown: float | None = None) -> None:
    """Check the remote task once the poll interval (or ``countdown``) passed."""
    poll_remote = registered_task(POLL_REMOTE)

    options = {"queue": app_settings.QUEUE} if app_settings.QUEUE else {}
    if countdown is None:
        countdown = app_settings.ASYNC_POLL_INTERVAL
    poll_remote.apply_async((analysis_id,), countdown=countdown, **options)


def publish(task_name: str, *args: Any, countdown: float | None = None) -> bool:
    """Send one message for work kept on its own row (a push, an email).

    Runs after the commit, like :func:`enqueue_or_record`: when the broker
    refuses, the error is logged and False returned; the row stays pending
    and ``recover_stuck`` sends it again.
    """
    from kombu.exceptions import OperationalError

    task = registered_task(task_name)
    options: dict[str, Any] = (
        {"queue": app_settings.QUEUE} if app_settings.QUEUE else {}
    )
    if countdown:
        options["countdown"] = countdown
    try:
        task.apply_async(args, **options)
    except Exception as exc:
        if task.app.conf.task_always_eager and not isinstance(exc, OperationalError):
            raise  # in-process, this is the task's own error, not the broker's
        logger.error(
            "%s%r could not be queued (%s); recover_stuck queues it again",
            task_name,
            args,
            _broker_error(exc),
        )
        return False
    return True
