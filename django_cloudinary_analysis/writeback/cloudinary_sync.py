"""Push tags and verdicts to assets stored on Cloudinary (``SYNC_TO_CLOUDINARY``).

Receivers record one :class:`CloudinarySync` row per push and enqueue the
``sync_to_cloudinary`` task; the task calls pycloudinary's Upload API
(``add_tag``/``remove_tag``) and Admin API (``resource``, ``update``). Each
run reads the asset first and changes only what differs, so running a push
twice changes nothing the second time. Retryable failures (429, 5xx, network)
come back with backoff up to ``MAX_ATTEMPTS``; every other end is a status
with a reason on the row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from django_cloudinary_analysis.client import RetryPolicy
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import SyncError
from django_cloudinary_analysis.mixins import analysis_config
from django_cloudinary_analysis.models import (
    AnalysisStatus,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.sources import (
    _is_cloudinary_storage,
    is_cloudinary_resource,
)
from django_cloudinary_analysis.writeback.models import (
    CloudinarySync,
    SyncStatus,
    WrittenValue,
)
from django_cloudinary_analysis.writeback.options import (
    TAG_TYPES,
    site_tag_names,
    sync_options,
)
from django_cloudinary_analysis.writeback.tags import current_labels

if TYPE_CHECKING:
    from django.db.models import Model

    from django_cloudinary_analysis.models import Analysis

logger = logging.getLogger(__name__)

#: Verdicts Cloudinary's moderation knows; the others have no counterpart.
PUSHED_VERDICTS: dict[str, str] = {
    str(ModerationStatus.APPROVED): "approved",
    str(ModerationStatus.REJECTED): "rejected",
}
UNFINISHED = (SyncStatus.PENDING, SyncStatus.RUNNING, SyncStatus.RETRYING)
SYNC_TASK = "cloudinary_analysis.sync_to_cloudinary"


@dataclass(frozen=True)
class Asset:
    """Where a file lives on Cloudinary."""

    public_id: str
    resource_type: str = "image"
    delivery_type: str = "upload"


@dataclass(frozen=True)
class SyncOutcome:
    """What one run did; ``retry_in`` asks the task to come back."""

    status: str
    retry_in: float | None = None


def asset_for(obj: Model, field_name: str) -> Asset | None:
    """The Cloudinary asset of a file field, or None when stored elsewhere."""
    value = getattr(obj, field_name, None)
    if not value:
        return None
    if is_cloudinary_resource(value):
        public_id = getattr(value, "public_id", None)
        if not public_id:
            return None
        return Asset(
            str(public_id),
            getattr(value, "resource_type", None) or "image",
            getattr(value, "type", None) or "upload",
        )
    storage = getattr(value, "storage", None)
    name = getattr(value, "name", None)
    if name and storage is not None and _is_cloudinary_storage(storage):
        get_type = getattr(storage, "_get_resource_type", None)
        resource_type = get_type(name) if callable(get_type) else "image"
        return Asset(str(name), str(resource_type or "image"), "upload")
    return None


# -- receivers -------------------------------------------------------------------


def analysis_finished(model: type[Model], analysis: Analysis) -> list[CloudinarySync]:
    """Record and enqueue a tag push after a tagging analysis succeeded."""
    options = sync_options()
    if not options.tags or analysis.analysis_type not in TAG_TYPES:
        return []
    if analysis.status != AnalysisStatus.SUCCEEDED:
        return []
    obj = model._default_manager.filter(pk=analysis.object_id).first()
    if obj is None:
        return []
    asset = asset_for(obj, analysis.field_name)
    if asset is None:
        return []  # not on Cloudinary: left alone
    sync = _create(
        obj,
        analysis.field_name,
        asset,
        kind=CloudinarySync.Kind.TAGS,
        analysis=analysis,
    )
    return [sync]


def moderation_changed(
    instance: Model, new: str, decision: ModerationDecision
) -> list[CloudinarySync]:
    """Record and enqueue a verdict push for each of the object's assets."""
    if not sync_options().moderation:
        return []
    created = []
    for field_name in analysis_config(type(instance)):
        asset = asset_for(instance, field_name)
        if asset is None:
            continue
        if new in PUSHED_VERDICTS:
            outcome: dict[str, Any] = {"moderation_status": PUSHED_VERDICTS[new]}
        else:
            outcome = {
                "status": SyncStatus.NOT_APPLICABLE,
                "error_code": "no_counterpart",
                "error_message": f"the verdict {new!r} has no Cloudinary moderation "
                "status (only approved and rejected are pushed)",
            }
        created.append(
            _create(
                instance,
                field_name,
                asset,
                kind=CloudinarySync.Kind.MODERATION,
                decision=decision,
                **outcome,
            )
        )
    return created


