"""A loopback stand-in for the parts of Cloudinary's Upload and Admin APIs
that the write-back uses, driven through real pycloudinary.

Point pycloudinary at it with ``upload_prefix`` (``FakeCloudinary.url``; in a
subprocess, ``CLOUDINARY_URL=FakeCloudinary.cloudinary_url``). It serves:

* ``GET  /v1_1/{cloud}/resources/{resource_type}/{type}/{public_id}`` — the
  asset's details (``cloudinary.api.resource``): ``tags`` and, for assets
  under manual moderation, ``moderation: [{"kind": "manual", "status": …}]``;
* ``POST /v1_1/{cloud}/resources/{resource_type}/{type}/{public_id}`` — update
  (``cloudinary.api.update``), here only ``moderation_status``, refused with
  400 for an asset that has no manual moderation;
* ``POST /v1_1/{cloud}/{resource_type}/tags`` — ``add``/``remove`` tags
  (``cloudinary.uploader.add_tag``/``remove_tag``), signed Upload API calls.

Admin calls need HTTP Basic ``api_key:api_secret``; Upload calls need a valid
signature (checked with pycloudinary's own signing function). A missing
asset answers 404 with Cloudinary's error object. ``fail_next`` injects
faults: 429 or 500 with a JSON error, or 502/503 with a proxy's HTML page.
Every request is recorded (``calls``) before it is answered.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CLOUD_NAME = "demo-cloud"
API_KEY = "111111111111111"
API_SECRET = "tests-api-secret-value"


@dataclass
class FakeAsset:
    """One asset: its tags and, when under manual moderation, its status."""

    public_id: str
    resource_type: str = "image"
    type: str = "upload"
    tags: list[str] = field(default_factory=list)
    #: None: no manual moderation; else "pending", "approved" or "rejected".
    moderation: str | None = None

    def details(self) -> dict[str, Any]:
        """Return the Admin API's description of the asset."""
        body: dict[str, Any] = {
            "public_id": self.public_id,
            "resource_type": self.resource_type,
            "type": self.type,
            "format": "jpg",
            "version": 1712345678,
            # The content identity the app keys dedup by (sources.content_key).
            "etag": hashlib.md5(self.public_id.encode()).hexdigest(),
            "tags": list(self.tags),
        }
        if self.moderation is not None:
            body["moderation"] = [{"kind": "manual", "status": self.moderation}]
        return body


@dataclass(frozen=True)
class Call:
    """One request as the fake read it."""

    endpoint: str  # "resource", "update", "tags"
    method: str
    public_id: str
    params: dict[str, Any]
    status: int


@dataclass
class Fault:
    """Answer ``count`` requests to ``endpoint`` with ``status``, after ``after``."""

    endpoint: str
    status: int
    count: int = 1
    after: int = 0


_HTML = b"<html><body><h1>%d</h1>The proxy gave up.</body></html>"


