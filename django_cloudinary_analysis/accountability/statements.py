"""Statements of reasons: what was decided about an upload, why, and how to object.

A statement is built for every rejection, automatic or by a person, and
stored with the decision (``StatementOfReasons``). Its grounds keep the
policy's reasons as codes with their details, so they can be put in words in
the reader's language when shown (``describe_ground``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connections, transaction
from django.utils.translation import gettext as _

from django_cloudinary_analysis.accountability.models import (
    Appeal,
    StatementOfReasons,
)
from django_cloudinary_analysis.mixins import analysis_owner
from django_cloudinary_analysis.models import ModerationDecision

if TYPE_CHECKING:
    from django.db.models import Model

# Reason keys copied into a ground (the rest, e.g. analysis ids, stays on
# the decision and in the audit export).
_GROUND_KEYS = ("rule", "type", "field", "question", "label", "confidence", "status")


def build_grounds(decision: ModerationDecision) -> list[dict[str, Any]]:
    """The decision's reasons as grounds (JSON-ready), moderator's note included."""
    grounds = []
    for reason in decision.reasons or []:
        if not isinstance(reason, dict):
            continue
        grounds.append({k: reason[k] for k in _GROUND_KEYS if k in reason})
    if decision.note:
        grounds.append({"rule": "note", "note": decision.note})
    return grounds


def describe_ground(ground: dict[str, Any]) -> str:
    """Put one ground in words, in the active language."""
    rule = ground.get("rule")
    values = {
        "type": ground.get("type", ""),
        "field": ground.get("field", ""),
        "question": ground.get("question", ""),
        "label": ground.get("label", ""),
        "status": ground.get("status", ""),
        "note": ground.get("note", ""),
        "confidence": (
            f"{ground['confidence']:.0%}"
            if isinstance(ground.get("confidence"), (int, float))
            else "?"
        ),
    }
    if rule == "question_yes":
        return _('The automatic moderation answered "yes" to: %(question)s') % values
    if rule == "question_unknown":
        return _("The automatic moderation could not rule out: %(question)s") % values
    if rule == "label":
        return (
            _('The %(type)s analysis found "%(label)s" (confidence %(confidence)s).')
            % values
        )
    if rule == "analysis_not_succeeded":
        return _("The %(type)s analysis did not succeed (%(status)s).") % values
    if rule == "human":
        return _("A moderator reviewed the upload and rejected it.")
    if rule == "note":
        return _("Moderator's note: %(note)s") % values
    if rule == "released":
        return _("A moderator asked the policy to decide again.")
    return _("Policy rule: %(rule)s") % {"rule": rule or "?"}


def is_appealable(decision: ModerationDecision) -> bool:
    """Whether this rejection can still be appealed.

    Only the object's current verdict can be appealed, once; the reviewer's
    answer to an appeal is final.
    """
    if decision.status != "rejected":
        return False
    if Appeal.objects.filter(decision=decision).exists():
        return False
    if Appeal.objects.filter(closing_decision=decision).exists():
        return False
    latest = (
        ModerationDecision.objects.filter(
            content_type_id=decision.content_type_id, object_id=decision.object_id
        )
        .values_list("pk", flat=True)
        .first()
    )
    return latest == decision.pk


def issue_statement(
    instance: Model, decision: ModerationDecision, *, closes_appeal: bool | None = None
) -> StatementOfReasons:
    """Store the statement of reasons for a rejection (once per decision).

    ``closes_appeal`` says whether the decision answered an appeal (the
    answer is final, so not appealable); ``None`` looks it up.
    """
    if closes_appeal is None:
        closes_appeal = Appeal.objects.filter(closing_decision=decision).exists()
    owner = analysis_owner(instance)
    fields = {
        "decision": decision,
        "owner": owner if getattr(owner, "pk", None) is not None else None,
        "automated": decision.decided_by_kind != ModerationDecision.DecidedByKind.HUMAN,
        "grounds": build_grounds(decision),
        "appealable": not closes_appeal,
    }
    # One INSERT (no read first, no transaction of its own in autocommit);
    # a second issue of the same decision finds the first.
    connection = connections[StatementOfReasons.objects.db]
    try:
        if connection.in_atomic_block:  # keep the caller's transaction usable
            with transaction.atomic():
                return StatementOfReasons.objects.create(**fields)
        return StatementOfReasons.objects.create(**fields)
    except IntegrityError:
        return StatementOfReasons.objects.get(decision=decision)


def statement_context(statement: StatementOfReasons) -> dict[str, Any]:
    """What the templates show: the decision, the grounds in words, the appeal."""
    decision = statement.decision
    return {
        "statement": statement,
        "decision": decision,
        "automated": statement.automated,
        "decided_at": decision.decided_at,
        "grounds": [describe_ground(g) for g in statement.grounds],
        "appealable": statement.appealable and is_appealable(decision),
    }
