"""A loopback stand-in for the Cloudinary Analyze API, with faults on demand.

``FakeAnalyzeAPI`` honours ``/work/shared/analyze-api.md``: it checks paths,
credentials, subscriptions and request bodies, answers every analysis type
with the realistic bodies of ``tests.support.api_samples``, accepts async
requests with a 202 and later POSTs a signed ``analyze`` notification, serves
``/tasks/{task_id}``, keeps add-on quotas, injects faults and records every
request so tests can assert exact numbers.

Definitions tests rely on:

* A request is **billable** when it reached analysis: it was answered 200 or
  202 with a real result (the quota was spent). Requests answered by an
  injected fault (other than plain latency), or rejected for routing, auth,
  subscription, validation or quota reasons are not billable. A request
  slowed by a ``latency`` fault and then answered normally is billable.
* Faults are evaluated after the request is read and routed but before auth:
  they stand for the network and proxies in front of the API. ``latency``
  rules add up and do not stop the request; the first other matching rule
  that fires decides the answer.
* Records are stored before the answer is written, so a client that has its
  answer always finds its request counted.

Run out of process with ``python -m tests.support.fake_api --port 0
--print-url``; the first line on stdout is the base URL, and the
``/_control/…`` HTTP API (see ``FakeAPIControl``) drives it from elsewhere.

It holds only what the suite, bench/ and the example use: features nobody
called were dropped (see git history for custom answers, failed or forced
tasks, replays, a webhook receiver and the rest).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.api_samples import (
    ANALYSIS_TYPES,
    DEFAULT_QUOTA_FEATURE,
    QUOTA_FEATURES,
    sample_analysis,
)

logger = logging.getLogger(__name__)

DEFAULT_CLOUD_NAME = "demo-cloud"
DEFAULT_API_KEY = "111111111111111"
DEFAULT_API_SECRET = "tests-api-secret-value"

#: Extra body field each type accepts (the other twelve accept none).
EXTRA_FIELDS: dict[str, str] = {
    "ai_vision_general": "prompts",
    "ai_vision_moderation": "rejection_questions",
    "ai_vision_tagging": "tag_definitions",
}
REQUIRED_EXTRAS = frozenset({"ai_vision_tagging"})
SYNC_ONLY_TYPES = frozenset({"google_logo_detection"})
COMMON_FIELDS = frozenset({"source", "async", "notification_url"})
MAX_EXTRA_ITEMS = 10
QUOTA_FEATURE_NAMES: tuple[str, ...] = (
    "ai_vision",
    "google_tagging",
    "object_detection",
)

#: Every fault kind a rule may name.
FAULT_KINDS: tuple[str, ...] = (
    "latency",  # sleep latency_ms, then answer normally
    "rate_limit",  # 429 with limits (remaining 0, reset_time) and maybe Retry-After
    "server_error",  # 500 JSON error object
    "bad_gateway",  # 502 HTML page from a proxy
    "unavailable",  # 503 HTML page from a proxy
    "gateway_timeout",  # 504 HTML page from a proxy
    "timeout",  # read the request, answer nothing for hang_seconds, close
    "reset",  # close with SO_LINGER 0: the client sees a TCP RST
    "truncated",  # 200 whose body stops halfway through its Content-Length
    "malformed",  # 200 application/json whose body is not JSON
    "huge",  # 200 with a valid JSON body of `size` bytes
    "not_found",  # 404 JSON error object
    "unauthorized",  # 401 JSON error object
)

# Error codes are invented (the spec shows only MA_00001); stable for tests.
ERROR_CODES: dict[str, str] = {
    "missing": "MA_00001",
    "invalid": "MA_00002",
    "unauthorized": "MA_00401",
    "forbidden": "MA_00403",
    "not_found": "MA_00404",
    "rate_limit": "MA_00429",
    "server_error": "MA_00500",
}

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_REQUEST_BODY = 10 * 1024 * 1024
_WEBHOOK_TIMEOUT = 10.0
_HTML_PAGES: dict[int, bytes] = {
    status: (
        f"<html>\r\n<head><title>{status} {HTTPStatus(status).phrase}</title></head>"
        f"\r\n<body>\r\n<center><h1>{status} {HTTPStatus(status).phrase}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()
    for status in (502, 503, 504)
}


def sign(
    body: bytes, timestamp: int | str, secret: str, algorithm: str = "sha1"
) -> str:
    """Return Cloudinary's notification signature: hex hash of body+ts+secret."""
    digest = hashlib.new(algorithm)
    digest.update(body)
    digest.update(str(timestamp).encode())
    digest.update(secret.encode())
    return digest.hexdigest()


