"""The verdict stays true under any order of saves, decisions, outages and runs.

A Hypothesis state machine drives the real pipeline (memory backend, the
real receivers, services and on-commit callbacks) through a broker that can
go down, lose its messages or deliver one twice, and checks after every step:

- ``moderation_status`` equals the newest decision (``pending`` without one);
- a human decision stands until the content changes, and a re-upload of the
  same bytes follows it;
- after the recovery task ran and the queue drained, nothing is unfinished;
- each (content, type) pair is paid once, plus one per forced re-run;
- no object carries the same tag twice;
- every analysis that ended without a result (or could not be queued) says why.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db.models import Count
from django.test import TestCase
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from kombu.exceptions import OperationalError

from django_cloudinary_analysis import services
from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.models import (
    UNFINISHED,
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.tasks import (
    dispatch_analyses,
    poll_remote,
    run_analysis,
)
from tests.models import Photo
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db

TYPES = ("google_tagging", "ai_vision_moderation", "image_quality")
SEEDS = st.integers(min_value=0, max_value=2)  # few contents: copies are common
#: Statuses that end an analysis without a result: each must carry a reason.
NEEDS_REASON = {
    AnalysisStatus.FAILED,
    AnalysisStatus.SKIPPED,
    AnalysisStatus.CANCELLED,
    AnalysisStatus.RETRYING,
}


def capture() -> Any:
    """Run the on-commit callbacks of a block, as a commit would."""
    return TestCase.captureOnCommitCallbacks(execute=True)


class FakeBroker:
    """Messages published by the app; can be down, flushed or redeliver."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, str]] = []
        self.down = False
        self.refused: set[int] = set()  # analyses whose publish failed
        self._ids = itertools.count()

    def publish(self, args: tuple[Any, ...], **options: Any) -> None:
        (analysis_id,) = args
        if self.down:
            self.refused.add(analysis_id)
            raise OperationalError(
                "Error 111 connecting to 127.0.0.1:6379. Connection refused."
            )
        task_id = options.get("task_id") or f"task-{next(self._ids)}"
        self.messages.append((analysis_id, task_id))

    def publish_many(self, args: tuple[Any, ...], **options: Any) -> None:
        for analysis_id in args[0]:
            self.publish((analysis_id,), **options)

    def ignore(self, *args: Any, **options: Any) -> None:
        """Polls: the memory backend never answers 202."""


def _has_results(pk: int, analysis_type: str) -> bool:
    """Whether a row of ``pk`` carries a result of this type a copy could reuse."""
    return Analysis.objects.filter(
        object_id=str(pk), analysis_type=analysis_type, status=AnalysisStatus.SUCCEEDED
    ).exists()


