"""Rendering helpers of the admin (admin/display.py): thumbnails and blur."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from django_cloudinary_analysis.admin.display import (
    image_url,
    is_sensitive,
    thumbnail_html,
)
from tests.models import Photo
from tests.support.admin import bulk_media, changelist

pytestmark = pytest.mark.django_db


class FakeAsset:
    """What the admin needs of pycloudinary's CloudinaryResource."""

    public_id = "gallery/beach"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def build_url(self, **options: Any) -> str:
        self.calls.append(options)
        parts = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
        return f"https://res.cloudinary.com/demo/image/upload/{parts}/beach"

    def __bool__(self) -> bool:
        return True


def test_cloudinary_assets_get_a_small_transformation_url() -> None:
    photo = Photo(title="beach")
    asset = FakeAsset()
    photo.image = asset  # type: ignore[assignment]
    url = image_url(photo, 64)
    assert asset.calls == [
        {
            "secure": True,
            "width": 128,
            "height": 128,
            "crop": "fill",
            "fetch_format": "auto",
            "quality": "auto",
        }
    ]
    assert url is not None and url.startswith("https://res.cloudinary.com/")


def test_other_storages_get_a_fixed_size_lazy_image() -> None:
    photo = Photo(title="x", image="bulk/1.png")
    html = thumbnail_html(photo, 48)
    assert 'loading="lazy"' in html and 'width="48" height="48"' in html
    assert "dca-sensitive" not in html


@pytest.mark.parametrize(
    ("status", "reasons", "sensitive"),
    [
        ("review", [], True),
        ("rejected", [], True),
        ("approved", [], False),
        ("pending", [{"rule": "question_yes", "question": "Q?"}], True),
        ("approved", [{"rule": "label", "label": "Gun"}], False),
    ],
)
def test_sensitive_means_review_rejected_or_a_yes(
    status: str, reasons: list[Any], sensitive: bool
) -> None:
    assert is_sensitive(status, reasons) is sensitive


def test_changelists_blur_sensitive_thumbnails(admin_client: Client) -> None:
    photos = bulk_media(Photo, 4)  # every other one needs review
    content = admin_client.get(changelist(Photo)).content.decode()
    assert content.count('class="dca-preview dca-sensitive"') == 2
    assert content.count('class="dca-thumb"') == len(photos)
    queue = admin_client.get(
        reverse("admin:cloudinary_analysis_moderationdecision_changelist")
    ).content.decode()
    assert queue.count('class="dca-preview dca-sensitive"') == 2
