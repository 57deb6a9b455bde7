"""The retry policy shared by both clients and the Celery task layer."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django_cloudinary_analysis.exceptions import (
    APIError,
    ConfigurationError,
    NetworkError,
    RequestTimeout,
)

#: The fields that make two policies equal (the callables are left out).
_FIELDS = (
    "max_attempts",
    "initial_interval",
    "max_interval",
    "exponent",
    "max_elapsed_time",
    "retry_connection_errors",
    "jitter",
    "max_wait",
)


class RetryPolicy:
    """Bounded, exponential, jittered retries, for a client or for one call.

    The wait after failed attempt ``n`` is
    ``min(max_interval, initial_interval * exponent ** (n - 1))`` seconds, with
    "equal jitter" (a uniform draw from the upper half) when ``jitter`` is on.
    An error's ``retry_after`` (the ``Retry-After`` header, or the reset time
    of an exhausted quota) that asks for longer wins; a server-requested wait
    longer than ``max_wait`` (default: ``max_interval``) is not slept
    in-process: the error is raised with its ``retry_after`` for the caller to
    reschedule. Attempts stop after ``max_attempts`` (counting the first) or
    when the next attempt would start after ``max_elapsed_time`` seconds.
    ``retry_connection_errors=False`` makes connection failures and timeouts
    final. Intervals are seconds (the SDK's ``BackoffStrategy`` counts
    milliseconds: see :meth:`from_sdk`). ``base`` and ``cap`` are the older
    names of ``initial_interval`` and ``max_interval``.
    """

    __slots__ = (*_FIELDS, "async_sleep", "clock", "rand", "sleep")

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        initial_interval: float | None = None,
        max_interval: float | None = None,
        exponent: float = 2.0,
        max_elapsed_time: float | None = None,
        retry_connection_errors: bool = True,
        jitter: bool = True,
        max_wait: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[Any]] | None = None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        base: float | None = None,
        cap: float | None = None,
    ) -> None:
        if initial_interval is not None and base is not None:
            raise ConfigurationError("give initial_interval or base, not both")
        if max_interval is not None and cap is not None:
            raise ConfigurationError("give max_interval or cap, not both")
        initial = initial_interval if initial_interval is not None else base
        ceiling = max_interval if max_interval is not None else cap
        self.max_attempts = max_attempts
        self.initial_interval = 0.5 if initial is None else float(initial)
        self.max_interval = 30.0 if ceiling is None else float(ceiling)
        self.exponent = float(exponent)
        self.max_elapsed_time = max_elapsed_time
        self.retry_connection_errors = retry_connection_errors
        self.jitter = jitter
        self.max_wait = max_wait
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.rand = rand
        self.clock = clock
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise ConfigurationError("RetryPolicy.max_attempts must be an integer")
        if max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        if not (
            0 <= self.initial_interval < math.inf and 0 <= self.max_interval < math.inf
        ):
            raise ConfigurationError(
                "RetryPolicy.initial_interval and max_interval (base and cap) "
                "must be finite and not negative"
            )
        if not 1 <= self.exponent < math.inf:
            raise ConfigurationError("RetryPolicy.exponent must be at least 1")
        if max_elapsed_time is not None and not 0 <= max_elapsed_time < math.inf:
            raise ConfigurationError("RetryPolicy.max_elapsed_time must be positive")

    @classmethod
    def from_sdk(cls, config: Any, **kwargs: Any) -> RetryPolicy:
        """Translate the SDK's ``RetryConfig`` (milliseconds) into a policy.

        The SDK bounds retries by elapsed time only, so ``max_attempts``
        defaults to unbounded here; keyword arguments win.
        """
        backoff = config.backoff
        kwargs.setdefault("max_attempts", 1_000_000)
        kwargs.setdefault("initial_interval", backoff.initial_interval / 1000)
        kwargs.setdefault("max_interval", backoff.max_interval / 1000)
        kwargs.setdefault("exponent", backoff.exponent)
        kwargs.setdefault("max_elapsed_time", backoff.max_elapsed_time / 1000)
        kwargs.setdefault("retry_connection_errors", config.retry_connection_errors)
        return cls(**kwargs)

    # The names the first release used; services and older callers read them.
    @property
    def base(self) -> float:
        """The initial interval (the first release's name)."""
        return self.initial_interval

    @property
    def cap(self) -> float:
        """The maximum interval (the first release's name)."""
        return self.max_interval

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryPolicy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"RetryPolicy({fields})"

    def is_retryable(self, error: BaseException) -> bool:
        """Return whether ``error`` is worth another attempt under this policy."""
        if not isinstance(error, APIError) or not error.retryable:
            return False
        if isinstance(error, (NetworkError, RequestTimeout)):
            return self.retry_connection_errors
        return True

    def backoff(self, attempt: int) -> float:
        """Return the backoff after failed attempt ``attempt`` (1-based)."""
        steps = max(0, attempt - 1)
        try:
            raw = self.initial_interval * self.exponent**steps
        except OverflowError:  # 2.0 ** 1100: long past any ceiling
            raw = math.inf
        ceiling = min(self.max_interval, raw)
        if not self.jitter:
            return ceiling
        return ceiling / 2 + self.rand() * ceiling / 2

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the seconds to wait after failed attempt ``attempt``.

        That is the computed backoff, or the error's ``retry_after`` when it
        asks for longer (a quota reset already past does not mean "hammer
        now"). Nothing here sleeps, so the task layer can use it for Celery
        countdowns.
        """
        backoff = self.backoff(attempt)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(float(retry_after), backoff)
        return backoff

    def next_delay(
        self, attempt: int, error: BaseException, elapsed: float = 0.0
    ) -> float | None:
        """Return the in-client wait before another attempt, or None to give up.

        ``elapsed`` is the time since the first attempt started.
        """
        if attempt >= self.max_attempts or not self.is_retryable(error):
            return None
        wait = self.delay(attempt, error)
        limit = self.max_interval if self.max_wait is None else self.max_wait
        if wait > limit:
            return None
        if self.max_elapsed_time is not None and (
            elapsed + wait > self.max_elapsed_time
        ):
            return None
        return wait
