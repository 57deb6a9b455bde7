"""Appeals: the uploader objects to a rejection; a reviewer answers.

``open_appeal`` puts the object back in the review queue with a human
"review" decision (so no late automatic verdict replaces it); the next
approving or rejecting decision closes the appeal (``close_for``), from the
``moderation_changed`` receiver.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis import services, signals
from django_cloudinary_analysis.accountability.models import Appeal, AppealStatus
from django_cloudinary_analysis.exceptions import AppealError
from django_cloudinary_analysis.mixins import analysis_owner, content_type_for
from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.db.models import Model

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 5000


def is_owner(obj: Model, user: Any) -> bool:
    """Whether ``user`` is the uploader of ``obj``."""
    owner = analysis_owner(obj)
    if owner is None or user is None or not user.is_authenticated:
        return False
    return bool(getattr(owner, "pk", owner) == user.pk)


def open_appeal(obj: Model, user: AbstractBaseUser, note: str = "") -> Appeal:
    """Appeal the current rejection of ``obj`` as its uploader.

    Raises ``AppealError`` (codes ``not_owner``, ``not_rejected``,
    ``already_appealed``, ``final``, ``note_too_long``) and changes nothing.
    """
    if not is_owner(obj, user):
        raise AppealError(_("Only the uploader can appeal."), "not_owner")
    if len(note) > NOTE_MAX_LENGTH:
        raise AppealError(
            _("The note is too long (at most %(max)d characters).")
            % {"max": NOTE_MAX_LENGTH},
            "note_too_long",
        )
    try:
        with transaction.atomic():
            services._lock_object(obj)
            decision = ModerationDecision.objects.for_object(obj).first()
            if decision is None or decision.status != ModerationStatus.REJECTED:
                raise AppealError(
                    _("Only a rejection can be appealed."), "not_rejected"
                )
            if Appeal.objects.filter(decision=decision).exists():
                raise AppealError(
                    _("This decision was already appealed."), "already_appealed"
                )
            if Appeal.objects.filter(closing_decision=decision).exists():
                raise AppealError(
                    _("This decision answered an appeal and is final."), "final"
                )
            appeal = Appeal.objects.create(
                decision=decision,
                content_type=content_type_for(obj),
                object_id=str(obj.pk),
                appellant=user,
                note=note,
            )
            # A human "review" verdict pins the object in the queue until a
            # reviewer answers (a late automatic verdict cannot replace it).
            review = services.send_to_review(obj, user, note)
            appeal.review_decision = review
            appeal.save(update_fields=["review_decision"])
    except IntegrityError as exc:  # a concurrent appeal of the same decision
        raise AppealError(
            _("This decision was already appealed."), "already_appealed"
        ) from exc
    logger.info(
        "appeal %s opened against decision %s",
        appeal.pk,
        decision.pk,
        extra={"appeal_id": appeal.pk, "decision_id": decision.pk},
    )
    transaction.on_commit(
        lambda: signals.appeal_opened.send(
            sender=type(obj), instance=obj, appeal=appeal
        )
    )
    return appeal


def close_for(obj: Model, decision: ModerationDecision) -> Appeal | None:
    """Close the object's open appeal with ``decision`` as its answer, if any.

    Approval overturns, rejection upholds, a content change supersedes; the
    appeal's own "review" decision and other review/pending verdicts leave it
    open.
    """
    if decision.decided_by_kind == ModerationDecision.DecidedByKind.SYSTEM:
        outcome = AppealStatus.SUPERSEDED
    elif decision.status == ModerationStatus.APPROVED:
        outcome = AppealStatus.OVERTURNED
    elif decision.status == ModerationStatus.REJECTED:
        outcome = AppealStatus.UPHELD
    else:
        return None
    newest = getattr(decision, "newest_before", ...)
    if newest is None or (
        newest is not ...
        and newest.status in (ModerationStatus.APPROVED, ModerationStatus.REJECTED)
    ):
        # An open appeal keeps its object in review until a verdict closes
        # it: after no decision, or right after an approval or a rejection
        # (services read it under the object's lock), none can be open.
        return None
    open_appeals = Appeal.objects.filter(
        content_type=decision.content_type_id,
        object_id=decision.object_id,
        status=AppealStatus.OPEN,
    )
    if not open_appeals.exists():  # the common case: one read, no transaction
        return None
    with transaction.atomic():
        appeal = (
            Appeal.objects.select_for_update()
            .filter(
                content_type=decision.content_type_id,
                object_id=decision.object_id,
                status=AppealStatus.OPEN,
            )
            .exclude(review_decision=decision)
            .first()
        )
        if appeal is None:
            return None
        appeal.status = outcome
        appeal.closing_decision = decision
        appeal.closed_at = timezone.now()
        appeal.save(update_fields=["status", "closing_decision", "closed_at"])
    logger.info(
        "appeal %s closed: %s",
        appeal.pk,
        outcome,
        extra={"appeal_id": appeal.pk, "decision_id": decision.pk},
    )
    return appeal


def annotate_queue(decisions: QuerySet[ModerationDecision]) -> QuerySet[Any]:
    """Mark queue rows that are appeals: ``is_appeal`` and ``appeal_note``.

    For the review queue (admin or API): one subquery in the same statement.
    """
    open_appeals = Appeal.objects.filter(
        review_decision=OuterRef("pk"), status=AppealStatus.OPEN
    )
    return decisions.annotate(
        is_appeal=Exists(open_appeals),
        appeal_note=Subquery(open_appeals.values("note")[:1]),
    )


def open_for(objects: QuerySet[Any]) -> QuerySet[Any]:
    """The objects of a mixin model's queryset that have an open appeal."""
    model = objects.model
    from django_cloudinary_analysis.mixins import object_id_expression

    ids = (
        Appeal.objects.filter(
            content_type=content_type_for(model), status=AppealStatus.OPEN
        )
        .annotate(_oid=object_id_expression(model, objects.db))
        .values("_oid")
    )
    return objects.filter(pk__in=ids)
