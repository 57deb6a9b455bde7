"""The verdict under real use: stale saves, broker outages, deletions, re-uploads.

Each test reproduces one way the promise "a rejected image never shows as
approved, nothing is silently stuck or paid twice" used to break (issue 10).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db.models.signals import pre_save
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError
from rest_framework import serializers

from django_cloudinary_analysis import services, tasks
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.tasks import run_analysis
from tests.models import Photo
from tests.support.admin import FormInputs
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db

REFUSED = OperationalError("Error 111 connecting to 127.0.0.1:6379. Refused.")


@pytest.fixture
def save(django_capture_on_commit_callbacks: Any) -> Any:
    """Create an object and run its on-commit callbacks (in-process tasks)."""

    def create(seed: int = 0, name: str = "photo.png", **kwargs: Any) -> Photo:
        with django_capture_on_commit_callbacks(execute=True):
            return Photo.objects.create(
                image=ContentFile(png_bytes(seed), name=name), **kwargs
            )

    return create


@pytest.fixture
def reviewer() -> Any:
    return get_user_model().objects.create_superuser("rita", "r@example.com", "pw")


def newest_status(obj: Any) -> str:
    newest = ModerationDecision.objects.for_object(obj).first()
    return newest.status if newest else ModerationStatus.PENDING


def stored_status(obj: Any) -> str:
    return Photo.objects.get(pk=obj.pk).moderation_status


# -- 1. stale saves ---------------------------------------------------------------


# The mixin's own stale-save tests are in tests/test_mixins.py.


def test_a_model_form_on_a_stale_instance_keeps_the_verdict(
    save: Any, reviewer: Any
) -> None:
    photo = save()
    stale = Photo.objects.get(pk=photo.pk)
    services.reject(photo, reviewer)
    form = forms.modelform_factory(Photo, fields=["title"])(
        {"title": "form"}, instance=stale
    )
    assert form.is_valid()
    form.save()
    assert stored_status(photo) == ModerationStatus.REJECTED


def test_a_drf_serializer_on_a_stale_instance_keeps_the_verdict(
    save: Any, reviewer: Any
) -> None:
    class PhotoSerializer(serializers.ModelSerializer):
        class Meta:
            model = Photo
            fields = ["id", "title", "moderation_status"]

    photo = save()
    stale = Photo.objects.get(pk=photo.pk)
    services.reject(photo, reviewer)
    serializer = PhotoSerializer(stale, data={"title": "api"}, partial=True)
    assert serializer.is_valid(), serializer.errors
    serializer.save()
    assert stored_status(photo) == ModerationStatus.REJECTED


def test_the_admin_change_form_keeps_a_verdict_reached_during_the_request(
    save: Any, reviewer: Any, client: Any
) -> None:
    photo = save()
    client.force_login(reviewer)

    def reject_meanwhile(sender: Any, instance: Any, **kw: Any) -> None:
        # Another reviewer rejects between the form loading the row and saving it.
        if instance.pk == photo.pk and newest_status(photo) != "rejected":
            services.reject(Photo.objects.get(pk=photo.pk), reviewer, "meanwhile")

    url = reverse("admin:tests_photo_change", args=[photo.pk])
    parser = FormInputs()  # the form as the browser shows it, inlines included
    parser.feed(client.get(url).content.decode())
    data = {**parser.data, "title": ["admin edit"], "_save": ["Save"]}
    pre_save.connect(reject_meanwhile, sender=Photo)
    try:
        response = client.post(url, data)
    finally:
        pre_save.disconnect(reject_meanwhile, sender=Photo)
    assert response.status_code == 302, response.content[:800]
    assert Photo.objects.get(pk=photo.pk).title == "admin edit"
    assert stored_status(photo) == ModerationStatus.REJECTED


def test_a_new_file_still_resets_the_verdict(
    save: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = save()
    services.reject(photo, reviewer)
    stale = Photo.objects.get(pk=photo.pk)
    stale.image = ContentFile(png_bytes(5), name="new.png")
    with django_capture_on_commit_callbacks(execute=True):
        stale.save()
    assert stored_status(photo) == ModerationStatus.APPROVED == newest_status(photo)


# -- 2. broker outages ---------------------------------------------------------------


def create_while_the_broker_is_down(capture: Any) -> Photo:
    """Save a photo and commit while every publish is refused."""
    with (
        mock.patch.object(run_analysis, "apply_async", side_effect=REFUSED),
        capture(execute=True),
    ):
        return Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))


def test_a_save_never_fails_because_the_broker_is_down(
    django_capture_on_commit_callbacks: Any, caplog: Any, memory_backend: Any
) -> None:
    with (
        mock.patch.object(run_analysis, "apply_async", side_effect=REFUSED),
        caplog.at_level(logging.ERROR, logger="django_cloudinary_analysis"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))

    assert Photo.objects.filter(pk=photo.pk).exists()
    rows = list(photo.analyses.all())
    assert rows and {a.status for a in rows} == {AnalysisStatus.QUEUED}
    for analysis in rows:
        assert analysis.error_code == "enqueue_failed"
        assert "OperationalError" in analysis.error_message
    assert "could not be queued" in caplog.text
    assert memory_backend.calls == []


def test_a_worker_fanning_out_records_a_refused_publish() -> None:
    photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))
    ids = list(photo.analyses.values_list("pk", flat=True))
    with mock.patch.object(run_analysis, "apply_async", side_effect=REFUSED):
        tasks.dispatch_analyses(ids)  # the worker's half of one commit's message
    # The ones it fanned out record the refusal; the first it ran itself.
    fanned = ids[tasks.RUN_IN_TASK :]
    assert fanned
    assert set(
        photo.analyses.filter(pk__in=fanned).values_list("error_code", flat=True)
    ) == {"enqueue_failed"}


def test_the_recovery_task_queues_them_again_and_pays_once(
    django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    photo = create_while_the_broker_is_down(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        counts = tasks.recover_stuck.delay().get()
    assert counts["queued"] == 3
    assert {a.status for a in photo.analyses.all()} == {AnalysisStatus.SUCCEEDED}
    assert stored_status(photo) == ModerationStatus.APPROVED
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recover_stuck.delay()
    assert len(memory_backend.calls) == 3


def test_recovery_waits_for_stuck_after_unless_the_publish_failed(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "STUCK_AFTER": 600}
    photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))
    # Not committed yet, so nothing was published: the message may be on its way.
    assert services.recover_stuck()["queued"] == 0
    Analysis.objects.update(created_at=timezone.now() - timedelta(seconds=601))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.recover_stuck()["queued"] == 3  # a lost message
    assert {a.status for a in photo.analyses.all()} == {AnalysisStatus.SUCCEEDED}


def test_a_message_that_survives_beside_the_recovery_runs_once(
    memory_backend: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))
    ids = list(photo.analyses.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        services.recover_stuck(queued_after=0)
    for analysis_id in ids:  # the original messages arrive after all
        assert services.run(analysis_id, task_id="original").status == "noop"
    assert len(memory_backend.calls) == 3


def test_running_past_the_time_out_is_queued_again(
    memory_backend: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "RUNNING_TIMEOUT": 900,
    }
    photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))
    lost = photo.analyses.get(analysis_type="google_tagging")
    alive = photo.analyses.get(analysis_type="image_quality")
    long_ago = timezone.now() - timedelta(seconds=901)
    Analysis.objects.filter(pk=lost.pk).update(status="running", started_at=long_ago)
    Analysis.objects.filter(pk=alive.pk).update(
        status="running", started_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.recover_stuck(queued_after=0)
    assert counts["running"] == 1
    lost.refresh_from_db()
    alive.refresh_from_db()
    assert lost.status == AnalysisStatus.SUCCEEDED
    assert alive.status == AnalysisStatus.RUNNING  # its worker may still answer


def test_analyze_media_stuck_recovers(
    django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    photo = create_while_the_broker_is_down(django_capture_on_commit_callbacks)
    from io import StringIO

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("analyze_media", "--stuck", stdout=out)
    assert "3 queued analyses" in out.getvalue()
    assert {a.status for a in photo.analyses.all()} == {AnalysisStatus.SUCCEEDED}


# -- 3. dedup after deletion ---------------------------------------------------------


def test_dedup_survives_the_deletion_of_the_original(
    save: Any, memory_backend: Any
) -> None:
    first = save(seed=4, name="a.png")
    second = save(seed=4, name="b.png")
    assert len(memory_backend.calls) == 3
    key = first.analyses.first().content_key
    assert {a.content_key for a in second.analyses.all()} == {key}

    first.delete()
    third = save(seed=4, name="c.png")

    assert len(memory_backend.calls) == 3
    assert {a.reused_from_id for a in third.analyses.all()} <= set(
        second.analyses.values_list("pk", flat=True)
    )


def test_the_migration_gives_reused_rows_their_donors_key(
    save: Any, memory_backend: Any
) -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("django_cloudinary_analysis.migrations.0004_verdict")
    first = save(seed=4, name="a.png")
    second = save(seed=4, name="b.png")
    Analysis.objects.for_object(second).update(content_key="")  # as before 0004

    migration.backfill_reused_content_keys(apps, None)

    key = first.analyses.first().content_key
    assert {a.content_key for a in second.analyses.all()} == {key}


# -- 4. a human verdict follows its content --------------------------------------


def test_a_rejection_follows_a_reupload_of_the_same_bytes(
    save: Any, reviewer: Any
) -> None:
    original = save(seed=6, name="a.png")
    rejection = services.reject(original, reviewer, "not allowed")

    copy = save(seed=6, name="again.png")

    assert stored_status(copy) == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(copy).first()
    assert decision.decided_by_kind == ModerationDecision.DecidedByKind.HUMAN
    assert decision.follows_id == rejection.pk
    assert decision.decided_by == reviewer
    assert decision.content_key == rejection.content_key != ""
    (reason,) = decision.reasons
    assert reason["rule"] == "follows_content"
    assert reason["decision"] == rejection.pk
    assert f"decision {rejection.pk}" in decision.note
    # Other content is not affected.
    assert stored_status(save(seed=7, name="other.png")) == ModerationStatus.APPROVED


def test_approvals_follow_unless_the_setting_turns_it_off(
    save: Any, reviewer: Any, settings: Any, memory_backend: Any
) -> None:
    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": "q", "value": "yes"}], "model_version": 1},
    )
    original = save(seed=6, name="a.png")
    assert stored_status(original) != ModerationStatus.APPROVED
    services.approve(original, reviewer)

    assert stored_status(save(seed=6, name="b.png")) == ModerationStatus.APPROVED

    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "HUMAN_APPROVAL_FOLLOWS_CONTENT": False,
    }
    assert stored_status(save(seed=6, name="c.png")) != ModerationStatus.APPROVED


def test_a_rejection_wins_over_an_approval_of_the_same_content(
    save: Any, reviewer: Any
) -> None:
    approved = save(seed=6, name="a.png")
    rejected = save(seed=6, name="b.png")
    services.approve(approved, reviewer)
    services.reject(rejected, reviewer)
    assert stored_status(save(seed=6, name="c.png")) == ModerationStatus.REJECTED


def test_a_decision_stops_following_once_its_content_changes(
    save: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    original = save(seed=6, name="a.png")
    services.reject(original, reviewer)
    original.image = ContentFile(png_bytes(8), name="replaced.png")
    with django_capture_on_commit_callbacks(execute=True):
        original.save()
    assert stored_status(save(seed=6, name="b.png")) == ModerationStatus.APPROVED


def test_a_released_follower_is_left_to_the_policy(
    save: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    original = save(seed=6, name="a.png")
    services.reject(original, reviewer)
    copy = save(seed=6, name="b.png")
    services.release(copy, reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        copy.analyze(force=True)
    assert stored_status(copy) == ModerationStatus.APPROVED == newest_status(copy)


# -- 5. races ------------------------------------------------------------------------


def test_a_twin_whose_lead_stopped_answering_is_taken_over(
    memory_backend: Any, settings: Any
) -> None:
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "TWIN_LEASE": 120}
    first = Photo.objects.create(image=ContentFile(png_bytes(9), name="a.png"))
    second = Photo.objects.create(image=ContentFile(png_bytes(9), name="b.png"))
    services.run(first.analyses.get(analysis_type="image_quality").pk)
    key = Analysis.objects.exclude(content_key="").values_list("content_key")[0][0]
    leader = first.analyses.get(analysis_type="google_tagging")
    follower = second.analyses.get(analysis_type="google_tagging")
    Analysis.objects.filter(pk=leader.pk).update(
        status="running", content_key=key, started_at=timezone.now()
    )
    assert services.run(follower.pk).status == "duplicate_in_flight"

    # The lead's worker died long ago (past the lease): the follower sends.
    Analysis.objects.filter(pk=leader.pk).update(
        started_at=timezone.now() - timedelta(seconds=121)
    )
    Analysis.objects.filter(pk=follower.pk).update(status="queued")
    assert services.run(follower.pk).status == "succeeded"


def test_a_webhook_before_the_stored_task_id_is_rechecked(
    client: Any, settings: Any
) -> None:
    from tests.support.api_samples import sample_webhook
    from tests.test_async import TASK_ID, deliver

    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "ASYNC_TYPES": ["ai_vision_moderation"],
    }
    photo = Photo.objects.create(image=ContentFile(png_bytes(1), name="a.png"))
    analysis = photo.analyses.get(analysis_type="ai_vision_moderation")
    # The worker got its 202 and is about to store the task id...
    Analysis.objects.filter(pk=analysis.pk).update(
        status="running", started_at=timezone.now()
    )

    def worker_stores_the_task_id(seconds: float) -> None:
        Analysis.objects.filter(pk=analysis.pk).update(
            status="waiting", remote_task_id=TASK_ID
        )

    payload = sample_webhook("ai_vision_moderation", TASK_ID, analysis.params)
    with mock.patch(
        "django_cloudinary_analysis.webhooks.time.sleep",
        side_effect=worker_stores_the_task_id,
    ) as slept:
        response = deliver(client, payload)

    assert response.json() == {"status": "applied"}
    assert slept.call_count == 1
    analysis.refresh_from_db()
    assert analysis.status == AnalysisStatus.SUCCEEDED


def test_an_unknown_task_is_not_rechecked_when_nothing_is_in_flight(
    client: Any,
) -> None:
    from tests.support.api_samples import sample_webhook
    from tests.test_async import deliver

    with mock.patch("django_cloudinary_analysis.webhooks.time.sleep") as slept:
        response = deliver(client, sample_webhook("ai_vision_moderation", "nope"))
    assert response.json() == {"status": "unknown"}
    assert slept.call_count == 0
