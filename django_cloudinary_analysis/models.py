"""The app's tables: analyses, normalised tags and moderation decisions."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis._deprecation import renamed_attribute
from django_cloudinary_analysis.analysis_querysets import AnalysisQuerySet
from django_cloudinary_analysis.analysis_types import ANALYSIS_TYPES
from django_cloudinary_analysis.querysets import ObjectQuerySet
from django_cloudinary_analysis.statuses import (
    FINISHED,
    AnalysisStatus,
    ModerationStatus,
)
from django_cloudinary_analysis.statuses import UNFINISHED as UNFINISHED  # re-export
from django_cloudinary_analysis.tag_querysets import MediaTagQuerySet

if TYPE_CHECKING:
    pass


ANALYSIS_TYPE_CHOICES = [(name, name) for name in sorted(ANALYSIS_TYPES)]

#: The app's two permissions: codenames (in ``Meta.permissions``) and the
#: names ``user.has_perm()`` takes. The admin and the API import these.
REANALYZE_CODENAME = "reanalyze_media"
REVIEW_CODENAME = "review_media"
REANALYZE_PERMISSION = f"cloudinary_analysis.{REANALYZE_CODENAME}"
REVIEW_PERMISSION = f"cloudinary_analysis.{REVIEW_CODENAME}"


def params_hash(params: dict[str, Any] | None) -> str:
    """Return a stable digest of an analysis's params (for reuse lookups)."""
    canonical = json.dumps(params or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Analysis(models.Model):
    """One run of one analysis type on one file field of one object."""

    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.CASCADE,
        verbose_name=_("content type"),
        db_index=False,  # dca_analysis_object_idx starts with it
    )
    object_id = models.CharField(
        _("object id"),
        max_length=255,
        help_text=_("Primary key of the analysed object, as text."),
    )
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(_("field"), max_length=100)
    file_name = models.CharField(
        _("file name"),
        max_length=500,
        blank=True,
        help_text=_("The stored file name when the analysis was scheduled."),
    )
    analysis_type = models.CharField(
        _("analysis type"), max_length=40, choices=ANALYSIS_TYPE_CHOICES
    )
    params = models.JSONField(
        _("parameters"), default=dict, blank=True, help_text=_("Extras sent.")
    )
    params_hash = models.CharField(_("parameters digest"), max_length=64)
    backend = models.CharField(_("backend"), max_length=100, blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=AnalysisStatus.choices,
        default=AnalysisStatus.QUEUED,
    )
    allow_reuse = models.BooleanField(
        _("reuse allowed"),
        default=True,
        help_text=_("Whether an earlier result for the same content may be copied."),
    )
    content_key = models.CharField(
        _("content key"),
        max_length=300,
        blank=True,
        help_text=_("Identifies the file's content (digest or asset version)."),
    )
    reused_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reused from"),
        db_index=False,  # dca_analysis_reused_from_idx, partial
    )
    # NULL, not "", when there is none: unique among the rows that have one
    # (dca_analysis_remote_task, a partial index).
    remote_task_id = models.CharField(  # noqa: DJ001
        _("remote task id"),
        max_length=512,
        null=True,
        blank=True,
    )
    request_id = models.CharField(_("request id"), max_length=100, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error_code = models.CharField(_("error code"), max_length=100, blank=True)
    error_message = models.TextField(_("reason"), blank=True)
    result = models.JSONField(
        _("result"),
        null=True,
        blank=True,
        help_text=_("The normalised result: answers, caption, quality, responses."),
    )
    raw = models.JSONField(_("raw response"), null=True, blank=True)
    task_id = models.CharField(
        _("worker task id"),
        max_length=255,
        blank=True,
        help_text=_("The Celery task that claimed this analysis."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = AnalysisQuerySet.as_manager()

    #: Set by ``claim``: a content key of the same file computed earlier.
    sibling_key: str = ""
    #: Set by ``claim`` (not on PostgreSQL): False when no tag of this
    #: (object, field, type) existed then (a result without tags has nothing
    #: to replace). True means "may have".
    had_tags: bool = True

    class Meta:
        verbose_name = _("analysis")
        verbose_name_plural = _("analyses")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "field_name"],
                name="dca_analysis_object_idx",
            ),
            models.Index(
                fields=["content_key", "analysis_type", "params_hash", "status"],
                name="dca_analysis_reuse_idx",
            ),
            models.Index(
                fields=["status", "created_at"], name="dca_analysis_status_idx"
            ),
            # Most analyses reuse nothing: only the rows that do are indexed
            # (for SET NULL when the donor is deleted).
            models.Index(
                fields=["reused_from"],
                condition=models.Q(reused_from__isnull=False),
                name="dca_analysis_reused_from_idx",
            ),
        ]
        # Every index is rewritten by each of a run's UPDATEs (the status is
        # indexed, so none is a HOT update): the table keeps only the indexes
        # its queries use, partial where most rows have nothing to index.
        constraints = [
            models.UniqueConstraint(
                fields=["remote_task_id"],
                condition=models.Q(remote_task_id__isnull=False),
                name="dca_analysis_remote_task",
            ),
            # One sender per content, type and extras among analyses in
            # flight: the database elects it (services.reuse._lead_or_follow).
            models.UniqueConstraint(
                fields=["content_key", "analysis_type", "params_hash"],
                condition=models.Q(status__in=["running", "waiting"], allow_reuse=True)
                & ~models.Q(content_key=""),
                name="dca_analysis_one_sender",
            ),
        ]
        permissions = [
            (REANALYZE_CODENAME, _("Can re-run analyses")),
            (REVIEW_CODENAME, _("Can approve and reject media")),
        ]

    def __str__(self) -> str:
        return (
            f"{self.analysis_type} of {self.content_type_id}:{self.object_id}"
            f".{self.field_name} ({self.status})"
        )

    @property
    def is_finished(self) -> bool:
        """Whether this analysis reached a final state."""
        return self.status in FINISHED


