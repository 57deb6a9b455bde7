"""Statements of reasons and the emails that carry them."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone, translation
from django.utils.formats import date_format

from django_cloudinary_analysis import services, signals
from django_cloudinary_analysis.accountability import notify, statements
from django_cloudinary_analysis.mixins import analysis_owner
from django_cloudinary_analysis.models import Notification, StatementOfReasons
from tests.models import OwnedPhoto
from tests.support.accountability import URLCONF, image, reject_automatically, user

pytestmark = [pytest.mark.django_db, pytest.mark.urls(URLCONF)]

QUESTION = "Does the image contain nudity or sexual content?"


class FailingBackend(BaseEmailBackend):
    """A mail server that is down."""

    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")


@pytest.fixture
def notify_on(settings: Any) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "NOTIFY_UPLOADERS": True,
        "NOTIFY_FROM_EMAIL": "moderation@site.example",
        "APPEAL_BASE_URL": "https://site.example/",
    }


@pytest.fixture
def upload(django_capture_on_commit_callbacks: Any, memory_backend: Any) -> Any:
    def make(owner: Any, *, reject: bool = True) -> OwnedPhoto:
        if reject:
            reject_automatically(memory_backend, QUESTION)
        with django_capture_on_commit_callbacks(execute=True):
            return OwnedPhoto.objects.create(owner=owner, image=image())

    return make


def test_automatic_rejection_gets_a_statement_and_an_email(
    upload: Any, notify_on: Any
) -> None:
    owner = user("ann")
    issued: list[dict[str, Any]] = []
    signals.statement_issued.connect(
        lambda **kw: issued.append(kw), weak=False, dispatch_uid="t-issued"
    )
    try:
        photo = upload(owner)
    finally:
        signals.statement_issued.disconnect(dispatch_uid="t-issued")
    statement = StatementOfReasons.objects.get()
    assert statement.owner == owner and statement.automated is True
    assert statement.grounds[0]["rule"] == "question_yes"
    assert statement.grounds[0]["question"] == QUESTION
    assert statement.decision == photo.moderation_history.first()
    assert [(kw["instance"], kw["statement"], kw["owner"]) for kw in issued] == [
        (photo, statement, owner)
    ]
    [message] = mail.outbox
    assert message.to == ["ann@example.com"]
    assert message.from_email == "moderation@site.example"
    assert message.subject == "Your upload was rejected: statement of reasons"
    assert QUESTION in message.body and "automatically" in message.body
    link = (
        f"https://site.example/cloudinary-analysis/appeal/tests.ownedphoto/{photo.pk}/"
    )
    assert link in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and f'href="{link}"' in html
    row = Notification.objects.get()
    assert (row.kind, row.status, row.attempts, row.error) == (
        "statement",
        "sent",
        1,
        "",
    )


def test_human_rejection_statement_carries_the_note(
    upload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    photo = upload(user("bob"), reject=False)
    with django_capture_on_commit_callbacks(execute=True):
        decision = services.reject(photo, user=user("mod", staff=True), note="spam")
    statement = StatementOfReasons.objects.get(decision=decision)
    assert statement.automated is False
    words = statements.statement_context(statement)["grounds"]
    assert words == [
        "A moderator reviewed the upload and rejected it.",
        "Moderator's note: spam",
    ]
    # Notifications are off by default: the signal and the row, no email.
    assert mail.outbox == [] and Notification.objects.count() == 0


@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_decision_gets_one_statement_however_often_it_is_issued(
    upload: Any, in_transaction: bool
) -> None:
    """The statement is one INSERT; issuing it again (a repeated signal)
    returns the first, and a caller's transaction stays usable."""
    from django.db import transaction

    photo = upload(user("cy"))
    first = StatementOfReasons.objects.get()
    decision = first.decision
    if in_transaction:
        with transaction.atomic():
            again = statements.issue_statement(photo, decision)
            assert StatementOfReasons.objects.count() == 1  # still usable
    else:
        again = statements.issue_statement(photo, decision, closes_appeal=False)
    assert again == first and again.appealable is True
    assert StatementOfReasons.objects.count() == 1