def notification_headers(
    body: bytes,
    secret: str,
    timestamp: int | None = None,
    algorithm: str = "sha1",
) -> dict[str, str]:
    """Return the headers of a signed notification for ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        "X-Cld-Signature": sign(body, ts, secret, algorithm),
        "X-Cld-Timestamp": str(ts),
    }


def post_notification(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0
) -> int:
    """POST a notification to a loopback URL and return the HTTP status."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS:
        # The test suite must never contact a non-loopback address.
        raise ValueError(f"refusing to deliver to a non-loopback URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _request_id() -> str:
    return os.urandom(16).hex()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _error_body(
    category: str,
    code: str,
    message: str,
    request_id: str,
    details: Any = None,
    limits: Any = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": {
            "category": category,
            "code": code,
            "message": message,
            "details": details if details is not None else {},
            "request_id": request_id,
        }
    }
    if limits is not None:
        body["limits"] = limits
    return body


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _invalid(message: str, *parameters: str, code: str = "invalid") -> _Reject:
    """Return a 400 user_error naming the offending parameters."""
    return _Reject(
        400, "user_error", ERROR_CODES[code], message, {"parameters": list(parameters)}
    )


@dataclass
class FaultRule:
    """When and how to break requests; build with ``FakeAnalyzeAPI.add_fault``."""

    #: One kind of ``FAULT_KINDS``, or several to pick from at random per firing.
    kind: str | tuple[str, ...]
    #: Fire at most this many times (``None``: no limit): "the next N requests".
    times: int | None = None
    #: Chance of firing for each matching request (seeded RNG).
    probability: float = 1.0
    #: Only requests for this analysis type.
    analysis_type: str | None = None
    #: Only requests whose source uri / asset_id contains this text.
    source: str | None = None
    latency_ms: float = 100.0
    #: For ``rate_limit``: seconds until the reported ``reset_time``.
    reset_in: float = 1.0
    #: For ``rate_limit``: a ``Retry-After`` header value (seconds) or none.
    retry_after: float | None = None
    #: For ``timeout``: how long to keep the connection silent before closing.
    hang_seconds: float = 10.0
    #: For ``huge``: body size in bytes.
    size: int = 20_000_000
    id: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.kind, list):
            self.kind = tuple(self.kind)
        kinds = (self.kind,) if isinstance(self.kind, str) else self.kind
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if not kinds or unknown:
            raise ValueError(f"unknown fault kind(s): {unknown or kinds!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    @property
    def exhausted(self) -> bool:
        """Return whether the rule has fired all its ``times``."""
        return self.times is not None and self.fired >= self.times

    def matches(self, endpoint: str, analysis_type: str | None, source: str) -> bool:
        """Return whether an analyze request is one this rule may break."""
        if endpoint != "analyze":
            return False
        if self.analysis_type is not None and self.analysis_type != analysis_type:
            return False
        return self.source is None or self.source in source

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from its JSON form, ignoring ``id`` and ``fired``."""
        allowed = {f.name for f in fields(cls)} - {"id", "fired"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        return cls(**dict(data))


@dataclass
class RequestRecord:
    """What the server received and how it answered one request."""

    seq: int
    time: float
    method: str
    path: str
    #: ``analyze``, ``tasks`` or ``unknown`` (unrouted paths).
    endpoint: str
    analysis_type: str | None
    body: Any
    #: The source uri or asset_id (``""`` when missing).
    source: str
    auth_ok: bool | None = None
    #: HTTP status sent; ``None`` when none was (timeout, reset).
    status: int | None = None
    #: Terminal fault kind, or ``"latency"`` when only latency was injected.
    fault: str | None = None
    latency_ms: float = 0.0
    billable: bool = False
    is_async: bool = False
    task_id: str | None = None
    request_id: str | None = None
    error_code: str | None = None


@dataclass
class Quota:
    """One add-on quota as the server keeps it."""

    feature: str
    limit: int | None = 10000
    remaining: int | None = 10000
    reset_time: float = 0.0
    #: After a reset the next one comes this many seconds later.
    period: float = 86400.0

    def item(self, used: int) -> dict[str, Any]:
        """Return the ``limits.items`` entry for this quota."""
        return {
            "type": self.feature,
            "used_by_request": used,
            "remaining": self.remaining,
            "limit": self.limit,
            "reset_time": _iso(self.reset_time),
        }


@dataclass
class Delivery:
    """One notification POST (or attempt) the server made."""

    task_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    timestamp: int
    attempt: int
    status: int | None = None
    error: str | None = None
    time: float = 0.0

    @property
    def payload(self) -> dict[str, Any]:
        """Return the decoded JSON body."""
        return json.loads(self.body)


@dataclass
class Task:
    """An accepted async analysis."""

    task_id: str
    analysis_type: str
    request_id: str
    entity: str
    analysis: dict[str, Any]
    limits: dict[str, Any] | None
    notification_url: str | None
    accepted_at: float
    processing_at: float
    final_status: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)

    def status(self, now: float) -> str:
        """Return the status ``GET /tasks/{id}`` reports."""
        if self.final_status:
            return self.final_status
        return "processing" if now >= self.processing_at else "pending"

    def payload(self) -> dict[str, Any]:
        """Return the ``analyze`` notification body for this task."""
        return {
            "notification_type": "analyze",
            "operation_type": "single",
            "task_id": self.task_id,
            "request_id": self.request_id,
            "http_status": 200,
            "data": {"entity": self.entity, "analysis": self.analysis},
            "limits": self.limits,
            "error": None,
        }


class _Reject(Exception):
    """A 4xx answer decided while checking a request."""

    def __init__(
        self,
        status: int,
        category: str,
        code: str,
        message: str,
        details: Any = None,
        limits: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.code = code
        self.message = message
        self.details = details
        self.limits = limits
        self.headers = dict(headers or {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.api._handle(self)

    do_POST = do_GET

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError, ValueError):
            # Clients that vanish mid-request (faults provoke this) are normal.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake api: " + format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], api: FakeAnalyzeAPI) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.connections_lock:
            self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fake api: error serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
            self.connections.clear()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FakeAnalyzeAPI:
    """A threaded loopback HTTP/1.1 server honouring the Analyze API contract."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cloud_name: str = DEFAULT_CLOUD_NAME,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        oauth_token: str | None = None,
        webhook_delay: float = 0.05,
        webhook_retries: int = 3,
        webhook_retry_delay: float = 1.0,
        quota_limit: int | None = 10000,
        quota_period: float = 86400.0,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.oauth_token = oauth_token
        self.webhook_delay = webhook_delay
        #: Cloudinary retries a delivery that did not get HTTP 200.
        self.webhook_retries = webhook_retries
        self.webhook_retry_delay = webhook_retry_delay
        self._initial: dict[str, Any] = {
            "quota_limit": quota_limit,
            "quota_period": quota_period,
            "seed": seed,
        }
        self._prefix = f"/v2/analysis/{cloud_name}/"
        self._basic = (
            "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        )
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._analysis_cache: dict[tuple[str, str], bytes] = {}
        self._huge_cache: dict[int, bytes] = {}
        self._server: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._reset_state()

    # -- lifecycle ---------------------------------------------------------

    def _reset_state(self) -> None:
        init = self._initial
        now = time.time()
        self.unsubscribed: set[str] = set()
        self._auto_deliver = True
        self._rng = random.Random(init["seed"])
        self._rules: list[FaultRule] = []
        self._rule_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._records: list[RequestRecord] = []
        self._tasks: dict[str, Task] = {}
        self._deliveries: list[Delivery] = []
        self._heap: list[tuple[float, int, str, int]] = []
        self._heap_seq = itertools.count()
        self.quotas: dict[str, Quota] = {
            name: Quota(
                feature=name,
                limit=init["quota_limit"],
                remaining=init["quota_limit"],
                reset_time=now + init["quota_period"],
                period=init["quota_period"],
            )
            for name in QUOTA_FEATURE_NAMES
        }

    def start(self) -> FakeAnalyzeAPI:
        """Bind, start serving in daemon threads and return self."""
        if self._server is not None:
            return self
        self._stop.clear()
        self._server = _HTTPServer((self.host, self.port), self)
        self.port = self._server.server_port
        self._executor = ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="fake-api-hook"
        )
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-api-serve",
            daemon=True,
        )
        sched = threading.Thread(
            target=self._scheduler, name="fake-api-webhooks", daemon=True
        )
        self._threads = [serve, sched]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging faults and close open connections."""
        server = self._server
        if server is None:
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        server.shutdown()
        server.server_close()
        server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._server = None
        self._executor = None

    def __enter__(self) -> FakeAnalyzeAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        # Never show the secret or token.
        return f"<FakeAnalyzeAPI {self.url if self._server else 'stopped'}>"

    @property
    def url(self) -> str:
        """Return the server's root URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Return the API base, ``http://127.0.0.1:PORT/v2/analysis/CLOUD``."""
        return f"{self.url}/v2/analysis/{self.cloud_name}"

    def reset(self) -> None:
        """Forget records, tasks and faults; restore quotas and subscriptions."""
        with self._cond:
            self._reset_state()
            self._cond.notify_all()

    def clear_records(self) -> None:
        """Forget recorded requests only."""
        with self._lock:
            self._records = []

    # -- configuration ----------------------------------------------------

    def add_fault(self, kind: str | Sequence[str], **options: Any) -> FaultRule:
        """Add a fault rule (see ``FaultRule`` for the options) and return it."""
        kind = kind if isinstance(kind, str) else tuple(kind)
        return self._add_rule(FaultRule(kind=kind, **options))

    def _add_rule(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = next(self._rule_ids)
            self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._rules = []

    def set_quota(
        self,
        feature: str,
        *,
        remaining: int | None = None,
        limit: int | None = None,
        reset_time: float | None = None,
        period: float | None = None,
    ) -> Quota:
        """Set an add-on quota: remaining calls, limit and when it resets (epoch)."""
        if feature not in self.quotas:
            raise ValueError(f"unknown quota feature: {feature!r}")
        with self._lock:
            quota = self.quotas[feature]
            if limit is not None:
                quota.limit = limit
            if remaining is not None:
                quota.remaining = remaining
            if period is not None:
                quota.period = period
            if reset_time is not None:
                quota.reset_time = float(reset_time)
            return Quota(**asdict(quota))

    def set_subscribed(self, analysis_type: str, subscribed: bool) -> None:
        """Mark an analysis type's add-on subscribed or not (403 when not)."""
        with self._lock:
            if subscribed:
                self.unsubscribed.discard(analysis_type)
            else:
                self.unsubscribed.add(analysis_type)

    # -- async tasks ------------------------------------------------------

    def hold_deliveries(self) -> None:
        """Keep notifications back until ``release_deliveries``."""
        with self._cond:
            self._auto_deliver = False

    def release_deliveries(self) -> None:
        """Let held notifications (and new ones) go out on their own."""
        with self._cond:
            self._auto_deliver = True
            self._cond.notify_all()

    @property
    def tasks(self) -> list[Task]:
        """Return the accepted tasks (live objects)."""
        with self._lock:
            return list(self._tasks.values())

    @property
    def deliveries(self) -> list[Delivery]:
        """Return every notification POST made, in order."""
        with self._lock:
            return list(self._deliveries)

    # -- counting -----------------------------------------------------------

    @property
    def records(self) -> list[RequestRecord]:
        """Return every recorded API request, in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def billable_calls(self) -> int:
        """Return how many requests reached analysis (see the module docstring)."""
        with self._lock:
            return sum(1 for r in self._records if r.billable)

    def count(self, *, endpoint: str | None = None, fault: str | None = None) -> int:
        """Return how many recorded requests match every given filter."""
        with self._lock:
            return sum(
                1
                for r in self._records
                if (endpoint is None or r.endpoint == endpoint)
                and (fault is None or r.fault == fault)
            )

    def billable_by_source(self) -> Counter[tuple[str, str]]:
        """Return billable calls per (analysis type, source)."""
        with self._lock:
            return Counter(
                (r.analysis_type or "", r.source) for r in self._records if r.billable
            )

    def stats(self) -> dict[str, Any]:
        """Return a JSON-able summary of what was counted (the control API's)."""
        with self._lock:
            records = list(self._records)
        return {
            "requests": len(records),
            "billable_calls": sum(1 for r in records if r.billable),
            "by_status": dict(Counter(str(r.status) for r in records)),
            "by_fault": dict(Counter(r.fault for r in records if r.fault)),
        }

    # -- request handling -------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        path = h.path.partition("?")[0]
        try:
            raw = self._read_body(h)
        except _Reject as rej:
            self._write(
                h, rej.status, _dumps({"error": {"message": rej.message}}), close=True
            )
            return
        if path.startswith("/_control/"):
            self._control(h, h.command, path, raw)
            return
        endpoint = "unknown"
        analysis_type: str | None = None
        task_id: str | None = None
        if path.startswith(self._prefix):
            rest = path[len(self._prefix) :]
            if h.command == "POST" and rest.startswith("analyze/"):
                name = rest[8:]
                if name in ANALYSIS_TYPES:
                    endpoint, analysis_type = "analyze", name
            elif h.command == "GET" and rest.startswith("tasks/") and len(rest) > 6:
                endpoint, task_id = "tasks", rest[6:]
        body: Any = None
        if endpoint == "analyze":
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw[:2000].decode("utf-8", "replace")
        source = ""
        if isinstance(body, dict) and isinstance(body.get("source"), dict):
            src = body["source"]
            value = src.get("uri") or src.get("asset_id")
            source = value if isinstance(value, str) else ""
        record = RequestRecord(
            seq=0,
            time=time.time(),
            method=h.command,
            path=path,
            endpoint=endpoint,
            analysis_type=analysis_type,
            body=body,
            source=source,
            request_id=_request_id(),
            task_id=task_id,
        )
        latency, rule, kind = self._pick_fault(endpoint, analysis_type, source)
        if latency:
            record.latency_ms = latency
            record.fault = "latency"
            self._stop.wait(latency / 1000.0)
        if rule is not None and kind is not None:
            record.fault = kind
            self._answer_fault(h, record, rule, kind)
            return
        try:
            if endpoint == "unknown":
                raise _Reject(
                    404,
                    "user_error",
                    ERROR_CODES["not_found"],
                    "not found",
                    {"path": path},
                )
            record.auth_ok = self._auth_ok(h.headers.get("Authorization"))
            if not record.auth_ok:
                raise _Reject(
                    401,
                    "auth_error",
                    ERROR_CODES["unauthorized"],
                    "invalid or missing credentials",
                )
            if endpoint == "tasks":
                status, payload = self._task_status(record)
            else:
                status, payload = self._analyze(record, body)
        except _Reject as rej:
            record.status = rej.status
            record.error_code = rej.code
            payload = _dumps(
                _error_body(
                    rej.category,
                    rej.code,
                    rej.message,
                    record.request_id or "",
                    rej.details,
                    rej.limits,
                )
            )
            self._store(record)
            self._write(h, rej.status, payload, headers=rej.headers)
            return
        record.status = status
        self._store(record)
        self._write(h, status, payload)

    def _read_body(self, h: _Handler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            # The clients send Content-Length; chunked bodies are not served.
            raise _Reject(411, "user_error", "MA_00411", "Content-Length required")
        length = int(h.headers.get("Content-Length") or 0)
        if length > _MAX_REQUEST_BODY:
            raise _Reject(413, "user_error", "MA_00413", "body too large")
        return h.rfile.read(length) if length else b""

    def _store(self, record: RequestRecord) -> None:
        with self._lock:
            record.seq = next(self._seq)
            self._records.append(record)

    def _pick_fault(
        self, endpoint: str, analysis_type: str | None, source: str
    ) -> tuple[float, FaultRule | None, str | None]:
        if not self._rules:
            return 0.0, None, None
        latency = 0.0
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(endpoint, analysis_type, source):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                kind = (
                    rule.kind
                    if isinstance(rule.kind, str)
                    else self._rng.choice(rule.kind)
                )
                rule.fired += 1
                if kind == "latency":
                    latency += rule.latency_ms
                    continue
                return latency, rule, kind
        return latency, None, None

    def _auth_ok(self, header: str | None) -> bool:
        if not header:
            return False
        if header.startswith("Basic "):
            return hmac.compare_digest(header.encode(), self._basic.encode())
        if header.startswith("Bearer ") and self.oauth_token:
            return hmac.compare_digest(
                header[7:].strip().encode(), self.oauth_token.encode()
            )
        return False

    def _task_status(self, record: RequestRecord) -> tuple[int, bytes]:
        with self._lock:
            task = self._tasks.get(record.task_id or "")
            status = task.status(time.time()) if task else None
        if status is None:
            raise _Reject(
                404,
                "user_error",
                ERROR_CODES["not_found"],
                "task not found",
                {"task_id": record.task_id},
            )
        return 200, _dumps(
            {
                "data": {"task_id": record.task_id, "status": status},
                "request_id": record.request_id,
            }
        )

    def _analyze(self, record: RequestRecord, body: Any) -> tuple[int, bytes]:
        analysis_type = record.analysis_type or ""
        if analysis_type in self.unsubscribed:
            raise _Reject(
                403,
                "auth_error",
                ERROR_CODES["forbidden"],
                f"an add-on subscription is required for {analysis_type}",
            )
        extras = self._validate(analysis_type, body)
        is_async = bool(body.get("async"))
        record.is_async = is_async
        feature = QUOTA_FEATURES.get(analysis_type, DEFAULT_QUOTA_FEATURE)
        limits = self._spend_quota(feature)
        analysis_bytes = self._analysis_bytes(analysis_type, extras, body)
        record.billable = True
        if not is_async:
            return 200, b"".join(
                (
                    b'{"data":{"entity":',
                    _dumps(record.source),
                    b',"analysis":',
                    analysis_bytes,
                    b'},"limits":',
                    _dumps(limits),
                    b',"request_id":"',
                    (record.request_id or "").encode(),
                    b'"}',
                )
            )
        task_id = os.urandom(80).hex()
        record.task_id = task_id
        now = time.time()
        task = Task(
            task_id=task_id,
            analysis_type=analysis_type,
            request_id=record.request_id or "",
            entity=record.source,
            analysis=json.loads(analysis_bytes),
            limits=limits,
            notification_url=body.get("notification_url"),
            accepted_at=now,
            processing_at=now + self.webhook_delay / 2,
        )
        with self._cond:
            self._tasks[task_id] = task
            heapq.heappush(
                self._heap, (now + self.webhook_delay, next(self._heap_seq), task_id, 1)
            )
            self._cond.notify_all()
        return 202, _dumps(
            {
                "data": {"task_id": task_id, "status": "pending"},
                "request_id": record.request_id,
            }
        )

    def _validate(self, analysis_type: str, body: Any) -> Any:
        if not isinstance(body, dict):
            raise _invalid("the request body must be a JSON object")
        extra = EXTRA_FIELDS.get(analysis_type)
        allowed = COMMON_FIELDS | ({extra} if extra else set())
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _invalid("unknown parameters", *unknown)
        missing = [] if "source" in body else ["source"]
        if analysis_type in REQUIRED_EXTRAS and extra not in body:
            missing.append(extra or "")
        if missing:
            raise _invalid("missing parameters", *missing, code="missing")
        source = body["source"]
        if not isinstance(source, dict) or set(source) - {"uri", "asset_id"}:
            raise _invalid("source must be an object with uri or asset_id", "source")
        if ("uri" in source) == ("asset_id" in source):
            raise _invalid(
                "source needs exactly one of uri or asset_id",
                "source.uri",
                "source.asset_id",
            )
        if "uri" in source and not _is_http_url(source["uri"]):
            raise _invalid("source.uri must be an http(s) URL", "source.uri")
        if "asset_id" in source and not (
            isinstance(source["asset_id"], str) and source["asset_id"]
        ):
            raise _invalid(
                "source.asset_id must be a non-empty string", "source.asset_id"
            )
        if not isinstance(body.get("async", False), bool):
            raise _invalid("async must be a boolean", "async")
        if body.get("async") and analysis_type in SYNC_ONLY_TYPES:
            raise _invalid(f"{analysis_type} does not support async", "async")
        url = body.get("notification_url")
        if url is not None and not _is_http_url(url):
            raise _invalid(
                "notification_url must be an http(s) URL", "notification_url"
            )
        if not extra or extra not in body:
            return None
        value = body[extra]
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_EXTRA_ITEMS:
            raise _invalid(f"{extra} must hold 1 to {MAX_EXTRA_ITEMS} items", extra)
        if extra == "tag_definitions":
            ok = all(
                isinstance(item, dict)
                and set(item) == {"name", "description"}
                and all(isinstance(v, str) and v.strip() for v in item.values())
                for item in value
            )
        else:
            ok = all(isinstance(item, str) and item.strip() for item in value)
        if not ok:
            raise _invalid(f"invalid items in {extra}", extra)
        return value

    def _spend_quota(self, feature: str) -> dict[str, Any] | None:
        now = time.time()
        with self._lock:
            quota = self.quotas[feature]
            if quota.remaining is not None and quota.remaining <= 0:
                if now >= quota.reset_time:
                    quota.remaining = quota.limit
                    quota.reset_time = now + quota.period
                else:
                    raise _Reject(
                        429,
                        "rate_limit_error",
                        ERROR_CODES["rate_limit"],
                        f"{feature} quota exhausted",
                        limits={"items": [quota.item(0)]},
                    )
            if quota.remaining is not None:
                quota.remaining -= 1
            item = quota.item(1)
        return {"items": [item]}

    def _analysis_bytes(
        self, analysis_type: str, extras: Any, body: dict[str, Any]
    ) -> bytes:
        key = (analysis_type, json.dumps(extras) if extras is not None else "")
        cached = self._analysis_cache.get(key)
        if cached is None:
            params = (
                {EXTRA_FIELDS[analysis_type]: extras} if extras is not None else None
            )
            cached = _dumps(sample_analysis(analysis_type, params))
            self._analysis_cache[key] = cached
        return cached

    # -- faults -------------------------------------------------------------

    def _answer_fault(
        self, h: _Handler, record: RequestRecord, rule: FaultRule, kind: str
    ) -> None:
        rid = record.request_id or ""
        feature = QUOTA_FEATURES.get(record.analysis_type or "", DEFAULT_QUOTA_FEATURE)
        if kind == "timeout":
            self._store(record)
            # Answer nothing; end early if the server stops.
            self._stop.wait(rule.hang_seconds)
            h.close_connection = True
            return
        if kind == "reset":
            self._store(record)
            sock = h.connection
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                sock.close()
            except OSError:
                pass
            h.close_connection = True
            return
        if kind == "rate_limit":
            limits = {
                "items": [
                    {
                        "type": feature,
                        "used_by_request": 0,
                        "remaining": 0,
                        "limit": self.quotas[feature].limit,
                        "reset_time": _iso(time.time() + rule.reset_in),
                    }
                ]
            }
            headers = {}
            if rule.retry_after is not None:
                headers["Retry-After"] = f"{rule.retry_after:g}"
            record.status = 429
            record.error_code = ERROR_CODES["rate_limit"]
            self._store(record)
            payload = _error_body(
                "rate_limit_error",
                ERROR_CODES["rate_limit"],
                "rate limit exceeded",
                rid,
                limits=limits,
            )
            self._write(h, 429, _dumps(payload), headers=headers)
            return
        json_errors = {
            "server_error": (500, "server_error", "internal server error"),
            "not_found": (404, "user_error", "not found"),
            "unauthorized": (401, "auth_error", "invalid or missing credentials"),
        }
        if kind in json_errors:
            status, category, message = json_errors[kind]
            record.status = status
            record.error_code = ERROR_CODES[kind]
            self._store(record)
            payload = _error_body(category, ERROR_CODES[kind], message, rid)
            self._write(h, status, _dumps(payload))
            return
        html_status = {"bad_gateway": 502, "unavailable": 503, "gateway_timeout": 504}
        if kind in html_status:
            status = html_status[kind]
            record.status = status
            self._store(record)
            self._write(h, status, _HTML_PAGES[status], content_type="text/html")
            return
        record.status = 200
        self._store(record)
        if kind == "malformed":
            body = (
                b'{"data": {"entity": "' + record.source.encode() + b'", "analysis": {'
            )
            body += b'"tags": [<html>not json</html>'
            self._write(h, 200, body)
            return
        if kind == "truncated":
            full = b"".join(
                (
                    b'{"data":{"entity":',
                    _dumps(record.source),
                    b',"analysis":',
                    _dumps(sample_analysis(record.analysis_type or "coco")),
                    b'},"limits":null,"request_id":"',
                    rid.encode(),
                    b'"}',
                )
            )
            head = self._head(200, "application/json", len(full), {}, close=True)
            try:
                h.wfile.write(head + full[: len(full) // 2])
                h.wfile.flush()
            except OSError:
                pass
            h.close_connection = True
            return
        if kind == "huge":
            body = self._huge_body(rule.size)
            head = self._head(200, "application/json", len(body), {}, close=False)
            try:
                h.wfile.write(head)
                view = memoryview(body)
                for start in range(0, len(body), 1 << 20):
                    h.wfile.write(view[start : start + (1 << 20)])
            except OSError:
                h.close_connection = True
            return
        raise AssertionError(f"unhandled fault kind {kind!r}")

    def _huge_body(self, size: int) -> bytes:
        cached = self._huge_cache.get(size)
        if cached is None:
            prefix = (
                b'{"data":{"entity":"huge","analysis":{"tags":{},"model_version":1,'
            )
            prefix += b'"padding":"'
            suffix = (
                b'"}},"limits":null,"request_id":"0123456789abcdef0123456789abcdef"}'
            )
            cached = prefix + b"x" * max(0, size - len(prefix) - len(suffix)) + suffix
            self._huge_cache[size] = cached
        return cached

    # -- writing --------------------------------------------------------------

    @staticmethod
    def _head(
        status: int,
        content_type: str,
        length: int,
        headers: Mapping[str, str],
        *,
        close: bool,
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {length}",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(
        self,
        h: _Handler,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        close = close or h.close_connection
        head = self._head(status, content_type, len(body), headers or {}, close=close)
        try:
            h.wfile.write(head + body)
        except OSError:
            close = True
        if close:
            h.close_connection = True

    # -- webhooks -------------------------------------------------------------

    def _scheduler(self) -> None:
        while not self._stop.is_set():
            due: list[tuple[str, int]] = []
            with self._cond:
                now = time.time()
                if self._auto_deliver:
                    while self._heap and self._heap[0][0] <= now:
                        _, _, task_id, attempt = heapq.heappop(self._heap)
                        if task_id in self._tasks:
                            due.append((task_id, attempt))
                if not due:
                    timeout = 0.5
                    if self._auto_deliver and self._heap:
                        timeout = min(timeout, max(0.0, self._heap[0][0] - now))
                    self._cond.wait(timeout)
                    continue
            executor = self._executor
            for task_id, attempt in due:
                if executor is None:
                    return
                try:
                    executor.submit(self._deliver_by_id, task_id, attempt)
                except RuntimeError:
                    return

    def _deliver_by_id(self, task_id: str, attempt: int) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return
        delivery = self._deliver(task, attempt=attempt)
        if (
            delivery.status != 200
            and attempt <= self.webhook_retries
            and self._auto_deliver
        ):
            with self._cond:
                if task_id in self._tasks:
                    heapq.heappush(
                        self._heap,
                        (
                            time.time() + self.webhook_retry_delay,
                            next(self._heap_seq),
                            task_id,
                            attempt + 1,
                        ),
                    )
                    self._cond.notify_all()

    def _deliver(self, task: Task, *, attempt: int) -> Delivery:
        with self._lock:
            task.final_status = "completed"
            payload = task.payload()
        body = _dumps(payload)
        timestamp = int(time.time())
        headers = notification_headers(body, self.api_secret, timestamp)
        return self._send_delivery(
            task.task_id,
            task.notification_url or "",
            body,
            headers,
            timestamp,
            attempt=attempt,
        )

    def _send_delivery(
        self,
        task_id: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timestamp: int,
        *,
        attempt: int,
    ) -> Delivery:
        delivery = Delivery(
            task_id=task_id,
            url=url,
            body=body,
            headers=headers,
            timestamp=timestamp,
            attempt=attempt,
            time=time.time(),
        )
        if not url:
            delivery.error = "no notification_url"
        else:
            try:
                delivery.status = post_notification(
                    url, body, headers, timeout=_WEBHOOK_TIMEOUT
                )
            except Exception as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._deliveries.append(delivery)
            task = self._tasks.get(task_id)
            if task is not None:
                task.deliveries.append(delivery)
        return delivery

    # -- control API ------------------------------------------------------------

    def _control(self, h: _Handler, method: str, path: str, raw: bytes) -> None:
        try:
            data = json.loads(raw) if raw else {}
            status, result = self._control_dispatch(method, path.rstrip("/"), data)
        except (ValueError, KeyError, TypeError) as exc:
            status, result = 400, {"error": f"{type(exc).__name__}: {exc}"}
        self._write(h, status, _dumps(result))

    def _control_dispatch(self, method: str, path: str, data: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/_control/stats"):
            return 200, self.stats()
        if (method, path) == ("POST", "/_control/reset"):
            self.reset()
            return 200, {}
        if (method, path) == ("POST", "/_control/faults"):
            rule = self._add_rule(FaultRule.from_dict(data))
            return 200, {"id": rule.id}
        return 404, {"error": f"unknown control route {method} {path}"}


class FakeAPIControl:
    """Drive a ``FakeAnalyzeAPI`` in another process through ``/_control/``."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"<FakeAPIControl {self.url}>"

    def _call(self, method: str, route: str, payload: Any = None) -> Any:
        response = self._session.request(
            method, f"{self.url}/_control/{route}", json=payload, timeout=self.timeout
        )
        if response.status_code != 200:
            raise RuntimeError(f"control {method} {route}: {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Return the server's ``stats()``."""
        return self._call("GET", "stats")

    def reset(self) -> None:
        """Reset the server (see ``FakeAnalyzeAPI.reset``)."""
        self._call("POST", "reset")

    def add_fault(self, kind: str | Sequence[str], **options: Any) -> int:
        """Add a fault rule and return its id."""
        spec = {"kind": kind if isinstance(kind, str) else list(kind), **options}
        return int(self._call("POST", "faults", spec)["id"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake API as its own process until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_api")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quota-limit", type=int, default=10000)
    parser.add_argument("--print-url", action="store_true", help="print the base URL")
    args = parser.parse_args(argv)
    api = FakeAnalyzeAPI(port=args.port, quota_limit=args.quota_limit)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    api.start()
    if args.print_url:
        sys.stdout.write(api.base_url + "\n")
        sys.stdout.flush()
    try:
        while not done.wait(0.5):
            pass
    finally:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
