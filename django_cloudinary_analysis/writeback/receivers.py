"""Receivers of the app's signals: alt text, taggit tags, Cloudinary sync.

Both signals are sent after the change committed, so a failure here cannot
undo a result; it is logged (and, for the Cloudinary sync, recorded on its
row) instead of breaking the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.contenttypes.models import ContentType

logger = logging.getLogger(__name__)


def analysis_finished(sender: type, analysis: Any, **kwargs: Any) -> None:
    """Write a caption, reconcile tags and push tags after an analysis."""
    from django_cloudinary_analysis.writeback import alt_text, cloudinary_sync, tags

    model = analysis.content_type.model_class()
    if model is None:
        return
    for step in (alt_text, tags, cloudinary_sync):
        try:
            step.analysis_finished(model, analysis)
        except Exception:
            logger.exception(
                "write-back %s after analysis %s failed",
                step.__name__.rsplit(".", 1)[-1],
                analysis.pk,
                extra={"analysis_id": analysis.pk},
            )


def moderation_changed(
    sender: type, instance: Any, new: str, decision: Any, **kwargs: Any
) -> None:
    """Push the new verdict to the object's assets on Cloudinary."""
    from django_cloudinary_analysis.writeback import cloudinary_sync

    try:
        cloudinary_sync.moderation_changed(instance, new, decision)
    except Exception:
        logger.exception(
            "write-back of decision %s failed", getattr(decision, "pk", None)
        )


def object_deleted(sender: type, instance: Any, **kwargs: Any) -> None:
    """Forget what the app wrote for a deleted object."""
    from django_cloudinary_analysis.writeback.models import CloudinarySync, WrittenValue

    ct = ContentType.objects.get_for_model(instance)
    for model in (WrittenValue, CloudinarySync):
        model.objects.filter(content_type=ct, object_id=str(instance.pk)).delete()
