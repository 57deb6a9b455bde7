"""The moderation policy (moderation.py): its verdicts, their reasons, their words."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_cloudinary_analysis import moderation as moderation_module
from django_cloudinary_analysis.models import Analysis, AnalysisStatus, ModerationStatus
from django_cloudinary_analysis.moderation import DefaultPolicy, Verdict, describe
from tests.models import Photo
from tests.support.images import png_bytes


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (
            {"rule": "question_yes", "question": "Q?", "field": "image"},
            "answered yes: Q? (image)",
        ),
        ({"rule": "label", "label": "Gun", "confidence": 0.91}, "label Gun (0.91)"),
        (
            {
                "rule": "analysis_not_succeeded",
                "type": "t",
                "status": "failed",
                "reason": "x",
            },
            "t failed: x",
        ),
        (
            {"rule": "content_changed", "fields": ["image"], "field": "image"},
            "new content in image",
        ),
        ({"rule": "human"}, "decided by a person"),
        ({"rule": "custom", "score": 3}, "custom: score=3"),
        ("free text", "free text"),
    ],
)
def test_describe_default_reasons(reason: Any, text: str) -> None:
    assert describe(reason) == text


class WordyPolicy(DefaultPolicy):
    """A site's policy that words its own rule and leaves the rest."""

    def describe(self, reason: Any) -> str | None:
        if isinstance(reason, dict) and reason.get("rule") == "too_dark":
            return f"too dark ({reason['level']})"
        return None


def test_describe_asks_the_configured_policy_first(settings: Any) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **getattr(settings, "CLOUDINARY_ANALYSIS", {}),
        "MODERATION_POLICY": f"{__name__}.WordyPolicy",
    }
    assert describe({"rule": "too_dark", "level": 3}) == "too dark (3)"
    # None from the policy falls back to the default wording.
    assert describe({"rule": "human"}) == "decided by a person"
    # Without a describe method, the default wording.
    assert (
        moderation_module.describe({"rule": "too_dark"}, DefaultPolicy()) == "too_dark"
    )


# -- the default policy's decisions ---------------------------------------------

ANSWERS = st.sampled_from(["yes", "no", "unknown", "maybe"])
STATUSES = st.sampled_from(
    [
        AnalysisStatus.QUEUED,
        AnalysisStatus.RUNNING,
        AnalysisStatus.SUCCEEDED,
        AnalysisStatus.FAILED,
        AnalysisStatus.SKIPPED,
    ]
)


def moderation(
    status: str = AnalysisStatus.SUCCEEDED,
    answers: dict[str, str] | None = None,
    *,
    pk: int = 1,
    field: str = "image",
) -> Analysis:
    """An unsaved moderation analysis (the policy only reads its fields)."""
    return Analysis(
        pk=pk,
        field_name=field,
        analysis_type="ai_vision_moderation",
        status=status,
        result={"answers": answers or {}},
        error_message="" if status == AnalysisStatus.SUCCEEDED else "it broke",
    )


def other(status: str = AnalysisStatus.SUCCEEDED, pk: int = 9) -> Analysis:
    return Analysis(
        pk=pk, field_name="image", analysis_type="image_quality", status=status
    )


def policy(on_failure: str = "review") -> DefaultPolicy:
    return DefaultPolicy(label_rules=[], on_failure=on_failure)


def test_no_analyses_means_no_verdict_yet() -> None:
    assert policy().decide([]) is None


def test_without_moderation_the_object_waits_for_its_other_analyses() -> None:
    assert policy().decide([other(AnalysisStatus.RUNNING)]) is None
    verdict = policy().decide([other(AnalysisStatus.FAILED)])
    assert verdict == Verdict(
        ModerationStatus.APPROVED, [{"rule": "no_moderation_analyses"}]
    )


