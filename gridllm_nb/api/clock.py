"""Time as the poller and the retry logic see it, so tests can fake it.

Every wait in the client goes through a ``Clock``; a fake one advances
instantly, which is how backoff and Retry-After are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["Clock", "SystemClock"]


class Clock:
    """Interface: a monotonic reading and an awaitable sleep."""

    def monotonic(self) -> float:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


class SystemClock(Clock):
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
