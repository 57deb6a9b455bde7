"""Model signal receivers: thin, they only call services.

Nothing here reads a file or touches the network: a save compares stored
file names, resets the verdict when a file is new (only then does a save
write ``moderation_status``) and queues analyses after commit.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.mixins import (
    changed_fields,
    file_snapshot,
    media_models,
)
from django_cloudinary_analysis.models import ModerationStatus
from django_cloudinary_analysis.services.scheduling import queue_new_content

DISPATCH_PREFIX = "cloudinary_analysis"


def connect() -> None:
    """Connect the receivers to every concrete model using the mixin."""
    for model in media_models(proxies=True):
        uid = f"{DISPATCH_PREFIX}:{model._meta.label_lower}"
        pre_save.connect(before_save, sender=model, dispatch_uid=uid + ":pre")
        post_save.connect(after_save, sender=model, dispatch_uid=uid + ":post")
        post_delete.connect(after_delete, sender=model, dispatch_uid=uid + ":del")


def before_save(
    sender: type, instance: Any, raw: bool = False, update_fields: Any = None, **kw: Any
) -> None:
    """Reset the verdict in the row being written when a file is new.

    Any other save leaves the stored verdict alone (see
    ``AnalyzedMedia._do_update``); fixtures (``raw``) write theirs.
    """
    instance._analysis_changed = []
    instance._analysis_write_status = raw
    if raw or not app_settings.AUTO_ANALYZE:
        return
    changed = changed_fields(instance, update_fields)
    if changed:
        instance._analysis_write_status = True
        instance._analysis_changed = changed
        instance._analysis_previous_status = instance.moderation_status
        instance.moderation_status = ModerationStatus.PENDING


def after_save(
    sender: type,
    instance: Any,
    created: bool = False,
    raw: bool = False,
    update_fields: Any = None,
    **kw: Any,
) -> None:
    """Queue analyses of new files (enqueued when the transaction commits)."""
    changed = getattr(instance, "_analysis_changed", [])
    instance._analysis_changed = []
    instance._analysis_write_status = False
    if changed and not raw:
        queue_new_content(
            instance,
            changed,
            previous_status=instance._analysis_previous_status,
            status_written=update_fields is None
            or "moderation_status" in update_fields,
            created=created,
        )
    written = file_snapshot(instance)
    if update_fields is not None:
        # Fields left out of update_fields were not written: keep their old name.
        kept = getattr(instance, "_analysis_snapshot", None) or {}
        written = {
            name: value if name in update_fields else kept.get(name, value)
            for name, value in written.items()
        }
    instance._analysis_snapshot = written


def after_delete(sender: type, instance: Any, **kw: Any) -> None:
    """Remove the deleted object's analyses, tags and decisions."""
    from django_cloudinary_analysis import services

    services.forget(instance)
