"""Serializer fields and the tag loading that keeps lists free of N+1 queries.

``attach_media_tags(objects)`` loads the tags of many objects in one query
per model and caches them on each instance; ``prefetch_media_tags(queryset)``
does the same lazily, when the queryset (or a page of it) is evaluated.
``MediaTagsField`` reads that cache and only queries when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models.query import ModelIterable
from rest_framework import serializers

from django_cloudinary_analysis.mixins import content_type_for
from django_cloudinary_analysis.models import Analysis, MediaTag, ModerationDecision

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

#: The instance attribute holding an object's loaded tags.
TAGS_CACHE = "_cloudinary_analysis_tags"


class ContentTypeField(serializers.CharField):
    """A content type as ``app_label.model`` (read-only)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        """Render ``app_label.model``."""
        return f"{value.app_label}.{value.model}"


def load_tags(
    keys: Iterable[tuple[int, str]],
) -> dict[tuple[int, str], list[MediaTag]]:
    """Tags of many (content type id, object id) pairs, in one query."""
    return MediaTag.objects.by_object(keys)


def tag_key(obj: Model) -> tuple[int, str]:
    """The (content type id, object id) whose tags belong to ``obj``.

    The app's own rows (analyses, decisions) point at an object; any other
    instance is the object itself.
    """
    if isinstance(obj, (Analysis, ModerationDecision)):
        return (obj.content_type_id, str(obj.object_id))
    return (content_type_for(obj).pk, str(obj.pk))


def attach_media_tags(objects: Iterable[Model]) -> list[Model]:
    """Load the tags of ``objects`` in one query and cache them on each one."""
    objects = list(objects)
    missing = [obj for obj in objects if not hasattr(obj, TAGS_CACHE)]
    if not missing:
        return objects
    keys = {id(obj): tag_key(obj) for obj in missing}
    tags = load_tags(keys.values())
    for obj in missing:
        setattr(obj, TAGS_CACHE, tags.get(keys[id(obj)], []))
    return objects


def media_tags_of(obj: Model) -> Sequence[MediaTag]:
    """The object's tags: the cached list, else one query."""
    cached = getattr(obj, TAGS_CACHE, None)
    if cached is None:
        attach_media_tags([obj])
        cached = getattr(obj, TAGS_CACHE)
    return cached  # type: ignore[no-any-return]


class _TagPrefetchingQuerySet:
    """Queryset behaviour: attach tags once the results are fetched."""

    def _fetch_all(self) -> None:
        fetched = self._result_cache is not None  # type: ignore[attr-defined]
        super()._fetch_all()  # type: ignore[misc]
        if not fetched and self._iterable_class is ModelIterable:  # type: ignore[attr-defined]
            attach_media_tags(self._result_cache)  # type: ignore[attr-defined]


_prefetching_classes: dict[type, type] = {}


def prefetch_media_tags(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Return ``queryset`` loading its objects' tags in one query when evaluated.

    Slicing (pagination) keeps the behaviour, so a page costs one query for
    its tags whatever its size.
    """
    base = type(queryset)
    if issubclass(base, _TagPrefetchingQuerySet):
        return queryset.all()
    cls = _prefetching_classes.get(base)
    if cls is None:
        cls = type(
            f"TagPrefetching{base.__name__}", (_TagPrefetchingQuerySet, base), {}
        )
        _prefetching_classes[base] = cls
    clone = queryset.all()
    clone.__class__ = cls
    return clone
