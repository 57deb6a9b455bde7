"""Moderation policy: analysis results → approved, rejected or review.

The policy is an import string (``MODERATION_POLICY``) naming a class with
``decide(analyses) -> Verdict | None``. It receives the newest analysis per
(field, type) for the object's current files, tags prefetched; ``None``
means "no verdict yet" (something that matters is still running).

A policy may also have ``describe(reason) -> str | None`` that words the
reasons it produces; :func:`describe` asks it first, so the admin shows a
custom policy's reasons in words, and falls back to :func:`describe_default`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationDecision,
    ModerationStatus,
)

MODERATION_TYPE = "ai_vision_moderation"


@dataclass(frozen=True)
class Verdict:
    """A policy's decision with the reasons behind it (JSON-ready)."""

    status: str
    reasons: list[dict[str, Any]] = field(default_factory=list)


class DefaultPolicy:
    """Reject on "yes", review on "unknown" or matching labels, fail closed.

    - ai_vision_moderation: "yes" to a rejection question rejects, "unknown"
      sends to review.
    - ``LABEL_RULES``: a tag from the named type whose confidence reaches
      ``reject`` rejects, one that reaches ``review`` sends to review (the
      band between the two thresholds is the review band).
    - A failed or skipped moderation analysis never approves: the object goes
      to review (``ON_FAILURE = "review"``) or stays pending
      (``ON_FAILURE = "pending"``).
    - With no moderation analysis configured the object is approved once its
      analyses finish: nothing was asked to object to it.
    """

    def __init__(
        self,
        label_rules: Sequence[dict[str, Any]] | None = None,
        on_failure: str | None = None,
    ) -> None:
        from django_cloudinary_analysis.conf import app_settings

        self.label_rules = list(
            app_settings.LABEL_RULES if label_rules is None else label_rules
        )
        self.on_failure = on_failure or app_settings.ON_FAILURE

    def relevant_types(self) -> set[str]:
        """Analysis types whose results bear on the verdict."""
        return {MODERATION_TYPE} | {rule["type"] for rule in self.label_rules}

    def decide(self, analyses: Sequence[Analysis]) -> Verdict | None:
        """Return the verdict, or None while a relevant analysis is unfinished."""
        if not analyses:
            return None
        relevant = [a for a in analyses if a.analysis_type in self.relevant_types()]
        if not relevant:
            if any(not a.is_finished for a in analyses):
                return None
            return Verdict(
                ModerationStatus.APPROVED,
                [{"rule": "no_moderation_analyses"}],
            )
        if any(not a.is_finished for a in relevant):
            return None

        rejects: list[dict[str, Any]] = []
        reviews: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for analysis in relevant:
            where = {"analysis": analysis.pk, "type": analysis.analysis_type}
            if analysis.field_name:
                where["field"] = analysis.field_name
            if analysis.status != AnalysisStatus.SUCCEEDED:
                failures.append(
                    {
                        "rule": "analysis_not_succeeded",
                        "status": analysis.status,
                        "reason": analysis.error_message,
                        **where,
                    }
                )
                continue
            if analysis.analysis_type == MODERATION_TYPE:
                answers = (analysis.result or {}).get("answers", {})
                for question, answer in answers.items():
                    if answer == "yes":
                        rejects.append(
                            {"rule": "question_yes", "question": question, **where}
                        )
                    elif answer != "no":
                        reviews.append(
                            {"rule": "question_unknown", "question": question, **where}
                        )
            for rule in self.label_rules:
                if rule["type"] != analysis.analysis_type:
                    continue
                for tag in analysis.tags.all():
                    if rule.get("label", "*") not in ("*", tag.name):
                        continue
                    confidence = 1.0 if tag.confidence is None else tag.confidence
                    hit = {
                        "rule": "label",
                        "label": tag.label,
                        "confidence": tag.confidence,
                        **where,
                    }
                    if rule.get("reject") is not None and confidence >= rule["reject"]:
                        rejects.append(hit)
                    elif (
                        rule.get("review") is not None and confidence >= rule["review"]
                    ):
                        reviews.append(hit)

        if rejects:
            return Verdict(ModerationStatus.REJECTED, rejects + reviews + failures)
        if failures:
            status = (
                ModerationStatus.PENDING
                if self.on_failure == "pending"
                else ModerationStatus.REVIEW
            )
            return Verdict(status, failures + reviews)
        if reviews:
            return Verdict(ModerationStatus.REVIEW, reviews)
        return Verdict(
            ModerationStatus.APPROVED,
            [{"rule": "all_clear", "analyses": [a.pk for a in relevant]}],
        )


def get_policy() -> Any:
    """Instantiate the configured moderation policy."""
    from django_cloudinary_analysis.conf import import_setting

    return import_setting("MODERATION_POLICY")()


