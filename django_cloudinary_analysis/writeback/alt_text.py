"""Write a succeeded caption into the model's alt-text field.

The caption is written when the field is blank or still holds the caption
the app wrote last; anything else is a person's text and stays. The write is
one conditional ``UPDATE`` (no save signals, so no recursion and no race with
a person's edit between reading and writing).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q

from django_cloudinary_analysis.mixins import stored_name
from django_cloudinary_analysis.models import AnalysisStatus
from django_cloudinary_analysis.writeback.models import WrittenValue
from django_cloudinary_analysis.writeback.options import (
    CAPTION_TYPE,
    alt_text_field,
    caption_field,
)

if TYPE_CHECKING:
    from django.db.models import Model

    from django_cloudinary_analysis.models import Analysis

logger = logging.getLogger(__name__)


def truncate_words(text: str, max_length: int | None) -> str:
    """Shorten ``text`` to ``max_length`` characters, cutting between words."""
    if max_length is None or len(text) <= max_length:
        return text
    cut = text[:max_length]
    if not text[max_length].isspace():
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    return cut.rstrip(" ,;:-")


def analysis_finished(model: type[Model], analysis: Analysis) -> bool:
    """Write the caption of a succeeded captioning analysis; return if written."""
    if analysis.analysis_type != CAPTION_TYPE:
        return False
    if analysis.status != AnalysisStatus.SUCCEEDED:
        return False
    field_name = alt_text_field(model)
    if not field_name or caption_field(model) != analysis.field_name:
        return False
    caption = (analysis.result or {}).get("caption")
    if not isinstance(caption, str) or not caption.strip():
        return False
    return write_alt_text(model, analysis, field_name, " ".join(caption.split()))


def write_alt_text(
    model: type[Model], analysis: Analysis, field_name: str, caption: str
) -> bool:
    """Write ``caption`` unless a person's text is in the field."""
    field = model._meta.get_field(field_name)
    text = truncate_words(caption, getattr(field, "max_length", None))
    if not text:
        return False
    rows = model._default_manager.filter(pk=analysis.object_id)
    record_key = {
        "content_type_id": analysis.content_type_id,
        "object_id": analysis.object_id,
        "target": WrittenValue.Target.ALT_TEXT,
        "field_name": field_name,
    }
    with transaction.atomic():
        obj = rows.select_for_update().first()
        if obj is None:
            return False
        if stored_name(getattr(obj, analysis.field_name, None)) != analysis.file_name:
            return False  # the file was replaced: its own caption will come
        last = (
            WrittenValue.objects.filter(**record_key)
            .values_list("value", flat=True)
            .first()
        )
        ours = Q(**{field_name: ""}) | Q(**{f"{field_name}__isnull": True})
        if last is not None:
            ours |= Q(**{field_name: last})
        written = rows.filter(ours).update(**{field_name: text})
        if written:
            WrittenValue.objects.update_or_create(
                **record_key, defaults={"value": text}
            )
    logger.info(
        "alt text of %s:%s %s",
        analysis.content_type_id,
        analysis.object_id,
        "written" if written else "kept (a person's text)",
        extra={"analysis_id": analysis.pk},
    )
    return bool(written)
