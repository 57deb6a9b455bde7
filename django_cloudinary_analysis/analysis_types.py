"""The registry of the fifteen Analyze API analysis types (no Django).

Each :class:`AnalysisType` says which params the endpoint takes, whether it may
run asynchronously, which add-on quota it spends, and how its raw ``analysis``
dict becomes plain data (:class:`Normalised`).

Quota features (``limits.items[].type`` is one of ``ai_vision``,
``google_tagging``, ``object_detection``). The API does not publish which type
spends which quota, so the mapping follows the add-ons the types belong to:

* ``ai_vision_general``, ``ai_vision_moderation``, ``ai_vision_tagging`` →
  ``ai_vision`` (the Cloudinary AI Vision add-on);
* ``google_tagging`` and ``google_logo_detection`` → ``google_tagging`` (the
  Google add-ons);
* every other type (``captioning``, ``image_quality``,
  ``watermark_detection`` and the seven detection models) →
  ``object_detection`` (the Cloudinary AI Content Analysis add-on).

Tag names are normalised by :func:`normalise_name`: Unicode NFKC, casefolded,
underscores turned into spaces, runs of whitespace collapsed to one space and
the ends stripped — so ``"Dining_Table "`` and ``"dining  table"`` both become
``"dining table"``. Hyphens and other punctuation are kept (``"t-shirt"``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django_cloudinary_analysis.exceptions import InvalidParameters, UnknownAnalysisType

__all__ = [
    "ANALYSIS_TYPES",
    "MAX_PARAM_ITEMS",
    "AnalysisType",
    "Normalised",
    "Quality",
    "TagData",
    "get",
    "normalise_name",
    "validate_params",
]

#: The API accepts 1–10 prompts, questions or tag definitions per request.
MAX_PARAM_ITEMS = 10

MODERATION_ANSWERS = frozenset({"yes", "no", "unknown"})


@dataclass(frozen=True)
class TagData:
    """One label found in an image, ready to store as a tag."""

    name: str
    label: str
    confidence: float | None = None
    #: ``[x, y, width, height]`` for detections, the ``bounding_poly`` dict for
    #: logos, ``None`` when the analysis gives no position.
    box: list[float] | dict[str, Any] | None = None
    #: The analysis type that produced the tag (``"coco"``,
    #: ``"watermark_detection"``, ``"google_logo_detection"``…).
    analysis_type: str = ""


@dataclass(frozen=True)
class Quality:
    """The ``image_quality`` verdict."""

    word: str | None
    score: float | None = None
    confidence: float | None = None


@dataclass
class Normalised:
    """Plain data extracted from one raw ``analysis`` dict.

    Watermark detections and logo annotations are tags whose ``analysis_type`` is
    ``watermark_detection`` or ``google_logo_detection``.
    """

    tags: list[TagData] = field(default_factory=list)
    #: Moderation question → ``"yes"``, ``"no"`` or ``"unknown"``.
    answers: dict[str, str] = field(default_factory=dict)
    #: ``ai_vision_general`` answers, one per prompt, in order.
    responses: list[str] = field(default_factory=list)
    caption: str | None = None
    quality: Quality | None = None


Normaliser = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Normalised]


@dataclass(frozen=True)
class AnalysisType:
    """One analysis type of the Analyze API."""

    name: str
    accepted_params: frozenset[str] = frozenset()
    required_params: frozenset[str] = frozenset()
    async_allowed: bool = True
    quota_feature: str | None = None
    normaliser: Normaliser = field(
        default=lambda name, analysis, params: Normalised(), repr=False, compare=False
    )

    @property
    def path(self) -> str:
        """Return the endpoint path below the API base URL."""
        return f"/analyze/{self.name}"

    def normalise(
        self, analysis: Any, params: Mapping[str, Any] | None = None
    ) -> Normalised:
        """Turn a raw ``analysis`` dict into :class:`Normalised` plain data.

        ``params`` (the request's) only fill gaps, such as a moderation
        response that lacks its ``prompt``. Malformed parts are skipped.
        """
        if not isinstance(analysis, Mapping):
            return Normalised()
        return self.normaliser(self.name, analysis, params or {})

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return cleaned params for this type or raise InvalidParameters."""
        return validate_params(self.name, params)


# -- helpers --------------------------------------------------------------------

_SPACES = re.compile(r"[\s_]+")


def normalise_name(label: str) -> str:
    """Return the canonical tag name for a label (see the module docstring)."""
    text = unicodedata.normalize("NFKC", str(label)).casefold()
    return _SPACES.sub(" ", text).strip()


def _number(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    number = float(value)
    return number if math.isfinite(number) else None


def _box(value: Any) -> list[float] | dict[str, Any] | None:
    """Return a detection box: a list of four finite numbers, a dict, or None."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)) and len(value) == 4:
        numbers = [_number(v) for v in value]
        if all(n is not None for n in numbers):
            return [n for n in numbers if n is not None]
    return None


def _label(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def _tag(
    analysis_type: str, label: Any, confidence: Any = None, box: Any = None
) -> TagData | None:
    text = _label(label)
    if text is None:
        return None
    name = normalise_name(text)
    if not name:
        return None
    return TagData(
        name=name,
        label=text,
        confidence=_number(confidence),
        box=_box(box),
        analysis_type=analysis_type,
    )


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """Return the mappings in a list (or a lone mapping), skipping the rest."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, Mapping)]
    return []


# -- normalisers ----------------------------------------------------------------


def _normalise_google_tagging(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    annotations = analysis.get("label_annotations")
    labels = annotations.get("labels") if isinstance(annotations, Mapping) else None
    tags = [
        _tag(name, item.get("label") or item.get("description"), item.get("score"))
        for item in _mappings(labels)
    ]
    return Normalised(tags=[t for t in tags if t is not None])


def _normalise_logos(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    tags = [
        _tag(
            name, item.get("description"), item.get("score"), item.get("bounding_poly")
        )
        for item in _mappings(analysis.get("logo_annotations"))
    ]
    return Normalised(tags=[t for t in tags if t is not None])


def _normalise_watermarks(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    tags = [
        _tag(name, item.get("name"), item.get("confidence"), item.get("bounding-box"))
        for item in _mappings(analysis.get("detections"))
    ]
    return Normalised(tags=[t for t in tags if t is not None])


def _normalise_quality(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    word = analysis.get("quality")
    score = _number(analysis.get("score"))
    confidence = _number(analysis.get("confidence"))
    if not isinstance(word, str):
        word = None
    if word is None and score is None:
        return Normalised()
    return Normalised(quality=Quality(word=word, score=score, confidence=confidence))


def _normalise_captioning(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    data = analysis.get("data")
    caption = data.get("caption") if isinstance(data, Mapping) else None
    if caption is None:  # tolerate a flattened shape
        caption = analysis.get("caption")
    return Normalised(caption=caption if isinstance(caption, str) else None)


def _normalise_general(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    responses = []
    for item in _mappings(analysis.get("responses")):
        value = item.get("value")
        responses.append(value if isinstance(value, str) else "")
    return Normalised(responses=responses)


def _answer(value: Any) -> str:
    text = value.strip().casefold() if isinstance(value, str) else ""
    return text if text in MODERATION_ANSWERS else "unknown"


def _normalise_moderation(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    questions = params.get("rejection_questions") or []
    raw = analysis.get("responses")
    items = raw if isinstance(raw, (list, tuple)) else []
    answers: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            # Responses come in the order of the questions asked.
            if index >= len(questions) or not isinstance(questions[index], str):
                continue
            prompt = questions[index]
        answers[prompt] = _answer(item.get("value"))
    return Normalised(answers=answers)


def _normalise_ai_tagging(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    tags = [_tag(name, item.get("name")) for item in _mappings(analysis.get("tags"))]
    return Normalised(tags=[t for t in tags if t is not None])


def _detection_box(item: Mapping[str, Any]) -> Any:
    for key in ("bounding-box", "bounding_box", "box", "bbox"):
        if key in item:
            return item[key]
    return None


def _normalise_detection(
    name: str, analysis: Mapping[str, Any], params: Mapping[str, Any]
) -> Normalised:
    raw = analysis.get("tags")
    tags: list[TagData | None] = []
    if isinstance(raw, Mapping):
        for label, value in raw.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tags.append(_tag(name, label, value))  # label → bare confidence
                continue
            for item in _mappings(value):
                tags.append(
                    _tag(name, label, item.get("confidence"), _detection_box(item))
                )
    else:
        # Not the documented map: accept a list of {"name"/"label": …} objects.
        for item in _mappings(raw):
            tags.append(
                _tag(
                    name,
                    item.get("name") or item.get("label"),
                    item.get("confidence"),
                    _detection_box(item),
                )
            )
    return Normalised(tags=[t for t in tags if t is not None])


# -- the registry ---------------------------------------------------------------

_AI_VISION = "ai_vision"
_GOOGLE = "google_tagging"
_DETECTION = "object_detection"

_DETECTION_MODELS = (
    "coco",
    "lvis",
    "unidet",
    "cld_fashion",
    "cld_text",
    "human_anatomy",
    "shop_classifier",
)


def _build() -> dict[str, AnalysisType]:
    entries = [
        AnalysisType(
            "ai_vision_general",
            accepted_params=frozenset({"prompts"}),
            quota_feature=_AI_VISION,
            normaliser=_normalise_general,
        ),
        AnalysisType(
            "ai_vision_moderation",
            accepted_params=frozenset({"rejection_questions"}),
            quota_feature=_AI_VISION,
            normaliser=_normalise_moderation,
        ),
        AnalysisType(
            "ai_vision_tagging",
            accepted_params=frozenset({"tag_definitions"}),
            required_params=frozenset({"tag_definitions"}),
            quota_feature=_AI_VISION,
            normaliser=_normalise_ai_tagging,
        ),
        AnalysisType(
            "captioning", quota_feature=_DETECTION, normaliser=_normalise_captioning
        ),
        AnalysisType(
            "google_tagging",
            quota_feature=_GOOGLE,
            normaliser=_normalise_google_tagging,
        ),
        # The spec declares no 202 answer for logo detection: synchronous only.
        AnalysisType(
            "google_logo_detection",
            async_allowed=False,
            quota_feature=_GOOGLE,
            normaliser=_normalise_logos,
        ),
        AnalysisType(
            "image_quality", quota_feature=_DETECTION, normaliser=_normalise_quality
        ),
        AnalysisType(
            "watermark_detection",
            quota_feature=_DETECTION,
            normaliser=_normalise_watermarks,
        ),
    ]
    entries += [
        AnalysisType(model, quota_feature=_DETECTION, normaliser=_normalise_detection)
        for model in _DETECTION_MODELS
    ]
    return {entry.name: entry for entry in sorted(entries, key=lambda e: e.name)}


#: Every analysis type the API knows, by name.
ANALYSIS_TYPES: dict[str, AnalysisType] = _build()


def get(name: str) -> AnalysisType:
    """Return the analysis type called ``name`` or raise UnknownAnalysisType."""
    try:
        return ANALYSIS_TYPES[name]
    except (KeyError, TypeError):
        known = ", ".join(ANALYSIS_TYPES)
        raise UnknownAnalysisType(
            f"unknown analysis type {name!r}; expected one of: {known}",
            details={"analysis_type": str(name)},
        ) from None


# -- params validation ----------------------------------------------------------


def _invalid(name: str, param: str, problem: str) -> InvalidParameters:
    return InvalidParameters(
        f"{name}: {param} {problem}", details={"analysis_type": name, "param": param}
    )


def _items(name: str, param: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _invalid(name, param, "must be a list")
    items = list(value)
    if not 1 <= len(items) <= MAX_PARAM_ITEMS:
        raise _invalid(
            name, param, f"needs 1 to {MAX_PARAM_ITEMS} items, got {len(items)}"
        )
    return items


def _strings(name: str, param: str, value: Any) -> list[str]:
    items = _items(name, param, value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _invalid(name, param, "must contain non-empty strings only")
    return items


def _definitions(name: str, param: str, value: Any) -> list[dict[str, str]]:
    cleaned = []
    for item in _items(name, param, value):
        if not isinstance(item, Mapping):
            raise _invalid(name, param, "items must be {name, description} objects")
        missing = [
            key
            for key in ("name", "description")
            if not isinstance(item.get(key), str) or not item[key].strip()
        ]
        if missing:
            raise _invalid(name, param, f"item lacks {' and '.join(missing)}")
        unknown = sorted(set(item) - {"name", "description"})
        if unknown:
            raise _invalid(name, param, f"item has unknown keys: {', '.join(unknown)}")
        cleaned.append({"name": item["name"], "description": item["description"]})
    return cleaned


_VALIDATORS: dict[str, Callable[[str, str, Any], Any]] = {
    "prompts": _strings,
    "rejection_questions": _strings,
    "tag_definitions": _definitions,
}


def validate_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the cleaned params for ``name`` or raise InvalidParameters.

    ``None`` values count as absent. Lists become plain lists of str (or of
    ``{"name", "description"}`` dicts), ready for the request body.
    """
    entry = get(name)
    given = {k: v for k, v in (params or {}).items() if v is not None}
    unknown = sorted(set(given) - entry.accepted_params)
    if unknown:
        allowed = ", ".join(sorted(entry.accepted_params)) or "none"
        raise InvalidParameters(
            f"{name} does not take {', '.join(unknown)} (allowed params: {allowed})",
            details={"analysis_type": name, "unknown": unknown},
        )
    missing = sorted(entry.required_params - set(given))
    if missing:
        raise InvalidParameters(
            f"{name} requires {', '.join(missing)}",
            details={"analysis_type": name, "missing": missing},
        )
    return {key: _VALIDATORS[key](name, key, value) for key, value in given.items()}
