"""Turn a model's file field into something a backend can analyse.

The default resolver handles pycloudinary ``CloudinaryField`` values,
django-cloudinary-storage files and any other storage (absolute URLs, or
relative media URLs made absolute with ``MEDIA_BASE_URL``). Sites plug in
their own with the ``SOURCE_RESOLVER`` setting: a callable
``(obj, field_name) -> Media``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from django_cloudinary_analysis.backends.base import Media
from django_cloudinary_analysis.client import Source
from django_cloudinary_analysis.exceptions import SourceError

if TYPE_CHECKING:
    from django.db.models import Model

Resolver = Callable[["Model", str], Media]

CHUNK = 1024 * 1024


def is_cloudinary_resource(value: Any) -> bool:
    """Whether ``value`` is pycloudinary's CloudinaryResource (duck-typed)."""
    return hasattr(value, "build_url") and hasattr(value, "public_id")


def _is_cloudinary_storage(storage: Any) -> bool:
    return type(storage).__module__.startswith("cloudinary_storage")


def check_image_name(name: str) -> None:
    """Refuse files whose name says they are not images."""
    guessed, _ = mimetypes.guess_type(name)
    if guessed and not guessed.startswith("image/"):
        raise SourceError(f"{name!r} is not an image ({guessed})")


def resolve(obj: Model, field_name: str) -> Media:
    """The default resolver: see the module docstring."""
    from django_cloudinary_analysis.conf import app_settings

    value = getattr(obj, field_name, None)
    if not value:
        raise SourceError(f"{field_name} is empty")
    if is_cloudinary_resource(value):
        public_id = value.public_id
        version = getattr(value, "version", None)
        uri = value.build_url(secure=True)
        key = f"cloudinary:{getattr(value, 'type', 'upload')}:{public_id}@{version}"
        return Media(name=str(public_id), source=Source(uri=uri), extra={"key": key})

    name = value.name
    check_image_name(name)
    storage = value.storage
    try:
        url = value.url
    except Exception as exc:  # storages raise anything from url()
        return Media(
            name=name,
            storage=storage,
            source_problem=f"the storage gives no URL for {name!r}: {exc}",
        )
    if _is_cloudinary_storage(storage):
        return Media(
            name=name,
            storage=storage,
            source=Source(uri=url),
            extra={"key": f"cloudinary-storage:{name}"},
        )
    if urlsplit(url).scheme in ("http", "https"):
        return Media(name=name, storage=storage, source=Source(uri=url))
    base = app_settings.MEDIA_BASE_URL
    if base:
        return Media(name=name, storage=storage, source=Source(uri=urljoin(base, url)))
    return Media(
        name=name,
        storage=storage,
        source_problem=(
            f"the media URL {url!r} is relative and the API cannot fetch it; set "
            "CLOUDINARY_ANALYSIS['MEDIA_BASE_URL'] to the site's public origin"
        ),
    )


def content_key(media: Media) -> str:
    """Identify the file's content: asset version, or SHA-256 of the bytes."""
    key = media.extra.get("key")
    if key:
        return str(key)
    digest = hashlib.sha256()
    size = 0
    with media.open() as fh:
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            digest.update(chunk)
    if size == 0:
        raise SourceError(f"file {media.name!r} is empty")
    return f"sha256:{digest.hexdigest()}"


def get_resolver() -> Resolver:
    """The configured source resolver."""
    from django_cloudinary_analysis.conf import import_setting

    return import_setting("SOURCE_RESOLVER")  # type: ignore[no-any-return]
