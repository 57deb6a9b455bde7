"""What the app wrote into sites' fields and assets, and each Cloudinary sync."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.querysets import ObjectQuerySet


class WrittenValue(models.Model):
    """A value the app wrote, so it can tell its own writes from a person's.

    One row per alt-text field (the caption written last), one per taggit tag
    or Cloudinary tag the app added. A person's edit is anything else: the
    app never overwrites or removes it.
    """

    class Target(models.TextChoices):
        ALT_TEXT = "alt_text", _("alt text")
        TAGGIT = "taggit", _("taggit tag")
        CLOUDINARY = "cloudinary_tag", _("Cloudinary tag")

    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_("content type")
    )
    object_id = models.CharField(_("object id"), max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")
    target = models.CharField(_("written to"), max_length=20, choices=Target.choices)
    field_name = models.CharField(
        _("field"),
        max_length=100,
        help_text=_("The model field written (for Cloudinary: the file field)."),
    )
    value = models.TextField(_("value"))
    asset = models.CharField(
        _("asset"),
        max_length=500,
        blank=True,
        help_text=_("The Cloudinary public id the tag was added to."),
    )
    item_id = models.CharField(
        _("taggit item"),
        max_length=100,
        blank=True,
        help_text=_(
            "The tagged-item row the app created: a tag a person removed and "
            "added again is a new row, and theirs."
        ),
    )
    withdrawn = models.BooleanField(
        _("removed by a person"),
        default=False,
        help_text=_("A person removed this tag: the app does not add it again."),
    )
    written_at = models.DateTimeField(_("written"), auto_now=True)

    objects = ObjectQuerySet.as_manager()

    class Meta:
        verbose_name = _("written value")
        verbose_name_plural = _("written values")
        ordering = ["content_type", "object_id", "target", "field_name", "value"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "target", "field_name"],
                name="dca_written_object_idx",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.content_type_id}:{self.object_id}.{self.field_name} = {self.value}"
        )


class SyncStatus(models.TextChoices):
    """Where one push to Cloudinary stands."""

    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    RETRYING = "retrying", _("retrying")
    SYNCED = "synced", _("synced")
    NOT_APPLICABLE = "not_applicable", _("not applicable")
    SUPERSEDED = "superseded", _("superseded")
    FAILED = "failed", _("failed")


class CloudinarySync(models.Model):
    """One push of an analysis's tags or a decision's verdict to an asset."""

    class Kind(models.TextChoices):
        TAGS = "tags", _("tags")
        MODERATION = "moderation", _("moderation status")

    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    analysis = models.ForeignKey(
        "cloudinary_analysis.Analysis",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cloudinary_syncs",
        verbose_name=_("analysis"),
    )
    decision = models.ForeignKey(
        "cloudinary_analysis.ModerationDecision",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cloudinary_syncs",
        verbose_name=_("decision"),
    )
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_("content type")
    )
    object_id = models.CharField(_("object id"), max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(_("file field"), max_length=100)
    public_id = models.CharField(_("public id"), max_length=500)
    resource_type = models.CharField(_("resource type"), max_length=20)
    delivery_type = models.CharField(_("delivery type"), max_length=20)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=SyncStatus.choices,
        default=SyncStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error_code = models.CharField(_("error code"), max_length=100, blank=True)
    error_message = models.TextField(_("reason"), blank=True)
    tags_added = models.JSONField(_("tags added"), default=list, blank=True)
    tags_removed = models.JSONField(_("tags removed"), default=list, blank=True)
    moderation_status = models.CharField(
        _("moderation status pushed"), max_length=20, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = ObjectQuerySet.as_manager()

    class Meta:
        verbose_name = _("Cloudinary sync")
        verbose_name_plural = _("Cloudinary syncs")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["content_type", "object_id", "field_name"],
                name="dca_sync_object_idx",
            ),
            models.Index(fields=["status", "created_at"], name="dca_sync_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.public_id} ({self.status})"
