"""The demo's moderation policy: the app's default, plus a rule on image quality.

It shows the ``MODERATION_POLICY`` extension point. Everything the default
policy does still holds (a "yes" rejects, an "unknown" answer or a matching
``LABEL_RULES`` tag sends to review, a failed check fails closed); on top of
that an image the quality analysis grades "low" goes to review, so a person
decides whether a blurred or badly exposed upload may be shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationStatus,
)
from django_cloudinary_analysis.moderation import DefaultPolicy, Verdict

QUALITY_TYPE = "image_quality"


class ReviewLowQuality(DefaultPolicy):
    """DefaultPolicy, and a "low" image_quality grade sends the object to review."""

    def relevant_types(self) -> set[str]:
        """Wait for the quality analysis too: it bears on the verdict here."""
        return super().relevant_types() | {QUALITY_TYPE}

    def decide(self, analyses: Sequence[Analysis]) -> Verdict | None:
        """Return the default verdict, turned to review by a low quality grade."""
        verdict = super().decide(analyses)
        if verdict is None or verdict.status not in (
            ModerationStatus.APPROVED,
            ModerationStatus.REVIEW,
        ):
            return verdict
        low = [reason for a in analyses if (reason := self.low_quality(a))]
        if not low:
            return verdict
        kept = verdict.reasons if verdict.status == ModerationStatus.REVIEW else []
        return Verdict(ModerationStatus.REVIEW, [*kept, *low])

    def describe(self, reason: Any) -> str | None:
        """Word this policy's own reason; the app words the rest."""
        if isinstance(reason, dict) and reason.get("rule") == "low_quality":
            score = reason.get("score")
            if isinstance(score, (int, float)):
                return gettext("low quality %(score).2f") % {"score": score}
            return gettext("low quality")
        return None

    @staticmethod
    def low_quality(analysis: Analysis) -> dict[str, Any] | None:
        """Return the review reason for a succeeded "low" grade, else None."""
        if (
            analysis.analysis_type != QUALITY_TYPE
            or analysis.status != AnalysisStatus.SUCCEEDED
        ):
            return None
        quality = (analysis.result or {}).get("quality") or {}
        if quality.get("word") != "low":
            return None
        score = quality.get("score")
        return {
            "rule": "low_quality",
            "score": round(score, 2) if isinstance(score, float) else score,
            "field": analysis.field_name,
        }
