"""The tags' queryset: lookups by name, the bulk reader per object, and the
two-statement replacement of an analysis's tags (its INSERT columns are
shared with ``AnalysisQuerySet.finish_with_tags``)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.db.models.functions import RowNumber

from django_cloudinary_analysis.querysets import (
    ObjectQuerySet,
    analysis_model,
    media_tag_model,
)

if TYPE_CHECKING:
    from django_cloudinary_analysis.models import Analysis, MediaTag


#: The columns a tag is inserted with (``MediaTag.objects.replace``).
TAG_COLUMNS = (
    "analysis_id",
    "content_type_id",
    "object_id",
    "field_name",
    "name",
    "label",
    "confidence",
    "analysis_type",
    "box",
)


def tag_values(connection: Any, analysis: Analysis, tags: Sequence[Any]) -> list[Any]:
    """The parameters of ``tags`` (anything with name, label, confidence,
    analysis_type and box) in ``TAG_COLUMNS`` order, for ``analysis``."""
    values: list[Any] = []
    for tag in tags:
        box = tag.box
        if box is not None:
            box = connection.ops.adapt_json_value(box, None)
        values += [
            analysis.pk,
            analysis.content_type_id,
            analysis.object_id,
            analysis.field_name,
            tag.name,
            tag.label,
            tag.confidence,
            tag.analysis_type,
            box,
        ]
    return values


def tags_json(tags: Sequence[Any]) -> str:
    """``tags`` as one JSON array of objects (name, label, confidence,
    analysis_type, box): what ``AnalysisQuerySet.finish_with_tags`` reads with
    ``jsonb_to_recordset``."""
    return json.dumps(
        [
            {
                "name": tag.name,
                "label": tag.label,
                "confidence": tag.confidence,
                "analysis_type": tag.analysis_type,
                "box": tag.box,
            }
            for tag in tags
        ],
        allow_nan=False,
    )


class MediaTagQuerySet(ObjectQuerySet):
    """Queries over tags."""

    def named(self, name: str, min_confidence: float | None = None) -> MediaTagQuerySet:
        """Tags with this normalised name, optionally above a confidence."""
        from django_cloudinary_analysis.analysis_types import normalise_name

        qs = self.filter(name=normalise_name(name))
        if min_confidence is not None:
            qs = qs.filter(confidence__gte=min_confidence)
        return qs

    def by_object(
        self, keys: Iterable[tuple[int, str]], limit: int | None = None
    ) -> dict[tuple[int, str], list[MediaTag]]:
        """Tags of many (content type id, object id) pairs, most confident first.

        One query whatever the number of objects. With ``limit``, at most that
        many distinct names per object, ranked in the database so a page never
        pulls every tag.
        """
        wanted: dict[int, set[str]] = defaultdict(set)
        for ct_id, object_id in keys:
            wanted[ct_id].add(object_id)
        found: dict[tuple[int, str], list[MediaTag]] = defaultdict(list)
        if not wanted:
            return found
        condition = models.Q(pk__in=[])
        for ct_id, object_ids in wanted.items():
            condition |= models.Q(
                content_type_id=ct_id, object_id__in=sorted(object_ids)
            )
        order = (models.F("confidence").desc(nulls_last=True), "name", "pk")
        rows = self.filter(condition)
        if limit is not None:
            # Headroom for names found by several analyses of the object.
            rows = rows.annotate(
                _rank=models.Window(
                    RowNumber(),
                    partition_by=[models.F("content_type_id"), models.F("object_id")],
                    order_by=order,
                )
            ).filter(_rank__lte=limit * 3)
        seen: dict[tuple[int, str], set[str]] = defaultdict(set)
        for tag in rows.order_by(*order):
            key = (tag.content_type_id, tag.object_id)
            if limit is not None:
                if tag.name in seen[key] or len(found[key]) >= limit:
                    continue
                seen[key].add(tag.name)
            found[key].append(tag)
        return found

    def replace(self, analysis: Analysis, tags: Sequence[Any]) -> None:
        """Replace the tags of ``analysis``'s (object, field, type) by ``tags``.

        Two statements without the query compiler: one DELETE of the tags of
        every analysis of that (object, field, type), one multi-row INSERT.
        """
        connection = connections[self.db]
        qn = connection.ops.quote_name
        table = qn(media_tag_model()._meta.db_table)
        analyses = qn(analysis_model()._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {qn('analysis_id')} IN ("  # noqa: S608
                f"SELECT {qn('id')} FROM {analyses}"
                f" WHERE {qn('content_type_id')} = %s AND {qn('object_id')} = %s"
                f" AND {qn('field_name')} = %s AND {qn('analysis_type')} = %s)",
                [
                    analysis.content_type_id,
                    analysis.object_id,
                    analysis.field_name,
                    analysis.analysis_type,
                ],
            )
            if not tags:
                return
            one = "(" + ", ".join(["%s"] * len(TAG_COLUMNS)) + ")"
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(qn(c) for c in TAG_COLUMNS)})"  # noqa: S608
                f" VALUES {', '.join([one] * len(tags))}",
                tag_values(connection, analysis, tags),
            )