def test_approval_gets_no_statement(upload: Any, notify_on: Any) -> None:
    upload(user("cy"), reject=False)
    assert StatementOfReasons.objects.count() == 0 and mail.outbox == []


@pytest.mark.parametrize(
    ("ground", "words"),
    [
        (
            {
                "rule": "label",
                "type": "google_tagging",
                "label": "Weapon",
                "confidence": 0.93,
            },
            'The google_tagging analysis found "Weapon" (confidence 93%).',
        ),
        (
            {"rule": "question_unknown", "question": "Gore?"},
            "The automatic moderation could not rule out: Gore?",
        ),
        (
            {
                "rule": "analysis_not_succeeded",
                "type": "ai_vision_moderation",
                "status": "failed",
            },
            "The ai_vision_moderation analysis did not succeed (failed).",
        ),
        ({"rule": "site_rule"}, "Policy rule: site_rule"),
    ],
)
def test_grounds_in_words(ground: dict[str, Any], words: str) -> None:
    assert statements.describe_ground(ground) == words


def test_failed_email_is_retried_then_recorded(
    upload: Any, notify_on: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "NOTIFY_MAX_ATTEMPTS": 3,
        "RETRY_BACKOFF": 0.0,
    }
    upload(user("dee"))
    row = Notification.objects.get()
    assert row.status == "failed" and row.attempts == 3
    assert "SMTPServerDisconnected" in row.error and "gave up after 3" in row.error
    # The statement itself is stored whatever happened to the email.
    assert StatementOfReasons.objects.count() == 1


class FlakyBackend(BaseEmailBackend):
    """Fails once, then delivers to the test outbox."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyBackend.failures == 0:
            FlakyBackend.failures += 1
            raise TimeoutError("timed out")
        mail.outbox.extend(messages)
        return len(messages)


def test_email_sent_on_a_later_attempt(
    notify_on: Any, upload: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "RETRY_BACKOFF": 0.0,
    }
    upload(user("eve"))
    row = Notification.objects.get()
    assert (row.status, row.attempts, row.error) == ("sent", 2, "")
    assert len(mail.outbox) == 1
    # A sent notification is never sent twice (a redelivered task).
    assert notify.deliver(row.pk).status == "sent"
    assert len(mail.outbox) == 1
    assert notify.deliver(10_000).status == "missing"


def test_uploader_without_email(upload: Any, notify_on: Any) -> None:
    upload(user("fay", email=""))
    row = Notification.objects.get()
    assert row.status == "failed" and row.error == "the uploader has no email address"
    assert mail.outbox == []


def test_owner_from_a_method() -> None:
    owner = user("gus")

    class WithMethod:
        """Any object: the method wins over AnalysisMeta."""

        class AnalysisMeta:
            owner_field = "nobody"

        def get_analysis_owner(self) -> Any:
            return owner

    assert analysis_owner(WithMethod()) is owner
    assert analysis_owner(OwnedPhoto(owner=owner)) == owner
    assert analysis_owner(OwnedPhoto()) is None


def test_a_failure_is_logged_and_does_not_undo_the_verdict(
    upload: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(statements, "issue_statement", broken)
    photo = upload(user("hal"))
    photo.refresh_from_db()
    assert photo.moderation_status == "rejected"
    assert StatementOfReasons.objects.count() == 0
    [record] = [r for r in caplog.records if "accountability for" in r.message]
    assert record.decision_id == photo.moderation_history.first().pk
    assert "disk full" in record.exc_text


def test_email_in_the_recipients_language(
    upload: Any, notify_on: Any, settings: Any
) -> None:
    settings.LANGUAGE_CODE = "de"
    photo = upload(user("ida"))
    [message] = mail.outbox
    # Django's own catalogue shows the language: the date is formatted in German.
    decided_at = timezone.localtime(photo.moderation_history.first().decided_at)
    with translation.override("de"):
        german = date_format(decided_at, "DATETIME_FORMAT")
    with translation.override("en"):
        english = date_format(decided_at, "DATETIME_FORMAT")
    assert german != english
    assert german in message.body and english not in message.body
    row = Notification.objects.get()
    row.recipient.language = "en"  # a user model with a language field
    assert "rejected on" in notify.render(row)[1]
