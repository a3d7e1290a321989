"""How the client retries: exponential backoff with jitter, bounded by a time budget, Retry-After honoured.

Only what cannot create a job twice is retried: a POST only when the
connection failed before anything was sent, or on 429/503, which say the
request was not taken. tenacity runs the loop (``retrying``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ..errors import GridLLMError

__all__ = ["RetryPolicy", "Retryable", "retry_after", "retrying"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by a total time budget (seconds)."""

    budget: float = 30.0
    initial: float = 0.5
    maximum: float = 8.0
    # A refused connection rarely heals in seconds, and someone is waiting.
    connect_budget: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter delay before retry number ``attempt`` (1-based)."""
        ceiling = min(self.maximum, self.initial * 2 ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class Retryable(Exception):
    """Internal wrapper: a failure worth another try, with whether a POST may repeat."""

    def __init__(
        self,
        error: GridLLMError,
        *,
        safe_for_post: bool,
        retry_after: float | None = None,
        connect: bool = False,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.safe_for_post = safe_for_post
        self.retry_after = retry_after
        self.connect = connect


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from datetime import datetime, timezone
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


async def retrying(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy, clock: Any, *, post: bool) -> T:
    """``attempt()`` until it succeeds, raises something not ``Retryable``, or ``policy``'s budget runs out.

    A POST is repeated only when its ``Retryable`` says it is safe for one.
    Waits go through ``clock`` (faked in tests); a refused connection gets
    the shorter ``connect_budget``. The last ``Retryable`` is raised as it is.
    """
    start = clock.monotonic()

    def should_retry(exc: BaseException) -> bool:
        return isinstance(exc, Retryable) and (exc.safe_for_post or not post)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        remaining = max(0.0, policy.budget - (clock.monotonic() - start))
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, remaining)
        return min(policy.backoff(state.attempt_number), remaining)

    def stop(state: RetryCallState) -> bool:
        elapsed = clock.monotonic() - start
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.connect:
            return elapsed >= min(policy.connect_budget, policy.budget)
        return elapsed >= policy.budget

    async for tried in AsyncRetrying(retry=retry_if_exception(should_retry), wait=wait, stop=stop,
                                     sleep=clock.sleep, reraise=True):
        with tried:
            return await attempt()
    raise AssertionError("unreachable")  # pragma: no cover
