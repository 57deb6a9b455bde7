"""Shared fixtures: a clean memory backend, a temp MEDIA_ROOT, image files."""

from __future__ import annotations

import os
from collections.abc import Callable

import django
import pytest
from django.core.files.base import ContentFile
from hypothesis import settings as hypothesis_settings

from django_cloudinary_analysis.backends.memory import MemoryBackend

# CI runs the same examples every time (derandomize); locally each run explores
# new ones. Neither keeps an example database in the worktree.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("dev", database=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _celery_app():  # type: ignore[no-untyped-def]
    # Tasks in unit tests run in-process (CELERY_TASK_ALWAYS_EAGER in
    # tests.settings); the integration suite runs a real worker instead.
    from tests.celery_app import app

    return app


_celery_app()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail a tox cell whose Django is not the one it names (TOX_DJANGO)."""
    expected = os.environ.get("TOX_DJANGO")
    running = "{}.{}".format(*django.VERSION[:2])
    if expected and expected != running:
        raise pytest.UsageError(
            f"this tox cell names Django {expected} but runs Django "
            f"{django.get_version()}: a dependency upgraded it"
        )


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def memory_backend() -> MemoryBackend:
    """The memory backend, emptied before each test."""
    MemoryBackend.reset()
    yield MemoryBackend
    MemoryBackend.reset()


@pytest.fixture
def image_file() -> Callable[..., ContentFile]:
    """Factory of named in-memory PNG files: ``image_file("a.png", seed=1)``."""

    from tests.support.images import png_bytes

    def make(name: str = "photo.png", seed: int = 0) -> ContentFile:
        return ContentFile(png_bytes(seed), name=name)

    return make


# The admin tests' fixtures live beside their helpers.
from tests.support.admin import staff_client, uploaded  # noqa: E402, F401
