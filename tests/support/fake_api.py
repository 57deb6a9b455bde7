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
"""

from __future__ import annotations

import argparse
import base64
import binascii
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
TASK_STATUSES: tuple[str, ...] = ("pending", "processing", "completed", "failed")

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
    "forbidden",  # 403 JSON error object
)
FAULT_TARGETS = ("analyze", "tasks", "any")

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


def verify_signature(
    body: bytes,
    timestamp: int | str,
    signature: str,
    secret: str,
    algorithms: Iterable[str] = ("sha1", "sha256"),
) -> bool:
    """Return whether ``signature`` signs ``body`` at ``timestamp`` (any algorithm)."""
    return any(
        hmac.compare_digest(sign(body, timestamp, secret, alg), signature)
        for alg in algorithms
    )


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
    #: Which endpoint: ``analyze``, ``tasks`` or ``any``.
    target: str = "analyze"
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
        if self.target not in FAULT_TARGETS:
            raise ValueError(f"unknown fault target: {self.target!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    @property
    def exhausted(self) -> bool:
        """Return whether the rule has fired all its ``times``."""
        return self.times is not None and self.fired >= self.times

    def matches(self, endpoint: str, analysis_type: str | None, source: str) -> bool:
        """Return whether a request is one this rule may break."""
        if self.target != "any" and self.target != endpoint:
            return False
        if self.analysis_type is not None and self.analysis_type != analysis_type:
            return False
        return self.source is None or self.source in source

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form (the control API's)."""
        data = asdict(self)
        if isinstance(self.kind, tuple):
            data["kind"] = list(self.kind)
        return data

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

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form."""
        return asdict(self)


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
    replay: bool = False
    status: int | None = None
    error: str | None = None
    time: float = 0.0

    @property
    def payload(self) -> dict[str, Any]:
        """Return the decoded JSON body."""
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able form (body as text)."""
        data = asdict(self)
        data["body"] = self.body.decode()
        return data


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
    forced_status: str | None = None
    failure: dict[str, Any] | None = None
    first_delivery_done: bool = False
    deliveries: list[Delivery] = field(default_factory=list)

    def status(self, now: float) -> str:
        """Return the status ``GET /tasks/{id}`` reports."""
        if self.forced_status:
            return self.forced_status
        if self.final_status:
            return self.final_status
        return "processing" if now >= self.processing_at else "pending"

    def payload(self) -> dict[str, Any]:
        """Return the ``analyze`` notification body for this task."""
        if self.failure is not None:
            return {
                "notification_type": "analyze",
                "operation_type": "single",
                "task_id": self.task_id,
                "request_id": self.request_id,
                "http_status": self.failure["http_status"],
                "data": None,
                "limits": self.limits,
                "error": self.failure["error"],
            }
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

    def to_dict(self, now: float) -> dict[str, Any]:
        """Return a JSON-able summary."""
        return {
            "task_id": self.task_id,
            "analysis_type": self.analysis_type,
            "request_id": self.request_id,
            "entity": self.entity,
            "notification_url": self.notification_url,
            "status": self.status(now),
            "failure": self.failure,
            "deliveries": [d.to_dict() for d in self.deliveries],
        }


