"""Client configuration: defaults, base URL, timeouts and ``CLOUDINARY_URL``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from django_cloudinary_analysis import __version__
from django_cloudinary_analysis.client.credentials import Secret
from django_cloudinary_analysis.exceptions import ConfigurationError

DEFAULT_BASE_URL = "https://api.cloudinary.com/v2/analysis/{cloud_name}"
#: Answers are a few kilobytes; anything this large is a fault, not a result.
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: (connect, read) seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
#: HTTP statuses worth retrying; every other error status is final.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"django-cloudinary-analysis/{__version__}"
#: The variable the official SDK documents for debug logging; ours honours it.
DEBUG_ENV = "CLOUDINARY_DEBUG"
#: How much of a failed response's body an error keeps, and debug logs show.
MAX_DETAIL_BYTES = 4096


def debug_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether ``CLOUDINARY_DEBUG`` asks for debug logging."""
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def normalise_timeout(timeout: Any) -> float | tuple[float, float]:
    """Check ``timeout`` (seconds or a (connect, read) pair) and return floats."""
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive")
        return float(timeout)
    if isinstance(timeout, (tuple, list)) and len(timeout) == 2:
        connect, read = timeout
        for part in (connect, read):
            if (
                isinstance(part, bool)
                or not isinstance(part, (int, float))
                or part <= 0
            ):
                raise ConfigurationError("timeout parts must be positive numbers")
        return (float(connect), float(read))
    raise ConfigurationError("timeout must be seconds or a (connect, read) pair")


def build_base_url(base_url: str | None, cloud_name: str) -> str:
    """Fill ``{cloud_name}`` into the base URL and check it."""
    template = base_url or DEFAULT_BASE_URL
    if "{cloud_name}" in template:
        template = template.replace("{cloud_name}", quote(cloud_name, safe=""))
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("base_url must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise ConfigurationError("base_url must not contain credentials")
    return template.rstrip("/")


def _split_cloudinary_url(url: str) -> tuple[dict[str, Any], list[str] | None]:
    """Split the URL without raising; every credential comes back a Secret."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() != "cloudinary":
        return {}, None
    rest, _, query = rest.partition("?")
    # Only the part before the host can hold credentials; keep it wrapped.
    userinfo, at, host = Secret(rest.split("#", 1)[0].split("/", 1)[0]).rpartition("@")
    userinfo = Secret.of(userinfo)
    options: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=False))
    if options.get("oauth_token"):
        options["oauth_token"] = Secret(options["oauth_token"])
    result: dict[str, Any] = {"cloud_name": unquote(host)}
    missing = [] if result["cloud_name"] else ["cloud name"]
    key, colon, secret = userinfo.partition(":") if at else ("", "", "")
    if unquote(key):
        result["api_key"] = Secret(unquote(key))
    if colon and unquote(secret):
        result["api_secret"] = Secret(unquote(secret))
    del userinfo, key, secret
    if options.get("oauth_token"):
        result["oauth_token"] = options["oauth_token"]
    else:
        missing += [
            label
            for label, name in (("API key", "api_key"), ("API secret", "api_secret"))
            if name not in result
        ]
    prefix = options.get("upload_prefix")
    if prefix:
        result["base_url"] = prefix.rstrip("/") + "/v2/analysis/{cloud_name}"
    return result, missing


def parse_cloudinary_url(url: str) -> dict[str, Any]:
    """Split ``cloudinary://KEY:SECRET@CLOUD?options`` into client arguments.

    Error messages name the missing part and never repeat the URL; key,
    secret and token come back as :class:`Secret` strings.
    """
    url = Secret.of(url)
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("CLOUDINARY_URL is empty")
    result, missing = _split_cloudinary_url(url)
    del url
    if missing is None:
        raise ConfigurationError(
            "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME"
        )
    if missing:
        raise ConfigurationError(
            "CLOUDINARY_URL lacks the "
            + ", ".join(missing)
            + " (expected cloudinary://API_KEY:API_SECRET@CLOUD_NAME)",
            details={"missing": missing},
        )
    return result
