"""Querysets shared by the app's tables (no model imports: the write-back and
accountability tables use them without importing ``models``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from django.db import models

if TYPE_CHECKING:
    from django.db.models import Model


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