def test_a_yes_rejects_and_names_the_question_the_field_and_the_analysis() -> None:
    verdict = policy().decide(
        [moderation(answers={"Gore?": "no", "Nudity?": "yes"}, pk=4), other()]
    )
    assert verdict == Verdict(
        ModerationStatus.REJECTED,
        [
            {
                "rule": "question_yes",
                "question": "Nudity?",
                "analysis": 4,
                "type": "ai_vision_moderation",
                "field": "image",
            }
        ],
    )


def test_a_rejection_keeps_the_doubts_and_failures_beside_it() -> None:
    verdict = policy().decide(
        [
            moderation(answers={"Gore?": "unknown"}, pk=1, field="cover"),
            moderation(answers={"Nudity?": "yes"}, pk=2, field="thumb"),
            moderation(AnalysisStatus.FAILED, pk=3, field="back"),
        ]
    )
    assert verdict is not None and verdict.status == ModerationStatus.REJECTED
    # Rejections first, then what was unsure, then what did not run.
    assert [(r["rule"], r["field"]) for r in verdict.reasons] == [
        ("question_yes", "thumb"),
        ("question_unknown", "cover"),
        ("analysis_not_succeeded", "back"),
    ]
    assert verdict.reasons[2]["reason"] == "it broke"


@pytest.mark.parametrize(
    ("on_failure", "status"),
    [("review", ModerationStatus.REVIEW), ("pending", ModerationStatus.PENDING)],
)
def test_a_failed_moderation_never_approves(on_failure: str, status: str) -> None:
    verdict = policy(on_failure).decide(
        [moderation(AnalysisStatus.SKIPPED), moderation(answers={"Q?": "no"}, pk=2)]
    )
    assert verdict is not None
    assert verdict.status == status
    assert verdict.reasons[0]["rule"] == "analysis_not_succeeded"
    assert verdict.reasons[0]["status"] == AnalysisStatus.SKIPPED


def test_all_clear_lists_the_analyses_it_relied_on() -> None:
    verdict = policy().decide(
        [moderation(answers={"Q?": "no"}, pk=5), moderation(pk=6), other(pk=7)]
    )
    assert verdict == Verdict(
        ModerationStatus.APPROVED, [{"rule": "all_clear", "analyses": [5, 6]}]
    )


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(STATUSES, st.dictionaries(st.sampled_from("ABC"), ANSWERS)),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["review", "pending"]),
)
def test_the_verdict_follows_the_worst_moderation_result(
    rows: list[tuple[str, dict[str, str]]], on_failure: str
) -> None:
    analyses = [
        moderation(status, answers, pk=n) for n, (status, answers) in enumerate(rows)
    ]
    verdict = policy(on_failure).decide(analyses)

    finished = {AnalysisStatus.SUCCEEDED, AnalysisStatus.FAILED, AnalysisStatus.SKIPPED}
    if any(status not in finished for status, _ in rows):
        assert verdict is None
        return
    assert verdict is not None
    succeeded = [a for s, a in rows if s == AnalysisStatus.SUCCEEDED]
    answers = [answer for found in succeeded for answer in found.values()]
    if "yes" in answers:
        expected = ModerationStatus.REJECTED
    elif len(succeeded) < len(rows):
        expected = (
            ModerationStatus.PENDING
            if on_failure == "pending"
            else ModerationStatus.REVIEW
        )
    elif any(answer != "no" for answer in answers):
        expected = ModerationStatus.REVIEW
    else:
        expected = ModerationStatus.APPROVED
    assert verdict.status == expected
    # Every verdict but an approval says why, and every reason is worded.
    assert verdict.reasons
    for reason in verdict.reasons:
        assert describe(reason, DefaultPolicy(label_rules=[]))


