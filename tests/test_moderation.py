"""The moderation policy's words for its reasons (moderation.describe)."""

from __future__ import annotations

from typing import Any

import pytest

from django_cloudinary_analysis import moderation
from django_cloudinary_analysis.moderation import DefaultPolicy, describe


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
    assert moderation.describe({"rule": "too_dark"}, DefaultPolicy()) == "too_dark"
