"""A backend for sites' own tests: records calls, returns canned results."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from django_cloudinary_analysis.backends.base import Backend, Media
from django_cloudinary_analysis.client import Accepted, AnalysisResult
from django_cloudinary_analysis.exceptions import AnalysisError

CANNED: dict[str, dict[str, Any]] = {
    "ai_vision_general": {"responses": [{"value": "A photo."}], "model_version": 1},
    "ai_vision_moderation": {"responses": [], "model_version": 1},
    "ai_vision_tagging": {"tags": [], "model_version": 1},
    "captioning": {"data": {"caption": "A photo"}, "model_version": 1},
    "google_tagging": {
        "label_annotations": {"labels": [{"label": "photograph", "score": 0.9}]}
    },
    "google_logo_detection": {"logo_annotations": []},
    "image_quality": {
        "quality": "high",
        "score": 0.9,
        "confidence": 0.9,
        "model_version": 1,
    },
    "watermark_detection": {"detections": [], "model_version": 1},
}
DETECTION = {"tags": {}, "model_version": 1}


@dataclass(frozen=True)
class Call:
    """One recorded ``analyze`` call."""

    analysis_type: str
    media_name: str
    params: dict[str, Any]
    notification_url: str | None


class MemoryBackend(Backend):
    """Answer every type from memory; configure answers per type in tests.

    ``MemoryBackend.set_result(type, analysis)`` sets the ``data.analysis``
    returned, ``set_error(type, exc)`` raises instead, ``calls`` lists what
    was asked and ``reset()`` clears everything. Moderation answers "no" to
    each rejection question unless told otherwise.
    """

    name = "memory"
    supports_async = False

    _lock: ClassVar[threading.Lock] = threading.Lock()
    calls: ClassVar[list[Call]] = []
    results: ClassVar[dict[str, dict[str, Any]]] = {}
    errors: ClassVar[dict[str, AnalysisError]] = {}

    @classmethod
    def reset(cls) -> None:
        """Forget recorded calls and configured answers."""
        with cls._lock:
            cls.calls.clear()
            cls.results.clear()
            cls.errors.clear()

    @classmethod
    def set_result(cls, analysis_type: str, analysis: dict[str, Any]) -> None:
        """Answer ``analysis_type`` with this ``data.analysis`` dict."""
        with cls._lock:
            cls.results[analysis_type] = analysis
            cls.errors.pop(analysis_type, None)

    @classmethod
    def set_error(cls, analysis_type: str, error: AnalysisError) -> None:
        """Raise ``error`` for ``analysis_type``."""
        with cls._lock:
            cls.errors[analysis_type] = error

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Record the call and answer from memory."""
        with self._lock:
            self.calls.append(Call(analysis_type, media.name, params, notification_url))
            error = self.errors.get(analysis_type)
            analysis = self.results.get(analysis_type)
        if error is not None:
            raise error
        if analysis is None:
            analysis = self._default(analysis_type, params)
        return AnalysisResult(
            analysis_type=analysis_type,
            analysis=analysis,
            entity=media.name,
            request_id=f"memory-{len(self.calls)}",
            raw={"data": {"entity": media.name, "analysis": analysis}},
        )

    @staticmethod
    def _default(analysis_type: str, params: dict[str, Any]) -> dict[str, Any]:
        if analysis_type == "ai_vision_moderation":
            return {
                "responses": [
                    {"prompt": q, "value": "no"}
                    for q in params.get("rejection_questions", [])
                ],
                "model_version": 1,
            }
        return dict(CANNED.get(analysis_type, DETECTION))
