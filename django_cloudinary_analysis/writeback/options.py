"""Write-back configuration: the AnalysisMeta options and the settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.analysis_types import ANALYSIS_TYPES, normalise_name

if TYPE_CHECKING:
    from django.db.models import Model

#: Analysis types whose results are not labels: captions, quality, answers.
NOT_TAGS = frozenset(
    {"captioning", "image_quality", "ai_vision_general", "ai_vision_moderation"}
)
#: Analysis types whose results are labels (tagging and detection).
TAG_TYPES = frozenset(ANALYSIS_TYPES) - NOT_TAGS
CAPTION_TYPE = "captioning"
#: taggit's Tag.name is a CharField(max_length=100).
TAG_NAME_MAX = 100


def _meta_option(model: type[Model], name: str) -> str | None:
    value = getattr(getattr(model, "AnalysisMeta", None), name, None)
    return value or None


def alt_text_field(model: type[Model]) -> str | None:
    """The field ``AnalysisMeta.alt_text_field`` names, or None."""
    return _meta_option(model, "alt_text_field")


def tags_field(model: type[Model]) -> str | None:
    """The TaggableManager ``AnalysisMeta.tags_field`` names, or None."""
    return _meta_option(model, "tags_field")


def caption_field(model: type[Model]) -> str | None:
    """The first file field analysed with captioning: it feeds the alt text."""
    from django_cloudinary_analysis.mixins import analysis_config

    for field_name, specs in analysis_config(model).items():
        if any(spec.type == CAPTION_TYPE for spec in specs):
            return field_name
    return None


def site_tag_names(labels: Iterable[tuple[str, float | None]]) -> list[str]:
    """Turn (normalised label, confidence) pairs into the site's tag names.

    Keeps labels at least ``TAG_WRITE_MIN_CONFIDENCE`` confident (labels
    without a confidence, such as ai_vision_tagging's matched definitions,
    pass), renames or drops them through ``TAG_MAP`` and removes repeats,
    keeping the order given.
    """
    from django_cloudinary_analysis.conf import app_settings

    threshold = float(app_settings.TAG_WRITE_MIN_CONFIDENCE or 0.0)
    tag_map = {normalise_name(k): v for k, v in (app_settings.TAG_MAP or {}).items()}
    names: list[str] = []
    seen: set[str] = set()
    for label, confidence in labels:
        if confidence is not None and confidence < threshold:
            continue
        key = normalise_name(label)
        target: Any = tag_map.get(key, key)
        if target is None:
            continue
        name = str(target).strip()[:TAG_NAME_MAX].strip()
        if name and name not in seen:
            seen.add(name)
            names.append(name)
    return names


@dataclass(frozen=True)
class SyncOptions:
    """``SYNC_TO_CLOUDINARY``: what is pushed to assets stored on Cloudinary."""

    tags: bool = False
    moderation: bool = False
    tag_prefix: str = ""

    @property
    def enabled(self) -> bool:
        """Whether anything is pushed at all."""
        return self.tags or self.moderation


def sync_options() -> SyncOptions:
    """Read ``SYNC_TO_CLOUDINARY``: None or False is off, True or a dict on.

    A dict's missing keys take ``{"tags": True, "moderation": True,
    "tag_prefix": ""}``.
    """
    from django_cloudinary_analysis.conf import app_settings

    value = app_settings.SYNC_TO_CLOUDINARY
    if not value:
        return SyncOptions()
    if value is True:
        return SyncOptions(tags=True, moderation=True)
    if not isinstance(value, Mapping):
        raise TypeError(
            f"SYNC_TO_CLOUDINARY must be a dict or a bool, not {type(value).__name__}"
        )
    return SyncOptions(
        tags=bool(value.get("tags", True)),
        moderation=bool(value.get("moderation", True)),
        tag_prefix=str(value.get("tag_prefix") or ""),
    )
