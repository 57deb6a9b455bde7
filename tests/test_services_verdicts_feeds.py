"""Which finished analyses re-decide the verdict (``verdicts.feeds_verdict``).

Only types the policy reads cost the verdict's statements; the others end
without locking the object, unless nothing configured is read by the policy
(then approval waits for every analysis), the model has several files (any
file's key may complete the content a human decision is followed on) or the
policy does not say what it reads.
"""

from __future__ import annotations

import pytest

from django_cloudinary_analysis.services.verdicts import feeds_verdict
from tests.models import Article, Photo


def test_only_the_types_the_policy_reads_feed_it() -> None:
    assert feeds_verdict(Photo, "ai_vision_moderation")
    assert not feeds_verdict(Photo, "google_tagging")
    assert not feeds_verdict(Photo, "image_quality")


def test_a_label_rule_makes_its_type_feed_the_verdict(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "LABEL_RULES": [{"type": "google_tagging", "label": "weapon", "reject": 0.5}],
    }
    assert feeds_verdict(Photo, "google_tagging")
    assert not feeds_verdict(Photo, "image_quality")


def test_every_type_feeds_it_without_a_moderation_type(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "MODERATION_POLICY": "tests.test_services_verdicts_feeds.TaggingOnlyPolicy",
    }
    assert feeds_verdict(Photo, "google_tagging")


def test_every_type_feeds_it_with_several_files() -> None:
    assert feeds_verdict(Article, "image_quality")


@pytest.mark.parametrize("analysis_type", ["google_tagging", "image_quality"])
def test_a_policy_that_names_nothing_hears_every_type(settings, analysis_type) -> None:  # type: ignore[no-untyped-def]
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "MODERATION_POLICY": "tests.test_services_verdicts_feeds.OpaquePolicy",
    }
    assert feeds_verdict(Photo, analysis_type)


class TaggingOnlyPolicy:
    """Reads a type Photo does not have configured."""

    def relevant_types(self) -> set[str]:
        return {"coco"}

    def decide(self, analyses):  # type: ignore[no-untyped-def]
        return None


class OpaquePolicy:
    """Says nothing about what it reads."""

    def decide(self, analyses):  # type: ignore[no-untyped-def]
        return None
