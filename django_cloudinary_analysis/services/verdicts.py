"""Verdicts: the policy's automatic decision, human decisions, and where
they follow content."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Exists, Subquery, prefetch_related_objects

from django_cloudinary_analysis import signals
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationDecision,
    ModerationStatus,
    params_hash,
)
from django_cloudinary_analysis.moderation import DefaultPolicy, get_policy
from django_cloudinary_analysis.options import (
    analysis_config,
    content_type_for,
    stored_name,
)
from django_cloudinary_analysis.querysets import first_row, object_pairs, object_rows

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Model

logger = logging.getLogger(__name__)


def _lock_object(obj: Model) -> None:
    """Serialise verdict updates per object (a row lock where supported)."""
    type(obj)._default_manager.select_for_update().filter(pk=obj.pk).values_list(
        "pk", flat=True
    ).first()


def _lock_and_latest(obj: Model) -> tuple[ModerationDecision | None, bool]:
    """Lock the object's row (where supported) and read its newest decision,
    in one statement; the decision carries its id, status and decided_by_kind.

    Also says whether a human decision was recorded on a content key of one
    of the object's analyses (else no human verdict can be followed).
    """
    row = first_row(_lock_query, obj)
    if row is None:
        return None, True
    human = bool(row[4])
    if row[0] is None:
        return None, human
    latest = ModerationDecision(
        pk=row[0], status=row[1], decided_by_kind=row[2], decided_at=row[3]
    )
    return latest, human


def _lock_query(obj: Model, object_id: str) -> Any:
    """The statement of ``_lock_and_latest`` (compiled once per model)."""
    ct = content_type_for(obj)
    newest = ModerationDecision.objects.filter(
        content_type=ct, object_id=object_id
    ).order_by("-decided_at", "-pk")
    keys = (
        Analysis.objects.filter(content_type=ct, object_id=object_id)
        .exclude(content_key="")
        .values("content_key")
    )
    return (
        type(obj)
        ._default_manager.select_for_update()
        .filter(pk=obj.pk)
        .annotate(
            _decision=Subquery(newest.values("pk")[:1]),
            _status=Subquery(newest.values("status")[:1]),
            _kind=Subquery(newest.values("decided_by_kind")[:1]),
            _at=Subquery(newest.values("decided_at")[:1]),
            _human=Exists(
                ModerationDecision.objects.filter(
                    decided_by_kind=ModerationDecision.DecidedByKind.HUMAN,
                    content_key__in=keys,
                )
            ),
        )
        .values_list("_decision", "_status", "_kind", "_at", "_human")
    )


def feeds_verdict(model: type[Model], analysis_type: str) -> bool:
    """Whether an analysis of this type ending can change the verdict.

    A policy naming its ``relevant_types`` ignores the other types, unless
    none of the model's configured types is relevant (then the verdict waits
    for every analysis) or the model has several files. A policy that names
    none hears about every type.
    """
    relevant_types = getattr(get_policy(), "relevant_types", None)
    if relevant_types is None:
        return True
    relevant = set(relevant_types())
    if analysis_type in relevant:
        return True
    config = analysis_config(model)
    if len(config) > 1:
        # Several files: this one's content key may be the last the verdict
        # needs to follow a human decision on identical content.
        return True
    configured = {spec.type for specs in config.values() for spec in specs}
    return not (configured & relevant)


def current_analyses(obj: Model, *, tags: bool = True) -> list[Analysis]:
    """The newest analysis per (field, type) for the object's current files.

    ``tags=False`` leaves the tags to be read when asked for (the default
    policy without label rules never asks). One object's query is compiled
    once per model (the worker reads it for every verdict).
    """
    rows = object_rows(_analyses_query, obj)
    if tags:
        prefetch_related_objects(rows, "tags")
    return _newest_per_file_and_type(rows, {_key(obj): _file_names(obj)})[_key(obj)]


def _analyses_query(obj: Model, object_id: str) -> Any:
    return _analyses_newest_first(
        Analysis.objects.filter(content_type=content_type_for(obj), object_id=object_id)
    )


def _analyses_newest_first(rows: Any) -> Any:
    return rows.exclude(status=AnalysisStatus.CANCELLED).order_by("-created_at", "-pk")


def current_analyses_many(
    objs: Iterable[Model], *, tags: bool = True
) -> dict[tuple[int, str], list[Analysis]]:
    """:func:`current_analyses` of many objects, keyed by (content type id, pk text).

    One query whatever the number of objects, plus one for the tags unless
    ``tags`` is false (a caller that loads tags its own way).
    """
    names = {_key(obj): _file_names(obj) for obj in objs}
    if not names:
        return {}
    rows = _analyses_newest_first(Analysis.objects.filter(object_pairs(names)))
    if tags:
        rows = rows.prefetch_related("tags")
    return _newest_per_file_and_type(rows, names)


def _key(obj: Model) -> tuple[int, str]:
    return content_type_for(obj).pk, str(obj.pk)


def _file_names(obj: Model) -> dict[str, str]:
    return {
        field: stored_name(getattr(obj, field, None))
        for field in analysis_config(type(obj))
    }


def _newest_per_file_and_type(
    rows: Iterable[Analysis], names: dict[tuple[int, str], dict[str, str]]
) -> dict[tuple[int, str], list[Analysis]]:
    """Of ``rows`` (newest first), the newest per (object, field, type) whose
    file is the object's current one."""
    current: dict[tuple[int, str], list[Analysis]] = {key: [] for key in names}
    seen: set[tuple[int, str, str, str]] = set()
    for analysis in rows:
        key = (analysis.content_type_id, analysis.object_id)
        if names[key].get(analysis.field_name) != analysis.file_name:
            continue
        newest = (*key, analysis.field_name, analysis.analysis_type)
        if newest in seen:
            continue
        seen.add(newest)
        current[key].append(analysis)
    return current