def describe_default(reason: Any) -> str:
    """One line of plain text for a reason of the default policy or the services.

    Unknown rules are shown as ``rule: key=value, …`` so nothing is hidden.
    """
    if not isinstance(reason, dict):
        return str(reason)
    rule = reason.get("rule")
    where = reason.get("field") or ""
    question = {"question": reason.get("question", "?")}
    if rule == "question_yes":
        text = gettext("answered yes: %(question)s") % question
    elif rule == "question_unknown":
        text = gettext("unsure: %(question)s") % question
    elif rule == "label":
        confidence = reason.get("confidence")
        text = gettext("label %(label)s") % {"label": reason.get("label", "?")}
        if confidence is not None:
            text += f" ({float(confidence):.2f})"
    elif rule == "analysis_not_succeeded":
        text = gettext("%(type)s %(status)s: %(reason)s") % {
            "type": reason.get("type", "?"),
            "status": reason.get("status", "?"),
            "reason": reason.get("reason") or gettext("no reason given"),
        }
    elif rule == "content_changed":
        text = gettext("new content in %(fields)s") % {
            "fields": ", ".join(map(str, reason.get("fields") or [])) or "?"
        }
        where = ""
    elif rule == "follows_content":
        text = _describe_follows(reason)
    elif rule == "human":
        text = gettext("decided by a person")
    elif rule == "released":
        text = gettext("released to the automatic policy")
    elif rule == "all_clear":
        text = gettext("every moderation check passed")
    elif rule == "no_moderation_analyses":
        text = gettext("no moderation analysis configured")
    else:
        extras = ", ".join(
            f"{key}={value}" for key, value in reason.items() if key != "rule"
        )
        text = f"{rule}: {extras}" if extras else str(rule)
    return f"{text} ({where})" if where else text


def short_key(key: str, chars: int = 12) -> str:
    """A content key cut for display: its scheme and the first ``chars`` characters.

    ``sha256:3f9a…`` stays recognisable; the full key is in the JSON.
    """
    scheme, sep, rest = key.rpartition(":")
    if len(rest) <= chars:
        return key
    return f"{scheme}{sep}{rest[:chars]}…"


def _describe_follows(reason: dict[str, Any]) -> str:
    """Where a followed verdict came from (see :func:`follows_details`)."""
    by = reason.get("by")
    reviewer = reason.get("reviewer") or (
        gettext("user #%(id)s") % {"id": by} if by is not None else gettext("a person")
    )
    status = reason.get("status") or "?"
    with contextlib.suppress(ValueError):
        status = str(ModerationStatus(status).label)
    text = gettext(
        "follows decision #%(decision)s (%(status)s) by %(reviewer)s on "
        "%(object)s, identical content"
    ) % {
        "decision": reason.get("decision", "?"),
        "status": status,
        "reviewer": reviewer,
        "object": reason.get("object_label") or reason.get("object") or "?",
    }
    key = reason.get("content_key")
    return f"{text} ({short_key(str(key))})" if key else text


def follows_details(decision: ModerationDecision) -> dict[str, Any]:
    """What a followed decision adds to its ``follows_content`` reason.

    The reviewer's name, the verdict and the object, read from
    ``decision.follows``: select ``follows__decided_by`` and
    ``follows__content_type`` with the decisions to keep this query-free.
    Empty when the decision follows none (or the followed one was deleted).
    """
    if decision.follows_id is None:
        return {}
    origin = decision.follows
    if origin is None:
        return {}
    details: dict[str, Any] = {
        "status": origin.status,
        "object_label": f"{origin.content_type} #{origin.object_id}",
    }
    if origin.decided_by is not None:
        details["reviewer"] = origin.decided_by.get_username()
    return details


def describe_decision(decision: ModerationDecision, policy: Any = None) -> list[str]:
    """Every reason of ``decision`` in words, followed decisions named in full."""
    if policy is None:
        policy = get_policy()
    details = follows_details(decision)
    reasons = decision.reasons if isinstance(decision.reasons, list) else []
    return [
        describe(
            {**reason, **details}
            if details
            and isinstance(reason, dict)
            and reason.get("rule") == "follows_content"
            else reason,
            policy,
        )
        for reason in reasons
        if reason
    ]


def describe(reason: Any, policy: Any = None) -> str:
    """One line of plain text for one entry of a decision's ``reasons``.

    The policy (the configured one unless given) words its own reasons
    through an optional ``describe(reason)``; ``None`` from it, or no such
    method, falls back to :func:`describe_default`.
    """
    if policy is None:
        policy = get_policy()
    own = getattr(policy, "describe", None)
    if callable(own):
        text = own(reason)
        if text is not None:
            return str(text)
    return describe_default(reason)
