"""System checks of the write-back options (alt text, django-taggit, sync).

Registered with the app's other checks (imported by ``checks``); the ids
continue the app's ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

TAG = "cloudinary_analysis"
ID = "cloudinary_analysis.{}"


# -- write-back (alt text, django-taggit, Cloudinary sync) ---------------------------
# Ledger, continued: E020 alt_text_field is not a CharField/TextField of the model;
# E021 tags_field is not a taggit TaggableManager (or taggit is not installed);
# E022 TAG_MAP or TAG_WRITE_MIN_CONFIDENCE is malformed; E023 SYNC_TO_CLOUDINARY
# is malformed or pycloudinary is missing; W020 alt_text_field without captioning;
# W021 tags_field without a tagging or detection analysis.


@checks.register(TAG, checks.Tags.models)
def check_writeback(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Validate the write-back options of each model and the settings."""
    from django.db import models

    from django_cloudinary_analysis.conf import app_settings
    from django_cloudinary_analysis.mixins import media_models
    from django_cloudinary_analysis.options import analysis_config
    from django_cloudinary_analysis.writeback import options

    errors: list[checks.CheckMessage] = []
    for model in media_models(proxies=True, app_configs=app_configs or None):
        label = model._meta.label
        try:
            types = {s.type for specs in analysis_config(model).values() for s in specs}
        except (TypeError, ValueError, ImproperlyConfigured):
            types = set()  # E007 reports it
        alt = options.alt_text_field(model)
        if alt:
            try:
                field: Any = model._meta.get_field(alt)
            except FieldDoesNotExist:
                field = None
            if not isinstance(field, (models.CharField, models.TextField)):
                errors.append(
                    checks.Error(
                        f"{label}.AnalysisMeta.alt_text_field = {alt!r} is not a "
                        "CharField or TextField of the model.",
                        obj=model,
                        id=ID.format("E020"),
                    )
                )
            elif options.CAPTION_TYPE not in types:
                errors.append(
                    checks.Warning(
                        f"{label}.AnalysisMeta.alt_text_field is set but no file "
                        "field is analysed with 'captioning'.",
                        hint="Add 'captioning' to the model's analyses.",
                        obj=model,
                        id=ID.format("W020"),
                    )
                )
        tags = options.tags_field(model)
        if tags:
            errors.extend(_check_tags_field(model, tags, types))
    errors.extend(_check_writeback_settings(app_settings))
    return errors


def _check_tags_field(
    model: Any, name: str, types: set[str]
) -> list[checks.CheckMessage]:
    from django_cloudinary_analysis.writeback.options import TAG_TYPES

    label = model._meta.label
    try:
        from taggit.managers import TaggableManager
    except ImportError:
        return [
            checks.Error(
                f"{label}.AnalysisMeta.tags_field is set but django-taggit is not "
                "installed.",
                hint="pip install 'django-cloudinary-analysis[taggit]' and add "
                "'taggit' to INSTALLED_APPS.",
                obj=model,
                id=ID.format("E021"),
            )
        ]
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        field = None
    if not isinstance(field, TaggableManager):
        return [
            checks.Error(
                f"{label}.AnalysisMeta.tags_field = {name!r} is not a taggit "
                "TaggableManager of the model.",
                hint="Add e.g. tags = TaggableManager(blank=True) to the model.",
                obj=model,
                id=ID.format("E021"),
            )
        ]
    if not types & TAG_TYPES:
        return [
            checks.Warning(
                f"{label}.AnalysisMeta.tags_field is set but no tagging or detection "
                "analysis runs on the model.",
                hint="Add e.g. 'google_tagging' or 'coco' to the model's analyses.",
                obj=model,
                id=ID.format("W021"),
            )
        ]
    return []


def _check_writeback_settings(app_settings: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    tag_map = app_settings.TAG_MAP
    if not isinstance(tag_map, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str))
        for k, v in tag_map.items()
    ):
        errors.append(
            checks.Error(
                f"CLOUDINARY_ANALYSIS['TAG_MAP'] = {tag_map!r} is malformed.",
                hint="Use a dict of API label -> site tag name, or None to drop it, "
                "e.g. {'kitten': 'cat', 'rectangle': None}.",
                id=ID.format("E022"),
            )
        )
    threshold = app_settings.TAG_WRITE_MIN_CONFIDENCE
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        errors.append(
            checks.Error(
                f"CLOUDINARY_ANALYSIS['TAG_WRITE_MIN_CONFIDENCE'] = {threshold!r} is "
                "not a number from 0 to 1.",
                id=ID.format("E022"),
            )
        )
    sync = app_settings.SYNC_TO_CLOUDINARY
    known = {"tags", "moderation", "tag_prefix"}
    if sync and not (
        sync is True
        or (
            isinstance(sync, dict)
            and set(sync) <= known
            and isinstance(sync.get("tag_prefix", ""), str)
        )
    ):
        errors.append(
            checks.Error(
                f"CLOUDINARY_ANALYSIS['SYNC_TO_CLOUDINARY'] = {sync!r} is malformed.",
                hint="Use {'tags': True, 'moderation': True, 'tag_prefix': ''}.",
                id=ID.format("E023"),
            )
        )
    elif sync:
        try:
            import cloudinary  # noqa: F401
        except ImportError:
            errors.append(
                checks.Error(
                    "CLOUDINARY_ANALYSIS['SYNC_TO_CLOUDINARY'] is on but pycloudinary "
                    "is not installed.",
                    hint="pip install 'django-cloudinary-analysis[cloudinary]'.",
                    id=ID.format("E023"),
                )
            )
    return errors
