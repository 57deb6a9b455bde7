"""Sources: what the API is asked to fetch, and content keys."""

from __future__ import annotations

import hashlib
import sys
import types

import pytest
import responses as responses_lib
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from django_cloudinary_analysis.exceptions import SourceError, UnsupportedAnalysis
from django_cloudinary_analysis.sources import (
    content_key,
    is_cloudinary_field,
    resolve,
)
from tests.models import Photo
from tests.support.images import png_bytes

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


@pytest.fixture
def admin_api(monkeypatch, settings):
    """pycloudinary's Admin API ``resource()``: etag per public id, calls kept."""
    import cloudinary.api
    import cloudinary.exceptions

    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "CLOUD_NAME": "demo",
        "API_KEY": "key",
        "API_SECRET": "admin-secret",
    }
    etags: dict[str, str] = {}
    calls: list[tuple[str, dict]] = []

    def resource(public_id, **options):
        calls.append((public_id, options))
        if public_id not in etags:
            raise cloudinary.exceptions.NotFound(f"Resource not found - {public_id}")
        return {"public_id": public_id, "etag": etags[public_id]}

    monkeypatch.setattr(cloudinary.api, "resource", resource)
    # The site's pycloudinary configuration builds delivery URLs.
    monkeypatch.setattr(cloudinary.config(), "cloud_name", "demo", raising=False)
    return types.SimpleNamespace(etags=etags, calls=calls)


def cloudinary_value(public_id, **kwargs):
    """A real pycloudinary CloudinaryResource, as a CloudinaryField returns it."""
    import cloudinary

    return cloudinary.CloudinaryResource(public_id, **kwargs)


def test_cloudinary_value_uses_its_delivery_url_and_the_assets_etag(admin_api):
    admin_api.etags.update({"samples/cat": "e1", "samples/cat-copy": "e1"})
    media = resolve(
        types.SimpleNamespace(image=cloudinary_value("samples/cat", format="jpg")),
        "image",
    )
    assert media.source.uri.startswith("https://res.cloudinary.com/demo/image/upload/")
    key = content_key(media)
    assert key == "cloudinary-etag:e1" and "None" not in key
    # An identical upload under another public id (and no version) is the
    # same content: analysed once.
    copy = resolve(
        types.SimpleNamespace(image=cloudinary_value("samples/cat-copy")), "image"
    )
    assert content_key(copy) == key
    public_id, options = admin_api.calls[0]
    assert public_id == "samples/cat"
    assert (options["type"], options["resource_type"]) == ("upload", "image")
    assert options["api_secret"] == "admin-secret"


@responses_lib.activate
def test_cloudinary_value_without_etag_is_keyed_by_its_bytes(admin_api):
    value = cloudinary_value("samples/dog", format="png")  # unknown to the API
    media = resolve(types.SimpleNamespace(image=value), "image")
    responses_lib.get(media.source.uri, body=png_bytes(5))
    assert content_key(media) == "sha256:" + hashlib.sha256(png_bytes(5)).hexdigest()
    responses_lib.get(media.source.uri, status=404)
    with pytest.raises(SourceError, match="404"):
        content_key(media)


@pytest.mark.parametrize("delivery_type", ["private", "authenticated"])
def test_private_and_authenticated_assets_get_signed_urls(admin_api, delivery_type):
    value = cloudinary_value("secret/cat", format="jpg", type=delivery_type)
    uri = resolve(types.SimpleNamespace(image=value), "image").source.uri
    assert f"/image/{delivery_type}/s--" in uri
    public = resolve(
        types.SimpleNamespace(image=cloudinary_value("secret/cat", format="jpg")),
        "image",
    ).source.uri
    assert "/s--" not in public


def test_private_asset_without_a_secret_says_why(settings, monkeypatch):
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    monkeypatch.setitem(sys.modules, "cloudinary.api", None)
    settings.CLOUDINARY_ANALYSIS = {"CLOUD_NAME": "demo", "OAUTH_TOKEN": "t"}
    value = types.SimpleNamespace(
        public_id="secret/cat", type="private", resource_type="image", build_url=None
    )
    media = resolve(types.SimpleNamespace(image=value), "image")
    with pytest.raises(SourceError, match="signed"):
        media.remote_source()


@pytest.mark.parametrize("resource_type", ["video", "raw"])
def test_video_and_raw_resources_are_skipped_with_a_reason(resource_type):
    value = cloudinary_value("clips/intro", resource_type=resource_type)
    with pytest.raises(UnsupportedAnalysis, match=f"{resource_type} resource") as info:
        resolve(types.SimpleNamespace(image=value), "image")
    assert info.value.status == "skipped"


def test_cloudinary_field_subclass_is_recognised():
    from cloudinary.models import CloudinaryField

    class Sub(CloudinaryField):
        pass

    assert is_cloudinary_field(Sub("image")) and is_cloudinary_field(CloudinaryField())
    assert not is_cloudinary_field(FileSystemStorage())


class FakeMediaCloudinaryStorage(FileSystemStorage):
    """Stands in for django-cloudinary-storage's storage (same module name)."""

    __module__ = "cloudinary_storage.storage"
    RESOURCE_TYPE = "image"

    def url(self, name):
        return f"https://res.cloudinary.com/demo/image/upload/v1/{name}"


def stored(storage, name):
    """An object whose field ``f`` holds ``name`` in ``storage``."""
    from django.db.models.fields.files import FieldFile

    field = types.SimpleNamespace(storage=storage)
    return types.SimpleNamespace(f=FieldFile(None, field, name))


def test_cloudinary_storage_files_are_keyed_by_etag_not_name(admin_api, tmp_path):
    storage = FakeMediaCloudinaryStorage(location=tmp_path)
    first = storage.save("media/a_x1.png", ContentFile(png_bytes(1)))
    second = storage.save("media/a_x2.png", ContentFile(png_bytes(1)))
    admin_api.etags.update({first: "same", second: "same"})
    keys = {content_key(resolve(stored(storage, n), "f")) for n in (first, second)}
    assert keys == {"cloudinary-etag:same"}
    # Without an etag (the Admin API unreachable), the bytes decide.
    admin_api.etags.clear()
    media = resolve(stored(storage, first), "f")
    assert content_key(media) == "sha256:" + hashlib.sha256(png_bytes(1)).hexdigest()


def test_cloudinary_storage_as_the_default_storage(admin_api, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tests.test_sources.FakeMediaCloudinaryStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
    }
    photo = Photo.objects.create(image=ContentFile(png_bytes(2), name="cat.png"))
    admin_api.etags[photo.image.name] = "etag-of-cat"
    media = resolve(photo, "image")
    assert media.source.uri.startswith("https://res.cloudinary.com/demo/")
    assert content_key(media) == "cloudinary-etag:etag-of-cat"


def test_video_storage_files_are_skipped(tmp_path):
    storage = FakeMediaCloudinaryStorage(location=tmp_path)
    storage.RESOURCE_TYPE = "video"
    name = storage.save("media/clip.png", ContentFile(png_bytes(1)))
    with pytest.raises(UnsupportedAnalysis, match="video resource"):
        resolve(stored(storage, name), "f")


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
