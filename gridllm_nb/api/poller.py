"""One batched, adaptive poller per event loop.

Every live job on the loop is polled together: one GET per 100 ids per tick
(one request per 1000 ids, carrying only what each log grew by, where the
service offers the bulk status extension), whichever cell, panel or script
asked for it. Where the service offers the watch extension (our own local
service), there is no poll at all: one long response per group of jobs
carries what changed, and a stream that breaks hands its jobs back to the
polls. The interval is short while
logs grow and backs off while nothing changes; failures back off with
jitter (honouring Retry-After) and only after a time budget are the jobs
given up as LOST, their text kept. While the service does not answer at all,
each live job carries a "reconnecting…" notice (in ``JobUpdate.error`` of a
job still live, the one place every view already shows), cleared by the
next answer; the embedded default service is started again once per outage.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from dataclasses import dataclass, field, replace

from ..errors import (
    AuthError,
    ConfigError,
    GridLLMError,
    RateLimited,
    ServiceUnreachable,
    TransportError,
)
from .client import MAX_IDS_PER_BULK, JobsClient
from .clock import Clock, SystemClock
from .feed import RECONNECTING, Feed
from .jobs import JobState
from .retry import RetryPolicy
from .stream import WatchStream

__all__ = ["RECONNECTING", "Feed", "PollSettings", "Poller", "get_poller", "use_poller"]

STREAM_PAUSE = 10.0  # seconds a client's jobs are polled after one of its watch streams failed


@dataclass(frozen=True)
class PollSettings:
    """Knobs of the poll loop; every time is in seconds."""

    fast: float = 0.3
    slow: float = 5.0
    factor: float = 1.5
    give_up_after: float = 120.0
    lost_after: int = 3
    grace: float = 60.0
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(initial=0.5, maximum=10.0))


class Poller:
    """Follows every watched job of one event loop with as few requests as possible (none over a stream)."""

    def __init__(self, settings: PollSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or PollSettings()
        self.clock = clock or SystemClock()
        self._watches: dict[tuple[int, str], Feed] = {}
        self._task: asyncio.Task[None] | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self.interval = self.settings.fast
        self.ticks = 0
        self.gets = 0
        # Who is asked in which GET, kept while the set of watches stays the same.
        self._batches: list[tuple[JobsClient, list[Feed], list[str]]] | None = None
        self._sizes: list[tuple[JobsClient, int]] = []  # each client's ids per request when planned
        self.plans = 0
        self._failures = 0
        self._reviving: dict[int, asyncio.Task[None]] = {}
        self.streams = 0  # watch streams opened
        self._opening: list[WatchStream] = []  # streams started by this tick's plan
        self._paused: dict[int, float] = {}  # client -> until when its jobs are polled, after a stream failed

    def follow(
        self,
        client: JobsClient,
        job_id: str,
        *,
        tag: str = "",
        hours: float | None = None,
        started: float | None = None,
    ) -> Feed:
        """Start following ``job_id``; the first poll happens right away."""
        now = self.clock.monotonic()
        started = now if started is None else started
        limit = 1.0 if hours is None else hours
        deadline = started + limit * 3600 + self.settings.grace
        key = (id(client), job_id)
        existing = self._watches.get(key)
        if existing is not None and not existing.done:
            existing.close()
        w = Feed(self._forget, client, job_id, tag=tag, started=started, deadline=deadline)
        self._watches[key] = w
        self._batches = None
        self.interval = self.settings.fast
        self._wake()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="gridllm-poller")
        return w

    @property
    def active(self) -> int:
        return len(self._watches)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _forget(self, w: Feed) -> None:
        key = (id(w.client), w.job_id)
        if self._watches.get(key) is w:
            del self._watches[key]
            if w._stream is None:
                self._batches = None
            else:
                w._stream.forget()

    def _wake(self) -> None:
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.cancel()

    async def _loop(self) -> None:
        try:
            while self._watches:
                delay = await self.tick()
                if not self._watches:
                    break
                self._sleeper = asyncio.ensure_future(self.clock.sleep(delay))
                try:
                    await asyncio.wait([self._sleeper])
                finally:
                    self._sleeper.cancel()
        finally:
            self._task = None

    async def tick(self) -> float:
        """Poll every live job once; returns how long to wait before the next tick."""
        self.ticks += 1
        if self._paused and min(self._paused.values()) <= self.clock.monotonic():
            now = self.clock.monotonic()
            self._paused = {key: until for key, until in self._paused.items() if until > now}
            self._batches = None  # a client whose stream failed a while ago may stream again
        batches = self._batches
        if batches is None:
            batches = self._batches = self._plan()
            if self._opening:  # wait for the new streams' first lines: jobs a stream refused are polled now
                opening, self._opening = self._opening, []
                await asyncio.wait([stream.opened for stream in opening])
                if self._batches is None:
                    batches = self._batches = self._plan()
        self.gets += len(batches)
        answers = await asyncio.gather(
            *(client.status_entries(ids, retry=False, known={w.job_id: w.text for w in watches})
              for client, watches, ids in batches),
            return_exceptions=True,
        )
        if any(client.ids_per_request != size for client, size in self._sizes):
            self._batches = None  # the service turned out to take bulk requests: fewer of them next tick
        now = self.clock.monotonic()
        changed = False
        wait_at_least = 0.0
        failed = False
        for (client, watches, _), answer in zip(batches, answers):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                failed = True
                if isinstance(answer, RateLimited) and answer.retry_after:
                    wait_at_least = max(wait_at_least, answer.retry_after)
                self._on_failure(watches, answer, now)
                continue
            for w in watches:
                if w.done:
                    continue
                w._answered(now)
                entry = answer.get(w.job_id)
                if entry is None:
                    w.missing += 1
                    if w.missing >= self.settings.lost_after:
                        w._end(JobState.LOST, f"the service no longer knows job {w.job_id}", now)
                        changed = True
                    continue
                changed |= w._poll(entry, now)  # nothing is built for a job whose log did not grow
        for w in list(self._watches.values()):
            if not w.done and w.deadline is not None and now > w.deadline:
                w._end(JobState.TIMED_OUT, "no result within the job's hours limit", now)
        if failed:
            self._failures += 1
            delay = max(wait_at_least, self.settings.backoff.backoff(self._failures))
            self.interval = self.settings.fast
            return delay
        self._failures = 0
        if changed:
            self.interval = self.settings.fast
        else:
            self.interval = min(self.settings.slow, self.interval * self.settings.factor)
        return self.interval

    def _plan(self) -> list[tuple[JobsClient, list[Feed], list[str]]]:
        """One GET per client per chunk of ids; rebuilt only when a watch comes or goes.

        Jobs of a client that can stream go into new watch streams instead (up to
        1000 jobs each), and are left out of the polls while a stream carries them.
        """
        self.plans += 1
        groups: dict[int, list[Feed]] = defaultdict(list)
        clients: dict[int, JobsClient] = {}
        for w in list(self._watches.values()):
            if w._stream is None and not w.done:
                groups[id(w.client)].append(w)
                clients[id(w.client)] = w.client
        batches: list[tuple[JobsClient, list[Feed], list[str]]] = []
        self._sizes = [(client, client.ids_per_request) for client in clients.values()]
        for key, watches in groups.items():
            client = clients[key]
            if client.may_watch() and key not in self._paused:
                streamed = [w for w in watches if not w.missing]  # one the service did not know is polled
                for start in range(0, len(streamed), MAX_IDS_PER_BULK):
                    self._open_stream(client, streamed[start:start + MAX_IDS_PER_BULK])
                watches = [w for w in watches if w.missing]
            by_id = {w.job_id: w for w in watches}
            for chunk in client.status_batches(list(by_id)):
                batches.append((client, [by_id[i] for i in chunk], chunk))
        return batches

    def _on_failure(self, watches: list[Feed], error: Exception, now: float) -> None:
        message = str(error) if isinstance(error, GridLLMError) else f"{type(error).__name__}: {error}"
        for w in watches:
            if w.done:
                continue
            if isinstance(error, AuthError):
                w._end(JobState.LOST, message, now)
                continue
            if w.failing_since is None:
                w.failing_since = now
            reviving = id(w.client) in self._reviving  # never give up while the service is being started again
            if now - w.failing_since >= self.settings.give_up_after and not reviving:
                w._end(JobState.LOST, f"gave up polling after {self.settings.give_up_after:.0f}s: {message}", now)
            elif isinstance(error, TransportError) and w.notice is None:
                w._set_notice(f"{RECONNECTING} (no answer from the service)", now)
        if isinstance(error, ServiceUnreachable) and watches and not all(w.done for w in watches):
            self._revive(watches[0].client)

    def _revive(self, client: JobsClient) -> None:
        """Start the embedded default service again, in the background of the poll loop (once per outage)."""
        if not client.endpoint.is_default:
            return
        key = id(client)
        task = self._reviving.get(key)
        if task is not None and not task.done():
            return

        async def revive() -> None:
            try:
                before = await client.revive()
            except ConfigError as exc:
                now = self.clock.monotonic()
                for w in list(self._watches.values()):
                    if w.client is client and not w.done:
                        w._end(JobState.LOST, str(exc), now)
                return
            finally:
                self._reviving.pop(key, None)
                self._wake()
            if before:
                now = self.clock.monotonic()
                for w in list(self._watches.values()):
                    if w.client is client and not w.done:
                        w.outage = before
                        w._set_notice(f"{RECONNECTING} (started the local service again: {before})", now)

        self._reviving[key] = asyncio.get_running_loop().create_task(revive(), name="gridllm-revive")

    def _open_stream(self, client: JobsClient, feeds: list[Feed]) -> None:
        """A watch stream for ``feeds``: this tick waits for its first line (``tick``)."""
        self.streams += 1
        self._opening.append(WatchStream(client, feeds, every=self.settings.fast, clock=self.clock,
                                         on_end=self._stream_ended, on_change=self._replan))

    def _stream_ended(self, stream: WatchStream, failed: bool) -> None:
        if failed:  # its client's jobs are polled for a while before another stream is tried
            self._paused[id(stream.client)] = self.clock.monotonic() + STREAM_PAUSE

    def _replan(self) -> None:
        """Jobs went back to the polls: plan the next tick's requests again, and have it now."""
        self._batches = None
        self._wake()


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()


def get_poller(settings: PollSettings | None = None) -> Poller:
    """The poller of the running loop, created on first use; ``settings`` replaces its knobs."""
    loop = asyncio.get_running_loop()
    poller = _POLLERS.get(loop)
    if poller is None:
        poller = _POLLERS[loop] = Poller(settings)
    elif settings is not None:
        poller.settings = replace(settings)
    return poller


def use_poller(poller: Poller) -> Poller:
    """Make ``poller`` the running loop's poller (one with a fake clock, in tests); returns it.

    Whoever follows a job on this loop from now on is followed by it, as
    ``get_poller`` would have made one. The loop may have had none yet.
    """
    _POLLERS[asyncio.get_running_loop()] = poller
    return poller