@pytest.fixture
def tagged_photo(
    django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> list[Analysis]:
    """A photo whose tagging found a weapon (0.7) and a cat (no confidence)."""
    memory_backend.set_result(
        "google_tagging",
        {
            "label_annotations": {
                "labels": [{"label": "Weapon", "score": 0.7}, {"label": "Cat"}]
            }
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=ContentFile(png_bytes(2), name="t.png"))
    return list(photo.analyses.prefetch_related("tags"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "status", "labels"),
    [
        ({"label": "weapon", "review": 0.5, "reject": 0.9}, "review", ["Weapon"]),
        ({"label": "weapon", "review": 0.5, "reject": 0.7}, "rejected", ["Weapon"]),
        ({"label": "weapon", "review": 0.8}, "approved", []),
        # A tag without a confidence counts as certain.
        ({"label": "cat", "reject": 0.99}, "rejected", ["Cat"]),
        # "*" (or no label) matches every tag of the type.
        ({"label": "*", "review": 0.6}, "review", ["Weapon", "Cat"]),
    ],
)
def test_label_rules_judge_the_tags_of_their_type(
    tagged_photo: list[Analysis], rule: dict[str, Any], status: str, labels: list[str]
) -> None:
    rules = [{"type": "google_tagging", **rule}]
    verdict = DefaultPolicy(label_rules=rules, on_failure="review").decide(tagged_photo)
    assert verdict is not None and verdict.status == status
    hits = [r for r in verdict.reasons if r["rule"] == "label"]
    assert sorted(r["label"] for r in hits) == sorted(labels)
    tagging = next(a for a in tagged_photo if a.analysis_type == "google_tagging")
    assert all(r["analysis"] == tagging.pk for r in hits)


# -- reasons in words ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ({"rule": "question_unknown", "question": "Gore?"}, "unsure: Gore?"),
        ({"rule": "label", "label": "Cat", "confidence": None}, "label Cat"),
        (
            {"rule": "analysis_not_succeeded", "type": "t", "status": "skipped"},
            "t skipped: no reason given",
        ),
        ({"rule": "released"}, "released to the automatic policy"),
        ({"rule": "all_clear", "analyses": [1]}, "every moderation check passed"),
        ({"rule": "no_moderation_analyses"}, "no moderation analysis configured"),
        ({"rule": "content_changed"}, "new content in ?"),
        ({"rule": "bare"}, "bare"),
    ],
)
def test_describe_words_every_rule_the_app_writes(reason: Any, text: str) -> None:
    assert moderation_module.describe_default(reason) == text


def test_short_key_keeps_the_scheme_and_cuts_the_digest() -> None:
    digest = "ab" * 32
    assert moderation_module.short_key(f"sha256:{digest}") == f"sha256:{digest[:12]}…"
    assert moderation_module.short_key("sha256:abc") == "sha256:abc"
    assert moderation_module.short_key(digest, chars=4) == f"{digest[:4]}…"


@pytest.mark.django_db
def test_a_followed_decision_is_described_with_its_origin(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.contrib.auth.models import User

    from django_cloudinary_analysis import services

    reviewer = User.objects.create_user("rita")
    with django_capture_on_commit_callbacks(execute=True):
        first = Photo.objects.create(image=ContentFile(png_bytes(8), name="a.png"))
    origin = services.reject(first, reviewer, note="no")
    with django_capture_on_commit_callbacks(execute=True):
        copy = Photo.objects.create(image=ContentFile(png_bytes(8), name="b.png"))
    decision = copy.moderation_history.first()
    assert decision is not None and decision.follows_id == origin.pk

    [text] = moderation_module.describe_decision(decision)

    assert text.startswith(
        f"follows decision #{origin.pk} (rejected) by rita on {origin.content_type} "
        f"#{first.pk}, identical content (sha256:"
    )
    # Once the origin is gone the reason still reads, from what it stored.
    origin_pk = origin.pk
    origin.delete()
    decision.refresh_from_db()
    assert moderation_module.follows_details(decision) == {}
    [text] = moderation_module.describe_decision(decision)
    key = moderation_module.short_key(decision.reasons[0]["content_key"])
    assert text == (
        f"follows decision #{origin_pk} (rejected) by user #{reviewer.pk} on "
        f"{origin.content_type_id}:{first.pk}, identical content ({key})"
    )
