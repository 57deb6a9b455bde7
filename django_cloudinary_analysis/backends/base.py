"""The backend protocol: a base class with a template method."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage

from django_cloudinary_analysis.client import (
    Accepted,
    AnalysisResult,
    Source,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    SourceError,
    UnsupportedAnalysis,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Media:
    """One stored file as a backend sees it.

    ``source`` is what a remote API can fetch (None with ``source_problem``
    saying why); ``open()`` reads the bytes for backends that run locally.
    """

    name: str
    storage: Storage | None = None
    source: Source | None = None
    source_problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def open(self) -> IO[bytes]:
        """Open the file for reading, or raise SourceError saying why not."""
        if self.storage is None:
            raise SourceError(f"{self.name!r} has no storage to read from")
        try:
            return self.storage.open(self.name, "rb")
        except FileNotFoundError as exc:
            raise SourceError(f"file {self.name!r} is missing from storage") from exc
        except OSError as exc:
            raise SourceError(f"file {self.name!r} cannot be read: {exc}") from exc

    def remote_source(self) -> Source:
        """Return the remote source, or raise SourceError with the reason."""
        if self.source is None:
            raise SourceError(self.source_problem or f"no URL for {self.name!r}")
        return self.source


class Backend:
    """Base class: subclasses implement ``run`` (and ``supported_types``)."""

    #: Stored on each Analysis row so results show where they came from.
    name = "base"
    #: Types this backend can run; None means all fifteen.
    supported_types: frozenset[str] | None = None
    #: Whether this backend can answer 202 and deliver results by webhook.
    supports_async = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    def supports(self, analysis_type: str) -> bool:
        """Return whether this backend can run ``analysis_type``."""
        return self.supported_types is None or analysis_type in self.supported_types

    def unsupported_reason(self, analysis_type: str) -> str:
        """Say why a type is not run, for the Analysis row's reason."""
        return f"{analysis_type} is not supported by the {self.name} backend"

    def analyze(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Run one analysis; time and log it, and translate file errors."""
        if not self.supports(analysis_type):
            raise UnsupportedAnalysis(self.unsupported_reason(analysis_type))
        started = time.perf_counter()
        try:
            result = self.run(
                analysis_type, media, params, notification_url=notification_url
            )
        except AnalysisError as exc:
            logger.info(
                "%s %s failed: %s",
                self.name,
                analysis_type,
                exc.code,
                extra={"analysis_type": analysis_type, "error_code": exc.code},
            )
            raise
        except OSError as exc:
            raise SourceError(f"file {media.name!r} cannot be read: {exc}") from exc
        logger.debug(
            "%s %s done in %.1f ms",
            self.name,
            analysis_type,
            (time.perf_counter() - started) * 1000,
            extra={"analysis_type": analysis_type},
        )
        return result

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult | Accepted:
        """Do the work; subclasses override this."""
        raise NotImplementedError

    def get_task_status(self, task_id: str) -> TaskStatus:
        """Return the remote status of an async task (remote backends only)."""
        raise UnsupportedAnalysis(f"the {self.name} backend has no remote tasks")


def get_backend(path: str | None = None) -> Backend:
    """Instantiate the configured backend (or the one at ``path``)."""
    from django_cloudinary_analysis.conf import (
        app_settings,
        import_setting,
        resolve_import,
    )

    cls = resolve_import("BACKEND", path) if path else import_setting("BACKEND")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ImproperlyConfigured(
            f"CLOUDINARY_ANALYSIS['BACKEND'] = {cls!r} is not a Backend subclass"
        )
    return cls(**app_settings.BACKEND_OPTIONS)
