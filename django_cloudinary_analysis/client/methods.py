"""The fifteen typed methods, written once for both clients.

Each method validates nothing itself: it names its analysis type and hands
its arguments to the client's ``analyze`` (which is a coroutine function on
the asyncio client, so there each method returns an awaitable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from django_cloudinary_analysis.client._protocol import Retries
from django_cloudinary_analysis.client.results import SourceLike

#: What ``analyze`` returns: a result or acceptance, or an awaitable of one.
_R = TypeVar("_R")
#: What a synchronous-only analysis returns: a result, or an awaitable of one.
_S = TypeVar("_S")


class AnalysisMethods(Generic[_R, _S]):
    """One method per analysis type, each a thin call of ``analyze``."""

    def analyze(
        self,
        analysis_type: str,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
        **params: Any,
    ) -> _R:
        """Run ``analysis_type`` on ``source``; params are validated first."""
        raise NotImplementedError

    def _analyze_sync_only(
        self,
        analysis_type: str,
        source: SourceLike,
        notification_url: str | None,
        retries: Retries,
    ) -> _S:
        raise NotImplementedError

    def ai_vision_general(
        self,
        source: SourceLike,
        *,
        prompts: list[str] | tuple[str, ...],
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Ask 1–10 open questions about the image."""
        return self.analyze(
            "ai_vision_general",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
            prompts=prompts,
        )

    def ai_vision_moderation(
        self,
        source: SourceLike,
        *,
        rejection_questions: list[str] | tuple[str, ...],
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Ask 1–10 yes/no questions whose "yes" rejects the image."""
        return self.analyze(
            "ai_vision_moderation",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
            rejection_questions=rejection_questions,
        )

    def ai_vision_tagging(
        self,
        source: SourceLike,
        *,
        tag_definitions: list[Mapping[str, str]] | tuple[Mapping[str, str], ...],
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Apply those of 1–10 ``{name, description}`` tags that match."""
        return self.analyze(
            "ai_vision_tagging",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
            tag_definitions=tag_definitions,
        )

    def captioning(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Describe the image in one sentence."""
        return self.analyze(
            "captioning",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def cld_fashion(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect clothing and accessories."""
        return self.analyze(
            "cld_fashion",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def cld_text(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect text regions."""
        return self.analyze(
            "cld_text",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def coco(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect the 80 COCO object classes."""
        return self.analyze(
            "coco",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def google_logo_detection(
        self,
        source: SourceLike,
        *,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _S:
        """Detect brand logos (synchronous only)."""
        return self._analyze_sync_only(
            "google_logo_detection", source, notification_url, retries
        )

    def google_tagging(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Tag the image with Google's labels."""
        return self.analyze(
            "google_tagging",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def human_anatomy(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect human body parts."""
        return self.analyze(
            "human_anatomy",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def image_quality(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Rate the image's technical quality."""
        return self.analyze(
            "image_quality",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def lvis(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect objects from the LVIS vocabulary."""
        return self.analyze(
            "lvis",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def shop_classifier(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Classify the product category for shops."""
        return self.analyze(
            "shop_classifier",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def unidet(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect objects with the unified (UniDet) model."""
        return self.analyze(
            "unidet",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )

    def watermark_detection(
        self,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
    ) -> _R:
        """Detect watermarks, banners and overlaid logos."""
        return self.analyze(
            "watermark_detection",
            source,
            async_=async_,
            notification_url=notification_url,
            retries=retries,
        )
