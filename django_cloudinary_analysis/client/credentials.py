"""Credentials that never show: in reprs, logs, errors or debug pages.

Every credential the clients hold lives in a :class:`Secret` (a ``str`` whose
``repr`` is ``'[redacted]'``) inside one :class:`Credentials` object, so a
traceback renderer that prints each frame's locals — Django's technical 500
page and its error mails do — shows ``[redacted]`` where a key would be.
The same object redacts the credentials out of any text before it is logged
or put into an exception.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django_cloudinary_analysis.exceptions import ConfigurationError

REDACTED = "[redacted]"

#: Header and JSON keys whose values are credentials or signatures.
SENSITIVE_NAME = re.compile(
    r"authorization|cookie|secret|token|signature|password|api[_-]?key", re.I
)
#: A signed Cloudinary delivery URL's signature component (``/s--abcd1234--/``).
_URL_SIGNATURE = re.compile(r"/s--[A-Za-z0-9_-]{6,64}--/")
#: ``?signature=…`` style query parameters.
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:[a-z_]*signature|api_secret|api_key|token|access_token)=)[^&#\s\"']*"
)


class Secret(str):
    """A credential: usable as a ``str``, shown as ``'[redacted]'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)

    @classmethod
    def of(cls, value: Any) -> Any:
        """Wrap a non-empty string; return anything else unchanged."""
        if isinstance(value, str) and value and not isinstance(value, cls):
            return cls(value)
        return value


#: Keyword arguments of the clients that carry credentials.
CREDENTIAL_ARGUMENTS = ("api_key", "api_secret", "oauth_token")


def protect(options: dict[str, Any]) -> dict[str, Any]:
    """Wrap the credential arguments in ``options`` as Secrets, in place."""
    for name in CREDENTIAL_ARGUMENTS:
        if name in options:
            options[name] = Secret.of(options[name])
    return options


def _check(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} is missing")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        # Never echo the value: it may be the secret.
        raise ConfigurationError(f"{name} contains whitespace or control characters")


class Credentials:
    """The Authorization header of a client and the strings to redact."""

    __slots__ = ("_header", "_secrets", "api_key", "scheme")

    def __init__(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        oauth_token: str | None = None,
    ) -> None:
        # Wrapped first, so a frame that fails below shows them redacted.
        api_key, api_secret = Secret.of(api_key) or None, Secret.of(api_secret)
        oauth_token = Secret.of(oauth_token)
        self.api_key: str | None = api_key
        # A token wins over key/secret: a site may keep the secret around for
        # webhook signatures while authenticating API calls with OAuth.
        if oauth_token:
            _check("oauth_token", oauth_token)
            self.scheme = "bearer"
            self._header = Secret(f"Bearer {oauth_token}")
            self._secrets: tuple[str, ...] = tuple(
                s for s in (oauth_token, api_secret) if s
            )
            return
        missing = [
            name
            for name, value in (("api_key", api_key), ("api_secret", api_secret))
            if not value
        ]
        if missing:
            raise ConfigurationError(
                "credentials are missing: "
                + " and ".join(missing)
                + " (or give an oauth_token)",
                details={"missing": missing},
            )
        _check("api_key", api_key)
        _check("api_secret", api_secret)
        if ":" in str(api_key):
            raise ConfigurationError("api_key must not contain ':'")
        self.scheme = "basic"
        token = Secret(base64.b64encode(f"{api_key}:{api_secret}".encode()).decode())
        self._header = Secret(f"Basic {token}")
        self._secrets = (api_secret, token)

    @property
    def header(self) -> str:
        """The ``Authorization`` header value."""
        return self._header

    def __repr__(self) -> str:
        return f"<Credentials {getattr(self, 'scheme', '?')} {REDACTED}>"

    def redact(self, value: Any) -> Any:
        """Replace credentials and signatures inside ``value`` (str, list, dict)."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            value = _URL_SIGNATURE.sub(f"/s--{REDACTED}--/", value)
            return _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, value)
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, dict):
            return {
                self.redact(k): (
                    REDACTED
                    if isinstance(k, str) and SENSITIVE_NAME.search(k) and v
                    else self.redact(v)
                )
                for k, v in value.items()
            }
        return value

    def redact_headers(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]]
    ) -> dict[str, str]:
        """Return the headers, names in lower case, sensitive values replaced."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return {
            name.lower(): (
                REDACTED if SENSITIVE_NAME.search(name) else self.redact(value)
            )
            for name, value in items
        }
