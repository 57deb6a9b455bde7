"""The accountability package's reaction to verdict changes.

Connected in the app's ``ready()`` to ``moderation_changed`` (sent after the
commit that recorded the decision): a reviewer's decision closes an open
appeal and tells the uploader; a rejection gets its statement of reasons.
"""

from __future__ import annotations

import logging
from typing import Any

from django_cloudinary_analysis import signals
from django_cloudinary_analysis.accountability import (
    appeals,
    notify,
    statements,
    summaries,
)
from django_cloudinary_analysis.accountability.models import Notification
from django_cloudinary_analysis.mixins import analysis_owner
from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus

logger = logging.getLogger(__name__)


def on_moderation_changed(
    sender: Any,
    instance: Any,
    old: str,
    new: str,
    decision: ModerationDecision,
    **kwargs: Any,
) -> None:
    """Close an answered appeal; issue a statement for a rejection.

    Runs after the verdict's commit, in whichever process decided (often a
    worker): an error here is logged with the decision's id and does not
    undo or retry the analysis that led to it.
    """
    try:
        _account_for(sender, instance, new, decision)
    except Exception:
        logger.exception(
            "accountability for decision %s failed",
            decision.pk,
            extra={"decision_id": decision.pk},
        )


def _account_for(
    sender: Any, instance: Any, new: str, decision: ModerationDecision
) -> None:
    appeal = appeals.close_for(instance, decision)
    statement = None
    if new == ModerationStatus.REJECTED:
        statement = statements.issue_statement(
            instance, decision, closes_appeal=appeal is not None
        )
        signals.statement_issued.send(
            sender=sender, instance=instance, statement=statement, owner=statement.owner
        )
    if appeal is not None:
        signals.appeal_closed.send(
            sender=sender, instance=instance, appeal=appeal, decision=decision
        )
        # The answer carries the new statement when the rejection stands.
        notify.queue(
            Notification.Kind.APPEAL_CLOSED,
            decision,
            appeal.appellant or analysis_owner(instance),
            appeal=appeal,
        )
    elif statement is not None:
        notify.queue(Notification.Kind.STATEMENT, decision, statement.owner)


def connect() -> None:
    """Connect the receivers (idempotent)."""
    signals.moderation_changed.connect(
        on_moderation_changed, dispatch_uid="cloudinary_analysis.accountability"
    )
    summaries.connect()
