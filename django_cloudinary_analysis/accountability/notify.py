"""Emails to uploaders: their statement of reasons and the answer to an appeal.

A ``Notification`` row is written first, then a Celery task sends it after
the commit (``tasks.send_uploader_notification``), so a slow mail server never
holds up a worker's transaction. Failures are retried with backoff and
recorded on the row (``status``, ``attempts``, ``error``).

Templates (override them in the site's templates directory)::

    cloudinary_analysis/accountability/email/<kind>_subject.txt
    cloudinary_analysis/accountability/email/<kind>.txt
    cloudinary_analysis/accountability/email/<kind>.html

with ``<kind>`` ``statement`` or ``appeal_closed``. They render in the
recipient's language: ``recipient.language`` when the user model has it,
else ``LANGUAGE_CODE``.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation

from django_cloudinary_analysis.accountability import statements
from django_cloudinary_analysis.accountability.models import (
    Appeal,
    Notification,
    NotificationStatus,
    StatementOfReasons,
)
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.models import ModerationDecision

logger = logging.getLogger(__name__)

TEMPLATE_DIR = "cloudinary_analysis/accountability/email"

#: What a failed send may raise and be retried for (the mail backends' errors).
RETRYABLE = (smtplib.SMTPException, OSError, TimeoutError)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one delivery attempt did; ``retry_in`` asks the task to come back."""

    status: str
    retry_in: float | None = None


def _email_of(user: Any) -> str:
    if user is None:
        return ""
    field = getattr(type(user), "EMAIL_FIELD", "email")
    return str(getattr(user, field, "") or "")


def queue(
    kind: str,
    decision: ModerationDecision,
    recipient: Any,
    appeal: Appeal | None = None,
) -> Notification | None:
    """Record a notification and send it after the commit, when enabled."""
    if not app_settings.NOTIFY_UPLOADERS or recipient is None:
        return None
    email = _email_of(recipient)
    notification = Notification.objects.create(
        kind=kind,
        decision=decision,
        appeal=appeal,
        recipient=recipient if getattr(recipient, "pk", None) is not None else None,
        email=email,
        status=NotificationStatus.PENDING if email else NotificationStatus.FAILED,
        error="" if email else "the uploader has no email address",
    )
    if email:
        transaction.on_commit(lambda: enqueue(notification.pk))
    return notification


NOTIFY_TASK = "cloudinary_analysis.send_uploader_notification"


def enqueue(notification_id: int) -> None:
    """Hand the notification to a worker (a refusing broker leaves it pending
    for ``recover_stuck``)."""
    from django_cloudinary_analysis.services.dispatch import publish

    publish(NOTIFY_TASK, notification_id)


def appeal_url(decision: ModerationDecision) -> str:
    """Where the uploader appeals (absolute when APPEAL_BASE_URL is set)."""
    try:
        path = reverse(
            "cloudinary_analysis:appeal",
            kwargs={
                "content_type": f"{decision.content_type.app_label}."
                f"{decision.content_type.model}",
                "object_id": decision.object_id,
            },
        )
    except NoReverseMatch:
        return ""
    base = (app_settings.APPEAL_BASE_URL or "").rstrip("/")
    return f"{base}{path}"


def render(notification: Notification) -> tuple[str, str, str]:
    """Subject, text body and HTML body, in the recipient's language."""
    decision = notification.decision
    statement = StatementOfReasons.objects.filter(decision=decision).first()
    language = (
        getattr(notification.recipient, "language", None) or settings.LANGUAGE_CODE
    )
    with translation.override(language):
        context: dict[str, Any] = {
            "notification": notification,
            "recipient": notification.recipient,
            "decision": decision,
            "object": decision.content_object,
            "appeal": notification.appeal,
            "appeal_url": appeal_url(decision),
        }
        if statement is not None:
            context.update(statements.statement_context(statement))
        name = f"{TEMPLATE_DIR}/{notification.kind}"
        subject = render_to_string(f"{name}_subject.txt", context)
        text = render_to_string(f"{name}.txt", context)
        html = render_to_string(f"{name}.html", context)
    return " ".join(subject.split()), text, html


def deliver(notification_id: int) -> DeliveryOutcome:
    """Send one notification; record success, a retry or the final failure."""
    # The claim: of two messages for one notification, one sends.
    claimed = Notification.objects.filter(
        pk=notification_id,
        status__in=[NotificationStatus.PENDING, NotificationStatus.RETRYING],
    ).update(status=NotificationStatus.SENDING, claimed_at=timezone.now())
    notification = (
        Notification.objects.select_related("decision__content_type", "recipient")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None or not claimed:
        return DeliveryOutcome(notification.status if notification else "missing")
    attempts = notification.attempts + 1
    try:
        subject, text, html = render(notification)
        message = EmailMultiAlternatives(
            subject,
            text,
            app_settings.NOTIFY_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
            [notification.email],
        )
        message.attach_alternative(html, "text/html")
        message.send()
    except RETRYABLE as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        if attempts < app_settings.NOTIFY_MAX_ATTEMPTS:
            from django_cloudinary_analysis.services import retry_delay

            delay = retry_delay(attempts)
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.RETRYING, attempts=attempts, error=reason
            )
            logger.warning(
                "notification %s failed, retry in %.0f s: %s",
                notification.pk,
                delay,
                reason,
                extra={"notification_id": notification.pk},
            )
            return DeliveryOutcome(NotificationStatus.RETRYING, retry_in=delay)
        _fail(notification, attempts, f"{reason} (gave up after {attempts} attempts)")
        return DeliveryOutcome(NotificationStatus.FAILED)
    except Exception as exc:  # a template error: retrying cannot help
        _fail(notification, attempts, f"{type(exc).__name__}: {exc}"[:1000])
        raise
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENT,
        attempts=attempts,
        error="",
        sent_at=timezone.now(),
    )
    logger.info(
        "notification %s sent",
        notification.pk,
        extra={"notification_id": notification.pk},
    )
    return DeliveryOutcome(NotificationStatus.SENT)


def _fail(notification: Notification, attempts: int, reason: str) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.FAILED, attempts=attempts, error=reason
    )
    logger.error(
        "notification %s failed: %s",
        notification.pk,
        reason,
        extra={"notification_id": notification.pk},
    )
