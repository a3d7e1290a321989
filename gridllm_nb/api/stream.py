"""One watch stream: the local service pushes what changed for a group of jobs (``POST /jobs/watch``).

One long response in place of a poll per tick. Its rows go through the same
``Feed`` methods a poll's entries do; when it ends, breaks or is refused,
the jobs it still carries go back to the polls (``on_end``), which then
handle any outage as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NotSupported, ProtocolError
from .client import JobsClient
from .clock import Clock
from .feed import Feed
from .wire import join_log

__all__ = ["WatchStream"]


class WatchStream:
    """One watch stream (``JobsClient.watch``): the service pushes what changed for a group of watches.

    Its rows go through the same ``Feed`` methods a poll's entries do. When it
    ends, breaks or is refused, the jobs it still carries go back to the polls,
    which then handle any outage as usual (notices, starting the service again);
    after a failure the client's jobs are polled for ``STREAM_PAUSE`` seconds.
    """

    def __init__(self, client: JobsClient, watches: list[Feed], *, every: float, clock: Clock,
                 on_end: Callable[[WatchStream, bool], None], on_change: Callable[[], None]) -> None:
        """``on_end(stream, failed)`` when it is over; ``on_change()`` when a job went back to the polls."""
        self.client = client
        self.every = every
        self.clock = clock
        self._on_end = on_end
        self._on_change = on_change
        self.watches = {w.job_id: w for w in watches}
        self.failure: Exception | None = None  # why it ended early, if it did
        for w in watches:
            w._stream = self
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bool] = loop.create_future()  # True at its first line, False if it never had one
        self.task = loop.create_task(self._run(), name="gridllm-watch")

    async def _run(self) -> None:
        known = {job_id: w.text for job_id, w in self.watches.items()}
        ended_well = False
        try:
            lines = self.client.watch(list(known), known, every=self.every)
            async with contextlib.aclosing(lines):
                async for line in lines:
                    self._take(line, self.clock.monotonic())
                    if not self.opened.done():
                        self.opened.set_result(True)
                    if all(w.done for w in self.watches.values()):
                        ended_well = True
                        return
            # Over with jobs still running: as if it broke off (never a loop of streams that end at once).
        except NotSupported:
            ended_well = True  # no such thing here: the client remembers, and its jobs are polled
        except asyncio.CancelledError:
            ended_well = True  # no one follows these jobs any more
            raise
        except Exception as exc:  # noqa: BLE001 - broken off, refused, malformed, client closed: all the same here
            self.failure = exc  # the polls take over, and report any outage as they always do
        finally:
            self._on_end(self, not ended_well)
            if not self.opened.done():
                self.opened.set_result(False)
            self._release()

    def _take(self, line: Mapping[str, Any], now: float) -> None:
        watches = self.watches
        live = line.get("live") or []
        jobs = line.get("jobs") or {}
        unknown = line.get("unknown") or []
        if not (isinstance(live, list) and isinstance(jobs, dict) and isinstance(unknown, list)):
            raise ProtocolError("a malformed watch line")
        for row in live:
            try:
                job_id, status, start, tail = row
                w = watches.get(job_id)
            except (TypeError, ValueError):
                raise ProtocolError("a malformed watch row") from None
            if w is None or w._closed:  # (a watch whose job ended is closed)
                continue
            w._answered(now)
            w._grow(status, start, tail, now)
        for job_id, entry in jobs.items():
            w = watches.get(job_id)
            if w is None or w.done:
                continue
            w._answered(now)
            w._poll(join_log(job_id, entry, w.text), now)
        for job_id in unknown:
            w = watches.pop(job_id, None)
            if w is not None:  # polled from now on, until the service knows it or it is lost
                w._stream = None
                w.missing += 1
                self._on_change()

    def forget(self) -> None:
        """A watch closed: stop the stream once none of its jobs is followed any more."""
        if all(w.done for w in self.watches.values()) and self.task is not asyncio.current_task():
            self.task.cancel()

    def _release(self) -> None:
        back = [w for w in self.watches.values() if w._stream is self]
        for w in back:
            w._stream = None
        if any(not w.done for w in back):
            self._on_change()