class MediaTag(models.Model):
    """A normalised label found by an analysis."""

    analysis = models.ForeignKey(
        Analysis,
        on_delete=models.CASCADE,
        related_name="tags",
        verbose_name=_("analysis"),
    )
    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.CASCADE,
        verbose_name=_("content type"),
        db_index=False,  # both indexes below start with it
    )
    object_id = models.CharField(_("object id"), max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(_("field"), max_length=100)
    name = models.CharField(_("name"), max_length=255)
    label = models.CharField(_("label"), max_length=255)
    confidence = models.FloatField(_("confidence"), null=True, blank=True)
    analysis_type = models.CharField(
        _("analysis type"),
        max_length=40,
        help_text=_("The analysis type that produced the tag."),
    )
    box = models.JSONField(_("bounding box"), null=True, blank=True)

    source = renamed_attribute("analysis_type", "MediaTag.source")

    objects = MediaTagQuerySet.as_manager()

    class Meta:
        verbose_name = _("media tag")
        verbose_name_plural = _("media tags")
        ordering = ["-confidence", "name"]
        indexes = [
            models.Index(
                fields=["content_type", "name", "confidence"],
                name="dca_tag_lookup_idx",
            ),
            models.Index(
                fields=["content_type", "object_id", "field_name"],
                name="dca_tag_object_idx",
            ),
        ]

    def __str__(self) -> str:
        if self.confidence is None:
            return self.label
        return f"{self.label} ({self.confidence:.2f})"


class ModerationDecisionQuerySet(ObjectQuerySet):
    """Queries over moderation decisions."""

    def current(self) -> ModerationDecisionQuerySet:
        """The newest decision per object: each object's current verdict."""
        newer = ModerationDecision.objects.filter(
            content_type=models.OuterRef("content_type"),
            object_id=models.OuterRef("object_id"),
        ).filter(
            models.Q(decided_at__gt=models.OuterRef("decided_at"))
            | models.Q(
                decided_at=models.OuterRef("decided_at"), pk__gt=models.OuterRef("pk")
            )
        )
        return self.filter(~models.Exists(newer))


class ModerationDecision(models.Model):
    """One verdict on one object; the newest row is the current verdict."""

    class DecidedByKind(models.TextChoices):
        """Who decided: the policy, a person, or the app when the file changed."""

        AUTO = "auto", _("automatic")
        HUMAN = "human", _("human")
        SYSTEM = "system", _("content changed")

    #: Deprecated name of :class:`DecidedByKind` (the field was ``source``).
    Source = DecidedByKind

    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.CASCADE,
        verbose_name=_("content type"),
        db_index=False,  # dca_decision_object_idx starts with it
    )
    object_id = models.CharField(_("object id"), max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")
    status = models.CharField(
        _("verdict"), max_length=20, choices=ModerationStatus.choices
    )
    previous_status = models.CharField(
        _("previous verdict"),
        max_length=20,
        choices=ModerationStatus.choices,
        blank=True,
    )
    decided_by_kind = models.CharField(
        _("decided by"),
        max_length=10,
        choices=DecidedByKind.choices,
        default=DecidedByKind.AUTO,
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("user"),
    )
    reasons = models.JSONField(_("reasons"), default=list, blank=True)
    note = models.TextField(_("note"), blank=True)
    content_key = models.CharField(
        _("content key"),
        max_length=300,
        blank=True,
        db_index=True,
        help_text=_(
            "The content the verdict was given on: a human verdict applies to "
            "later uploads of the same content."
        ),
    )
    follows = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("follows"),
        help_text=_("The human decision on the same content this one applies."),
    )
    decided_at = models.DateTimeField(_("decided at"), auto_now_add=True)

    source = renamed_attribute("decided_by_kind", "ModerationDecision.source")

    objects = ModerationDecisionQuerySet.as_manager()

    class Meta:
        verbose_name = _("moderation decision")
        verbose_name_plural = _("review queue")
        ordering = ["-decided_at", "-pk"]
        get_latest_by = ["decided_at", "pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "decided_at"],
                name="dca_decision_object_idx",
            ),
            # The dashboard and the audit export read decisions by period,
            # and the review queue by verdict.
            models.Index(fields=["decided_at"], name="dca_decision_time_idx"),
            models.Index(
                fields=["status", "decided_at"], name="dca_decision_status_idx"
            ),
        ]

    def __str__(self) -> str:
        who = self.decided_by_kind
        return f"{self.content_type_id}:{self.object_id} {self.status} ({who})"

    @property
    def pins_verdict(self) -> bool:
        """Human decisions stand until the content changes."""
        return self.decided_by_kind == self.DecidedByKind.HUMAN


