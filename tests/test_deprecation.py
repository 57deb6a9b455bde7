"""Renamed names keep working for a while, with a DeprecationWarning.

The ``_deprecation.py`` helpers, and ``analyses.py``: the old registry module.

vocab-rename: skip (these tests use the old names on purpose).
"""

from __future__ import annotations

import importlib
import sys

import pytest

from django_cloudinary_analysis import analysis_types
from django_cloudinary_analysis.models import MediaTag, ModerationDecision


def test_the_old_module_name_works_with_a_deprecation_warning() -> None:
    sys.modules.pop("django_cloudinary_analysis.analyses", None)
    with pytest.warns(DeprecationWarning, match="analysis_types"):
        old = importlib.import_module("django_cloudinary_analysis.analyses")
    assert old.get("coco") is analysis_types.get("coco")
    assert old.ANALYSIS_TYPES is analysis_types.ANALYSIS_TYPES
    assert old.MODERATION_ANSWERS is analysis_types.MODERATION_ANSWERS


def test_the_renamed_fields_old_names_still_read_and_write_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="MediaTag.source"):
        tag = MediaTag(name="cat", source="coco")
    assert tag.analysis_type == "coco"
    decision = ModerationDecision(
        decided_by_kind=ModerationDecision.DecidedByKind.HUMAN
    )
    with pytest.warns(DeprecationWarning, match="decided_by_kind"):
        assert decision.source == "human"
    assert ModerationDecision.Source is ModerationDecision.DecidedByKind


def test_the_registry_old_names_for_params_still_work() -> None:
    sys.modules.pop("django_cloudinary_analysis.analyses", None)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("django_cloudinary_analysis.analyses")
    assert old.validate_extras is analysis_types.validate_params
    assert old.MAX_EXTRA_ITEMS == analysis_types.MAX_PARAM_ITEMS == 10
