"""The analysis registry: entries, extras validation and tolerant normalisers."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from django_cloudinary_analysis import analysis_types
from django_cloudinary_analysis.analysis_types import (
    ANALYSIS_TYPES,
    AnalysisType,
    Normalised,
    Quality,
    TagData,
    normalise_name,
    validate_params,
)
from django_cloudinary_analysis.exceptions import InvalidParameters, UnknownAnalysisType
from tests.support import api_samples
from tests.support.api_samples import DEFAULT_TAG_DEFINITIONS, sample_analysis

DETECTION = ["coco", "lvis", "unidet", "cld_fashion", "cld_text", "human_anatomy"]


# -- the registry ---------------------------------------------------------------


def test_fifteen_types_named_like_their_endpoints():
    assert sorted(ANALYSIS_TYPES) == sorted(api_samples.ANALYSIS_TYPES)
    assert len(ANALYSIS_TYPES) == 15
    for name, entry in ANALYSIS_TYPES.items():
        assert isinstance(entry, AnalysisType)
        assert entry.name == name
        assert entry.path == f"/analyze/{name}"
        assert entry.required_params <= entry.accepted_params


def test_extras_and_async():
    assert ANALYSIS_TYPES["ai_vision_general"].accepted_params == {"prompts"}
    assert ANALYSIS_TYPES["ai_vision_moderation"].accepted_params == {
        "rejection_questions"
    }
    assert ANALYSIS_TYPES["ai_vision_tagging"].accepted_params == {"tag_definitions"}
    assert ANALYSIS_TYPES["ai_vision_tagging"].required_params == {"tag_definitions"}
    others = set(ANALYSIS_TYPES) - {
        "ai_vision_general",
        "ai_vision_moderation",
        "ai_vision_tagging",
    }
    assert all(not ANALYSIS_TYPES[n].accepted_params for n in others)
    assert [n for n, e in ANALYSIS_TYPES.items() if not e.async_allowed] == [
        "google_logo_detection"
    ]


def test_quota_features():
    features = {name: entry.quota_feature for name, entry in ANALYSIS_TYPES.items()}
    assert set(features.values()) == {"ai_vision", "google_tagging", "object_detection"}
    assert features["ai_vision_general"] == "ai_vision"
    assert features["ai_vision_moderation"] == "ai_vision"
    assert features["ai_vision_tagging"] == "ai_vision"
    assert features["google_tagging"] == "google_tagging"
    assert features["google_logo_detection"] == "google_tagging"
    for name in [*DETECTION, "shop_classifier", "captioning", "image_quality"]:
        assert features[name] == "object_detection"
    # The samples (what the fake server reports) agree with the registry.
    for name, feature in features.items():
        items = api_samples.sample_limits(name)["items"]
        assert items[0]["type"] == feature


def test_entries_are_frozen():
    entry = analysis_types.get("coco")
    with pytest.raises(AttributeError):
        entry.name = "lvis"  # type: ignore[misc]


def test_get_unknown():
    with pytest.raises(UnknownAnalysisType) as info:
        analysis_types.get("nope")
    assert isinstance(info.value, InvalidParameters)
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown analysis type 'nope'")
    assert "google_tagging" in str(info.value)
    with pytest.raises(UnknownAnalysisType):
        analysis_types.get(None)  # type: ignore[arg-type]
    with pytest.raises(UnknownAnalysisType):
        validate_params("Coco", {})


def test_no_django_import():
    code = (
        "import sys, django_cloudinary_analysis.analysis_types, "
        "django_cloudinary_analysis.client; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], "
        "sorted(m for m in sys.modules if m.startswith('django'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- extras ---------------------------------------------------------------------


def test_validate_extras_cleans():
    assert validate_params("coco", {}) == {}
    assert validate_params("coco", None) == {}
    assert validate_params("ai_vision_general", {"prompts": ("a?",)}) == {
        "prompts": ["a?"]
    }
    assert validate_params("ai_vision_general", {"prompts": None}) == {}
    ten = [f"q{i}?" for i in range(10)]
    assert validate_params("ai_vision_moderation", {"rejection_questions": ten}) == {
        "rejection_questions": ten
    }
    assert validate_params(
        "ai_vision_tagging", {"tag_definitions": DEFAULT_TAG_DEFINITIONS}
    ) == {"tag_definitions": DEFAULT_TAG_DEFINITIONS}
    assert ANALYSIS_TYPES["ai_vision_general"].validate_params({"prompts": ["x"]}) == {
        "prompts": ["x"]
    }


@pytest.mark.parametrize(
    ("name", "extras", "words"),
    [
        ("coco", {"prompts": ["x"]}, "does not take prompts (allowed params: none)"),
        ("ai_vision_general", {"prompts": []}, "needs 1 to 10 items, got 0"),
        ("ai_vision_general", {"prompts": ["q"] * 11}, "needs 1 to 10 items, got 11"),
        ("ai_vision_general", {"prompts": "why?"}, "must be a list"),
        ("ai_vision_general", {"prompts": {"a": 1}}, "must be a list"),
        ("ai_vision_general", {"prompts": 3}, "must be a list"),
        ("ai_vision_general", {"prompts": [""]}, "non-empty strings"),
        ("ai_vision_general", {"prompts": [None]}, "non-empty strings"),
        ("ai_vision_moderation", {"rejection_questions": [1]}, "non-empty strings"),
        ("ai_vision_tagging", {}, "requires tag_definitions"),
        ("ai_vision_tagging", {"tag_definitions": None}, "requires tag_definitions"),
        ("ai_vision_tagging", {"tag_definitions": [{}]}, "lacks name and description"),
        (
            "ai_vision_tagging",
            {"tag_definitions": [{"name": "x", "description": " "}]},
            "lacks description",
        ),
        ("ai_vision_tagging", {"tag_definitions": [("x", "y")]}, "objects"),
        (
            "ai_vision_tagging",
            {"tag_definitions": [{"name": "x", "description": "y", "z": 1}]},
            "unknown keys: z",
        ),
        (
            "ai_vision_tagging",
            {"tag_definitions": DEFAULT_TAG_DEFINITIONS, "prompts": ["x"]},
            "does not take prompts",
        ),
    ],
)
def test_validate_extras_refuses(name, extras, words):
    with pytest.raises(InvalidParameters) as info:
        validate_params(name, extras)
    assert words in str(info.value)
    assert info.value.details["analysis_type"] == name


# -- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("Cat", "cat"),
        ("  Dining_Table ", "dining table"),
        ("dining \t  table", "dining table"),
        ("__under__score__", "under score"),
        ("T-Shirt", "t-shirt"),
        ("Straße", "strasse"),
        ("ＣＡＴ", "cat"),  # fullwidth letters fold by NFKC
        ("home & garden", "home & garden"),
        ("", ""),
    ],
)
def test_normalise_name(label, name):
    assert normalise_name(label) == name


# -- normalisers on the samples -------------------------------------------------


def _normalise(name: str, analysis: Any, params: Any = None) -> Normalised:
    return analysis_types.get(name).normalise(analysis, params)


def test_google_tagging():
    result = _normalise("google_tagging", sample_analysis("google_tagging"))
    assert result.tags[0] == TagData("cat", "Cat", 0.9712, None, "google_tagging")
    assert [t.name for t in result.tags] == [
        "cat",
        "felidae",
        "small to medium-sized cats",
        "whiskers",
        "table",
    ]


def test_logo_detection_keeps_the_polygon():
    [logo] = _normalise(
        "google_logo_detection", sample_analysis("google_logo_detection")
    ).tags
    assert (logo.name, logo.label, logo.confidence) == ("google", "google", 0.98)
    assert logo.analysis_type == "google_logo_detection"
    assert isinstance(logo.box, dict)
    assert logo.box["vertices"][0] == {"x": 12, "y": 42}


def test_watermarks_are_tags():
    result = _normalise("watermark_detection", sample_analysis("watermark_detection"))
    assert result.tags == [
        TagData("banner", "banner", 0.99, None, "watermark_detection"),
        TagData("logo", "logo", 0.42, None, "watermark_detection"),
    ]


def test_image_quality():
    result = _normalise("image_quality", sample_analysis("image_quality"))
    assert result.quality == Quality("medium", 0.45218, 0.8)
    assert result.tags == []
    assert _normalise("image_quality", {"model_version": 1}).quality is None
    odd = _normalise("image_quality", {"quality": 3, "score": "0.5", "confidence": []})
    assert odd.quality == Quality(None, 0.5, None)


def test_captioning():
    assert (
        _normalise("captioning", sample_analysis("captioning")).caption
        == "A grey cat sitting on a wooden table"
    )
    assert _normalise("captioning", {"data": None}).caption is None
    assert _normalise("captioning", {"data": {"caption": 5}}).caption is None
    assert _normalise("captioning", {"caption": "flat"}).caption == "flat"


def test_ai_vision_general():
    prompts = ["What colour is the cat?", "Is it indoors?", "Third?"]
    result = _normalise(
        "ai_vision_general", sample_analysis("ai_vision_general", {"prompts": prompts})
    )
    assert len(result.responses) == 3
    assert result.responses[0].startswith("Answer 1:")
    junk = {"responses": [{"value": "a"}, "x", {"value": None}, {}]}
    assert _normalise("ai_vision_general", junk).responses == ["a", "", ""]


def test_ai_vision_moderation():
    questions = ["Is there nudity?", "Is there a weapon?", "Is the subject a minor?"]
    result = _normalise(
        "ai_vision_moderation",
        sample_analysis("ai_vision_moderation", {"rejection_questions": questions}),
    )
    assert result.answers == dict(zip(questions, ["no", "yes", "unknown"], strict=True))


@pytest.mark.parametrize(
    ("value", "answer"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("unknown", "unknown"),
        (" YES ", "yes"),
        ("No", "no"),
        ("maybe", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (True, "unknown"),
        (1, "unknown"),
    ],
)
def test_moderation_answers_normalise(value, answer):
    result = _normalise(
        "ai_vision_moderation", {"responses": [{"prompt": "Q?", "value": value}]}
    )
    assert result.answers == {"Q?": answer}


def test_moderation_fills_missing_prompts_from_the_request():
    analysis = {
        "responses": [{"value": "yes"}, {"prompt": "", "value": "no"}, {"value": "no"}]
    }
    result = _normalise(
        "ai_vision_moderation", analysis, {"rejection_questions": ["A?", "B?"]}
    )
    assert result.answers == {"A?": "yes", "B?": "no"}  # the third has no question
    assert _normalise("ai_vision_moderation", analysis).answers == {}
    assert _normalise("ai_vision_moderation", {"responses": "x"}).answers == {}


def test_ai_vision_tagging():
    result = _normalise("ai_vision_tagging", sample_analysis("ai_vision_tagging"))
    assert result.tags == [
        TagData("cat", "cat", None, None, "ai_vision_tagging"),
        TagData("indoor", "indoor", None, None, "ai_vision_tagging"),
    ]
    junk = {"tags": [{"name": "Outdoor_Scene"}, {"name": ""}, {"name": 3}, "x", {}]}
    assert [t.name for t in _normalise("ai_vision_tagging", junk).tags] == [
        "outdoor scene"
    ]


@pytest.mark.parametrize("name", [*DETECTION, "shop_classifier"])
def test_detection_samples(name):
    raw = sample_analysis(name)
    result = _normalise(name, raw)
    expected = sum(len(v) for v in raw["tags"].values())
    assert len(result.tags) == expected
    assert all(t.analysis_type == name for t in result.tags)
    assert all(isinstance(t.confidence, float) for t in result.tags)
    if name == "shop_classifier":
        assert all(t.box is None for t in result.tags)
    else:
        assert all(isinstance(t.box, list) and len(t.box) == 4 for t in result.tags)


def test_coco_details():
    tags = _normalise("coco", sample_analysis("coco")).tags
    assert tags[0] == TagData(
        "person", "person", 0.93, [10.5, 20.0, 300.0, 640.0], "coco"
    )
    assert [t.name for t in tags].count("cat") == 2
    assert tags[-1].name == "dining table"


def test_detection_tags_are_parsed_tolerantly():
    tags = {
        "Single_Object": {"bounding-box": [1, 2, 3, 4], "confidence": 0.5},
        "no box": [{"confidence": 0.7}],
        "no confidence": [{"bounding-box": [0, 0, 1, 1]}],
        "extra keys": [
            {
                "bounding-box": [5, 5, 5, 5],
                "confidence": 0.9,
                "categories": ["x"],
                "attributes": {"colour": ["red"]},
                "mask": "RLE…",
            }
        ],
        "bare confidence": 0.42,
        "bad box": [{"bounding-box": [1, 2, 3], "confidence": 0.3}],
        "nan box": [{"bounding-box": [1, float("nan"), 3, 4], "confidence": 0.3}],
        "bad confidence": [
            {"confidence": "high"},
            {"confidence": True},
            {"confidence": float("inf")},
            {"confidence": None},
        ],
        "string confidence": [{"confidence": "0.25"}],
        "other box key": [{"bbox": [9, 9, 9, 9]}],
        "garbage": ["x", 3, None, ["nested"]],
        "nothing": [],
        "null": None,
        "text": "just a string",
        "": [{"confidence": 0.99}],
        "   ": [{"confidence": 0.99}],
    }
    result = _normalise("coco", {"tags": tags, "model_version": 1})
    by_label: dict[str, list[TagData]] = {}
    for tag in result.tags:
        by_label.setdefault(tag.label, []).append(tag)

    assert by_label["Single_Object"] == [
        TagData("single object", "Single_Object", 0.5, [1.0, 2.0, 3.0, 4.0], "coco")
    ]
    assert by_label["no box"][0].box is None
    assert by_label["no box"][0].confidence == 0.7
    assert by_label["no confidence"][0].confidence is None
    assert by_label["no confidence"][0].box == [0.0, 0.0, 1.0, 1.0]
    assert by_label["extra keys"][0].confidence == 0.9
    assert by_label["bare confidence"][0].confidence == 0.42
    assert by_label["bad box"][0].box is None
    assert by_label["nan box"][0].box is None
    assert [t.confidence for t in by_label["bad confidence"]] == [None] * 4
    assert by_label["string confidence"][0].confidence == 0.25
    assert by_label["other box key"][0].box == [9.0, 9.0, 9.0, 9.0]
    for label in ("garbage", "nothing", "null", "text", "", "   "):
        assert label not in by_label
    for tag in result.tags:
        assert tag.confidence is None or math.isfinite(tag.confidence)


def test_detection_tags_as_a_list():
    raw = {
        "tags": [
            {"name": "Cat", "confidence": 0.8, "bounding-box": [1, 1, 2, 2]},
            {"label": "dog"},
            {"confidence": 0.1},
            "junk",
        ]
    }
    result = _normalise("lvis", raw)
    assert result.tags == [
        TagData("cat", "Cat", 0.8, [1.0, 1.0, 2.0, 2.0], "lvis"),
        TagData("dog", "dog", None, None, "lvis"),
    ]


@pytest.mark.parametrize("name", sorted(ANALYSIS_TYPES))
@pytest.mark.parametrize(
    "analysis",
    [
        None,
        "text",
        [],
        {},
        {"tags": None},
        {"tags": "x"},
        {"tags": 5},
        {"responses": {"a": 1}},
        {"label_annotations": []},
        {"label_annotations": {"labels": {"label": "x"}}},
        {"logo_annotations": {"description": 3}},
        {"detections": [None, 1, "x"]},
        {"data": []},
        {"quality": None, "score": None},
    ],
)
def test_garbage_never_crashes(name, analysis):
    result = analysis_types.get(name).normalise(analysis)
    assert isinstance(result, Normalised)
    assert all(isinstance(t, TagData) for t in result.tags)


def test_single_objects_where_lists_are_expected():
    labels = {"label_annotations": {"labels": {"label": "Cat", "score": 0.5}}}
    assert _normalise("google_tagging", labels).tags == [
        TagData("cat", "Cat", 0.5, None, "google_tagging")
    ]
    marks = {"detections": {"name": "banner", "confidence": 0.9}}
    assert len(_normalise("watermark_detection", marks).tags) == 1


def test_normalise_does_not_mutate_the_raw_analysis():
    raw = sample_analysis("cld_fashion")
    before = repr(raw)
    result = _normalise("cld_fashion", raw)
    result.tags[0].box.append(1)  # type: ignore[union-attr]
    assert repr(raw) == before