def _create(obj: Model, field_name: str, asset: Asset, **fields: Any) -> CloudinarySync:
    from django_cloudinary_analysis.mixins import content_type_for

    if fields.get("status", SyncStatus.PENDING) != SyncStatus.PENDING:
        fields["finished_at"] = timezone.now()  # decided here: nothing to push
    sync = CloudinarySync.objects.create(
        content_type=content_type_for(obj),
        object_id=str(obj.pk),
        field_name=field_name,
        public_id=asset.public_id,
        resource_type=asset.resource_type,
        delivery_type=asset.delivery_type,
        **fields,
    )
    if sync.status == SyncStatus.PENDING:
        transaction.on_commit(lambda: enqueue(sync.pk))
    return sync


def enqueue(sync_id: int, countdown: float | None = None) -> None:
    """Send one push to the workers (the app's QUEUE, if set).

    A broker that refuses is logged; the row stays pending for
    ``recover_stuck``.
    """
    from django_cloudinary_analysis.services.dispatch import publish

    publish(SYNC_TASK, sync_id, countdown=countdown)


# -- the task's work ----------------------------------------------------------------


def run(sync_id: int) -> SyncOutcome:
    """Claim one push and carry it out (worker side; idempotent)."""
    claimed = CloudinarySync.objects.filter(
        pk=sync_id, status__in=[SyncStatus.PENDING, SyncStatus.RETRYING]
    ).update(
        status=SyncStatus.RUNNING,
        attempts=F("attempts") + 1,
        claimed_at=timezone.now(),
    )
    if not claimed:
        return SyncOutcome("noop")
    sync = CloudinarySync.objects.select_related("content_type").get(pk=sync_id)
    try:
        if sync.kind == CloudinarySync.Kind.TAGS:
            return _push_tags(sync)
        return _push_moderation(sync)
    except SyncError as exc:
        if exc.retryable and sync.attempts < app_settings.MAX_ATTEMPTS:
            policy = RetryPolicy(
                base=float(app_settings.RETRY_BACKOFF),
                cap=float(app_settings.RETRY_BACKOFF_MAX),
            )
            delay = policy.backoff(sync.attempts)
            CloudinarySync.objects.filter(pk=sync.pk).update(
                status=SyncStatus.RETRYING,
                error_code=exc.code,
                error_message=f"{exc} (attempt {sync.attempts}, retrying in "
                f"{delay:.1f} s)",
            )
            logger.info(
                "cloudinary sync %s: %s, retry in %.1f s",
                sync.pk,
                exc.code,
                delay,
                extra={"sync_id": sync.pk},
            )
            return SyncOutcome(SyncStatus.RETRYING, retry_in=delay)
        message = str(exc)
        if exc.retryable:
            message += f" (gave up after {sync.attempts} attempts)"
        return _finish(sync, SyncStatus.FAILED, code=exc.code, message=message)
    except Exception as exc:
        logger.exception("cloudinary sync %s crashed", sync.pk)
        _finish(
            sync,
            SyncStatus.FAILED,
            code="internal_error",
            message=f"{type(exc).__name__}: {exc}",
        )
        raise