class ReviewClaimQuerySet(models.QuerySet):
    """Queries over reviewer claims."""

    def live(self) -> ReviewClaimQuerySet:
        """Claims that have not expired."""
        return self.filter(expires_at__gt=timezone.now())


class ReviewClaim(models.Model):
    """A reviewer holds one object of the review queue until ``expires_at``.

    Written only by :mod:`django_cloudinary_analysis.review` (conditional
    updates), so two reviewers never work on the same object.
    """

    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.CASCADE,
        verbose_name=_("content type"),
        db_index=False,  # dca_claim_object_uniq starts with it
    )
    object_id = models.CharField(_("object id"), max_length=255)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("reviewer"),
    )
    claimed_at = models.DateTimeField(_("claimed at"))
    expires_at = models.DateTimeField(_("expires at"))

    objects = ReviewClaimQuerySet.as_manager()

    class Meta:
        verbose_name = _("review claim")
        verbose_name_plural = _("review claims")
        ordering = ["expires_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id"], name="dca_claim_object_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.content_type_id}:{self.object_id} by {self.claimed_by_id}"


class QuotaState(models.Model):
    """An add-on quota that ran out, shared by every worker until it resets."""

    feature = models.CharField(_("quota feature"), max_length=40, unique=True)
    remaining = models.IntegerField(_("remaining"), null=True, blank=True)
    limit = models.IntegerField(_("limit"), null=True, blank=True)
    blocked_until = models.DateTimeField(_("blocked until"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("quota state")
        verbose_name_plural = _("quota states")
        ordering = ["feature"]

    def __str__(self) -> str:
        return f"{self.feature}: {self.remaining} left"


# The write-back and accountability tables live in their own modules; importing
# them here registers them with the app (Django loads only ``<app>.models``).
from django_cloudinary_analysis.accountability.models import (  # noqa: E402, F401
    Appeal,
    AppealStatus,
    Notification,
    NotificationStatus,
    StatementOfReasons,
)
from django_cloudinary_analysis.writeback import models as _writeback  # noqa: E402, F401
