"""Idle shutdown: a background service that nobody uses ends itself.

The auto-started service outlives the kernel that started it, so something
must end it when it is no longer wanted: after ``timeout`` seconds with no
live job and no HTTP request. A pure ASGI middleware stamps every request
(while it is in flight too, so a long answer is not "idle"), and a small task
started with the app's lifespan checks the clock and the job manager's live
count. What "ending" means belongs to whoever runs the server (uvicorn's
``server.should_exit = True``), so it is a callback, ``on_idle``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["IdleMiddleware", "IdleWatch", "install_idle_watch"]

log = logging.getLogger("gridllm_nb.service")


class IdleWatch:
    """When the service was last used, and whether it has been idle for ``timeout`` seconds."""

    def __init__(self, timeout: float, live: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        if timeout <= 0:
            raise ValueError("the idle timeout must be positive")
        self.timeout = float(timeout)
        self.live = live
        self.clock = clock
        self.last_activity = clock()
        self.in_flight = 0
        self.fired = False
        self.on_idle: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def check_every(self) -> float:
        """Often enough that a 2 s timeout is honoured to within a quarter, never busier than 20 Hz."""
        return max(0.05, min(5.0, self.timeout / 8))

    def touch(self) -> None:
        self.last_activity = self.clock()

    def idle_for(self) -> float:
        """Seconds since the last request or live job (0 while either is going on)."""
        if self.in_flight or self.live():
            self.touch()
            return 0.0
        return self.clock() - self.last_activity

    def check(self) -> bool:
        """Fire ``on_idle`` once the timeout has passed; returns whether it fired now."""
        if self.fired or self.idle_for() < self.timeout:
            return False
        self.fired = True
        log.warning("no jobs and no requests for %.0f s: stopping", self.timeout)
        if self.on_idle is not None:
            self.on_idle()
        return True

    async def run(self) -> None:
        while not self.fired:
            await asyncio.sleep(self.check_every)
            self.check()

    def start(self) -> None:
        """Begin watching on the running loop (the app's lifespan start)."""
        self.touch()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="gridllm-idle-watch")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class IdleMiddleware:
    """Pure ASGI: counts HTTP requests as activity, and runs the watch for the app's lifespan."""

    def __init__(self, app: ASGIApp, watch: IdleWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.watch.in_flight += 1
        self.watch.touch()
        try:
            await self.app(scope, receive, send)
        finally:
            self.watch.in_flight -= 1
            self.watch.touch()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_and_watch() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self.watch.stop()
            return message

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.watch.start()
            await send(message)

        await self.app(scope, receive_and_watch, send_and_watch)


def install_idle_watch(app: Any, timeout: float, live: Callable[[], int]) -> IdleWatch:
    """Add the middleware to a Starlette/FastAPI ``app``; the watch is also ``app.state.idle``."""
    watch = IdleWatch(timeout, live)
    app.add_middleware(IdleMiddleware, watch=watch)
    app.state.idle = watch
    return watch