def _finish(
    sync: CloudinarySync,
    status: str,
    *,
    code: str = "",
    message: str = "",
    **fields: Any,
) -> SyncOutcome:
    CloudinarySync.objects.filter(pk=sync.pk, status=SyncStatus.RUNNING).update(
        status=status,
        error_code=code[:100],
        error_message=message,
        finished_at=timezone.now(),
        **fields,
    )
    log = logger.warning if status == SyncStatus.FAILED else logger.info
    log(
        "cloudinary sync %s (%s of %s) %s %s",
        sync.pk,
        sync.kind,
        sync.public_id,
        status,
        message,
        extra={"sync_id": sync.pk, "error_code": code},
    )
    return SyncOutcome(status)


def _load(sync: CloudinarySync) -> Model | None:
    model = sync.content_type.model_class()
    if model is None:
        return None
    return model._default_manager.filter(pk=sync.object_id).first()


def _push_tags(sync: CloudinarySync) -> SyncOutcome:
    obj = _load(sync)
    asset = asset_for(obj, sync.field_name) if obj is not None else None
    if asset is None or asset.public_id != sync.public_id:
        return _finish(
            sync,
            SyncStatus.SUPERSEDED,
            code="content_replaced",
            message="the object or its file changed since; a newer push follows",
        )
    prefix = sync_options().tag_prefix
    labels = current_labels(obj, sync.content_type_id, [sync.field_name])  # type: ignore[arg-type]
    desired = [_cloudinary_tag(prefix + name) for name in site_tag_names(labels)]
    desired = [t for t in dict.fromkeys(desired) if t]

    record_filter = {
        "content_type_id": sync.content_type_id,
        "object_id": sync.object_id,
        "target": WrittenValue.Target.CLOUDINARY,
        "field_name": sync.field_name,
    }
    records = list(WrittenValue.objects.filter(**record_filter))
    if not desired and not records:
        # Nothing to add and nothing of ours to remove: spare the Admin API,
        # which is rate-limited per hour.
        return _finish(sync, SyncStatus.SYNCED, message="no tags to push")
    details = _call("resource", sync, _details)
    on_asset = set(_strings(details.get("tags")))
    # Tags recorded for an earlier asset of this field stay on that asset.
    old = [r.pk for r in records if r.asset != sync.public_id]
    records = [r for r in records if r.asset == sync.public_id]
    ours = {r.value: r for r in records if not r.withdrawn}
    withdrawn = {r.value for r in records if r.withdrawn}
    newly_withdrawn = [r.pk for v, r in ours.items() if v not in on_asset]
    withdrawn |= {v for v in ours if v not in on_asset}
    to_add = [t for t in desired if t not in on_asset and t not in withdrawn]
    to_remove = sorted(v for v in ours if v in on_asset and v not in desired)

    if to_add:
        _call(
            "add_tag",
            sync,
            lambda a: _uploader().add_tag(to_add, [a.public_id], **_opts(a)),
        )
    if to_remove:
        _call(
            "remove_tag",
            sync,
            lambda a: _uploader().remove_tag(to_remove, [a.public_id], **_opts(a)),
        )
    with transaction.atomic():
        stale = [r.pk for r in records if r.value not in desired]
        WrittenValue.objects.filter(pk__in=old + stale).delete()
        WrittenValue.objects.filter(pk__in=newly_withdrawn).exclude(
            pk__in=stale
        ).update(withdrawn=True)
        WrittenValue.objects.bulk_create(
            [
                WrittenValue(**record_filter, value=tag, asset=sync.public_id)
                for tag in to_add
            ]
        )
    return _finish(sync, SyncStatus.SYNCED, tags_added=to_add, tags_removed=to_remove)


def _push_moderation(sync: CloudinarySync) -> SyncOutcome:
    latest = (
        ModerationDecision.objects.filter(
            content_type_id=sync.content_type_id, object_id=sync.object_id
        )
        .values_list("pk", flat=True)
        .first()
    )
    if (
        latest is not None
        and sync.decision_id is not None
        and latest != sync.decision_id
    ):
        return _finish(
            sync,
            SyncStatus.SUPERSEDED,
            code="newer_decision",
            message=f"decision {latest} came after this one; its push wins",
        )
    target = sync.moderation_status
    details = _call("resource", sync, _details)
    manual = _manual_moderation(details)
    if manual is None:
        return _finish(
            sync,
            SyncStatus.NOT_APPLICABLE,
            code="no_manual_moderation",
            message="the asset is not under manual moderation on Cloudinary, so "
            "it has no moderation status to set",
        )
    if manual == target:
        return _finish(sync, SyncStatus.SYNCED, message=f"already {target}")
    _call(
        "update",
        sync,
        lambda a: _api().update(a.public_id, moderation_status=target, **_opts(a)),
    )
    return _finish(sync, SyncStatus.SYNCED)


