"""One job followed by the poller: its updates, in order, as an async iterator.

The poller (a poll's answer) and the watch stream (a streamed row) both feed
a ``Feed`` through the same few methods, so a job's text, state and notices
change the same way whichever carried them; the consumer (``core.live``)
only iterates it. Nothing is built for a job whose log did not grow.

What was shown is never taken back. When the service's log stops continuing
it (the service restarted and replays less, or the job restarted elsewhere
and says something else), the updates keep every character already shown:
a log that is still a start of it is waited out (it may catch up and go on,
seamlessly); one that says something else follows it after ``RESTART_MARK``.
Either way the updates say ``restarted`` from then on. The updates' text
therefore only grows within one job (no ``reset``), while ``Feed.text``
stays the service's log, which the poll requests and the stream's rows count
from.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ProtocolError
from .client import JobsClient
from .jobs import Job, JobState, JobUpdate, read_entry, state_from_raw

if TYPE_CHECKING:
    from .stream import WatchStream

__all__ = ["RECONNECTING", "RESTART_MARK", "Feed", "raw_status_and_log"]

RECONNECTING = "reconnecting…"
RESTART_MARK = "\n\n(restarted)\n\n"  # between what was shown and a restarted job's new log
_BRIEF = object()  # Feed._entry of a streamed row: the job is its status and log, built on demand


class Feed:
    """One job followed by the poller; iterate it for its updates, close it to stop."""

    def __init__(
        self,
        forget: Callable[[Feed], None],
        client: JobsClient,
        job_id: str,
        *,
        tag: str,
        started: float,
        deadline: float | None,
    ) -> None:
        self._forget = forget  # the poller's: stop following me
        self.client = client
        self.job_id = job_id
        self.tag = tag
        self.started = started
        self.deadline = deadline
        self.state = JobState.SUBMITTED
        self.raw_status = ""
        self.text = ""  # the service's log as last seen
        # What the updates show is ``_before + text``, or ``_before + _held`` while the service's log is
        # behind what was shown (``_held``, its log then); ``_before`` ends in RESTART_MARK, or is empty.
        self._before = ""
        self._held: str | None = None
        self.restarted = False
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
        self._stream: WatchStream | None = None  # the watch stream that carries this job, if one does

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
            self._forget(self)
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

    # -- called by the poller and the watch stream --------------------------------------------

    @property
    def shown(self) -> str:
        """The text the updates carry: all that was ever shown, then what the service added since."""
        if self._held is None and not self._before:
            return self.text
        return self._before + (self.text if self._held is None else self._held)

    def _emit(self, now: float, *, delta: str = "") -> None:
        state = self.state
        if not state.terminal:  # a live update builds no Job
            text = self.text if self._held is None and not self._before else self.shown
            self._put(JobUpdate(self.tag, self.job_id, state, text, delta, False, self.error or self.notice,
                                now - self.started, self.raw_status, restarted=self.restarted))
            return
        job = self.job
        self._put(
            JobUpdate(
                tag=self.tag,
                job_id=self.job_id,
                state=state,
                text=self.shown,
                delta=delta,
                error=self.error,
                elapsed=now - self.started,
                raw_status=self.raw_status,
                finish=job.finish if job is not None else None,
                tokens=job.tokens if job is not None else None,
                restarted=self.restarted,
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
        if (status == self.raw_status and start == len(have) and type(tail) is str and tail and not self.missing
                and self._held is None):
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
        if grown is not None:
            delta = grown
        elif log == self.text:
            delta = ""
        elif log.startswith(self.text):
            delta = log[len(self.text):]
        else:
            delta = None  # the log went back or says something else: the service restarted the job
        if delta is None or self._held is not None:
            delta = self._restarted(log)
        changed = bool(delta)
        if not changed and state is self.state and raw_status == self.raw_status:
            self.text = log  # the service's log moved on behind what is shown: nothing new to show
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
        self._emit(now, delta=delta)
        return changed

    def _restarted(self, log: str) -> str:
        """What the updates add when the service's ``log`` does not simply continue its last one:
        nothing while it is behind what was shown, the rest once it goes on from there, else
        ``RESTART_MARK`` and the whole new log (the module's rule)."""
        self.restarted = True
        held = self.text if self._held is None else self._held
        if log.startswith(held):  # caught up with what was shown: it goes on from there
            self._held = None
            return log[len(held):]
        if held.startswith(log):  # behind what was shown: keep showing that
            self._held = held
            return ""
        self._held = None
        self._before += held + RESTART_MARK
        return RESTART_MARK + log

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
