"""Offline alt text from the text read in the image, marked as such.

The app writes a *caption* into ``Photo.alt_text``; offline there is no
caption (the local backend cannot describe an image), so the example opts
in to one honest substitute: when OCR (``cld_text``) read text in a photo
and no caption exists for that file, the alt text says which text was read,
labelled as OCR. It goes through the app's own ``write_alt_text``, so the
rules are the caption's: only a blank field or the app's last value is
replaced, a person's text never, and a later caption replaces this one.
Nothing is written for a photo without text.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from django_cloudinary_analysis.models import Analysis, AnalysisStatus
from django_cloudinary_analysis.writeback.alt_text import write_alt_text
from django_cloudinary_analysis.writeback.options import CAPTION_TYPE, alt_text_field
from gallery.report import _raw_analysis

OCR_TYPE = "cld_text"


def ocr_text(analysis: Analysis) -> str:
    """The text a succeeded OCR analysis read, on one line ("" if none)."""
    return " ".join(str(_raw_analysis(analysis).get("text") or "").split())


def alt_text_from_ocr(sender: Any, analysis: Analysis, **kwargs: Any) -> None:
    """Write "Text read in the image (OCR): …" when there is no caption."""
    if analysis.analysis_type != OCR_TYPE:
        return
    if analysis.status != AnalysisStatus.SUCCEEDED:
        return
    model = analysis.content_type.model_class()
    field_name = alt_text_field(model) if model is not None else None
    text = ocr_text(analysis)
    if model is None or not field_name or not text:
        return
    captioned = Analysis.objects.filter(
        content_type_id=analysis.content_type_id,
        object_id=analysis.object_id,
        field_name=analysis.field_name,
        file_name=analysis.file_name,
        analysis_type=CAPTION_TYPE,
        status=AnalysisStatus.SUCCEEDED,
    ).exists()
    if captioned:  # a caption describes the image; it wins
        return
    label = gettext("Text read in the image (OCR): %(text)s") % {"text": text}
    write_alt_text(model, analysis, field_name, label)
