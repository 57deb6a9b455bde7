"""Tables of the accountability package: statements, appeals, notifications.

Imported from the app's ``models.py`` so Django registers them under the
``cloudinary_analysis`` label.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _


class StatementOfReasons(models.Model):
    """Why an object was rejected, stored with the decision that rejected it."""

    decision = models.OneToOneField(
        "cloudinary_analysis.ModerationDecision",
        on_delete=models.CASCADE,
        related_name="statement",
        verbose_name=_("decision"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("uploader"),
    )
    automated = models.BooleanField(
        _("automated"), help_text=_("Whether no person took the decision.")
    )
    grounds = models.JSONField(
        _("grounds"),
        default=list,
        blank=True,
        help_text=_("The policy's reasons, each with a code and its details."),
    )
    appealable = models.BooleanField(_("appealable"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("statement of reasons")
        verbose_name_plural = _("statements of reasons")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"statement for decision {self.decision_id}"


class AppealStatus(models.TextChoices):
    """Where an appeal stands; the last three are outcomes."""

    OPEN = "open", _("open")
    OVERTURNED = "overturned", _("overturned")
    UPHELD = "upheld", _("upheld")
    SUPERSEDED = "superseded", _("superseded (content changed)")


class Appeal(models.Model):
    """The uploader's objection to one rejection, and how it ended."""

    decision = models.OneToOneField(
        "cloudinary_analysis.ModerationDecision",
        on_delete=models.CASCADE,
        related_name="appeal",
        verbose_name=_("appealed decision"),
    )
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_("content type")
    )
    object_id = models.CharField(_("object id"), max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")
    appellant = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("appellant"),
    )
    note = models.TextField(_("note"), blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=AppealStatus.choices,
        default=AppealStatus.OPEN,
    )
    review_decision = models.OneToOneField(
        "cloudinary_analysis.ModerationDecision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opened_by_appeal",
        verbose_name=_("review decision"),
        help_text=_("The decision that put the object back in the review queue."),
    )
    closing_decision = models.OneToOneField(
        "cloudinary_analysis.ModerationDecision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="closed_appeal",
        verbose_name=_("closing decision"),
    )
    created_at = models.DateTimeField(_("appealed at"), auto_now_add=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("appeal")
        verbose_name_plural = _("appeals")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "status"],
                name="dca_appeal_object_idx",
            ),
            models.Index(fields=["created_at"], name="dca_appeal_created_idx"),
        ]

    def __str__(self) -> str:
        return f"appeal of decision {self.decision_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        """Whether a reviewer still has to answer."""
        return self.status == AppealStatus.OPEN


class NotificationStatus(models.TextChoices):
    """Where one email to an uploader stands."""

    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    RETRYING = "retrying", _("retrying")
    FAILED = "failed", _("failed")


class Notification(models.Model):
    """One message to an uploader: a statement of reasons or an appeal's end."""

    class Kind(models.TextChoices):
        STATEMENT = "statement", _("statement of reasons")
        APPEAL_CLOSED = "appeal_closed", _("appeal answered")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    decision = models.ForeignKey(
        "cloudinary_analysis.ModerationDecision",
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("decision"),
    )
    appeal = models.ForeignKey(
        Appeal,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("appeal"),
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("recipient"),
    )
    email = models.EmailField(_("email"), blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=NotificationStatus.choices,
        default=NotificationStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("uploader notification")
        verbose_name_plural = _("uploader notifications")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} to {self.email or '-'} ({self.status})"


class DashboardDay(models.Model):
    """A past day (in the default time zone) the dashboard keeps figures for.

    Writers that change a past day's decisions give it a new ``version``;
    its ``DashboardCount`` rows of fill ``fill`` hold the day's figures, and
    are current while ``checked`` equals ``version`` (see
    ``accountability/summaries.py``). Internal: not shown in the admin.
    """

    day = models.DateField(unique=True)
    version = models.CharField(max_length=32)
    checked = models.CharField(max_length=32, blank=True)
    fill = models.CharField(max_length=32, blank=True)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"dashboard day {self.day}"


class DashboardCount(models.Model):
    """One day's decisions of one kind, summed: a row of the dashboard's summary."""

    summary = models.ForeignKey(
        DashboardDay, on_delete=models.CASCADE, related_name="counts"
    )
    fill = models.CharField(max_length=32)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    status = models.CharField(max_length=20)
    decided_by_kind = models.CharField(max_length=10)
    # The decisive ground of an automatic approval or rejection ("" otherwise).
    g_type = models.TextField(blank=True)
    g_rule = models.TextField(blank=True)
    g_detail = models.TextField(blank=True)
    decisions = models.PositiveIntegerField()
    reviewed = models.PositiveIntegerField()
    overturned = models.PositiveIntegerField()
    queued = models.PositiveIntegerField()
    queued_since = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        kind = self.decided_by_kind
        return f"{self.summary_id}: {self.decisions} {self.status} ({kind})"
