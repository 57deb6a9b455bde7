"""Sources: what the API is asked to fetch, and content keys."""

from __future__ import annotations

import types

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from django_cloudinary_analysis.exceptions import SourceError
from django_cloudinary_analysis.sources import content_key, resolve
from tests.conftest import png_bytes
from tests.models import Photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo(image_file, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }
    return Photo.objects.create(image=image_file("cat.png"))


def test_relative_media_url_made_absolute(photo, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "MEDIA_BASE_URL": "https://cdn.example.org",
    }
    media = resolve(photo, "image")
    assert media.source.uri == "https://cdn.example.org/media/photos/cat.png"


def test_relative_media_url_without_base_has_a_reason(photo, settings):
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "MEDIA_BASE_URL": None,
    }
    media = resolve(photo, "image")
    assert media.source is None
    with pytest.raises(SourceError, match="MEDIA_BASE_URL"):
        media.remote_source()


def test_absolute_storage_url_is_used(photo, settings):
    settings.MEDIA_URL = "https://files.example.org/m/"
    assert resolve(photo, "image").source.uri == (
        "https://files.example.org/m/photos/cat.png"
    )


def test_non_image_is_refused(photo):
    photo.image.name = "photos/report.pdf"
    with pytest.raises(SourceError, match="not an image"):
        resolve(photo, "image")


def test_empty_field_is_refused():
    with pytest.raises(SourceError, match="empty"):
        resolve(Photo(), "image")


def test_cloudinary_resource_uses_its_delivery_url_and_version():
    resource = types.SimpleNamespace(
        public_id="samples/cat",
        version=1712345678,
        type="upload",
        build_url=lambda secure=True: (
            "https://res.cloudinary.com/demo/image/upload/v1712345678/samples/cat.jpg"
        ),
    )
    obj = types.SimpleNamespace(image=resource)
    media = resolve(obj, "image")
    assert media.source.uri.startswith("https://res.cloudinary.com/demo/")
    assert content_key(media) == "cloudinary:upload:samples/cat@1712345678"


def test_content_key_is_a_streamed_sha256(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    name = storage.save("a.png", ContentFile(png_bytes(3)))
    other = storage.save("b.png", ContentFile(png_bytes(3)))
    from django_cloudinary_analysis.backends.base import Media

    key = content_key(Media(name=name, storage=storage))
    assert key.startswith("sha256:") and len(key) == 7 + 64
    assert key == content_key(Media(name=other, storage=storage))
    storage.delete(name)
    with pytest.raises(SourceError, match="missing"):
        content_key(Media(name=name, storage=storage))
