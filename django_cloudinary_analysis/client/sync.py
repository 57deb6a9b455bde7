"""The synchronous client, on ``requests``."""

from __future__ import annotations

import time
from typing import Any

import requests

from django_cloudinary_analysis.client._protocol import BaseClient, Result, Retries
from django_cloudinary_analysis.client.credentials import REDACTED, Credentials, protect
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


class _HeaderAuth(requests.auth.AuthBase):
    """Set the Authorization header from the credentials; repr stays redacted."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._credentials.header
        return request

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} {REDACTED}>"

    def __eq__(self, other: object) -> bool:  # requests compares auth objects
        return (
            isinstance(other, _HeaderAuth)
            and other._credentials.header == self._credentials.header
        )

    def __hash__(self) -> int:
        return hash(self._credentials.header)


class AnalyzeClient(
    BaseClient, AnalysisMethods[AnalysisResult | Accepted, AnalysisResult]
):
    """Talk to the Cloudinary Analyze API: 15 analyses and task status.

    ``session`` is a ``requests.Session`` to use instead of the client's own
    (it is left open on :meth:`close`). ``retry`` is the default
    :class:`RetryPolicy` of every call (none by default); ``retries=`` on a
    call overrides it (``False`` turns retries off for that call). ``debug``
    (default: the ``CLOUDINARY_DEBUG`` environment variable) logs request
    and response bodies, redacted, on ``django_cloudinary_analysis.client.http``.
    """

    def __init__(
        self,
        cloud_name: str,
        *,
        session: requests.Session | None = None,
        **options: Any,
    ) -> None:
        super().__init__(cloud_name, **protect(options))
        self._auth = _HeaderAuth(self._credentials)
        self._owns_session = session is None
        self.session = session if session is not None else self._new_session()
        # What Session.request would merge into every request of our own session.
        self._session_headers = {**self.session.headers, **self._headers}
        self._urls: dict[str, str] = {}

    def _new_session(self) -> requests.Session:
        """Return a session that reads proxy and CA settings from the environment
        once, for the API host, instead of on every request.

        ``requests`` re-reads every environment variable per request when
        ``trust_env`` is on (about a quarter of a loopback call's CPU time);
        a worker's environment does not change, so resolve it up front.
        """
        session = requests.Session()
        settings = session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        session.trust_env = False
        session.proxies.update(settings.get("proxies") or {})
        session.verify = settings.get("verify", True)
        if settings.get("cert"):
            session.cert = settings["cert"]
        return session

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session if the client created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> AnalyzeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------

    def analyze(
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
        result = self._call("POST", path, data, analysis_type, retries)
        assert not isinstance(result, TaskStatus)
        return result

    def _analyze_sync_only(
        self,
        analysis_type: str,
        source: SourceLike,
        notification_url: str | None,
        retries: Retries,
    ) -> AnalysisResult:
        result = self.analyze(
            analysis_type, source, notification_url=notification_url, retries=retries
        )
        assert isinstance(result, AnalysisResult)
        return result

    def get_task_status(self, task_id: str, *, retries: Retries = None) -> TaskStatus:
        """Return the status of an async analysis (never its result)."""
        result = self._call("GET", self._task_path(task_id), None, None, retries)
        assert isinstance(result, TaskStatus)
        return result

    # -- transport --------------------------------------------------------------

    def _call(
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
                return self._send(method, path, data, analysis_type)
            except APIError as exc:
                wait = self._retry_wait(policy, attempt, exc, started, method, path)
                if wait is None:
                    raise
                policy.sleep(wait)  # type: ignore[union-attr]
                attempt += 1

    def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        analysis_type: str | None,
    ) -> Result:
        started = time.perf_counter()
        if self.debug:
            self._log_request(method, path, data)
        try:
            if self._owns_session:
                response = self.session.send(
                    self._prepare(method, self.base_url + path, data),
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                    verify=self.session.verify,
                    cert=self.session.cert,
                    proxies=self.session.proxies,
                )
            else:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    data=data,
                    headers=self._headers,
                    auth=self._auth,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            content = self._read_capped(response)
        except requests.exceptions.RequestException as exc:
            raise self._translate(exc, method, path) from None
        return self._answer(
            method,
            path,
            response.status_code,
            response.headers,
            content,
            analysis_type,
            started,
        )

    def _prepare(
        self, method: str, url: str, data: bytes | None
    ) -> requests.PreparedRequest:
        """The request ``Session.request`` would prepare on the client's own
        session, built directly.

        That session has nothing to merge in: its headers, proxies and
        certificates are fixed when it is created, it has no hooks, and the API
        sets no cookie worth sending back. ``Session.request`` would merge them
        all again and re-parse the URL on every call, a third of a loopback
        call's CPU time.
        """
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = self._urls.get(url) or self._prepare_url(url)
        headers: requests.structures.CaseInsensitiveDict[str | bytes]
        headers = requests.structures.CaseInsensitiveDict(self._session_headers)
        if data is not None:
            prepared.body = data
            headers["Content-Length"] = str(len(data))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared.headers = headers
        prepared._cookies = requests.cookies.RequestsCookieJar()  # type: ignore[attr-defined]
        return self._auth(prepared)

    def _prepare_url(self, url: str) -> str:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        assert prepared.url is not None
        if len(self._urls) < 64:  # the analysis types; task paths vary
            self._urls[url] = prepared.url
        return prepared.url

    def _read_capped(self, response: requests.Response) -> bytes:
        """Read the body, refusing one larger than ``max_response_bytes``."""
        limit = self.max_response_bytes
        try:
            self._check_declared_size(response.status_code, response.headers)
        except UnexpectedResponse:
            response.close()
            raise
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > limit:
                response.close()
                raise self._too_large(response.status_code, size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _translate(
        self, exc: requests.exceptions.RequestException, method: str, path: str
    ) -> AnalysisError:
        what = f"{method} {path}"
        if isinstance(exc, requests.exceptions.Timeout):
            kind = (
                "connect"
                if isinstance(exc, requests.exceptions.ConnectTimeout)
                else "read"
            )
            return self._timed_out(what, kind)
        if isinstance(exc, requests.exceptions.InvalidHeader):
            # Its text quotes the header value, which may be the credential.
            return UnexpectedResponse(f"{what} failed: invalid request header")
        if isinstance(
            exc,
            (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
        ):
            return self._cut_short(what, exc)
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
            ),
        ):
            return ConfigurationError(f"{what}: the API URL is invalid")
        return self._network_error(what, exc)
