"""Helpers of the write-back tests: canned labels and a commit-running fixture."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from django_cloudinary_analysis.backends.memory import MemoryBackend


def labels(*pairs: tuple[str, float]) -> None:
    """Make the memory backend's google_tagging answer these (label, score)."""
    found = [{"label": label, "score": score} for label, score in pairs]
    MemoryBackend.set_result("google_tagging", {"label_annotations": {"labels": found}})


@pytest.fixture
def run(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Call a function and run its on-commit callbacks (eager tasks, signals)."""

    def run(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def cloudinary_image(public_id: str) -> Any:
    """A pycloudinary CloudinaryResource, as a CloudinaryField upload leaves it."""
    from cloudinary import CloudinaryResource

    return CloudinaryResource(
        public_id,
        version="1712345678",
        format="jpg",
        type="upload",
        resource_type="image",
    )
