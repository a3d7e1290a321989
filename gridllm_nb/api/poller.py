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
import contextlib
import weakref
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .client import MAX_IDS_PER_BULK, JobsClient, RetryPolicy, join_log
from .clock import Clock, SystemClock
from ..errors import (
    AuthError,
    ConfigError,
    GridLLMError,
    NotSupported,
    ProtocolError,
    RateLimited,
    ServiceUnreachable,
    TransportError,
)
from .jobs import Job, JobState, JobUpdate, read_entry, state_from_raw

__all__ = ["RECONNECTING", "PollSettings", "Poller", "Watch", "get_poller", "use_poller"]

RECONNECTING = "reconnecting…"
STREAM_PAUSE = 10.0  # seconds a client's jobs are polled after one of its watch streams failed
_BRIEF = object()  # Watch._entry of a streamed row: the job is its status and log, built on demand


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


class Watch:
    """One job followed by the poller; iterate it for its updates, close it to stop."""

    def __init__(
        self,
        poller: Poller,
        client: JobsClient,
        job_id: str,
        *,
        tag: str,
        started: float,
        deadline: float | None,
    ) -> None:
        self.poller = poller
        self.client = client
        self.job_id = job_id
        self.tag = tag
        self.started = started
        self.deadline = deadline
        self.state = JobState.SUBMITTED
        self.raw_status = ""
        self.text = ""
        self.error: str | None = None
        # The latest entry, made into a Job only when someone reads ``job``: a
        # poll tick builds no Job for the hundreds of answers that merely grew.
        self._job: Job | None = None
        self._entry: Any = None
        self._entry_previous = JobState.SUBMITTED
        self.missing = 0
        self.failing_since: float | None = None
        self.notice: str | None = None  # shown while live, e.g. "reconnecting…"
        self.outage: str | None = None  # what happened to a local service that was started again
        # Updates not yet read (None: the end), and the reader's future while it waits: what
        # asyncio.Queue does, without its task accounting, for a tick that feeds a thousand readers.
        self._updates: deque[JobUpdate | None] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._closed = False
        self._stream: _Stream | None = None  # the watch stream that carries this job, if one does

    @property
    def done(self) -> bool:
        return self.state.terminal or self._closed

    @property
    def job(self) -> Job | None:
        """The job as last reported (built from its latest entry on first read)."""
        if self._job is None and self._entry is not None:
            entry = self._entry
            if entry is _BRIEF:
                entry = {"vmStatus": self.raw_status, "states": {"default": {"status": self.raw_status,
                                                                             "log": self.text}}}
            self._job = Job.from_api(self.job_id, entry, self._entry_previous)
        return self._job

    @job.setter
    def job(self, job: Job | None) -> None:
        self._job = job
        self._entry = None

    def close(self) -> None:
        """Stop following this job (the consumer went away, e.g. a kernel interrupt)."""
        if not self._closed:
            self._closed = True
            self.poller._forget(self)
            self._put(None)

    def __aiter__(self) -> AsyncIterator[JobUpdate]:
        return self

    async def __anext__(self) -> JobUpdate:
        while not self._updates:
            if self._closed:
                raise StopAsyncIteration
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        update = self._updates.popleft()
        if update is None:
            raise StopAsyncIteration
        return update

    def _put(self, update: JobUpdate | None) -> None:
        self._updates.append(update)
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    # -- called by the poller --------------------------------------------

    def _emit(self, now: float, *, delta: str = "", reset: bool = False) -> None:
        state = self.state
        if not state.terminal:  # a live update builds no Job
            self._put(JobUpdate(self.tag, self.job_id, state, self.text, delta, reset, self.error or self.notice,
                                now - self.started, self.raw_status))
            return
        job = self.job
        self._put(
            JobUpdate(
                tag=self.tag,
                job_id=self.job_id,
                state=state,
                text=self.text,
                delta=delta,
                reset=reset,
                error=self.error,
                elapsed=now - self.started,
                raw_status=self.raw_status,
                finish=job.finish if job is not None else None,
                tokens=job.tokens if job is not None else None,
            )
        )
        self.close()

    def _unchanged(self, entry: Any) -> bool:
        """Cheap check before parsing: same log and same status as last time."""
        try:
            inner = entry["states"]["default"]
            status = inner.get("status") or entry.get("vmStatus") or ""
            return (
                inner.get("log") == self.text
                and status == self.raw_status
                and (self._entry is not None or self._job is not None)
            )
        except (KeyError, TypeError, AttributeError):
            return False

    def _poll(self, entry: Any, now: float) -> bool:
        """One answer for this job, as the tick sees it: ``_unchanged`` then ``_take``, each field read once.

        A job whose log and status did not change costs a few lookups; one that
        changed costs one JobUpdate, and a Job only when someone reads ``job``.
        """
        try:
            states = entry["states"]
            inner = states["default"]
            status = inner.get("status")
            log = inner.get("log")
            if (
                self.missing == 0
                and log == self.text
                and (status or entry.get("vmStatus") or "") == self.raw_status
                and (self._entry is not None or self._job is not None)
            ):
                return False
            # The shape every service sends: read as Job.from_api reads it, without the detour.
            fast = type(entry) is dict and type(states) is dict and type(inner) is dict
        except (KeyError, TypeError, AttributeError):
            fast = False
        if fast and isinstance(status, str) and status:
            raw = status
            log = log if isinstance(log, str) else ""
        else:
            raw, log = raw_status_and_log(entry)
        self._job = None
        self._entry = entry
        self._entry_previous = self.state
        return self._update(raw, log, now)

    def _grow(self, status: Any, start: Any, tail: Any, now: float) -> bool:
        """One ``live`` row of a watch stream: the log from character ``start`` on, and the status."""
        have = self.text
        self._job = None
        self._entry = _BRIEF
        self._entry_previous = self.state
        if status == self.raw_status and start == len(have) and type(tail) is str and tail and not self.missing:
            # The usual row, a thousand times a line: the same status, new characters after the old.
            self.text = have + tail
            self._emit(now, delta=tail)
            return True
        if not (isinstance(status, str) and status and type(start) is int and isinstance(tail, str)
                and 0 <= start <= len(have)):
            raise ProtocolError(f"a malformed watch row for job {self.job_id}")
        if start == len(have):  # only new characters: no comparing of what came before
            return self._update(status, have + tail, now, tail)
        return self._update(status, have[:start] + tail, now)

    def _take(self, entry: Any, now: float) -> bool:
        """Take a fresh raw entry (see ``_apply``) without building a Job unless one is needed."""
        raw, log = raw_status_and_log(entry)
        self._job = None
        self._entry = entry
        self._entry_previous = self.state
        return self._update(raw, log, now)

    def _apply(self, job: Job, now: float) -> bool:
        """Take a fresh status; returns whether the text changed."""
        self.job = job
        return self._update(job.raw_status, job.log, now)

    def _update(self, raw_status: str, log: str, now: float, grown: str | None = None) -> bool:
        """Take a status and log; ``grown`` says the log is the old one plus exactly that."""
        self.missing = 0
        state = self.state if raw_status == self.raw_status else state_from_raw(raw_status, self.state)
        reset = False
        if grown is not None:
            delta = grown
        elif log == self.text:
            delta = ""
        elif log.startswith(self.text):
            delta = log[len(self.text):]
        else:
            # The job restarted elsewhere: the new log replaces the old one.
            delta, reset = log, True
        changed = bool(delta) or reset
        if not changed and state is self.state and raw_status == self.raw_status:
            return False
        self.text = log
        self.raw_status = raw_status
        if state is JobState.FAILED and not self.error:
            self.error = self._message() or f"the job ended with status '{raw_status}'"
            if self.outage:
                self.error += f" ({self.outage})"
        if state is JobState.CANCELLED and not self.error:
            self.error = self._message() or "cancelled"
        self.state = state
        self._emit(now, delta=delta, reset=reset)
        return changed

    def _message(self) -> str:
        job = self.job
        return job.message if job is not None else ""

    def _answered(self, now: float) -> None:
        """The service answered for this job: no longer failing, and any "reconnecting…" notice cleared."""
        self.failing_since = None
        if self.notice is not None:
            self.notice = None
            self._emit(now)

    def _set_notice(self, notice: str | None, now: float) -> None:
        """Show (or clear, with None) a live notice; emits only on a change."""
        if notice != self.notice and not self.done:
            self.notice = notice
            self._emit(now)

    def _end(self, state: JobState, error: str, now: float) -> None:
        self.state = state
        self.error = error
        self._emit(now)


