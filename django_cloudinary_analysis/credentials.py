"""API credentials: the value object, ``CLOUDINARY_URL`` parsing, and the
settings and pycloudinary config they are read from (in ``CREDENTIAL_SOURCES``
order, by ``conf.app_settings.credentials``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Credentials:
    """Where to reach the API and how to authenticate (secret kept out of repr)."""

    cloud_name: str | None
    api_key: str | None = None
    api_secret: str | None = None
    oauth_token: str | None = None
    source: str = "CLOUDINARY_ANALYSIS"

    def __repr__(self) -> str:
        return (
            f"Credentials(cloud_name={self.cloud_name!r}, api_key={self.api_key!r}, "
            f"api_secret={'***' if self.api_secret else None}, "
            f"oauth_token={'***' if self.oauth_token else None}, "
            f"source={self.source!r})"
        )

    @property
    def complete(self) -> bool:
        """Return whether these are enough to call the API."""
        return bool(
            self.cloud_name and (self.oauth_token or (self.api_key and self.api_secret))
        )

    def missing(self) -> list[str]:
        """Name what is missing, for errors and system checks."""
        missing = []
        if not self.cloud_name:
            missing.append("CLOUD_NAME")
        if not self.oauth_token:
            if not self.api_key:
                missing.append("API_KEY")
            if not self.api_secret:
                missing.append("API_SECRET")
        return missing


def credentials_from_url(url: str) -> Credentials:
    """Read credentials from ``cloudinary://KEY:SECRET@CLOUD`` (never echoed)."""
    from django_cloudinary_analysis.client import parse_cloudinary_url

    options = parse_cloudinary_url(url)
    return Credentials(
        options["cloud_name"],
        options.get("api_key"),
        options.get("api_secret"),
        options.get("oauth_token"),
        source="CLOUDINARY_URL",
    )


#: Where credentials are looked for, first complete set wins (README "Settings").
CREDENTIAL_SOURCES = (
    "CLOUDINARY_ANALYSIS",
    "CLOUDINARY_URL",
    "CLOUDINARY",
    "CLOUDINARY_STORAGE",
    "cloudinary.config()",
)


def _dict_credentials(setting: str, *, lower: bool) -> Credentials | None:
    """Read a settings dict with cloud name, key and secret (either case)."""
    value = getattr(settings, setting, None)
    if not isinstance(value, dict):
        return None

    def pick(name: str) -> str | None:
        key = name.lower() if lower else name.upper()
        return _optional_str(value.get(key, value.get(name.lower())))

    found = Credentials(
        pick("CLOUD_NAME"),
        pick("API_KEY"),
        pick("API_SECRET"),
        pick("OAUTH_TOKEN"),
        source=setting,
    )
    return found if found.complete else None


def _pycloudinary_credentials() -> Credentials | None:
    try:
        import cloudinary
    except ImportError:
        return None
    cfg = cloudinary.config()
    found = Credentials(
        _optional_str(getattr(cfg, "cloud_name", None)),
        _optional_str(getattr(cfg, "api_key", None)),
        _optional_str(getattr(cfg, "api_secret", None)),
        _optional_str(getattr(cfg, "oauth_token", None)),
        source="cloudinary.config()",
    )
    return found if found.complete else None


def _optional_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
