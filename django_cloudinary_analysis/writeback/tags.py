"""Reconcile an object's django-taggit tags with its current labels.

The app adds the labels of the analyses of the object's current files (after
``TAG_WRITE_MIN_CONFIDENCE`` and ``TAG_MAP``) and removes the tags it added
earlier that the content no longer has. Tags a person added are never
removed; a tag of the app's that a person removed is not added again while
the content still has it. Queries per object are constant, whatever the
number of tags: lookups and writes are bulk.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, signals

from django_cloudinary_analysis.mixins import analysis_config, stored_name
from django_cloudinary_analysis.models import AnalysisStatus, MediaTag
from django_cloudinary_analysis.writeback.models import WrittenValue
from django_cloudinary_analysis.writeback.options import (
    TAG_TYPES,
    site_tag_names,
    tags_field,
)

if TYPE_CHECKING:
    from django.db.models import Model

    from django_cloudinary_analysis.models import Analysis

logger = logging.getLogger(__name__)


def current_labels(
    obj: Model, content_type_id: int, fields: list[str] | None = None
) -> list[tuple[str, float | None]]:
    """(label, confidence) of the tagging analyses of ``obj``'s current files.

    One query. MediaTag rows are replaced on each success, so the rows left
    for a (field, type) whose analysis ran on the current file are its newest
    result; rows from a file since replaced are left out.
    """
    current = Q()
    for field_name in fields or analysis_config(type(obj)):
        name = stored_name(getattr(obj, field_name, None))
        if name:
            current |= Q(field_name=field_name, analysis__file_name=name)
    if not current:
        return []
    rows = (
        MediaTag.objects.filter(
            content_type_id=content_type_id,
            object_id=str(obj.pk),
            analysis__status=AnalysisStatus.SUCCEEDED,
            analysis__analysis_type__in=TAG_TYPES,
        )
        .filter(current)
        .order_by("-confidence", "name")
        .values_list("name", "confidence")
    )
    return list(rows)


def analysis_finished(model: type[Model], analysis: Analysis) -> bool:
    """Reconcile the tags after a tagging or detection analysis ends."""
    if analysis.analysis_type not in TAG_TYPES:
        return False
    field_name = tags_field(model)
    if not field_name:
        return False
    reconcile(model, analysis.object_id, field_name, analysis.content_type_id)
    return True


def _key(name: str) -> str:
    return (
        name.casefold() if getattr(settings, "TAGGIT_CASE_INSENSITIVE", False) else name
    )


def reconcile(
    model: type[Model], object_id: str, field_name: str, content_type_id: int
) -> tuple[list[str], list[str]]:
    """Bring the object's taggit tags in line; return (added, removed) names."""
    with transaction.atomic():
        obj = model._default_manager.select_for_update().filter(pk=object_id).first()
        if obj is None:
            return [], []
        desired = site_tag_names(current_labels(obj, content_type_id))
        wanted = {_key(n) for n in desired}
        manager = getattr(obj, field_name)
        through: Any = manager.through
        tag_model: Any = through.tag_model()
        lookup = through.lookup_kwargs(obj)
        present = {
            _key(name): (tag_id, str(item_id))
            for name, tag_id, item_id in through._default_manager.filter(
                **lookup
            ).values_list("tag__name", "tag_id", "pk")
        }
        records = list(
            WrittenValue.objects.filter(
                content_type_id=content_type_id,
                object_id=str(obj.pk),
                target=WrittenValue.Target.TAGGIT,
                field_name=field_name,
            )
        )
        active = [r for r in records if not r.withdrawn]
        # The app's tags are the items it created; the same name on another
        # item was added again by a person, and is theirs.
        ours = {
            _key(r.value): r
            for r in active
            if present.get(_key(r.value), (None, ""))[1] == r.item_id
        }
        taken = [
            r.pk for r in active if _key(r.value) in present and r not in ours.values()
        ]
        # An app tag that is gone was removed by a person: do not add it again.
        gone = [r for r in active if _key(r.value) not in present]
        withdrawn = {_key(r.value) for r in records if r.withdrawn}
        withdrawn |= {_key(r.value) for r in gone}
        stale = [r.pk for r in records if _key(r.value) not in wanted]
        skip = set(present) | withdrawn
        to_add = [n for n in desired if _key(n) not in skip]
        to_remove = [r.value for k, r in ours.items() if k not in wanted]

        items: dict[Any, str] = {}
        if to_add:
            tags = _tag_objects(tag_model, to_add)
            ids = {t.pk for t in tags}
            _m2m_changed(through, obj, tag_model, "pre_add", ids)
            through._default_manager.bulk_create(
                [through(tag=tag, **lookup) for tag in tags], ignore_conflicts=True
            )
            _m2m_changed(through, obj, tag_model, "post_add", ids)
            items = {
                tag_id: str(item_id)
                for tag_id, item_id in through._default_manager.filter(
                    **lookup, tag_id__in=ids
                ).values_list("tag_id", "pk")
            }
        if to_remove:
            ids = {present[_key(n)][0] for n in to_remove}
            _m2m_changed(through, obj, tag_model, "pre_remove", ids)
            through._default_manager.filter(**lookup, tag_id__in=ids).delete()
            _m2m_changed(through, obj, tag_model, "post_remove", ids)
        if gone:
            WrittenValue.objects.filter(pk__in=[r.pk for r in gone]).update(
                withdrawn=True
            )
        if stale or taken:
            # Gone from the content (also a person's removal of it), or now a
            # person's tag: forget it.
            WrittenValue.objects.filter(pk__in=stale + taken).delete()
        if to_add:
            WrittenValue.objects.bulk_create(
                [
                    WrittenValue(
                        content_type_id=content_type_id,
                        object_id=str(obj.pk),
                        target=str(WrittenValue.Target.TAGGIT),
                        field_name=field_name,
                        value=name,
                        item_id=items.get(tag.pk, ""),
                    )
                    for name, tag in zip(to_add, tags, strict=True)
                ]
            )
    if to_add or to_remove:
        logger.info(
            "taggit tags of %s:%s: added %s, removed %s",
            content_type_id,
            object_id,
            to_add,
            to_remove,
        )
    return to_add, to_remove