@dataclass
class _TaskFailureRule:
    count: int | None
    http_status: int
    error: dict[str, Any] | None
    analysis_type: str | None


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

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError, ValueError):
            # Clients that vanish mid-request (faults provoke this) are normal.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.api.verbose:
            logger.debug("fake api: " + format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], api: FakeAnalyzeAPI) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        #: TCP connections accepted so far (keep-alive keeps this low).
        self.accepted = 0
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
            self.accepted += 1
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
        unsubscribed: Iterable[str] = (),
        signature_algorithm: str = "sha1",
        webhook_delay: float = 0.05,
        webhook_retries: int = 3,
        webhook_retry_delay: float = 1.0,
        webhook_timeout: float = 10.0,
        webhook_clock_skew: int = 0,
        auto_deliver: bool = True,
        quota_limit: int | None = 10000,
        quota_period: float = 86400.0,
        report_limits: bool = True,
        seed: int = 0,
        verbose: bool = False,
        notification_transport: Callable[[str, bytes, Mapping[str, str]], int]
        | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.oauth_token = oauth_token
        self.signature_algorithm = signature_algorithm
        self.webhook_delay = webhook_delay
        self.webhook_retries = webhook_retries
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        #: Seconds added to X-Cld-Timestamp (to test stale/future checks).
        self.webhook_clock_skew = webhook_clock_skew
        self.report_limits = report_limits
        self.verbose = verbose
        #: Sends one notification; tests may route it in-process instead.
        self.notification_transport = notification_transport or self._http_transport
        self._initial: dict[str, Any] = {
            "unsubscribed": frozenset(unsubscribed),
            "auto_deliver": auto_deliver,
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
        self.unsubscribed: set[str] = set(init["unsubscribed"])
        self._auto_deliver = bool(init["auto_deliver"])
        self._rng = random.Random(init["seed"])
        self._rules: list[FaultRule] = []
        self._rule_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._records: list[RequestRecord] = []
        self._tasks: dict[str, Task] = {}
        self._deliveries: list[Delivery] = []
        self._heap: list[tuple[float, int, str, int]] = []
        self._heap_seq = itertools.count()
        self._task_failures: list[_TaskFailureRule] = []
        self._results: dict[str, Any] = {}
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

    @property
    def connections_accepted(self) -> int:
        """Return how many TCP connections the server accepted since start."""
        return self._server.accepted if self._server is not None else 0

    def reset(self) -> None:
        """Forget records, tasks and faults; restore quotas and subscriptions."""
        with self._cond:
            self._reset_state()
            self._cond.notify_all()

    def clear_records(self) -> None:
        """Forget recorded requests only."""
        with self._lock:
            self._records = []

    def configure(self, **options: Any) -> None:
        """Change webhook settings, signature algorithm or limit reporting."""
        allowed = {
            "signature_algorithm",
            "webhook_delay",
            "webhook_retries",
            "webhook_retry_delay",
            "webhook_timeout",
            "webhook_clock_skew",
            "report_limits",
            "verbose",
        }
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"unknown options: {sorted(unknown)}")
        if "signature_algorithm" in options:
            hashlib.new(options["signature_algorithm"])
        with self._lock:
            for key, value in options.items():
                setattr(self, key, value)

    # -- configuration ----------------------------------------------------

    def add_fault(self, kind: str | Sequence[str], **options: Any) -> FaultRule:
        """Add a fault rule (see ``FaultRule`` for the options) and return it."""
        kind = kind if isinstance(kind, str) else tuple(kind)
        return self.add_rule(FaultRule(kind=kind, **options))

    def add_rule(self, rule: FaultRule) -> FaultRule:
        """Add a built fault rule, give it an id and return it."""
        with self._lock:
            rule.id = next(self._rule_ids)
            rule.fired = 0
            self._rules.append(rule)
        return rule

    def remove_fault(self, rule: FaultRule | int) -> None:
        """Remove one fault rule."""
        rule_id = rule if isinstance(rule, int) else rule.id
        with self._lock:
            self._rules = [r for r in self._rules if r.id != rule_id]

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self._lock:
            self._rules = []

    @property
    def fault_rules(self) -> list[FaultRule]:
        """Return the current rules (live objects: ``fired`` keeps counting)."""
        with self._lock:
            return list(self._rules)

    def set_quota(
        self,
        feature: str,
        *,
        remaining: int | None = None,
        limit: int | None = None,
        reset_in: float | None = None,
        reset_time: float | datetime | None = None,
        period: float | None = None,
    ) -> Quota:
        """Set an add-on quota: remaining calls, limit and when it resets."""
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
            if reset_in is not None:
                quota.reset_time = time.time() + reset_in
            elif isinstance(reset_time, datetime):
                quota.reset_time = reset_time.timestamp()
            elif reset_time is not None:
                quota.reset_time = float(reset_time)
            return Quota(**asdict(quota))

    def set_subscribed(self, analysis_type: str, subscribed: bool) -> None:
        """Mark an analysis type's add-on subscribed or not (403 when not)."""
        with self._lock:
            if subscribed:
                self.unsubscribed.discard(analysis_type)
            else:
                self.unsubscribed.add(analysis_type)

    def set_analysis(
        self,
        analysis_type: str,
        analysis: Mapping[str, Any]
        | Callable[[str, dict[str, Any]], Mapping[str, Any]]
        | None,
    ) -> None:
        """Answer a type with a dict or ``fn(type, body)``; ``None`` resets."""
        with self._lock:
            if analysis is None:
                self._results.pop(analysis_type, None)
            elif callable(analysis):
                self._results[analysis_type] = analysis
            else:
                self._results[analysis_type] = _dumps(dict(analysis))

    # -- async tasks ------------------------------------------------------

    @property
    def auto_deliver(self) -> bool:
        """Return whether notifications go out on their own after the delay."""
        return self._auto_deliver

    def hold_deliveries(self) -> None:
        """Keep notifications back until ``deliver_pending`` or a release."""
        with self._cond:
            self._auto_deliver = False

    def release_deliveries(self) -> None:
        """Let held notifications (and new ones) go out on their own."""
        with self._cond:
            self._auto_deliver = True
            self._cond.notify_all()

    def fail_tasks(
        self,
        count: int | None = 1,
        *,
        http_status: int = 500,
        error: Mapping[str, Any] | None = None,
        analysis_type: str | None = None,
    ) -> None:
        """Make the next ``count`` accepted tasks (``None``: all) fail by webhook."""
        with self._lock:
            self._task_failures.append(
                _TaskFailureRule(
                    count, http_status, dict(error) if error else None, analysis_type
                )
            )

    def fail_task(
        self,
        task_id: str,
        *,
        http_status: int = 500,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """Make one not yet delivered task fail."""
        with self._lock:
            task = self._tasks[task_id]
            task.failure = self._failure(task.request_id, http_status, error)

    def set_task_status(self, task_id: str, status: str | None) -> None:
        """Force what ``GET /tasks/{id}`` reports (``None`` undoes it)."""
        if status is not None and status not in TASK_STATUSES:
            raise ValueError(f"unknown task status: {status!r}")
        with self._lock:
            self._tasks[task_id].forced_status = status

    def deliver_pending(self, task_ids: Iterable[str] | None = None) -> list[Delivery]:
        """Send now, in this thread, the first notification of undelivered tasks."""
        wanted = set(task_ids) if task_ids is not None else None
        with self._lock:
            tasks = [
                t
                for t in self._tasks.values()
                if not t.first_delivery_done and (wanted is None or t.task_id in wanted)
            ]
            for task in tasks:
                task.first_delivery_done = True
        return [self._deliver(task, attempt=1) for task in tasks]

    def replay(
        self,
        task_id: str,
        index: int = -1,
        *,
        fresh_timestamp: bool = False,
        url: str | None = None,
    ) -> Delivery:
        """Re-send a past delivery as is (a replay) or re-signed now."""
        with self._lock:
            original = self._tasks[task_id].deliveries[index]
        headers = dict(original.headers)
        timestamp = original.timestamp
        if fresh_timestamp:
            timestamp = int(time.time()) + self.webhook_clock_skew
            headers = notification_headers(
                original.body, self.api_secret, timestamp, self.signature_algorithm
            )
        return self._send_delivery(
            task_id,
            url or original.url,
            original.body,
            headers,
            timestamp,
            attempt=original.attempt,
            replay=True,
        )

    @property
    def tasks(self) -> list[Task]:
        """Return the accepted tasks (live objects)."""
        with self._lock:
            return list(self._tasks.values())

    def get_task(self, task_id: str) -> Task:
        """Return one accepted task."""
        with self._lock:
            return self._tasks[task_id]

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

    def count(
        self,
        *,
        analysis_type: str | None = None,
        source: str | None = None,
        status: int | None = None,
        fault: str | None = None,
        billable: bool | None = None,
        endpoint: str | None = None,
    ) -> int:
        """Return how many recorded requests match every given filter."""
        with self._lock:
            records = list(self._records)
        return sum(
            1
            for r in records
            if (analysis_type is None or r.analysis_type == analysis_type)
            and (source is None or r.source == source)
            and (status is None or r.status == status)
            and (fault is None or r.fault == fault)
            and (billable is None or r.billable == billable)
            and (endpoint is None or r.endpoint == endpoint)
        )

    def billable_by_type(self) -> Counter[str]:
        """Return billable calls per analysis type."""
        with self._lock:
            return Counter(r.analysis_type or "" for r in self._records if r.billable)

    def billable_by_source(self) -> Counter[tuple[str, str]]:
        """Return billable calls per (analysis type, source)."""
        with self._lock:
            return Counter(
                (r.analysis_type or "", r.source) for r in self._records if r.billable
            )

    def stats(self) -> dict[str, Any]:
        """Return a JSON-able summary of everything counted."""
        with self._lock:
            records = list(self._records)
            tasks = list(self._tasks.values())
            deliveries = len(self._deliveries)
            rules = [r.to_dict() for r in self._rules]
        now = time.time()
        by_source: dict[str, dict[str, int]] = {}
        for r in records:
            if r.billable:
                per_type = by_source.setdefault(r.analysis_type or "", {})
                per_type[r.source] = per_type.get(r.source, 0) + 1
        return {
            "requests": len(records),
            "billable_calls": sum(1 for r in records if r.billable),
            "auth_failures": sum(1 for r in records if r.auth_ok is False),
            "by_status": dict(Counter(str(r.status) for r in records)),
            "by_fault": dict(Counter(r.fault for r in records if r.fault)),
            "by_endpoint": dict(Counter(r.endpoint for r in records)),
            "requests_by_type": dict(
                Counter(r.analysis_type for r in records if r.analysis_type)
            ),
            "billable_by_type": dict(
                Counter(r.analysis_type for r in records if r.billable)
            ),
            "billable_by_source": by_source,
            "tasks": dict(Counter(t.status(now) for t in tasks)),
            "deliveries": deliveries,
            "connections_accepted": self.connections_accepted,
            "fault_rules": rules,
        }

    # -- request handling -------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        path, _, query = h.path.partition("?")
        try:
            raw = self._read_body(h)
        except _Reject as rej:
            self._write(
                h, rej.status, _dumps({"error": {"message": rej.message}}), close=True
            )
            return
        if path.startswith("/_control/"):
            self._control(h, h.command, path, query, raw)
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
        encoding = h.headers.get("Transfer-Encoding", "")
        if "chunked" in encoding.lower():
            chunks = []
            total = 0
            while True:
                size = int(h.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > _MAX_REQUEST_BODY:
                    raise _Reject(413, "user_error", "MA_00413", "body too large")
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(chunks)
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
            if hmac.compare_digest(header.encode(), self._basic.encode()):
                return True
            # Accept the same credentials with different base64 padding/spacing.
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            key, _, secret = decoded.partition(":")
            return hmac.compare_digest(key.encode(), self.api_key.encode()) and (
                hmac.compare_digest(secret.encode(), self.api_secret.encode())
            )
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
            for rule in self._task_failures:
                if rule.count is not None and rule.count <= 0:
                    continue
                if rule.analysis_type not in (None, analysis_type):
                    continue
                if rule.count is not None:
                    rule.count -= 1
                task.failure = self._failure(
                    task.request_id, rule.http_status, rule.error
                )
                break
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
        return {"items": [item]} if self.report_limits else None

    def _analysis_bytes(
        self, analysis_type: str, extras: Any, body: dict[str, Any]
    ) -> bytes:
        custom = self._results.get(analysis_type)
        if custom is not None:
            if isinstance(custom, bytes):
                return custom
            return _dumps(dict(custom(analysis_type, body)))
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
            "forbidden": (403, "auth_error", "an add-on subscription is required"),
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

    @staticmethod
    def _failure(
        request_id: str, http_status: int, error: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "http_status": http_status,
            "error": dict(error)
            if error
            else {
                "category": "server_error" if http_status >= 500 else "user_error",
                "code": ERROR_CODES["server_error"]
                if http_status >= 500
                else ERROR_CODES["invalid"],
                "message": "analysis failed",
                "details": {},
                "request_id": request_id,
            },
        }

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
            h.wfile.write(head if h.command == "HEAD" else head + body)
        except OSError:
            close = True
        if close:
            h.close_connection = True

    # -- webhooks -------------------------------------------------------------

    def _http_transport(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return post_notification(url, body, headers, timeout=self.webhook_timeout)

    def _scheduler(self) -> None:
        while not self._stop.is_set():
            due: list[tuple[str, int]] = []
            with self._cond:
                now = time.time()
                if self._auto_deliver:
                    while self._heap and self._heap[0][0] <= now:
                        _, _, task_id, attempt = heapq.heappop(self._heap)
                        task = self._tasks.get(task_id)
                        if task is None:
                            continue
                        if attempt == 1:
                            if task.first_delivery_done:
                                continue
                            task.first_delivery_done = True
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
            if task.final_status is None:
                task.final_status = "failed" if task.failure else "completed"
            payload = task.payload()
        body = _dumps(payload)
        timestamp = int(time.time()) + self.webhook_clock_skew
        headers = notification_headers(
            body, self.api_secret, timestamp, self.signature_algorithm
        )
        return self._send_delivery(
            task.task_id,
            task.notification_url or "",
            body,
            headers,
            timestamp,
            attempt=attempt,
            replay=False,
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
        replay: bool,
    ) -> Delivery:
        delivery = Delivery(
            task_id=task_id,
            url=url,
            body=body,
            headers=headers,
            timestamp=timestamp,
            attempt=attempt,
            replay=replay,
            time=time.time(),
        )
        if not url:
            delivery.error = "no notification_url"
        else:
            try:
                delivery.status = self.notification_transport(url, body, headers)
            except Exception as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._deliveries.append(delivery)
            task = self._tasks.get(task_id)
            if task is not None:
                task.deliveries.append(delivery)
        return delivery

    # -- control API ------------------------------------------------------------

    def _control(
        self, h: _Handler, method: str, path: str, query: str, raw: bytes
    ) -> None:
        try:
            data = json.loads(raw) if raw else {}
            status, result = self._control_dispatch(method, path, parse_qs(query), data)
        except (ValueError, KeyError, TypeError) as exc:
            status, result = 400, {"error": f"{type(exc).__name__}: {exc}"}
        self._write(h, status, _dumps(result))

    def _control_dispatch(
        self, method: str, path: str, query: dict[str, list[str]], data: Any
    ) -> tuple[int, Any]:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_control/stats"):
            return 200, self.stats()
        if route == ("GET", "/_control/records"):
            return 200, [r.to_dict() for r in self.records]
        if route == ("POST", "/_control/reset"):
            self.reset()
            return 200, {}
        if route == ("POST", "/_control/clear-records"):
            self.clear_records()
            return 200, {}
        if route == ("POST", "/_control/config"):
            self.configure(**data)
            return 200, {}
        if route == ("GET", "/_control/faults"):
            return 200, [r.to_dict() for r in self.fault_rules]
        if route == ("POST", "/_control/faults"):
            specs = data.get("rules", [data]) if isinstance(data, dict) else data
            rules = [FaultRule.from_dict(spec) for spec in specs]
            return 200, {"ids": [self.add_rule(rule).id for rule in rules]}
        if route == ("DELETE", "/_control/faults"):
            self.clear_faults()
            return 200, {}
        if method == "DELETE" and path.startswith("/_control/faults/"):
            self.remove_fault(int(path.rsplit("/", 1)[1]))
            return 200, {}
        if route == ("GET", "/_control/quota"):
            with self._lock:
                return 200, {k: asdict(v) for k, v in self.quotas.items()}
        if route == ("POST", "/_control/quota"):
            feature = data.pop("feature")
            return 200, asdict(self.set_quota(feature, **data))
        if route == ("POST", "/_control/subscriptions"):
            for name in data.get("unsubscribed", []):
                self.set_subscribed(name, False)
            for name in data.get("subscribed", []):
                self.set_subscribed(name, True)
            return 200, {"unsubscribed": sorted(self.unsubscribed)}
        if route == ("POST", "/_control/analysis"):
            self.set_analysis(data["analysis_type"], data.get("analysis"))
            return 200, {}
        if route == ("GET", "/_control/tasks"):
            now = time.time()
            return 200, [t.to_dict(now) for t in self.tasks]
        if route == ("GET", "/_control/deliveries"):
            return 200, [d.to_dict() for d in self.deliveries]
        if route == ("POST", "/_control/tasks/hold"):
            if data.get("hold", True):
                self.hold_deliveries()
            else:
                self.release_deliveries()
            return 200, {"auto_deliver": self.auto_deliver}
        if route == ("POST", "/_control/tasks/deliver"):
            deliveries = self.deliver_pending(data.get("task_ids"))
            return 200, [d.to_dict() for d in deliveries]
        if route == ("POST", "/_control/tasks/fail"):
            if "task_id" in data:
                task_id = data.pop("task_id")
                self.fail_task(task_id, **data)
            else:
                self.fail_tasks(**data)
            return 200, {}
        if route == ("POST", "/_control/tasks/status"):
            self.set_task_status(data["task_id"], data.get("status"))
            return 200, {}
        if route == ("POST", "/_control/tasks/replay"):
            task_id = data.pop("task_id")
            return 200, self.replay(task_id, **data).to_dict()
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

    @property
    def billable_calls(self) -> int:
        """Return the server's count of billable calls."""
        return int(self.stats()["billable_calls"])

    def records(self) -> list[dict[str, Any]]:
        """Return every recorded request as dicts."""
        return self._call("GET", "records")

    def reset(self) -> None:
        """Reset the server (see ``FakeAnalyzeAPI.reset``)."""
        self._call("POST", "reset")

    def clear_records(self) -> None:
        """Forget recorded requests only."""
        self._call("POST", "clear-records")

    def configure(self, **options: Any) -> None:
        """Change server options (see ``FakeAnalyzeAPI.configure``)."""
        self._call("POST", "config", options)

    def add_fault(self, kind: str | Sequence[str], **options: Any) -> int:
        """Add a fault rule and return its id."""
        spec = {"kind": kind if isinstance(kind, str) else list(kind), **options}
        return int(self._call("POST", "faults", spec)["ids"][0])

    def fault_rules(self) -> list[dict[str, Any]]:
        """Return the rules with their ``fired`` counts."""
        return self._call("GET", "faults")

    def remove_fault(self, rule_id: int) -> None:
        """Remove one fault rule."""
        self._call("DELETE", f"faults/{rule_id}")

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def quotas(self) -> dict[str, Any]:
        """Return every quota's state."""
        return self._call("GET", "quota")

    def set_quota(self, feature: str, **options: Any) -> dict[str, Any]:
        """Set a quota (remaining, limit, reset_in, reset_time epoch, period)."""
        return self._call("POST", "quota", {"feature": feature, **options})

    def set_subscribed(self, analysis_type: str, subscribed: bool) -> None:
        """Mark an analysis type subscribed or not."""
        key = "subscribed" if subscribed else "unsubscribed"
        self._call("POST", "subscriptions", {key: [analysis_type]})

    def set_analysis(
        self, analysis_type: str, analysis: Mapping[str, Any] | None
    ) -> None:
        """Answer a type with a fixed analysis dict (``None`` resets)."""
        self._call(
            "POST", "analysis", {"analysis_type": analysis_type, "analysis": analysis}
        )

    def tasks(self) -> list[dict[str, Any]]:
        """Return every accepted task with its deliveries."""
        return self._call("GET", "tasks")

    def deliveries(self) -> list[dict[str, Any]]:
        """Return every notification POST made."""
        return self._call("GET", "deliveries")

    def hold_deliveries(self) -> None:
        """Keep notifications back."""
        self._call("POST", "tasks/hold", {"hold": True})

    def release_deliveries(self) -> None:
        """Let notifications go out on their own."""
        self._call("POST", "tasks/hold", {"hold": False})

    def deliver_pending(
        self, task_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Send the first notification of undelivered tasks now."""
        ids = list(task_ids) if task_ids is not None else None
        return self._call("POST", "tasks/deliver", {"task_ids": ids})

    def fail_tasks(self, count: int | None = 1, **options: Any) -> None:
        """Make the next ``count`` accepted tasks fail."""
        self._call("POST", "tasks/fail", {"count": count, **options})

    def fail_task(self, task_id: str, **options: Any) -> None:
        """Make one undelivered task fail."""
        self._call("POST", "tasks/fail", {"task_id": task_id, **options})

    def set_task_status(self, task_id: str, status: str | None) -> None:
        """Force what ``GET /tasks/{id}`` reports."""
        self._call("POST", "tasks/status", {"task_id": task_id, "status": status})

    def replay(self, task_id: str, index: int = -1, **options: Any) -> dict[str, Any]:
        """Re-send a past delivery (``fresh_timestamp``, ``url`` options)."""
        return self._call(
            "POST", "tasks/replay", {"task_id": task_id, "index": index, **options}
        )


@dataclass
class ReceivedWebhook:
    """One POST a ``WebhookReceiver`` got."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        """Return the decoded JSON body."""
        return json.loads(self.body)


class WebhookReceiver:
    """A loopback endpoint that collects notification POSTs for tests."""

    def __init__(self, statuses: Iterable[int] = (), default_status: int = 200) -> None:
        #: Statuses to answer in order; then ``default_status``.
        self.statuses = list(statuses)
        self.default_status = default_status
        self.received: list[ReceivedWebhook] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._cond:
                    receiver.received.append(
                        ReceivedWebhook(self.path, dict(self.headers.items()), body)
                    )
                    status = (
                        receiver.statuses.pop(0)
                        if receiver.statuses
                        else receiver.default_status
                    )
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _PlainServer(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the URL to give as ``notification_url``."""
        return f"http://127.0.0.1:{self._server.server_port}/webhook"

    def start(self) -> WebhookReceiver:
        """Start serving in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Wait until ``count`` POSTs arrived and return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"got {len(self.received)} of {count} notifications in {timeout}s"
                )
            return list(self.received)


class _PlainServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake API as its own process until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cloud-name", default=DEFAULT_CLOUD_NAME)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--api-secret",
        default=os.environ.get("FAKE_API_SECRET", DEFAULT_API_SECRET),
        help="default: $FAKE_API_SECRET or the test settings' secret",
    )
    parser.add_argument("--oauth-token", default=os.environ.get("FAKE_API_OAUTH_TOKEN"))
    parser.add_argument("--unsubscribed", default="", help="comma-separated types")
    parser.add_argument("--signature-algorithm", default="sha1")
    parser.add_argument("--webhook-delay", type=float, default=0.05)
    parser.add_argument("--webhook-retries", type=int, default=3)
    parser.add_argument("--webhook-retry-delay", type=float, default=1.0)
    parser.add_argument("--hold-deliveries", action="store_true")
    parser.add_argument("--quota-limit", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-url", action="store_true", help="print the base URL")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG)
    api = FakeAnalyzeAPI(
        host=args.host,
        port=args.port,
        cloud_name=args.cloud_name,
        api_key=args.api_key,
        api_secret=args.api_secret,
        oauth_token=args.oauth_token,
        unsubscribed=[t for t in args.unsubscribed.split(",") if t],
        signature_algorithm=args.signature_algorithm,
        webhook_delay=args.webhook_delay,
        webhook_retries=args.webhook_retries,
        webhook_retry_delay=args.webhook_retry_delay,
        auto_deliver=not args.hold_deliveries,
        quota_limit=args.quota_limit,
        seed=args.seed,
        verbose=args.verbose,
    )
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
