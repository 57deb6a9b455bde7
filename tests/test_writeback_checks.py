"""One test per write-back system check id (E020–E023, W020–W021)."""

from __future__ import annotations

import inspect
import re
import sys

import pytest
from django.db import models
from django.test.utils import isolate_apps
from taggit.managers import TaggableManager

from django_cloudinary_analysis import checks
from django_cloudinary_analysis.mixins import AnalyzedMedia
from django_cloudinary_analysis.writeback import checks as writeback_checks


class _Config:
    def __init__(self, *models_):
        self.models = models_

    def get_models(self):
        return self.models


def ids(*models_) -> list[str]:
    return [m.id for m in checks.check_writeback([_Config(*models_)])]


@pytest.fixture
def writeback_settings(settings):
    def apply(**values):
        settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, **values}
        return [m.id for m in checks.check_writeback([])]

    return apply


def test_the_test_models_are_clean():
    assert checks.check_writeback() == []


@isolate_apps("tests")
def test_e020_alt_text_field_that_is_not_text():
    class Bad(AnalyzedMedia):
        image = models.ImageField()
        width = models.IntegerField()

        class AnalysisMeta:
            analyses = ["captioning"]
            alt_text_field = "width"

    class Missing(AnalyzedMedia):
        image = models.ImageField()

        class AnalysisMeta:
            analyses = ["captioning"]
            alt_text_field = "alt"

    assert ids(Bad, Missing) == ["cloudinary_analysis.E020"] * 2


@isolate_apps("tests")
def test_e021_tags_field_that_is_not_a_taggable_manager(monkeypatch):
    class Bad(AnalyzedMedia):
        image = models.ImageField()
        tags = models.CharField(max_length=10)

        class AnalysisMeta:
            analyses = ["google_tagging"]
            tags_field = "tags"

    assert ids(Bad) == ["cloudinary_analysis.E021"]
    monkeypatch.setitem(sys.modules, "taggit.managers", None)  # not installed
    messages = checks.check_writeback([_Config(Bad)])
    assert [m.id for m in messages] == ["cloudinary_analysis.E021"]
    assert "django-taggit is not installed" in messages[0].msg


@pytest.mark.parametrize(
    "values",
    [
        {"TAG_MAP": {"kitten": 3}},
        {"TAG_MAP": ["kitten"]},
        {"TAG_WRITE_MIN_CONFIDENCE": 1.5},
        {"TAG_WRITE_MIN_CONFIDENCE": "high"},
    ],
)
def test_e022_tag_settings(writeback_settings, values):
    assert writeback_settings(**values) == ["cloudinary_analysis.E022"]


def test_e022_good_tag_settings_pass(writeback_settings):
    assert writeback_settings(TAG_MAP={"kitten": "cat", "rug": None}) == []


@pytest.mark.parametrize(
    "value", ["yes", {"tags": True, "prefix": "ai:"}, {"tag_prefix": 3}]
)
def test_e023_malformed_sync_setting(writeback_settings, value):
    assert writeback_settings(SYNC_TO_CLOUDINARY=value) == ["cloudinary_analysis.E023"]


def test_e023_sync_without_pycloudinary(writeback_settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudinary", None)
    assert writeback_settings(SYNC_TO_CLOUDINARY=True) == ["cloudinary_analysis.E023"]


def test_e023_good_sync_settings_pass(writeback_settings):
    assert writeback_settings(SYNC_TO_CLOUDINARY={"tag_prefix": "ai:"}) == []


@isolate_apps("tests")
def test_w020_alt_text_without_captioning():
    class NoCaption(AnalyzedMedia):
        image = models.ImageField()
        alt = models.TextField(blank=True)

        class AnalysisMeta:
            analyses = ["google_tagging"]
            alt_text_field = "alt"

    assert ids(NoCaption) == ["cloudinary_analysis.W020"]


@isolate_apps("tests")
def test_w021_tags_without_a_tagging_analysis():
    class NoLabels(AnalyzedMedia):
        image = models.ImageField()
        tags = TaggableManager(blank=True)

        class AnalysisMeta:
            analyses = ["captioning"]
            tags_field = "tags"

    assert ids(NoLabels) == ["cloudinary_analysis.W021"]


def test_every_writeback_ledger_id_has_a_test():
    source = inspect.getsource(writeback_checks)  # the ledger lives with them
    block = source[source.index("# Ledger, continued") :]
    ledger = re.findall(r"\b([EW]0[2-9]\d)\b", block.split("@checks.register")[0])
    with open(__file__) as fh:
        tests = fh.read()
    missing = [i for i in ledger if f"test_{i.lower()}_" not in tests]
    assert ledger and missing == []