def _manual_moderation(details: Mapping[str, Any]) -> str | None:
    """The asset's manual moderation status, or None when it has none."""
    entries = details.get("moderation")
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("kind") == "manual":
                return str(entry.get("status") or "pending")
    if details.get("moderation_kind") == "manual":
        return str(details.get("moderation_status") or "pending")
    return None


def _cloudinary_tag(name: str) -> str:
    # Cloudinary's tag lists are comma-separated: a comma would split one tag.
    return " ".join(name.replace(",", " ").split())


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# -- pycloudinary -----------------------------------------------------------------


def _uploader() -> Any:
    import cloudinary.uploader

    return cloudinary.uploader


def _api() -> Any:
    import cloudinary.api

    return cloudinary.api


def _opts(asset: Asset) -> dict[str, Any]:
    """Call options: the asset's types and, unless pycloudinary is configured,
    the app's credentials."""
    import cloudinary

    options: dict[str, Any] = {
        "resource_type": asset.resource_type,
        "type": asset.delivery_type,
    }
    config = cloudinary.config()
    if not (getattr(config, "cloud_name", None) and getattr(config, "api_key", None)):
        creds = app_settings.credentials
        options.update(
            {
                k: v
                for k, v in {
                    "cloud_name": creds.cloud_name,
                    "api_key": creds.api_key,
                    "api_secret": creds.api_secret,
                    "oauth_token": creds.oauth_token,
                }.items()
                if v
            }
        )
    return options


def _details(asset: Asset) -> Mapping[str, Any]:
    result = _api().resource(asset.public_id, **_opts(asset))
    return result if isinstance(result, Mapping) else {}


_STATUS = re.compile(r"(?:^Error |\()(\d{3})\b")


def _call(what: str, sync: CloudinarySync, call: Any) -> Any:
    """Make one pycloudinary call; translate its failures into SyncError."""
    asset = Asset(sync.public_id, sync.resource_type, sync.delivery_type)
    try:
        from cloudinary import exceptions as cx
    except ImportError:
        raise SyncError(
            "cloudinary_missing",
            "SYNC_TO_CLOUDINARY needs pycloudinary: pip install "
            "'django-cloudinary-analysis[cloudinary]'",
        ) from None
    try:
        return call(asset)
    except Exception as exc:  # pycloudinary raises bare Exception for some 5xx
        text = str(exc)[:500]
        match = _STATUS.search(text)
        status = int(match.group(1)) if match else None
        message = f"{what} of {sync.public_id!r}: {text}"
        if isinstance(exc, cx.NotFound) or status == 404:
            raise SyncError(
                "asset_missing",
                f"the asset {sync.public_id!r} does not exist on Cloudinary "
                f"({what}: {text})",
            ) from exc
        if isinstance(exc, cx.RateLimited) or status in (420, 429):
            raise SyncError("rate_limited", message, retryable=True) from exc
        if isinstance(exc, cx.GeneralError) or (status is not None and status >= 500):
            raise SyncError("server_error", message, retryable=True) from exc
        if isinstance(exc, (cx.AuthorizationRequired, cx.NotAllowed)):
            raise SyncError("not_authorized", message) from exc
        if isinstance(exc, cx.BadRequest):
            raise SyncError("bad_request", message) from exc
        if isinstance(exc, cx.Error) and ("Socket" in text or "Unexpected" in text):
            raise SyncError("connection_error", message, retryable=True) from exc
        if isinstance(exc, (cx.Error, ValueError)):
            raise SyncError("cloudinary_error", message) from exc
        raise