class VerdictMachine(RuleBasedStateMachine):
    """Objects, copies held in memory, decisions and a flaky broker."""

    photos = Bundle("photos")

    def __init__(self) -> None:
        super().__init__()
        MemoryBackend.reset()
        self.broker = FakeBroker()
        self.patches = [
            mock.patch.object(run_analysis, "apply_async", self.broker.publish),
            mock.patch.object(
                dispatch_analyses, "apply_async", self.broker.publish_many
            ),
            mock.patch.object(poll_remote, "apply_async", self.broker.ignore),
        ]
        for patch in self.patches:
            patch.start()
        self.user = get_user_model().objects.create(
            username=f"reviewer-{id(self)}", is_staff=True
        )
        self.seed: dict[int, int] = {}  # pk -> content of its current file
        # pk -> instances held in memory: the one create() returned, copies
        # loaded later (a form, a serializer, a task holding one).
        self.instances: dict[int, list[Photo]] = {}
        self.pin: dict[int, str] = {}  # pk -> standing human verdict
        self.released: set[int] = set()
        self.forced: Counter[tuple[int, str]] = Counter()
        self.seed_of_file: dict[str, int] = {}
        # Objects that hold (or held) each content: once none is left, no row
        # remembers the content and paying for it again is right.
        self.holders: dict[int, set[int]] = {}
        self.forgotten: Counter[tuple[int, str]] = Counter()
        self.files = itertools.count()

    def teardown(self) -> None:
        for patch in self.patches:
            patch.stop()
        Photo.objects.all().delete()
        Analysis.objects.all().delete()
        ModerationDecision.objects.all().delete()
        self.user.delete()
        MemoryBackend.reset()

    # -- helpers -------------------------------------------------------------

    def _file(self, seed: int) -> ContentFile:
        return ContentFile(png_bytes(seed), name=f"c{seed}-{next(self.files)}.png")

    def _exists(self, pk: int) -> bool:
        return pk in self.seed

    def _run(self, analysis_id: int, task_id: str) -> None:
        with capture():
            outcome = services.run(analysis_id, task_id=task_id, can_wait=True)
        if outcome.retry_in is not None:
            # Celery's retry publishes the same task id again.
            self.broker.messages.append((analysis_id, task_id))

    def _drain(self) -> None:
        for _ in range(500):
            if not self.broker.messages:
                return
            self._run(*self.broker.messages.pop(0))
        raise AssertionError("the queue never drained")

    def _new_content(self, pk: int, seed: int) -> None:
        self.holders.setdefault(seed, set()).add(pk)
        self.seed[pk] = seed
        self.pin.pop(pk, None)
        self.released.discard(pk)

    # -- rules ---------------------------------------------------------------

    @rule(target=photos, seed=SEEDS)
    def create(self, seed: int) -> int:
        with capture():
            photo = Photo.objects.create(title="new", image=self._file(seed))
        self.seed_of_file[photo.image.name] = seed
        self._new_content(photo.pk, seed)
        self.instances[photo.pk] = [photo]
        return photo.pk

    @rule(pk=photos)
    def load_copy(self, pk: int) -> None:
        if self._exists(pk):
            self.instances[pk].append(Photo.objects.get(pk=pk))

    @rule(
        pk=photos,
        which=st.integers(min_value=0, max_value=3),
        title=st.text("abc", max_size=3),
        seed=st.none() | st.none() | SEEDS,
    )
    def save_copy(self, pk: int, which: int, title: str, seed: int | None) -> None:
        """Save an instance loaded earlier: a form or serializer holding it."""
        if not self._exists(pk):
            return  # saving a deleted row would insert it again
        held = self.instances[pk]
        copy = held[which % len(held)]
        current = Photo.objects.get(pk=copy.pk).image.name
        if seed is None and copy.image.name != current:
            return  # a stale file name is a lost update this test does not model
        copy.title = title
        if seed is not None:
            copy.image = self._file(seed)
        with capture():
            copy.save()
        if seed is not None:
            self.seed_of_file[copy.image.name] = seed
            self._new_content(copy.pk, seed)

    @rule(pk=photos, verdict=st.sampled_from(["approve", "reject"]))
    def decide(self, pk: int, verdict: str) -> None:
        if not self._exists(pk):
            return
        photo = Photo.objects.get(pk=pk)
        with capture():
            decision = getattr(services, verdict)(photo, self.user, "by hand")
        self.pin[pk] = decision.status
        self.released.discard(pk)

    @rule(pk=photos)
    def release(self, pk: int) -> None:
        if not self._exists(pk):
            return
        with capture():
            services.release(Photo.objects.get(pk=pk), self.user)
        self.pin.pop(pk, None)
        self.released.add(pk)

    @rule(pk=photos, analysis_type=st.sampled_from(TYPES))
    def force(self, pk: int, analysis_type: str) -> None:
        if not self._exists(pk):
            return
        photo = Photo.objects.get(pk=pk)
        with capture():
            planned = photo.analyze(force=True, types=[analysis_type])
        for _ in planned:
            self.forced[(self.seed[pk], analysis_type)] += 1

    @rule(pk=consumes(photos))
    def delete(self, pk: int) -> None:
        if not self._exists(pk):
            return
        carried = {t: _has_results(pk, t) for t in TYPES}
        with capture():
            Photo.objects.filter(pk=pk).delete()
        del self.seed[pk]
        del self.instances[pk]
        self.pin.pop(pk, None)
        self.released.discard(pk)
        for seed, holders in self.holders.items():
            if pk in holders:
                holders.discard(pk)
                # Paying again is right once the last row carrying the result
                # of a type is gone: copies still queued (or whose message was
                # lost) hold the content but no result of that type.
                for analysis_type in TYPES:
                    self.forgotten[(seed, analysis_type)] += carried[
                        analysis_type
                    ] and not any(_has_results(o, analysis_type) for o in holders)

    @rule(down=st.booleans())
    def broker_state(self, down: bool) -> None:
        self.broker.down = down

    @rule()
    def broker_flushed(self) -> None:
        """Redis restarted without persistence: published messages are gone."""
        self.broker.messages.clear()

    @rule()
    def deliver_all(self) -> None:
        """The workers catch up with the queue."""
        self._drain()

    @precondition(lambda self: self.broker.messages)
    @rule(redeliver=st.booleans())
    def deliver(self, redeliver: bool) -> None:
        message = self.broker.messages.pop(0)
        self._run(*message)
        if redeliver:  # at-least-once: the same message arrives again
            self._run(*message)

    @rule()
    def recover(self) -> None:
        """The broker is back; the periodic recovery task runs, workers drain."""
        self.broker.down = False
        recover = getattr(services, "recover_stuck", None)
        if recover is not None:
            with capture():
                recover(queued_after=0, running_after=0)
        self._drain()
        left = Analysis.objects.filter(status__in=UNFINISHED).values_list(
            "pk", "status", "error_code"
        )
        assert not left, f"unfinished after recovery: {list(left)}"
        paid = {
            (self.seed_of_file[c.media_name], c.analysis_type)
            for c in MemoryBackend.calls
        }
        for seed in set(self.seed.values()):
            for analysis_type in TYPES:
                assert (seed, analysis_type) in paid, (
                    f"content {seed} was never analysed for {analysis_type}"
                )

    @rule(target=photos, pk=photos)
    def reupload(self, pk: int) -> Any:
        """Upload the same bytes again as a new object: it follows a human."""
        if not self._exists(pk):
            return multiple()
        seed = self.seed[pk]
        self.broker.down = False
        self._drain()
        copy = self.create(seed)
        self._drain()
        expected = self._followed_verdict(seed)
        if expected is not None:
            status = Photo.objects.get(pk=copy).moderation_status
            assert status == expected, (
                f"a re-upload of content {seed} is {status}, its human verdict "
                f"is {expected}"
            )
        return copy

    def _followed_verdict(self, seed: int) -> str | None:
        standing = set()
        for pk, status in self.pin.items():
            if self.seed[pk] != seed:
                continue
            newest = ModerationDecision.objects.for_object(Photo(pk=pk)).first()
            if newest is not None and getattr(newest, "content_key", ""):
                standing.add(status)
        if ModerationStatus.REJECTED in standing:
            return ModerationStatus.REJECTED
        if ModerationStatus.APPROVED in standing:
            return ModerationStatus.APPROVED
        return None

    # -- invariants ----------------------------------------------------------

    @invariant()
    def status_is_the_newest_decision(self) -> None:
        for photo in Photo.objects.all():
            newest = ModerationDecision.objects.for_object(photo).first()
            expected = newest.status if newest else ModerationStatus.PENDING
            assert photo.moderation_status == expected, (
                f"photo {photo.pk} is {photo.moderation_status}, its newest "
                f"decision says {expected}"
            )

    @invariant()
    def human_decisions_stand(self) -> None:
        for pk, status in self.pin.items():
            stored = Photo.objects.get(pk=pk).moderation_status
            assert stored == status, f"photo {pk}: {stored}, a human said {status}"

    @invariant()
    def each_content_is_paid_once(self) -> None:
        paid = Counter(
            (self.seed_of_file[call.media_name], call.analysis_type)
            for call in MemoryBackend.calls
        )
        for (seed, analysis_type), calls in paid.items():
            allowed = (
                1
                + self.forced[(seed, analysis_type)]
                + self.forgotten[(seed, analysis_type)]
            )
            assert calls <= allowed, (
                f"content {seed} paid {calls} times for {analysis_type} "
                f"(allowed {allowed})"
            )

    @invariant()
    def no_duplicate_tags(self) -> None:
        twice = (
            MediaTag.objects.values("object_id", "field_name", "name", "analysis_type")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        assert not twice, list(twice)

    @invariant()
    def failures_have_reasons(self) -> None:
        silent = Analysis.objects.filter(error_code="").filter(
            status__in=NEEDS_REASON
        ) | Analysis.objects.filter(
            error_code="",
            status=AnalysisStatus.QUEUED,
            pk__in=self.broker.refused,
        )
        assert not silent.exists(), list(silent.values("pk", "status"))


def test_a_later_human_approval_outranks_a_rejection_whose_origin_is_gone() -> None:
    """Found by the machine: a copy that followed a human rejection kept it
    after the rejected object was deleted, and its derived rejection beat a
    moderator's later approval of the same content on the next upload."""
    machine = VerdictMachine()
    try:
        first = machine.create(seed=0)
        rejected = machine.reupload(pk=first)
        machine.decide(pk=rejected, verdict="reject")
        approved = machine.reupload(pk=first)
        follower = machine.reupload(pk=first)  # follows the rejection
        machine.decide(pk=approved, verdict="approve")
        machine.delete(pk=rejected)  # the rejection goes with its object
        machine.reupload(pk=follower)  # asserts it follows the approval
        machine.human_decisions_stand()
        machine.status_is_the_newest_decision()
    finally:
        machine.teardown()


def test_a_type_whose_only_result_was_deleted_is_paid_again() -> None:
    """Found by the machine (its bookkeeping was per content, not per type):
    the original's moderation message was lost, so once the copy holding
    the only moderation result is deleted, paying again is right."""
    machine = VerdictMachine()
    try:
        original = machine.create(seed=2)
        machine.broker_flushed()
        machine.force(pk=original, analysis_type="google_tagging")
        copy = machine.reupload(pk=original)
        machine.delete(pk=copy)
        machine.reupload(pk=original)
        machine.each_content_is_paid_once()
    finally:
        machine.teardown()


def test_the_verdict_stays_true() -> None:
    run_state_machine_as_test(
        VerdictMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
