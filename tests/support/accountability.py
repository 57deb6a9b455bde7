"""Helpers shared by the accountability tests: users, uploads, verdicts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.urls import include, path

from django_cloudinary_analysis.backends.memory import MemoryBackend
from tests.support.images import png_bytes

#: A urlconf with both the app's URLs and the REST API.
urlpatterns = [
    path("admin/", admin.site.urls),
    path("cloudinary-analysis/", include("django_cloudinary_analysis.urls")),
    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls")),
]

URLCONF = "tests.support.accountability"


def user(
    username: str, *, staff: bool = False, perms: tuple[str, ...] = (), **extra: Any
) -> User:
    """A user holding some of the app's permissions (fresh permission cache)."""
    created = User.objects.create_user(
        username,
        password="pw",
        is_staff=staff,
        email=extra.pop("email", f"{username}@example.com"),
        **extra,
    )
    for codename in perms:
        created.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="cloudinary_analysis", codename=codename
            )
        )
    return User.objects.get(pk=created.pk)


def reject_automatically(memory_backend: MemoryBackend, question: str) -> None:
    """Make the next moderation answer "yes" to ``question`` (a rejection)."""
    memory_backend.set_result(
        "ai_vision_moderation", {"responses": [{"prompt": question, "value": "yes"}]}
    )


def image(name: str = "photo.png", seed: int = 0) -> Any:
    """A small PNG upload."""
    from django.core.files.base import ContentFile

    return ContentFile(png_bytes(seed), name=name)