def _tag_objects(tag_model: Any, names: list[str]) -> list[Any]:
    """Existing or new Tag rows for ``names``, in bulk (two to four queries)."""
    manager = tag_model._default_manager
    case_insensitive = getattr(settings, "TAGGIT_CASE_INSENSITIVE", False)

    def lookup(wanted: list[str]) -> dict[str, Any]:
        if case_insensitive:
            match = Q()
            for name in wanted:
                match |= Q(name__iexact=name)
        else:
            match = Q(name__in=wanted)
        found: dict[str, Any] = {}
        for tag in manager.filter(match).order_by("pk"):
            found.setdefault(_key(tag.name), tag)
        return found

    found = lookup(names)
    missing = [n for n in names if _key(n) not in found]
    if missing:
        maker = tag_model()
        manager.bulk_create(
            [tag_model(name=n, slug=maker.slugify(n)) for n in missing],
            ignore_conflicts=True,
        )
        found.update(lookup(missing))
        for name in missing:
            if _key(name) not in found:
                # Its slug is taken by another name: taggit's save() finds a
                # free one (rare, so one by one is fine).
                tag = tag_model(name=name)
                tag.save()
                found[_key(name)] = tag
    return [found[_key(n)] for n in names]


def _m2m_changed(
    through: Any, obj: Model, tag_model: Any, action: str, ids: set[Any]
) -> None:
    # As taggit's own add() and remove() do, for receivers such as search indexes.
    signals.m2m_changed.send(
        sender=through,
        action=action,
        instance=obj,
        reverse=False,
        model=tag_model,
        pk_set=ids,
        using=obj._state.db,
    )