def update_verdict(obj: Model) -> ModerationDecision | None:
    """Recompute the automatic verdict unless a human decision pins it.

    Locks the object's row for the rest of the caller's transaction, so
    verdict updates of one object run one at a time. A human verdict
    standing on identical content comes first (see
    ``_standing_human_decision``).
    """
    with transaction.atomic(savepoint=False):
        latest, human_on_key = _lock_and_latest(obj)
        if latest is not None and latest.pins_verdict:
            return None
        policy = get_policy()
        analyses = current_analyses(obj, tags=_reads_tags(policy))
        # With one file the verdict's content key is that file's key: no
        # human decision on any key of the object means none to follow.
        if human_on_key or len(analysis_config(type(obj))) > 1:
            followed = _follow_human_decision(obj, analyses, latest)
            if followed is not None:
                return followed
        return _decide(obj, policy, analyses, latest)


def _reads_tags(policy: Any) -> bool:
    return not (isinstance(policy, DefaultPolicy) and not policy.label_rules)


def _decide(
    obj: Model,
    policy: Any,
    analyses: list[Analysis],
    latest: ModerationDecision | None,
) -> ModerationDecision | None:
    verdict = policy.decide(analyses)
    if verdict is None:
        return None
    old = latest.status if latest is not None else obj.moderation_status  # type: ignore[attr-defined]
    if latest is not None and old == verdict.status:
        return None
    return _record_decision(
        obj,
        verdict.status,
        previous=old,
        decided_by_kind=ModerationDecision.DecidedByKind.AUTO,
        reasons=verdict.reasons,
        newest=latest,
    )


def verdict_content_key(analyses: Iterable[Analysis]) -> str:
    """The content a verdict on these analyses judges ("" while unknown).

    One file: its content key. Several: a digest of their keys in field
    order. Unknown until a worker computed the key of every file.
    """
    keys: dict[str, str] = {}
    for analysis in analyses:
        keys.setdefault(analysis.field_name, "")
        if analysis.content_key:
            keys[analysis.field_name] = analysis.content_key
    if not keys or not all(keys.values()):
        return ""
    if len(keys) == 1:
        return next(iter(keys.values()))
    joined = "\n".join(f"{name}={key}" for name, key in sorted(keys.items()))
    return "files:" + params_hash({"keys": joined})


def _follow_human_decision(
    obj: Model, analyses: list[Analysis], latest: ModerationDecision | None
) -> ModerationDecision | None:
    """Apply the human verdict standing on the same content, if there is one.

    Not after a reviewer released this object's current content: then the
    policy decides.
    """
    key = verdict_content_key(analyses)
    if not key:
        return None
    origin = _standing_human_decision(obj, key)
    if origin is None:
        return None
    if latest is not None and _released_since_new_content(obj):
        return None
    reviewer = origin.decided_by
    who = reviewer.get_username() if reviewer is not None else "a reviewer"
    return _record_decision(
        obj,
        origin.status,
        previous=latest.status if latest is not None else obj.moderation_status,  # type: ignore[attr-defined]
        decided_by_kind=ModerationDecision.DecidedByKind.HUMAN,
        reasons=[
            {
                "rule": "follows_content",
                "decision": origin.pk,
                "status": origin.status,
                "object": f"{origin.content_type_id}:{origin.object_id}",
                "by": getattr(reviewer, "pk", None),
                "content_key": key,
            }
        ],
        note=f"follows decision {origin.pk} ({origin.status} by {who}) "
        "on identical content",
        user=reviewer,
        content_key=key,
        follows=origin,
    )


def _follows_content(decision: ModerationDecision) -> bool:
    return any(
        isinstance(reason, dict) and reason.get("rule") == "follows_content"
        for reason in decision.reasons or ()
    )


def _released_since_new_content(obj: Model) -> bool:
    for decision in ModerationDecision.objects.for_object(obj).only(
        "decided_by_kind", "reasons"
    ):  # newest first
        if decision.decided_by_kind == ModerationDecision.DecidedByKind.SYSTEM:
            return False
        if any(r.get("rule") == "released" for r in decision.reasons or ()):
            return True
    return False


