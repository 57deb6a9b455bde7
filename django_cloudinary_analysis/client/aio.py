"""The asyncio client, on ``httpx`` (the ``async`` extra).

It shares request building, validation, parsing, errors, retries and the
fifteen typed methods with :class:`~.sync.AnalyzeClient`; only the transport
differs. Calls are spread over several ``httpx.AsyncClient`` pools: one
pool's bookkeeping grows with the number of requests it juggles, so 32 calls
in flight through one pool spend more time queueing than talking (see
docs/client.md for the measurements).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import httpx

from django_cloudinary_analysis.client._protocol import BaseClient, Result, Retries
from django_cloudinary_analysis.client.credentials import protect
from django_cloudinary_analysis.client.methods import AnalysisMethods
from django_cloudinary_analysis.client.results import (
    Accepted,
    AnalysisResult,
    SourceLike,
    TaskStatus,
)
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    APIError,
    ConfigurationError,
    UnexpectedResponse,
)

#: Pools the client opens by default, and connections each pool may keep.
DEFAULT_POOLS = 8
DEFAULT_CONNECTIONS_PER_POOL = 8


class _Pool:
    """One ``httpx.AsyncClient`` and how many calls it is carrying now."""

    __slots__ = ("client", "in_flight")

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.in_flight = 0


class AsyncAnalyzeClient(
    BaseClient,
    AnalysisMethods[
        Coroutine[Any, Any, AnalysisResult | Accepted],
        Coroutine[Any, Any, AnalysisResult],
    ],
):
    """The asyncio twin of :class:`AnalyzeClient`; use it as ``async with``.

    ``http_client`` is an ``httpx.AsyncClient`` to use instead of the
    client's own pools (it is left open on :meth:`aclose`); otherwise the
    client opens ``pools`` clients of ``connections_per_pool`` connections
    each and sends every call through the least busy one; ``http_options``
    are more ``httpx.AsyncClient`` arguments for them (``proxy``, ``verify``,
    ``transport``, ``event_hooks``…). Every other argument is
    :class:`AnalyzeClient`'s.
    """

    def __init__(
        self,
        cloud_name: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        pools: int = DEFAULT_POOLS,
        connections_per_pool: int = DEFAULT_CONNECTIONS_PER_POOL,
        http_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(cloud_name, **protect(options))
        if isinstance(pools, bool) or not isinstance(pools, int) or pools < 1:
            raise ConfigurationError("pools must be a positive integer")
        if (
            isinstance(connections_per_pool, bool)
            or not isinstance(connections_per_pool, int)
            or connections_per_pool < 1
        ):
            raise ConfigurationError("connections_per_pool must be a positive integer")
        self._request_headers = {
            **self._headers,
            "Authorization": self._credentials.header,
        }
        timeout = self.timeout
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._timeout = httpx.Timeout(read, connect=connect)
        self._owns_client = http_client is None
        extra = dict(http_options or {})
        if http_client is not None:
            if extra:
                raise ConfigurationError("give http_client or http_options, not both")
            self._pools = [_Pool(http_client)]
        else:
            limits = httpx.Limits(
                max_connections=connections_per_pool,
                max_keepalive_connections=connections_per_pool,
            )
            self._pools = [
                _Pool(
                    httpx.AsyncClient(
                        **{"limits": limits, "timeout": self._timeout, **extra}
                    )
                )
                for _ in range(pools)
            ]

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The first (with an injected client: the only) ``httpx`` client."""
        return self._pools[0].client

    # -- lifecycle --------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the client's own HTTP pools (an injected client stays open)."""
        if self._owns_client:
            await asyncio.gather(*(pool.client.aclose() for pool in self._pools))

    async def __aenter__(self) -> AsyncAnalyzeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- calls ------------------------------------------------------------------

    async def analyze(
        self,
        analysis_type: str,
        source: SourceLike,
        *,
        async_: bool = False,
        notification_url: str | None = None,
        retries: Retries = None,
        **params: Any,
    ) -> AnalysisResult | Accepted:
        """Run ``analysis_type`` on ``source``; params are validated first."""
        path, data = self._analyze_request(
            analysis_type, source, async_, notification_url, params
        )
        result = await self._call("POST", path, data, analysis_type, retries)
        assert not isinstance(result, TaskStatus)
        return result

    async def _analyze_sync_only(
        self,
        analysis_type: str,
        source: SourceLike,
        notification_url: str | None,
        retries: Retries,
    ) -> AnalysisResult:
        result = await self.analyze(
            analysis_type, source, notification_url=notification_url, retries=retries
        )
        assert isinstance(result, AnalysisResult)
        return result

    async def get_task_status(
        self, task_id: str, *, retries: Retries = None
    ) -> TaskStatus:
        """Return the status of an async analysis (never its result)."""
        result = await self._call("GET", self._task_path(task_id), None, None, retries)
        assert isinstance(result, TaskStatus)
        return result

    # -- transport --------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        data: bytes | None,
        analysis_type: str | None,
        retries: Retries,
    ) -> Result:
        policy = self._policy(retries)
        started = policy.clock() if policy is not None else 0.0
        attempt = 1
        while True:
            try:
                return await self._send(method, path, data, analysis_type)
            except APIError as exc:
                wait = self._retry_wait(policy, attempt, exc, started, method, path)
                if wait is None:
                    raise
                assert policy is not None
                await (policy.async_sleep or asyncio.sleep)(wait)
                attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        analysis_type: str | None,
    ) -> Result:
        started = time.perf_counter()
        if self.debug:
            self._log_request(method, path, data)
        pool = min(self._pools, key=_load) if len(self._pools) > 1 else self._pools[0]
        pool.in_flight += 1
        try:
            request = pool.client.build_request(
                method,
                self.base_url + path,
                content=data,
                headers=self._request_headers,
                timeout=self._timeout,
            )
            response = await pool.client.send(request, stream=True)
            try:
                content = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise self._translate(exc, method, path) from None
        finally:
            pool.in_flight -= 1
        return self._answer(
            method,
            path,
            response.status_code,
            response.headers,
            content,
            analysis_type,
            started,
        )

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """Read the body, refusing one larger than ``max_response_bytes``."""
        limit = self.max_response_bytes
        self._check_declared_size(response.status_code, response.headers)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise self._too_large(response.status_code, size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _translate(self, exc: httpx.HTTPError, method: str, path: str) -> AnalysisError:
        what = f"{method} {path}"
        if isinstance(exc, httpx.TimeoutException):
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            if isinstance(exc, httpx.PoolTimeout):
                kind = "pool"
            return self._timed_out(what, kind)
        if isinstance(exc, httpx.LocalProtocolError):
            # Its text may quote a header value, which may be the credential.
            return UnexpectedResponse(f"{what} failed: invalid request")
        if isinstance(exc, httpx.DecodingError):
            return self._cut_short(what, exc)
        if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
            return ConfigurationError(f"{what}: the API URL is invalid")
        return self._network_error(what, exc)


def _load(pool: _Pool) -> int:
    return pool.in_flight
