"""The pipeline from save() to stored tags and a verdict (memory backend)."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.client import QuotaLimit
from django_cloudinary_analysis.exceptions import AuthError, ServerError
from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
    QuotaState,
)
from django_cloudinary_analysis.tasks import run_analysis
from tests.models import Article, Photo, PlainPhoto, SlugPhoto, UUIDPhoto
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def save(django_capture_on_commit_callbacks):
    """Create an object and run the on-commit callbacks (eager tasks)."""

    def create(model=Photo, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return model.objects.create(**kwargs)

    return create


def statuses(obj) -> dict[str, str]:
    return {a.analysis_type: a.status for a in Analysis.objects.for_object(obj)}


def test_upload_is_analysed_tagged_and_approved(save, image_file, memory_backend):
    photo = save(image=image_file())
    assert statuses(photo) == {
        "google_tagging": "succeeded",
        "ai_vision_moderation": "succeeded",
        "image_quality": "succeeded",
    }
    assert [c.analysis_type for c in memory_backend.calls] == [
        "google_tagging",
        "ai_vision_moderation",
        "image_quality",
    ]
    assert list(photo.media_tags.values_list("name", flat=True)) == ["photograph"]
    photo.refresh_from_db()
    assert photo.moderation_status == "approved"
    assert list(Photo.objects.approved()) == [photo]
    assert list(Photo.objects.tagged("Photograph")) == [photo]
    quality = photo.latest_results()[("image", "image_quality")].result["quality"]
    assert quality["word"] == "high"


def test_moderation_questions_come_from_settings(save, image_file, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "REJECTION_QUESTIONS": ["Is there a weapon?"],
    }
    photo = save(image=image_file())
    analysis = photo.analyses.get(analysis_type="ai_vision_moderation")
    assert analysis.params == {"rejection_questions": ["Is there a weapon?"]}


def test_save_adds_at_most_three_queries_and_no_backend_call(
    django_capture_on_commit_callbacks, memory_backend
):
    with CaptureQueriesContext(connection) as plain:
        PlainPhoto.objects.create(image=ContentFile(png_bytes(1), name="p.png"))
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        CaptureQueriesContext(connection) as mixed,
    ):
        Photo.objects.create(image=ContentFile(png_bytes(1), name="p.png"))
    assert len(mixed) - len(plain) <= 3
    assert memory_backend.calls == []  # nothing runs before commit
    assert len(callbacks) == 1


def test_replacing_the_file_costs_at_most_three_queries(save, image_file):
    photo = save(image=image_file("a.png", 1))
    photo = Photo.objects.get(pk=photo.pk)
    plain = PlainPhoto.objects.create(image=image_file("a.png", 1))
    plain = PlainPhoto.objects.get(pk=plain.pk)
    plain.image = image_file("b.png", 2)
    with CaptureQueriesContext(connection) as base:
        plain.save()
    photo.image = image_file("b.png", 2)
    with CaptureQueriesContext(connection) as mixed:
        photo.save()
    assert len(mixed) - len(base) <= 3


def test_resave_without_file_change_schedules_nothing(save, image_file, memory_backend):
    photo = save(image=image_file())
    before = Analysis.objects.count()
    calls = len(memory_backend.calls)
    photo = Photo.objects.get(pk=photo.pk)
    photo.title = "renamed"
    plain = PlainPhoto.objects.create(image=image_file())
    with CaptureQueriesContext(connection) as base:
        plain.save()
    with CaptureQueriesContext(connection) as mixed:
        photo.save()
    assert len(mixed) == len(base)
    assert Analysis.objects.count() == before
    assert len(memory_backend.calls) == calls


def test_raw_saves_are_ignored(image_file, django_capture_on_commit_callbacks):
    photo = Photo(image=image_file())
    photo.image.save("raw.png", image_file(), save=False)
    with django_capture_on_commit_callbacks(execute=True):
        photo.save_base(raw=True)
    assert Analysis.objects.count() == 0


def test_update_fields_are_honoured(save, image_file):
    photo = save(image=image_file("a.png", 1))
    services.reject(photo, note="bad")
    photo = Photo.objects.get(pk=photo.pk)
    photo.title = "t"
    photo.image = image_file("b.png", 2)
    photo.save(update_fields=["title"])  # the new file is not written
    assert Analysis.objects.for_object(photo).count() == 3
    photo.save(update_fields=["image"])
    photo.refresh_from_db()
    assert Analysis.objects.for_object(photo).count() == 6
    # moderation_status was not in update_fields but was reset all the same
    assert photo.moderation_status in ("pending", "approved")
    history = list(photo.moderation_history.values_list("decided_by_kind", flat=True))
    assert "system" in history


def test_auto_analyze_off(save, image_file, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }
    photo = save(image=image_file())
    assert Analysis.objects.count() == 0
    assert photo.moderation_status == "pending"


def test_redelivered_task_calls_the_api_once(
    django_capture_on_commit_callbacks, image_file, memory_backend
):
    with django_capture_on_commit_callbacks(execute=False):
        photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="google_tagging")
    run_analysis.apply(args=(analysis.pk,), task_id="delivery-1")
    run_analysis.apply(args=(analysis.pk,), task_id="delivery-2")
    run_analysis.apply(args=(analysis.pk,), task_id="delivery-1")
    assert [c.analysis_type for c in memory_backend.calls] == ["google_tagging"]
    assert MediaTag.objects.filter(analysis=analysis).count() == 1
    analysis.refresh_from_db()
    assert analysis.status == "succeeded" and analysis.attempts == 1


def test_redelivery_after_a_lost_worker_takes_over(image_file, memory_backend):
    photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="google_tagging")
    # The first worker claimed it and died before finishing.
    Analysis.objects.filter(pk=analysis.pk).update(
        status="running", task_id="msg-1", attempts=1
    )
    assert services.run(analysis.pk, task_id="msg-2").status == "noop"
    assert services.run(analysis.pk, task_id="msg-1").status == "succeeded"
    assert len(memory_backend.calls) == 1


def test_human_rejection_survives_reanalysis_and_resets_on_new_file(
    save, image_file, django_capture_on_commit_callbacks
):
    photo = save(image=image_file("a.png", 1))
    assert Photo.objects.get(pk=photo.pk).moderation_status == "approved"
    decision = services.reject(photo, note="off-topic")
    assert decision.decided_by_kind == "human" and decision.note == "off-topic"
    with django_capture_on_commit_callbacks(execute=True):
        photo.analyze(force=True)
    photo.refresh_from_db()
    assert photo.moderation_status == "rejected"
    assert Analysis.objects.for_object(photo).count() == 6

    with django_capture_on_commit_callbacks(execute=True):
        photo.image = image_file("b.png", 2)
        photo.save()
    photo.refresh_from_db()
    assert photo.moderation_status == "approved"
    sources = list(
        photo.moderation_history.order_by("decided_at", "pk").values_list(
            "decided_by_kind", "status"
        )
    )
    assert sources[-3:] == [
        ("human", "rejected"),
        ("system", "pending"),
        ("auto", "approved"),
    ]


def test_release_lets_the_policy_decide_again(save, image_file):
    photo = save(image=image_file())
    services.reject(photo)
    services.release(photo)
    photo.refresh_from_db()
    assert photo.moderation_status == "approved"


def test_send_to_review_holds_the_object_until_a_person_decides(
    save, image_file, django_capture_on_commit_callbacks
):
    photo = save(image=image_file("a.png", 3))
    decision = services.send_to_review(photo, note="a second look")
    assert (decision.status, decision.decided_by_kind) == ("review", "human")
    assert decision.previous_status == "approved"
    assert decision.note == "a second look" and decision.pins_verdict
    # A re-run's automatic verdict does not take it out of the queue.
    with django_capture_on_commit_callbacks(execute=True):
        photo.analyze(force=True)
    assert Photo.objects.get(pk=photo.pk).moderation_status == "review"
    services.approve(photo)
    assert Photo.objects.get(pk=photo.pk).moderation_status == "approved"


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [("yes", "rejected"), ("unknown", "review"), ("no", "approved")],
)
def test_moderation_answers(save, image_file, memory_backend, answer, verdict):
    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": "Is it nude?", "value": answer}]},
    )
    photo = save(image=image_file())
    photo.refresh_from_db()
    assert photo.moderation_status == verdict
    latest = photo.moderation_history.first()
    assert latest.decided_by_kind == "auto"
    if answer != "no":
        assert latest.reasons[0]["question"] == "Is it nude?"


@pytest.mark.parametrize(
    ("confidence", "verdict"), [(0.95, "rejected"), (0.7, "review"), (0.2, "approved")]
)
def test_label_rules_review_band(
    save, image_file, memory_backend, settings, confidence, verdict
):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "LABEL_RULES": [
            {"type": "google_tagging", "label": "weapon", "review": 0.5, "reject": 0.9}
        ],
    }
    memory_backend.set_result(
        "google_tagging",
        {"label_annotations": {"labels": [{"label": "Weapon", "score": confidence}]}},
    )
    photo = save(image=image_file())
    photo.refresh_from_db()
    assert photo.moderation_status == verdict


@pytest.mark.parametrize(
    ("on_failure", "verdict"), [("review", "review"), ("pending", "pending")]
)
def test_failed_moderation_never_approves(
    save, image_file, memory_backend, settings, on_failure, verdict
):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "ON_FAILURE": on_failure,
    }
    memory_backend.set_error(
        "ai_vision_moderation",
        AuthError("add-on not subscribed", status_code=403, code="MA_403"),
    )
    photo = save(image=image_file())
    analysis = photo.analyses.get(analysis_type="ai_vision_moderation")
    assert analysis.status == "failed"
    assert analysis.error_code == "MA_403"
    assert "add-on not subscribed" in analysis.error_message
    assert analysis.attempts == 1  # permanent: no retries
    photo.refresh_from_db()
    assert photo.moderation_status == verdict


class FlakyBackend(MemoryBackend):
    """Fails with a retryable error for the first ``failures`` calls."""

    failures = 1

    def run(self, analysis_type, media, params, *, notification_url=None):
        if len(self.calls) < self.failures:
            self.calls.append(None)
            raise ServerError("boom", status_code=503)
        return super().run(
            analysis_type, media, params, notification_url=notification_url
        )


@pytest.fixture
def flaky(settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "tests.test_services.FlakyBackend",
        "MAX_ATTEMPTS": 3,
    }
    return FlakyBackend


def test_retryable_error_goes_through_the_task_retry_path(
    flaky, image_file, django_capture_on_commit_callbacks
):
    flaky.failures = 1
    with django_capture_on_commit_callbacks(execute=False):
        photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="google_tagging")
    result = run_analysis.apply(args=(analysis.pk,))
    analysis.refresh_from_db()
    assert analysis.status == "succeeded"
    assert analysis.attempts == 2
    assert result.state == "RETRY" or analysis.status == "succeeded"


def test_retries_are_bounded(flaky, image_file, django_capture_on_commit_callbacks):
    flaky.failures = 99
    with django_capture_on_commit_callbacks(execute=False):
        photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="google_tagging")
    run_analysis.apply(args=(analysis.pk,))
    analysis.refresh_from_db()
    assert analysis.status == "failed"
    assert analysis.attempts == 3
    assert "gave up after 3 attempts" in analysis.error_message


def test_retry_outcome_asks_for_a_countdown(flaky, image_file):
    flaky.failures = 1
    photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.get(analysis_type="google_tagging")
    outcome = services.run(analysis.pk)
    assert outcome.status == "retrying"
    assert 0 < outcome.retry_in <= 900
    analysis.refresh_from_db()
    assert analysis.status == "retrying"
    assert "boom" in analysis.error_message


def test_retry_delay_prefers_the_servers_word(settings):
    assert services.retry_delay(1, retry_after=42) == 42
    assert services.retry_delay(1, retry_after=0.001) <= 10  # backoff wins
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "RETRY_BACKOFF": 10,
        "RETRY_BACKOFF_MAX": 60,
    }
    assert services.retry_delay(1, retry_after=3600) == 60
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (8, 60)]:
        delays = {services.retry_delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_deleted_object_cancels_queued_work(image_file, memory_backend):
    photo = Photo.objects.create(image=image_file())
    ids = list(photo.analyses.values_list("pk", flat=True))
    # Deleted without signals (e.g. raw SQL): the worker finds no object.
    Photo.objects.filter(pk=photo.pk)._raw_delete(using="default")
    for pk in ids:
        assert services.run(pk).status == "cancelled"
    assert set(Analysis.objects.values_list("error_code", flat=True)) == {
        "object_deleted"
    }
    assert memory_backend.calls == []


def test_deleting_the_object_removes_its_rows(save, image_file):
    photo = save(image=image_file())
    assert MediaTag.objects.exists() and ModerationDecision.objects.exists()
    photo.delete()
    assert not Analysis.objects.exists()
    assert not MediaTag.objects.exists()
    assert not ModerationDecision.objects.exists()


def test_replaced_content_cancels_stale_work(image_file, memory_backend):
    photo = Photo.objects.create(image=image_file("a.png", 1))
    stale = list(photo.analyses.values_list("pk", flat=True))
    photo.image = image_file("b.png", 2)
    photo.save()
    for pk in stale:
        assert services.run(pk).status == "cancelled"
    assert set(
        Analysis.objects.filter(pk__in=stale).values_list("error_code", flat=True)
    ) == {"content_replaced"}
    assert memory_backend.calls == []


def test_non_image_file_is_skipped_with_reason(save, memory_backend):
    photo = save(image=ContentFile(b"%PDF-1.4", name="doc.pdf"))
    for analysis in photo.analyses.all():
        assert analysis.status == "skipped"
        assert "not an image" in analysis.error_message
    assert memory_backend.calls == []
    photo.refresh_from_db()
    assert photo.moderation_status == "review"  # fail closed


def test_missing_file_is_skipped_with_reason(image_file, memory_backend):
    photo = Photo.objects.create(image=image_file())
    photo.image.storage.delete(photo.image.name)
    analysis = photo.analyses.first()
    services.run(analysis.pk)
    analysis.refresh_from_db()
    assert analysis.status == "skipped"
    assert "missing" in analysis.error_message


def test_empty_file_is_skipped(save):
    photo = save(image=ContentFile(b"", name="empty.png"))
    assert {a.status for a in photo.analyses.all()} == {"skipped"}
    assert "empty" in photo.analyses.first().error_message


def test_identical_content_is_analysed_once(save, memory_backend):
    first = save(image=ContentFile(png_bytes(7), name="one.png"))
    second = save(image=ContentFile(png_bytes(7), name="two.png"))
    assert len(memory_backend.calls) == 3
    reused = second.analyses.all()
    assert all(a.reused_from_id is not None for a in reused)
    assert {a.status for a in reused} == {"succeeded"}
    assert list(second.media_tags.values_list("name", flat=True)) == ["photograph"]
    assert first.analyses.first().content_key.startswith("sha256:")
    second.refresh_from_db()
    assert second.moderation_status == "approved"


def test_dedup_off_calls_again(save, settings, memory_backend):
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "DEDUP": False}
    save(image=ContentFile(png_bytes(7), name="one.png"))
    save(image=ContentFile(png_bytes(7), name="two.png"))
    assert len(memory_backend.calls) == 6


def test_force_does_not_reuse(
    save, image_file, memory_backend, django_capture_on_commit_callbacks
):
    photo = save(image=image_file())
    with django_capture_on_commit_callbacks(execute=True):
        photo.analyze(force=True, types=["google_tagging"])
    assert len(memory_backend.calls) == 4
    with django_capture_on_commit_callbacks(execute=True):
        assert photo.analyze() == []  # everything already succeeded


def test_exhausted_quota_stops_calls_until_reset(image_file, memory_backend):
    services.record_limits(
        [
            QuotaLimit(
                type="ai_vision",
                remaining=0,
                limit=500,
                reset_time=timezone.now() + timezone.timedelta(minutes=5),
            )
        ]
    )
    photo = Photo.objects.create(image=image_file())
    moderation = photo.analyses.get(analysis_type="ai_vision_moderation")
    outcome = services.run(moderation.pk)
    assert outcome.status == "quota_exhausted"
    assert 200 < outcome.retry_in <= 300
    moderation.refresh_from_db()
    assert moderation.status == "retrying" and moderation.attempts == 0
    tagging = photo.analyses.get(analysis_type="google_tagging")
    assert services.run(tagging.pk).status == "succeeded"  # other quota
    assert [c.analysis_type for c in memory_backend.calls] == ["google_tagging"]
    QuotaState.objects.update(blocked_until=timezone.now())
    assert services.run(moderation.pk).status == "succeeded"


def test_eager_quota_block_fails_visibly(save, image_file):
    services.record_limits(
        [
            QuotaLimit(
                type="ai_vision",
                remaining=0,
                reset_time=timezone.now() + timezone.timedelta(minutes=5),
            )
        ]
    )
    photo = save(image=image_file())
    analysis = photo.analyses.get(analysis_type="ai_vision_moderation")
    assert analysis.status == "failed"
    assert analysis.error_code == "quota_exhausted"


@pytest.mark.parametrize(
    ("model", "key"),
    [(UUIDPhoto, {}), (SlugPhoto, {"slug": "a-slug"})],
)
def test_uuid_and_string_keys(save, image_file, model, key):
    obj = save(model=model, image=image_file(), **key)
    assert {a.status for a in Analysis.objects.for_object(obj)} == {"succeeded"}
    assert list(model.objects.tagged("photograph")) == [obj]
    assert list(model.objects.approved()) == [obj]
    assert list(model.objects.tagged("nothing")) == []


def test_tagged_with_min_confidence(save, image_file, memory_backend):
    memory_backend.set_result(
        "google_tagging",
        {"label_annotations": {"labels": [{"label": "Cat", "score": 0.6}]}},
    )
    photo = save(image=image_file())
    assert list(Photo.objects.tagged("cat", min_confidence=0.5)) == [photo]
    assert list(Photo.objects.tagged("cat", min_confidence=0.7)) == []


def test_tags_are_replaced_not_appended(
    save, image_file, django_capture_on_commit_callbacks
):
    photo = save(image=image_file())
    with django_capture_on_commit_callbacks(execute=True):
        photo.analyze(force=True)
    assert photo.media_tags.count() == 1


def test_per_field_configuration_with_extras(save, image_file, memory_backend):
    article = save(
        model=Article, cover=image_file("c.png", 1), thumbnail=image_file("t.png", 2)
    )
    pairs = sorted(
        (a.field_name, a.analysis_type) for a in Analysis.objects.for_object(article)
    )
    assert pairs == [
        ("cover", "ai_vision_moderation"),
        ("cover", "ai_vision_tagging"),
        ("thumbnail", "image_quality"),
    ]
    tagging = next(
        c for c in memory_backend.calls if c.analysis_type == "ai_vision_tagging"
    )
    assert tagging.params["tag_definitions"][0]["name"] == "cat"


def test_malformed_result_fails_with_reason(save, image_file, memory_backend):
    memory_backend.set_result("image_quality", {"quality": {"nested": "junk"}})
    photo = save(image=image_file())
    analysis = photo.analyses.get(analysis_type="image_quality")
    # The tolerant normaliser keeps what it can; the raw answer is stored.
    assert analysis.status in ("succeeded", "failed")
    assert analysis.raw is not None or analysis.error_message


def test_crash_in_backend_leaves_a_visible_failure(save, image_file, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "BACKEND": "tests.test_services.BrokenBackend",
    }
    photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.first()
    with pytest.raises(RuntimeError):
        services.run(analysis.pk)
    analysis.refresh_from_db()
    assert analysis.status == "failed"
    assert analysis.error_code == "internal_error"
    assert "RuntimeError: kaput" in analysis.error_message


class BrokenBackend(MemoryBackend):
    def run(self, *args, **kwargs):
        raise RuntimeError("kaput")


def test_a_copy_waits_for_its_twin_in_flight(image_file, memory_backend):
    first = Photo.objects.create(image=ContentFile(png_bytes(9), name="a.png"))
    second = Photo.objects.create(image=ContentFile(png_bytes(9), name="b.png"))
    leader = first.analyses.get(analysis_type="google_tagging")
    follower = second.analyses.get(analysis_type="google_tagging")
    # The leader is being sent by another worker right now.
    Analysis.objects.filter(pk=leader.pk).update(
        status="running", started_at=timezone.now(), content_key=""
    )
    services.run(first.analyses.get(analysis_type="image_quality").pk)
    key = Analysis.objects.exclude(content_key="").values_list(
        "content_key", flat=True
    )[0]
    Analysis.objects.filter(pk=leader.pk).update(content_key=key)

    outcome = services.run(follower.pk)
    assert outcome.status == "duplicate_in_flight" and outcome.retry_in > 0
    follower.refresh_from_db()
    assert follower.status == "retrying" and follower.attempts == 0
    assert f"analysis {leader.pk}" in follower.error_message
    assert [c.analysis_type for c in memory_backend.calls] == ["image_quality"]

    # The leader finishes; the follower then reuses its result, no call.
    Analysis.objects.filter(pk=leader.pk).update(status="queued")
    assert services.run(leader.pk).status == "succeeded"
    assert services.run(follower.pk).status == "reused"
    assert len(memory_backend.calls) == 2


def test_in_process_tasks_do_not_wait_for_twins(image_file, memory_backend):
    first = Photo.objects.create(image=ContentFile(png_bytes(9), name="a.png"))
    second = Photo.objects.create(image=ContentFile(png_bytes(9), name="b.png"))
    leader = first.analyses.get(analysis_type="google_tagging")
    services.run(leader.pk)
    Analysis.objects.filter(pk=leader.pk).update(status="running")
    follower = second.analyses.get(analysis_type="google_tagging")
    # Nothing can come back later in-process: it is sent rather than deferred.
    assert services.run(follower.pk, can_wait=False).status == "succeeded"
    assert len(memory_backend.calls) == 2


def test_unknown_type_in_a_row_fails_with_its_code(image_file):
    photo = Photo.objects.create(image=image_file())
    analysis = photo.analyses.first()
    Analysis.objects.filter(pk=analysis.pk).update(analysis_type="retired_type")
    assert services.run(analysis.pk).status == "failed"
    analysis.refresh_from_db()
    assert analysis.error_code == "unknown_analysis_type"
    assert "retired_type" in analysis.error_message


def test_rerun_modes_are_an_enum_and_the_old_names_are_its_members(
    save, image_file, memory_backend
) -> None:
    assert services.RERUN_ALL is services.Rerun.ALL == "all"
    assert services.RERUN_MISSING is services.Rerun.MISSING
    assert services.RERUN_FAILED is services.Rerun.FAILED
    assert services.RERUN_UNSUCCESSFUL is services.Rerun.UNSUCCESSFUL
    photo = save(image=image_file())
    with pytest.raises(ValueError, match="everything"):
        services.schedule_many([photo], rerun="everything")
    # The plain value still works: callers that stored the string keep working.
    assert services.schedule_many([photo], rerun="missing", dry_run=True) == []


def test_current_analyses_of_many_objects_costs_the_same_queries_as_one(
    save, image_file, memory_backend
) -> None:
    photos = [save(image=image_file()) for _ in range(4)]
    article = save(Article, title="a", cover=image_file())
    photos[0].image = image_file()  # a new file: its earlier analyses are stale
    photos[0].save()
    objects = [*photos, article]
    counts = {}
    for n in (1, len(objects)):
        for tags in (True, False):
            with CaptureQueriesContext(connection) as ctx:
                found = services.current_analyses_many(objects[:n], tags=tags)
            counts[(n, tags)] = len(ctx.captured_queries)
    assert counts == {(1, True): 2, (5, True): 2, (1, False): 1, (5, False): 1}
    for obj in objects:
        key = (ContentType.objects.get_for_model(obj).pk, str(obj.pk))
        assert [a.pk for a in found[key]] == [
            a.pk for a in services.current_analyses(obj)
        ]
    replaced = found[(ContentType.objects.get_for_model(Photo).pk, str(photos[0].pk))]
    assert replaced and {a.file_name for a in replaced} == {photos[0].image.name}
    assert services.current_analyses_many([]) == {}


def test_an_error_text_with_nul_is_stored_without_it(save, image_file, memory_backend):
    """PostgreSQL refuses NUL in text: the API's words must not turn a
    failure with its reason into an internal error."""
    memory_backend.set_error(
        "ai_vision_moderation",
        AuthError("bad\x00 key\ud800", status_code=403, code="MA\x00403"),
    )
    photo = save(image=image_file())
    analysis = photo.analyses.get(analysis_type="ai_vision_moderation")
    assert analysis.status == "failed"
    assert "\x00" not in analysis.error_message + analysis.error_code
    assert "\ud800" not in analysis.error_message
    assert "bad" in analysis.error_message and "key" in analysis.error_message