def _standing_human_decision(obj: Model, key: str) -> ModerationDecision | None:
    """The human verdict on content ``key`` that still stands on another object.

    It stands while it is the newest decision of its object (a new file, a
    release or a later decision ends it) and was a person's own, not one
    following another (deleting the object ends it). A rejection wins over an approval;
    approvals count unless HUMAN_APPROVAL_FOLLOWS_CONTENT is off.
    """
    statuses = [ModerationStatus.REJECTED]
    if app_settings.HUMAN_APPROVAL_FOLLOWS_CONTENT:
        statuses.append(ModerationStatus.APPROVED)
    candidates = (
        ModerationDecision.objects.filter(
            content_key=key,
            decided_by_kind=ModerationDecision.DecidedByKind.HUMAN,
            status__in=statuses,
        )
        .exclude(content_type=content_type_for(obj), object_id=str(obj.pk))
        .select_related("decided_by")
        .order_by("-decided_at", "-pk")
    )
    found: ModerationDecision | None = None
    for candidate in candidates[:50]:
        if _follows_content(candidate):
            # A copy's decision only applies a person's verdict on another
            # object; it stands for nothing once that verdict is gone (its
            # object deleted), and while it stands the origin is found too.
            continue
        newest = (
            ModerationDecision.objects.filter(
                content_type_id=candidate.content_type_id,
                object_id=candidate.object_id,
            )
            .values_list("pk", flat=True)
            .first()
        )
        if newest != candidate.pk:
            continue
        if candidate.status == ModerationStatus.REJECTED:
            return candidate
        found = found or candidate
    return found


def _record_decision(
    obj: Model,
    status: str,
    *,
    previous: str,
    decided_by_kind: str,
    reasons: list[dict[str, Any]] | None = None,
    note: str = "",
    user: AbstractBaseUser | None = None,
    write_status: bool = True,
    content_key: str = "",
    follows: ModerationDecision | None = None,
    newest: ModerationDecision | EllipsisType | None = ...,
) -> ModerationDecision:
    decision = ModerationDecision(
        content_type=content_type_for(obj),
        object_id=str(obj.pk),
        status=status,
        previous_status=previous,
        decided_by_kind=decided_by_kind,
        decided_by=user if user is not None and user.is_authenticated else None,  # type: ignore[misc]
        reasons=reasons or [],
        note=note,
        content_key=content_key,
        follows=follows,
    )
    if newest is not ...:
        # The newest decision before this one, read under the object's lock:
        # the dashboard's summaries need not look it up again.
        decision.newest_before = newest  # type: ignore[attr-defined]
    decision.save(force_insert=True)
    if write_status:
        type(obj)._default_manager.filter(pk=obj.pk).update(moderation_status=status)
    obj.moderation_status = status  # type: ignore[attr-defined]
    if previous != status:
        transaction.on_commit(
            lambda: signals.moderation_changed.send(
                sender=type(obj),
                instance=obj,
                old=previous,
                new=status,
                decision=decision,
            )
        )
    return decision


def approve(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Approve ``obj`` by hand; the verdict stands until its content changes."""
    return _human_decision(obj, ModerationStatus.APPROVED, user, note)


def reject(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Reject ``obj`` by hand; the verdict stands until its content changes."""
    return _human_decision(obj, ModerationStatus.REJECTED, user, note)


def send_to_review(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision:
    """Put ``obj`` in the review queue by hand ("review", pinned like a verdict).

    No automatic verdict replaces it; the next approval or rejection does.
    """
    return _human_decision(obj, ModerationStatus.REVIEW, user, note)


def _human_decision(
    obj: Model, status: str, user: AbstractBaseUser | None, note: str
) -> ModerationDecision:
    with transaction.atomic():
        _lock_object(obj)
        previous = (
            type(obj)
            ._default_manager.filter(pk=obj.pk)
            .values_list("moderation_status", flat=True)
            .first()
        ) or ModerationStatus.PENDING
        return _record_decision(
            obj,
            status,
            previous=previous,
            decided_by_kind=ModerationDecision.DecidedByKind.HUMAN,
            reasons=[{"rule": "human"}],
            note=note,
            user=user,
            # Later uploads of the same content follow this verdict.
            content_key=verdict_content_key(current_analyses(obj)),
        )


def release(
    obj: Model, user: AbstractBaseUser | None = None, note: str = ""
) -> ModerationDecision | None:
    """Drop a human pin and let the policy decide again from the results."""
    with transaction.atomic():
        _lock_object(obj)
        previous = obj.moderation_status  # type: ignore[attr-defined]
        verdict = get_policy().decide(current_analyses(obj))
        status = verdict.status if verdict is not None else ModerationStatus.PENDING
        return _record_decision(
            obj,
            status,
            previous=previous,
            decided_by_kind=ModerationDecision.DecidedByKind.AUTO,
            reasons=(verdict.reasons if verdict else [])
            + [{"rule": "released", "by": getattr(user, "pk", None)}],
            note=note,
            user=user,
        )