class FakeCloudinary:
    """The loopback server; use as a context manager."""

    def __init__(
        self,
        cloud_name: str = CLOUD_NAME,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
    ) -> None:
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.assets: dict[str, FakeAsset] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------

    def __enter__(self) -> FakeCloudinary:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        """Return the ``upload_prefix`` for pycloudinary."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cloudinary_url(self) -> str:
        """Return a ``CLOUDINARY_URL`` pointing pycloudinary at this server."""
        return (
            f"cloudinary://{self.api_key}:{self.api_secret}@{self.cloud_name}"
            f"?upload_prefix={self.url}"
        )

    # -- driving it -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget assets, calls and faults."""
        with self.lock:
            self.assets.clear()
            self.calls.clear()
            self.faults.clear()

    def add_asset(self, public_id: str, **kwargs: Any) -> FakeAsset:
        """Create an asset (``tags=[…]``, ``moderation="pending"``…)."""
        asset = FakeAsset(public_id, **kwargs)
        with self.lock:
            self.assets[public_id] = asset
        return asset

    def fail_next(
        self, endpoint: str, status: int, count: int = 1, *, after: int = 0
    ) -> None:
        """Answer ``count`` calls to ``endpoint`` with ``status``.

        The first ``after`` calls pass: the worker's etag look-up (the content
        key of a Cloudinary file) calls ``resource`` before the sync does.
        """
        with self.lock:
            self.faults.append(Fault(endpoint, status, count, after))

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Return how many requests matched."""
        with self.lock:
            return sum(
                1
                for c in self.calls
                if (endpoint is None or c.endpoint == endpoint)
                and (status is None or c.status == status)
            )

    # -- serving -------------------------------------------------------------------

    def _fault(self, endpoint: str) -> int | None:
        for fault in self.faults:
            if fault.endpoint in (endpoint, "any") and fault.count > 0:
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.count -= 1
                return fault.status
        return None

    def handle(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, str, bytes]:
        """Route one request; return (status, content type, body)."""
        parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
        if len(parts) < 4 or parts[0] != "v1_1" or parts[1] != self.cloud_name:
            return _error(404, "Unknown route")
        if parts[2] == "resources" and len(parts) >= 6:
            endpoint = "resource" if method == "GET" else "update"
            resource_type, kind = parts[3], parts[4]
            public_id = "/".join(parts[5:])
            params = _json(body) if method == "POST" else _query(path)
        elif parts[3] == "tags" and method == "POST" and len(parts) == 4:
            endpoint, resource_type, kind, public_id = "tags", parts[2], "", ""
            params = _form(headers.get("Content-Type", ""), body)
        else:
            return _error(404, "Unknown route")
        with self.lock:
            status, ctype, payload = self._answer(
                endpoint, method, headers, resource_type, kind, public_id, params
            )
            ids = params.get("public_ids") or []
            self.calls.append(
                Call(endpoint, method, public_id or ",".join(ids), params, status)
            )
        return status, ctype, payload

    def _answer(
        self,
        endpoint: str,
        method: str,
        headers: Any,
        resource_type: str,
        kind: str,
        public_id: str,
        params: dict[str, Any],
    ) -> tuple[int, str, bytes]:
        injected = self._fault(endpoint)
        if injected is not None:
            if injected >= 502:
                return injected, "text/html", _HTML % injected
            return _error(injected, f"Injected fault {injected}")
        if endpoint == "tags":
            if not self._signed(params):
                return _error(401, "Invalid Signature")
            return self._tags(resource_type, params)
        if headers.get("Authorization") != _basic(self.api_key, self.api_secret):
            return _error(401, "Invalid credentials")
        asset = self.assets.get(public_id)
        if asset is None or asset.resource_type != resource_type or asset.type != kind:
            return _error(404, f"Resource not found - {public_id}")
        if endpoint == "update":
            status = params.get("moderation_status")
            if status is not None:
                if asset.moderation is None:
                    return _error(400, "Resource is not manually moderated")
                if status not in ("approved", "rejected"):
                    return _error(400, f"Invalid moderation status {status}")
                asset.moderation = status
        return 200, "application/json", json.dumps(asset.details()).encode()

    def _signed(self, params: dict[str, Any]) -> bool:
        from cloudinary.utils import api_sign_request

        given = params.get("signature")
        if params.get("api_key") != self.api_key or not isinstance(given, str):
            return False
        signed = {
            k: v
            for k, v in params.items()
            if k not in ("signature", "api_key", "resource_type", "file")
        }
        return bool(api_sign_request(signed, self.api_secret) == given)

    def _tags(
        self, resource_type: str, params: dict[str, Any]
    ) -> tuple[int, str, bytes]:
        command = params.get("command")
        names = [t for t in _split(params.get("tag")) if t]
        ids = params.get("public_ids") or []
        kind = params.get("type") or "upload"
        if command not in ("add", "remove") or not names or not ids:
            return _error(400, "Missing tag, public_ids or command")
        updated = []
        for public_id in ids:
            asset = self.assets.get(public_id)
            if (
                asset is None
                or asset.resource_type != resource_type
                or asset.type != kind
            ):
                continue  # Cloudinary leaves unknown ids out of the answer
            for name in names:
                if command == "add" and name not in asset.tags:
                    asset.tags.append(name)
                if command == "remove" and name in asset.tags:
                    asset.tags.remove(name)
            updated.append(public_id)
        return 200, "application/json", json.dumps({"public_ids": updated}).encode()


def _handler(fake: FakeCloudinary) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, ctype, payload = fake.handle(
                self.command, self.path, self.headers, body
            )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-Id", "fake-cloudinary")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    return (
        status,
        "application/json",
        json.dumps({"error": {"message": message}}).encode(),
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _query(path: str) -> dict[str, Any]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}


def _form(content_type: str, body: bytes) -> dict[str, Any]:
    """Read a multipart or urlencoded form; ``x[]`` fields become lists."""
    pairs: list[tuple[str, str]] = []
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            pairs.append((str(name), payload.decode()))
    else:
        for key, values in parse_qs(body.decode()).items():
            pairs.extend((key, v) for v in values)
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        else:
            params[key] = value
    return params


def _split(value: Any) -> Iterator[str]:
    for item in value if isinstance(value, list) else [value or ""]:
        yield from (t.strip() for t in str(item).split(","))