def raw_status_and_log(entry: Any) -> tuple[str, str]:
    """``(raw_status, log)`` of one ``jobs`` entry, read exactly as ``Job.from_api`` reads them."""
    _inner, _vm, raw, log = read_entry(entry if isinstance(entry, Mapping) else {})
    return raw, log


class Poller:
    """Follows every watched job of one event loop with as few requests as possible (none over a stream)."""

    def __init__(self, settings: PollSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or PollSettings()
        self.clock = clock or SystemClock()
        self._watches: dict[tuple[int, str], Watch] = {}
        self._task: asyncio.Task[None] | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self.interval = self.settings.fast
        self.ticks = 0
        self.gets = 0
        # Who is asked in which GET, kept while the set of watches stays the same.
        self._batches: list[tuple[JobsClient, list[Watch], list[str]]] | None = None
        self._sizes: list[tuple[JobsClient, int]] = []  # each client's ids per request when planned
        self.plans = 0
        self._failures = 0
        self._reviving: dict[int, asyncio.Task[None]] = {}
        self.streams = 0  # watch streams opened
        self._opening: list[_Stream] = []  # streams started by this tick's plan
        self._paused: dict[int, float] = {}  # client -> until when its jobs are polled, after a stream failed

    def watch(
        self,
        client: JobsClient,
        job_id: str,
        *,
        tag: str = "",
        hours: float | None = None,
        started: float | None = None,
    ) -> Watch:
        """Start following ``job_id``; the first poll happens right away."""
        now = self.clock.monotonic()
        started = now if started is None else started
        limit = 1.0 if hours is None else hours
        deadline = started + limit * 3600 + self.settings.grace
        key = (id(client), job_id)
        existing = self._watches.get(key)
        if existing is not None and not existing.done:
            existing.close()
        w = Watch(self, client, job_id, tag=tag, started=started, deadline=deadline)
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

    def _forget(self, w: Watch) -> None:
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

    def _plan(self) -> list[tuple[JobsClient, list[Watch], list[str]]]:
        """One GET per client per chunk of ids; rebuilt only when a watch comes or goes.

        Jobs of a client that can stream go into new watch streams instead (up to
        1000 jobs each), and are left out of the polls while a stream carries them.
        """
        self.plans += 1
        groups: dict[int, list[Watch]] = defaultdict(list)
        clients: dict[int, JobsClient] = {}
        for w in list(self._watches.values()):
            if w._stream is None and not w.done:
                groups[id(w.client)].append(w)
                clients[id(w.client)] = w.client
        batches: list[tuple[JobsClient, list[Watch], list[str]]] = []
        self._sizes = [(client, client.ids_per_request) for client in clients.values()]
        for key, watches in groups.items():
            client = clients[key]
            if client.may_watch() and key not in self._paused:
                streamed = [w for w in watches if not w.missing]  # one the service did not know is polled
                for start in range(0, len(streamed), MAX_IDS_PER_BULK):
                    _Stream(self, client, streamed[start:start + MAX_IDS_PER_BULK])
                watches = [w for w in watches if w.missing]
            by_id = {w.job_id: w for w in watches}
            for chunk in client.status_batches(list(by_id)):
                batches.append((client, [by_id[i] for i in chunk], chunk))
        return batches

    def _on_failure(self, watches: list[Watch], error: Exception, now: float) -> None:
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


class _Stream:
    """One watch stream (``JobsClient.watch``): the service pushes what changed for a group of watches.

    Its rows go through the same ``Watch`` methods a poll's entries do. When it
    ends, breaks or is refused, the jobs it still carries go back to the polls,
    which then handle any outage as usual (notices, starting the service again);
    after a failure the client's jobs are polled for ``STREAM_PAUSE`` seconds.
    """

    def __init__(self, poller: Poller, client: JobsClient, watches: list[Watch]) -> None:
        self.poller = poller
        self.client = client
        self.watches = {w.job_id: w for w in watches}
        self.failure: Exception | None = None  # why it ended early, if it did
        for w in watches:
            w._stream = self
        poller.streams += 1
        poller._opening.append(self)
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[bool] = loop.create_future()  # True at its first line, False if it never had one
        self.task = loop.create_task(self._run(), name="gridllm-watch")

    async def _run(self) -> None:
        poller = self.poller
        known = {job_id: w.text for job_id, w in self.watches.items()}
        ended_well = False
        try:
            lines = self.client.watch(list(known), known, every=poller.settings.fast)
            async with contextlib.aclosing(lines):
                async for line in lines:
                    self._take(line, poller.clock.monotonic())
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
            if not ended_well:
                poller._paused[id(self.client)] = poller.clock.monotonic() + STREAM_PAUSE
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
                self.poller._batches = None
                self.poller._wake()

    def forget(self) -> None:
        """A watch closed: stop the stream once none of its jobs is followed any more."""
        if all(w.done for w in self.watches.values()) and self.task is not asyncio.current_task():
            self.task.cancel()

    def _release(self) -> None:
        back = [w for w in self.watches.values() if w._stream is self]
        for w in back:
            w._stream = None
        if any(not w.done for w in back):
            self.poller._batches = None
            self.poller._wake()


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
