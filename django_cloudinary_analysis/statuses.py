"""Where an analysis stands and the verdict on an object (``models`` re-exports
them; the querysets use them without importing ``models``)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AnalysisStatus(models.TextChoices):
    """Where one analysis stands."""

    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    RETRYING = "retrying", _("retrying")
    WAITING = "waiting", _("waiting for webhook")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    SKIPPED = "skipped", _("skipped")
    CANCELLED = "cancelled", _("cancelled")


UNFINISHED = (
    AnalysisStatus.QUEUED,
    AnalysisStatus.RUNNING,
    AnalysisStatus.RETRYING,
    AnalysisStatus.WAITING,
)
FINISHED = (
    AnalysisStatus.SUCCEEDED,
    AnalysisStatus.FAILED,
    AnalysisStatus.SKIPPED,
    AnalysisStatus.CANCELLED,
)


class ModerationStatus(models.TextChoices):
    """The verdict on one object."""

    PENDING = "pending", _("pending")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")
    REVIEW = "review", _("needs review")
