"""Turn a model's file field into something a backend can analyse.

The default resolver handles pycloudinary ``CloudinaryField`` values (and
subclasses), django-cloudinary-storage files and any other storage (absolute
URLs, or relative media URLs made absolute with ``MEDIA_BASE_URL``). Sites
plug in their own with the ``SOURCE_RESOLVER`` setting: a callable
``(obj, field_name) -> Media``.

Content identity (:func:`content_key`) never comes from a name: files on
Cloudinary are keyed by the asset's ``etag`` from the Admin API (pycloudinary,
the ``cloudinary`` extra) or, failing that, by the SHA-256 of their bytes, like
every other file.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from django_cloudinary_analysis.backends.base import Media
from django_cloudinary_analysis.client import Source
from django_cloudinary_analysis.exceptions import SourceError, UnsupportedAnalysis

if TYPE_CHECKING:
    from django.db.models import Field, Model

logger = logging.getLogger(__name__)

Resolver = Callable[["Model", str], Media]

CHUNK = 1024 * 1024

#: Cloudinary delivery types whose originals need a signed URL.
SIGNED_TYPES = frozenset({"private", "authenticated"})


def is_cloudinary_resource(value: Any) -> bool:
    """Whether ``value`` is pycloudinary's CloudinaryResource (duck-typed)."""
    return hasattr(value, "build_url") and hasattr(value, "public_id")


def is_cloudinary_field(field: Field[Any, Any] | Any) -> bool:
    """Whether ``field`` is pycloudinary's ``CloudinaryField`` or a subclass."""
    try:
        from cloudinary.models import CloudinaryField
    except ImportError:  # pycloudinary absent: no such field can exist
        return False
    return isinstance(field, CloudinaryField)


def _is_cloudinary_storage(storage: Any) -> bool:
    # __class__, not type(): default_storage is a LazyObject that proxies it.
    return str(storage.__class__.__module__).startswith("cloudinary_storage")


def check_image_name(name: str) -> None:
    """Refuse files whose name says they are not images."""
    guessed, _ = mimetypes.guess_type(name)
    if guessed and not guessed.startswith("image/"):
        raise SourceError(f"{name!r} is not an image ({guessed})")


def check_image_resource(resource_type: str | None, name: str) -> None:
    """Skip Cloudinary video and raw resources: the analyses take images."""
    if resource_type and resource_type != "image":
        raise UnsupportedAnalysis(
            f"{name!r} is a Cloudinary {resource_type} resource; the Analyze API "
            "analyses images only",
            code="not_an_image",
        )


