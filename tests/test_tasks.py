"""The Celery tasks (tasks.py): registered names, delivery options, retries.

Each task is a thin wrapper: it calls one worker-side function and turns the
outcome into a return value or a Celery retry. The retry contract differs
between a worker (raise ``Retry`` with the countdown the outcome asks for)
and an in-process eager run (come back at once without raising into the
caller's request). The analyses run on the real test database and the memory
backend; only the write-back push and the email delivery are replaced, by an
outcome, where the test is about the task and not about what they do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import Retry
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_cloudinary_analysis import services, tasks
from django_cloudinary_analysis.accountability import notify
from django_cloudinary_analysis.accountability.notify import DeliveryOutcome
from django_cloudinary_analysis.exceptions import ServerError
from django_cloudinary_analysis.models import Analysis, AnalysisStatus
from django_cloudinary_analysis.services import dispatch, running
from django_cloudinary_analysis.services.results import RunOutcome
from django_cloudinary_analysis.writeback import cloudinary_sync
from django_cloudinary_analysis.writeback.cloudinary_sync import SyncOutcome
from tests.celery_app import app
from tests.models import Photo

pytestmark = pytest.mark.django_db

#: Every task of the app, by the name a worker and Celery beat know it by.
TASKS = {
    "cloudinary_analysis.run_analysis": tasks.run_analysis,
    "cloudinary_analysis.dispatch_analyses": tasks.dispatch_analyses,
    "cloudinary_analysis.poll_remote": tasks.poll_remote,
    "cloudinary_analysis.sync_to_cloudinary": tasks.sync_to_cloudinary,
    "cloudinary_analysis.recover_stuck": tasks.recover_stuck,
    "cloudinary_analysis.send_uploader_notification": (
        tasks.send_uploader_notification
    ),
}


def test_every_task_is_registered_under_its_documented_name() -> None:
    ours = {name for name in app.tasks if name.startswith("cloudinary_analysis.")}
    assert ours == set(TASKS)
    for name, task in TASKS.items():
        assert task.name == name
        # shared_task hands out a proxy: compare what it stands for.
        assert app.tasks[name] is task._get_current_object()


def test_services_publish_to_the_registered_tasks() -> None:
    # services/dispatch.py looks tasks up by name (it may not import tasks.py):
    # a renamed task would leave every save's message unrouted.
    for name in (
        dispatch.RUN_ANALYSIS,
        dispatch.DISPATCH_ANALYSES,
        dispatch.POLL_REMOTE,
    ):
        assert dispatch.registered_task(name) is TASKS[name]._get_current_object()


@pytest.mark.parametrize(
    "name",
    [
        "cloudinary_analysis.run_analysis",
        "cloudinary_analysis.dispatch_analyses",
        "cloudinary_analysis.poll_remote",
        "cloudinary_analysis.sync_to_cloudinary",
        "cloudinary_analysis.send_uploader_notification",
    ],
)
def test_work_is_acknowledged_after_it_is_done(name: str) -> None:
    # A worker killed mid-task leaves the message on the broker for another
    # one; the claim in services makes the second delivery harmless.
    task = TASKS[name]
    assert task.acks_late is True
    assert task.ignore_result is True


def test_a_lost_worker_gives_its_analysis_back() -> None:
    assert tasks.run_analysis.reject_on_worker_lost is True
    # Attempts are bounded by MAX_ATTEMPTS in services, not by Celery.
    assert tasks.run_analysis.max_retries is None


def queued_photo(capture: Callable[..., Any]) -> Photo:
    """A photo whose analyses are queued but whose commit published nothing."""
    with capture(execute=False):
        return Photo.objects.create(image=_image())


def _image() -> Any:
    from django.core.files.base import ContentFile

    from tests.support.images import png_bytes

    return ContentFile(png_bytes(3), name="t.png")


def test_run_analysis_runs_it_under_its_task_id(
    django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    photo = queued_photo(django_capture_on_commit_callbacks)
    analysis = photo.analyses.get(analysis_type="google_tagging")

    result = tasks.run_analysis.apply(args=(analysis.pk,), task_id="delivery-7")

    assert result.get() == AnalysisStatus.SUCCEEDED
    analysis.refresh_from_db()
    assert (analysis.status, analysis.task_id) == (
        AnalysisStatus.SUCCEEDED,
        "delivery-7",
    )
    assert [call.analysis_type for call in memory_backend.calls] == ["google_tagging"]


def test_run_analysis_on_a_worker_raises_a_retry_with_the_services_countdown(
    django_capture_on_commit_callbacks: Any, memory_backend: Any, monkeypatch: Any
) -> None:
    photo = queued_photo(django_capture_on_commit_callbacks)
    analysis = photo.analyses.get(analysis_type="google_tagging")
    outcomes: list[RunOutcome] = []
    real_run = services.run

    def failing_backend_run(*args: Any, **kwargs: Any) -> Any:
        raise ServerError("upstream 503", status_code=503)

    def recording_run(*args: Any, **kwargs: Any) -> RunOutcome:
        outcomes.append(real_run(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(memory_backend, "run", failing_backend_run)
    monkeypatch.setattr(services, "run", recording_run)
    # Called directly the task is not eager: it runs as on a worker.
    with (
        mock.patch.object(tasks.run_analysis, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        tasks.run_analysis(analysis.pk)

    [outcome] = outcomes
    assert outcome.status == AnalysisStatus.RETRYING
    assert outcome.retry_in is not None and outcome.retry_in > 0
    retry.assert_called_once_with(countdown=outcome.retry_in)
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.RETRYING
    assert "upstream 503" in analysis.error_message


def test_run_analysis_tells_services_whether_it_can_come_back(
    monkeypatch: Any,
) -> None:
    seen: list[tuple[str, bool]] = []

    def fake_run(analysis_id: int, *, task_id: str, can_wait: bool) -> RunOutcome:
        seen.append((task_id, can_wait))
        return RunOutcome("noop")

    monkeypatch.setattr(services, "run", fake_run)
    tasks.run_analysis.apply(args=(1,), task_id="eager-1")
    tasks.run_analysis(1)
    # In-process there is no later delivery to wait for; on a worker there is.
    assert seen == [("eager-1", False), ("", True)]


def test_dispatch_fans_the_others_out_then_runs_the_first_under_its_id(
    django_capture_on_commit_callbacks: Any, memory_backend: Any, monkeypatch: Any
) -> None:
    photo = queued_photo(django_capture_on_commit_callbacks)
    ids = sorted(photo.analyses.values_list("pk", flat=True))
    fanned: list[tuple[list[int], dict[str, Any]]] = []
    monkeypatch.setattr(
        services, "enqueue_or_record", lambda i, **kw: fanned.append((list(i), kw))
    )

    result = tasks.dispatch_analyses.apply(args=(ids,), task_id="save-1")

    assert result.get() == len(ids)
    # The others went out as one run_analysis task each (fan_out=False)...
    assert fanned == [(ids[1:], {"fan_out": False})]
    assert set(
        Analysis.objects.filter(pk__in=ids[1:]).values_list("status", flat=True)
    ) == {AnalysisStatus.QUEUED}
    # ...and the first ran here, claimed under the dispatch's task id (what
    # lets a redelivery of this message take it over).
    first = Analysis.objects.get(pk=ids[0])
    assert (first.status, first.task_id) == (AnalysisStatus.SUCCEEDED, "save-1")
    assert [call.analysis_type for call in memory_backend.calls] == [
        first.analysis_type
    ]


def test_a_redelivered_dispatch_takes_over_what_its_lost_worker_had_claimed(
    django_capture_on_commit_callbacks: Any, memory_backend: Any, monkeypatch: Any
) -> None:
    photo = queued_photo(django_capture_on_commit_callbacks)
    ids = sorted(photo.analyses.values_list("pk", flat=True))
    monkeypatch.setattr(tasks, "RUN_IN_TASK", len(ids))  # all of them here
    # The first delivery claimed the first analysis, then its worker died.
    assert Analysis.objects.claim(
        ids[0], task_id="save-9", statuses=[AnalysisStatus.QUEUED]
    )

    # Another message (recover_stuck's, say) leaves a row running elsewhere.
    tasks.dispatch_analyses.apply(args=([ids[0]],), task_id="other").get()
    assert Analysis.objects.get(pk=ids[0]).status == AnalysisStatus.RUNNING

    # The redelivery of the same message (same task id) takes it over.
    tasks.dispatch_analyses.apply(args=(ids,), task_id="save-9").get()
    assert set(
        Analysis.objects.filter(pk__in=ids).values_list("status", flat=True)
    ) == {AnalysisStatus.SUCCEEDED}
    assert len(memory_backend.calls) == len(ids)


def test_a_dispatch_lost_with_its_worker_is_delivered_again() -> None:
    # It runs analyses itself: acknowledged after the work, and given back
    # to the broker when the worker dies (its claims let the redelivery in).
    assert tasks.dispatch_analyses.acks_late is True
    assert tasks.dispatch_analyses.reject_on_worker_lost is True
    assert tasks.dispatch_analyses.max_retries is None


#: What services.run does with one analysis in the property test below.
_OUTCOMES = st.sampled_from(["done", "retry", "crash"])


@given(st.lists(_OUTCOMES, min_size=1, max_size=5), st.integers(0, 6))
@hypothesis_settings(max_examples=80, deadline=None)
def test_dispatch_runs_each_analysis_once_and_sends_back_only_the_retries(
    kinds: list[str], here: int
) -> None:
    ids = [100 + n for n in range(len(kinds))]
    events: list[tuple[Any, ...]] = []
    crashes = [RuntimeError(f"crash {i}") for i in ids]

    def fake_run(analysis_id: int, *, task_id: str, can_wait: bool) -> RunOutcome:
        events.append(("run", analysis_id, task_id, can_wait))
        kind = kinds[analysis_id - 100]
        if kind == "crash":
            raise crashes[analysis_id - 100]
        if kind == "retry":
            return RunOutcome(AnalysisStatus.RETRYING, retry_in=analysis_id / 10)
        return RunOutcome(AnalysisStatus.SUCCEEDED)

    def fake_publish(name: str, *args: Any, countdown: float) -> bool:
        events.append(("retry", name, *args, countdown))
        return True

    def fake_fan_out(analysis_ids: list[int], *, fan_out: bool) -> bool:
        events.append(("fan out", list(analysis_ids), fan_out))
        return True

    raised: BaseException | None = None
    with (
        mock.patch.object(tasks, "RUN_IN_TASK", here),
        # The task runs its share through services.run_each.
        mock.patch.object(running, "run", fake_run),
        mock.patch.object(dispatch, "publish", fake_publish),
        mock.patch.object(services, "enqueue_or_record", fake_fan_out),
    ):
        try:
            tasks.dispatch_analyses.apply(args=(ids,), task_id="save-p").get()
        except RuntimeError as exc:
            raised = exc

    # The others go out first (they run beside this task), as one task each.
    fanned = [("fan out", ids[here:], False)] if ids[here:] else []
    # Then every analysis of its share runs once, in order, under the
    # message's id, even after another crashed (an eager run cannot wait);
    # only a retrying one comes back, as its own run_analysis message.
    ran: list[tuple[Any, ...]] = []
    for i, kind in zip(ids[:here], kinds, strict=False):
        ran.append(("run", i, "save-p", False))
        if kind == "retry":
            ran.append(("retry", dispatch.RUN_ANALYSIS, i, i / 10))
    assert events == fanned + ran
    # A crash (already recorded on its analysis by services) fails the task.
    first_crash = next(
        (crashes[n] for n, kind in enumerate(kinds[:here]) if kind == "crash"),
        None,
    )
    assert raised is first_crash


def test_poll_of_a_finished_analysis_does_nothing_and_never_retries(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=_image())
    analysis = photo.analyses.first()
    assert analysis is not None
    with mock.patch.object(tasks.poll_remote, "retry", side_effect=Retry()) as retry:
        assert tasks.poll_remote(analysis.pk) == "noop"
    retry.assert_not_called()


def test_an_eager_poll_returns_its_status_instead_of_looping(monkeypatch: Any) -> None:
    calls: list[int] = []

    def still_waiting(analysis_id: int) -> RunOutcome:
        calls.append(analysis_id)
        return RunOutcome(AnalysisStatus.WAITING, retry_in=60)

    monkeypatch.setattr(services, "poll", still_waiting)
    assert tasks.poll_remote.apply(args=(5,)).get() == AnalysisStatus.WAITING
    assert calls == [5]


#: The bound tasks that come back when their worker-side function asks, each
#: with the function it calls and the outcome class that function returns.
RETRYING = [
    pytest.param(
        tasks.sync_to_cloudinary, cloudinary_sync, "run", SyncOutcome, id="sync"
    ),
    pytest.param(
        tasks.send_uploader_notification,
        notify,
        "deliver",
        DeliveryOutcome,
        id="notification",
    ),
]


@pytest.mark.parametrize(("task", "module", "function", "outcome"), RETRYING)
def test_a_worker_raises_the_retry_the_outcome_asks_for(
    task: Any, module: Any, function: str, outcome: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(module, function, lambda pk: outcome("retrying", retry_in=42.0))
    with (
        mock.patch.object(task, "retry", side_effect=Retry()) as retry,
        pytest.raises(Retry),
    ):
        task(9)
    retry.assert_called_once_with(countdown=42.0)


@pytest.mark.parametrize(("task", "module", "function", "outcome"), RETRYING)
def test_in_process_the_task_comes_back_at_once_until_the_outcome_is_final(
    task: Any, module: Any, function: str, outcome: Any, monkeypatch: Any
) -> None:
    answers = [outcome("retrying", retry_in=42.0), outcome("sent")]
    asked: list[int] = []

    def next_answer(pk: int) -> Any:
        asked.append(pk)
        return answers.pop(0)

    monkeypatch.setattr(module, function, next_answer)
    task.apply(args=(9,))  # raises nothing into the caller
    assert asked == [9, 9]


@pytest.mark.parametrize(("task", "module", "function", "outcome"), RETRYING)
def test_a_final_outcome_is_the_tasks_result(
    task: Any, module: Any, function: str, outcome: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(module, function, lambda pk: outcome(f"done {pk}"))
    with mock.patch.object(task, "retry", side_effect=Retry()) as retry:
        assert task(4) == "done 4"
    retry.assert_not_called()


def test_an_unknown_push_or_notification_is_a_no_op() -> None:
    # A message for a row deleted meanwhile must end, not retry forever.
    assert tasks.sync_to_cloudinary(10**9) == "noop"
    assert tasks.send_uploader_notification(10**9) == "missing"
