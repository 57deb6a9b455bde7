"""Querysets shared by the app's tables (no model imports: the write-back and
accountability tables use them without importing ``models``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from django.db.models import Model


def analysis_model() -> Any:
    """``Analysis`` from the app registry (querysets cannot import
    ``models``, which imports them)."""
    return apps.get_model("cloudinary_analysis", "Analysis")


def media_tag_model() -> Any:
    """``MediaTag`` from the app registry."""
    return apps.get_model("cloudinary_analysis", "MediaTag")


def object_pairs(keys: Iterable[tuple[int, str]]) -> Q:
    """A condition matching rows of any of the (content type id, object id) keys."""
    where = Q(pk__in=[])
    for ct_id, object_id in keys:
        where |= Q(content_type_id=ct_id, object_id=object_id)
    return where


class ObjectQuerySet(models.QuerySet):
    """Lookups by the generic (content type, object id) pair."""

    def for_object(self, obj: Model) -> ObjectQuerySet:
        """Rows that belong to ``obj``."""
        return self.filter(
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
        )

    def for_model(self, model: type[Model]) -> ObjectQuerySet:
        """Rows that belong to objects of ``model``."""
        return self.filter(content_type=ContentType.objects.get_for_model(model))