def resolve(obj: Model, field_name: str) -> Media:
    """The default resolver: see the module docstring."""
    from django_cloudinary_analysis.conf import app_settings

    value = getattr(obj, field_name, None)
    if not value:
        raise SourceError(f"{field_name} is empty")
    if is_cloudinary_resource(value):
        return _resolve_cloudinary_resource(value)

    name = value.name
    check_image_name(name)
    storage = value.storage
    if _is_cloudinary_storage(storage):
        resource_type = _storage_resource_type(storage, name)
        check_image_resource(resource_type, name)
    try:
        url = value.url
    except Exception as exc:  # storages raise anything from url()
        return Media(
            name=name,
            storage=storage,
            source_problem=f"the storage gives no URL for {name!r}: {exc}",
        )
    if _is_cloudinary_storage(storage):
        # The stored name is the asset's public id; the etag identifies it.
        asset = {"public_id": name, "type": "upload", "resource_type": resource_type}
        return Media(
            name=name,
            storage=storage,
            source=Source(uri=url),
            extra={"cloudinary": asset},
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


def _storage_resource_type(storage: Any, name: str) -> str:
    getter = getattr(storage, "_get_resource_type", None)
    if callable(getter):
        return str(getter(name))
    return str(getattr(storage, "RESOURCE_TYPE", "image"))


def _resolve_cloudinary_resource(value: Any) -> Media:
    """A CloudinaryField value: its delivery URL, signed where it must be."""
    public_id = str(value.public_id)
    resource_type = getattr(value, "resource_type", None) or "image"
    delivery_type = getattr(value, "type", None) or "upload"
    check_image_resource(resource_type, public_id)
    asset = {
        "public_id": public_id,
        "type": delivery_type,
        "resource_type": resource_type,
    }
    if delivery_type not in SIGNED_TYPES:
        uri = value.build_url(secure=True)
        return Media(
            name=public_id, source=Source(uri=uri), extra={"cloudinary": asset}
        )
    from django_cloudinary_analysis.conf import app_settings

    secret = app_settings.credentials.api_secret
    if not secret:
        return Media(
            name=public_id,
            extra={"cloudinary": asset},
            source_problem=(
                f"{public_id!r} is a {delivery_type} asset: its URL must be signed, "
                "which needs the API secret (set API_SECRET or CLOUDINARY_URL)"
            ),
        )
    uri = value.build_url(secure=True, sign_url=True, api_secret=secret)
    return Media(name=public_id, source=Source(uri=uri), extra={"cloudinary": asset})


def content_key(media: Media) -> str:
    """Identify the file's content, never by its name.

    A resolver's explicit ``extra["key"]`` wins; files on Cloudinary use the
    asset's etag (Admin API) when pycloudinary can fetch it; everything else,
    and Cloudinary files whose etag is unavailable, the SHA-256 of the bytes.
    """
    key = media.extra.get("key")
    if key:
        return str(key)
    asset = media.extra.get("cloudinary")
    if asset:
        etag = cloudinary_etag(asset)
        if etag:
            return f"cloudinary-etag:{etag}"
    digest = hashlib.sha256()
    size = 0
    for chunk in _read_chunks(media):
        size += len(chunk)
        digest.update(chunk)
    if size == 0:
        raise SourceError(f"file {media.name!r} is empty")
    return f"sha256:{digest.hexdigest()}"


def _read_chunks(media: Media) -> Iterator[bytes]:
    """The file's bytes from its storage, or from its URL when it has none."""
    if media.storage is not None or media.source is None or not media.source.uri:
        with media.open() as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
        return
    import requests

    from django_cloudinary_analysis.conf import app_settings

    try:
        with requests.get(
            media.source.uri, stream=True, timeout=app_settings.TIMEOUT
        ) as response:
            if response.status_code != 200:
                raise SourceError(
                    f"{media.name!r} cannot be downloaded (HTTP {response.status_code})"
                )
            yield from response.iter_content(CHUNK)
    except requests.RequestException as exc:
        raise SourceError(
            f"{media.name!r} cannot be downloaded: {type(exc).__name__}"
        ) from exc


def cloudinary_etag(asset: dict[str, Any]) -> str | None:
    """The asset's etag from the Admin API, or None when it cannot be had.

    Needs pycloudinary (the ``cloudinary`` extra) and key + secret or an OAuth
    token; runs in the worker, never in ``save()``.
    """
    try:
        import cloudinary.api
        import cloudinary.exceptions
    except ImportError:
        return None
    from django_cloudinary_analysis.conf import app_settings
    from django_cloudinary_analysis.exceptions import ConfigurationError

    try:
        creds = app_settings.credentials
    except ConfigurationError:
        return None
    if not creds.complete:
        return None
    auth = {
        k: v
        for k, v in (
            ("cloud_name", creds.cloud_name),
            ("api_key", creds.api_key),
            ("api_secret", creds.api_secret),
            ("oauth_token", creds.oauth_token),
        )
        if v
    }
    try:
        details = cloudinary.api.resource(
            asset["public_id"],
            resource_type=asset.get("resource_type") or "image",
            type=asset.get("type") or "upload",
            timeout=app_settings.TIMEOUT[1],
            **auth,
        )
    except (cloudinary.exceptions.Error, OSError, ValueError) as exc:
        logger.info(
            "no etag for a Cloudinary asset (%s); hashing its bytes instead",
            type(exc).__name__,
        )
        return None
    etag = details.get("etag") if isinstance(details, dict) else None
    return str(etag) if etag else None


def get_resolver() -> Resolver:
    """The configured source resolver."""
    from django_cloudinary_analysis.conf import import_setting

    return import_setting("SOURCE_RESOLVER")  # type: ignore[no-any-return]
