"""Job lifecycle: queue, workers, deadlines, cancel, batched log writes.

Generation runs in worker threads (llama.cpp releases the GIL while it
decodes), so the event loop that answers GETs never waits on a model. Each
tag has its own FIFO queue and ``concurrency`` workers (default 1). A single
housekeeping thread flushes the logs of live jobs to SQLite about every
100 ms, in one transaction, and enforces deadlines even when a backend is
stuck between tokens.

States: ``queued -> running -> completed | error | cancelled``; a terminal
state is never left, whoever gets there first (worker, cancel, deadline) wins.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from ..text import one_line
from .backend_factory import create_backend
from .backends.base import Backend, BackendError, Finish, GenerationRequest
from .registry import ModelSpec, Registry
from .store import RESTART_REASON, JobRecord, JobStore, StoreUnavailable

__all__ = ["DEFAULT_KEEP_DAYS", "DEFAULT_MAX_QUEUED", "JobManager", "QueueFull"]

DEFAULT_MAX_QUEUED = 1000
DEFAULT_KEEP_DAYS = 7.0
_PRUNE_EVERY = 3600.0  # seconds between two prunes of old finished jobs
_PROBLEM_LOG_EVERY = 60.0  # a storage problem is logged at most this often
_JOURNAL_MAX = 8 * 1024 * 1024  # past this, live logs go to their rows and the journal starts again

log = logging.getLogger("gridllm_nb.service")


class QueueFull(Exception):
    """More waiting jobs than the service accepts: the API answers 429 with Retry-After."""


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _valid_text(piece: str) -> str:
    """Remote engines can send lone surrogates in JSON; they would break SQLite and the answer."""
    try:
        piece.encode("utf-8")
    except UnicodeEncodeError:
        return piece.encode("utf-8", "replace").decode("utf-8")
    return piece


def _timeout_reason(job: JobRecord) -> str:
    return f"exceeded its time limit of {job.hours:g} hours ({job.hours * 3600:.1f} s); partial output kept"


class JobManager:
    """Owns every live job; finished jobs live in the store, recent ones also in memory.

    Finished jobs never change again, so the most recent ``finished_cache``
    of them are kept in memory: pollers of a large batch then cost a dict
    lookup, not a SQLite read, per id.
    """

    def __init__(
        self,
        registry: Registry,
        store: JobStore,
        *,
        backend_factory: Callable[[ModelSpec], Backend] = create_backend,
        flush_interval: float = 0.1,
        finished_cache: int = 2000,
        max_queued: int = DEFAULT_MAX_QUEUED,
        keep_days: float | None = DEFAULT_KEEP_DAYS,
    ) -> None:
        self.registry = registry
        self.max_queued = max_queued
        self.keep_days = keep_days
        self._pruned_at = 0.0
        self._problem_logged_at = 0.0
        self.store = store
        self.flush_interval = flush_interval
        self._backend_factory = backend_factory
        self._backends: dict[str, Backend] = {}
        self._backend_locks = {tag: threading.Lock() for tag in registry}
        self._queues: dict[str, queue.Queue[JobRecord | None]] = {}
        self._workers: list[threading.Thread] = []
        self._live: dict[str, JobRecord] = {}
        self._finished: OrderedDict[str, JobRecord] = OrderedDict()
        self._finished_max = finished_cache
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._seq = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> int:
        """Recover after a restart, then start housekeeping; returns jobs marked interrupted."""
        interrupted = self.store.recover(time.time())
        self._seq = self.store.max_seq()
        self._prune()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="gridllm-jobs-flush", daemon=True)
        self._housekeeper.start()
        if interrupted:
            log.warning("%d job(s) ended 'error': %s", interrupted, RESTART_REASON)
        return interrupted

    def close(self) -> None:
        """Stop: live jobs end ``error`` (interrupted), logs are flushed, models freed."""
        self._stop.set()
        with self._lock:
            live = list(self._live.values())
            for job in live:
                self._finish_locked(job, "error", RESTART_REASON)
        self.store.save(live)
        for q in self._queues.values():
            for _ in range(8):
                q.put(None)
        if self._housekeeper:
            self._housekeeper.join(timeout=2)
        for backend in self._backends.values():
            try:
                backend.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("closing a backend failed")

    # -- API operations ------------------------------------------------------
    def submit(
        self,
        *,
        tag: str,
        app: str,
        hours: float,
        inputs: Sequence[str],
        command_lines: Sequence[str],
        system: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[str]:
        """Create one job per input, persist them, then queue them (FIFO per tag).

        Raises ``QueueFull`` past ``max_queued`` waiting jobs, and
        ``StoreUnavailable`` when they cannot be saved (nothing is queued then).
        """
        created = _now_iso()
        jobs = []
        with self._lock:
            waiting = sum(1 for job in self._live.values() if job.status == "queued")
            if waiting + len(inputs) > self.max_queued:
                raise QueueFull(f"{waiting} jobs are waiting and this service takes at most {self.max_queued}; "
                                "try again later")
            for prompt, command_line in zip(inputs, command_lines):
                self._seq += 1
                jobs.append(JobRecord(
                    id=uuid.uuid4().hex, tag=tag, app=app, command_line=command_line, prompt=prompt,
                    system=system, options=dict(options or {}), hours=hours, created=created, seq=self._seq,
                ))
        self.store.save(jobs)  # persisted before the client learns the ids
        q = self._queue(tag)
        with self._lock:
            for job in jobs:
                self._live[job.id] = job
        for job in jobs:
            q.put(job)
        return [job.id for job in jobs]

    def get(self, ids: Sequence[str]) -> dict[str, JobRecord]:
        """Live and recently finished jobs from memory, the rest from the store.

        Unknown ids are left out. A job leaves ``_live`` only after its final
        state is saved, so a miss here always finds the final row in the store.
        """
        found: dict[str, JobRecord] = {}
        missing = []
        for job_id in ids:
            job = self._live.get(job_id) or self._finished.get(job_id)
            if job is not None:
                found[job_id] = job
            else:
                missing.append(job_id)
        if missing:
            stored = self.store.get(missing)
            found.update(stored)
            self._remember([job for job in stored.values() if job.terminal])
        return found

    def _remember(self, jobs: Iterable[JobRecord]) -> None:
        with self._lock:
            for job in jobs:
                self._finished[job.id] = job
            while len(self._finished) > self._finished_max:
                self._finished.popitem(last=False)

    def cancel(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Returns (known ids, ids cancelled now); terminal jobs are left as they are."""
        known = self.get(ids)
        cancelled = []
        with self._lock:
            for job_id in known:
                job = self._live.get(job_id)
                if job is not None and self._finish_locked(job, "cancelled", "cancelled by request"):
                    cancelled.append(job_id)
        self._save_and_forget([self._live[i] for i in cancelled if i in self._live])
        return list(known), cancelled

    def backend(self, tag: str) -> Backend:
        """The tag's backend, created once (the model itself loads lazily inside)."""
        with self._backend_locks[tag]:
            if tag not in self._backends:
                self._backends[tag] = self._backend_factory(self.registry[tag])
            return self._backends[tag]

    def warm_up(self, tags: Iterable[str]) -> None:
        """Load the models now (benchmarks, ``--preload``), not on the first job."""
        for tag in tags:
            warm = getattr(self.backend(tag), "warm_up", None)
            if warm:
                warm()

    def live_count(self) -> int:
        """Jobs queued or running now."""
        return len(self._live)

    def runner_pids(self) -> dict[str, list[int]]:
        """Tag -> process ids of its model runners (tags whose engine runs in child processes)."""
        out = {}
        for tag, backend in list(self._backends.items()):
            pids = getattr(backend, "pids", None)
            if pids is not None:
                out[tag] = pids()
        return out

    # -- internals -----------------------------------------------------------
    def _queue(self, tag: str) -> queue.Queue[JobRecord | None]:
        with self._lock:
            q = self._queues.get(tag)
            if q is None:
                q = self._queues[tag] = queue.Queue()
                for n in range(self.registry[tag].concurrency):
                    worker = threading.Thread(target=self._work, args=(q,), name=f"gridllm-{tag}-{n}", daemon=True)
                    worker.start()
                    self._workers.append(worker)
            return q

    def _work(self, q: queue.Queue[JobRecord | None]) -> None:
        while not self._stop.is_set():
            job = q.get()
            if job is None:
                return
            if job.terminal:  # cancelled while it waited
                continue
            try:
                self._run(job)
            except Exception as exc:  # never let a worker die
                log.exception("job %s failed", job.id)
                self._end(job, "error", f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job: JobRecord) -> None:
        try:
            # Load the model first: the job stays ``queued`` meanwhile, so neither
            # its runtime nor its ``hours`` limit pays for a one-time model load.
            backend = self.backend(job.tag)
            warm = getattr(backend, "warm_up", None)
            if warm is not None:
                warm()
        except BackendError as exc:
            self._end(job, "error", one_line(exc) or type(exc).__name__)
            return
        with self._lock:
            if job.terminal:
                return
            job.status = "running"
            job.started = time.time()
            self._dirty.add(job.id)
        deadline = job.started + job.hours * 3600.0
        request = GenerationRequest.from_options(job.prompt, job.system, job.options,
                                                 default_max_tokens=self.registry[job.tag].max_tokens)
        try:
            stream = backend.generate(request, job.cancel)
            try:
                for piece in stream:
                    if isinstance(piece, Finish):
                        job.finish, job.tokens = piece.reason, piece.tokens
                        continue
                    piece = _valid_text(piece)
                    with self._lock:  # a terminal job's log never changes again
                        if job.terminal:
                            break
                        job.log += piece
                        self._dirty.add(job.id)
                    if time.time() > deadline:
                        self._expire(job)
                        break
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
        except BackendError as exc:
            self._end(job, "error", one_line(exc) or type(exc).__name__)
            return
        if time.time() > deadline and not job.terminal:
            self._expire(job)
        self._end(job, "completed", None)

    def _expire(self, job: JobRecord) -> None:
        self._end(job, "error", _timeout_reason(job))

    def _finish_locked(self, job: JobRecord, status: str, reason: str | None) -> bool:
        """Move to a terminal state unless already there (first one wins)."""
        if job.terminal:
            return False
        # Every field first, the status last: a GET that sees a final status
        # (and caches that job's JSON for good) then also sees its reason.
        job.reason = reason
        job.finished = time.time()
        if job.started is None and status != "cancelled":
            job.started = job.finished
        job.status = status
        job.cancel.set()
        return True

    def _end(self, job: JobRecord, status: str, reason: str | None) -> None:
        with self._lock:
            changed = self._finish_locked(job, status, reason)
        if changed:
            self._save_and_forget([job])

    def _save_and_forget(self, jobs: list[JobRecord]) -> None:
        """Persist terminal jobs, then drop them from memory (GETs then read the store).

        If the store takes no writes now, they stay live (and answered from
        memory); the flusher tries again.
        """
        if not jobs:
            return
        try:
            self.store.save(jobs)
        except StoreUnavailable as exc:
            self._storage_problem(exc)
            return
        with self._lock:
            for job in jobs:
                self._live.pop(job.id, None)
                self._dirty.discard(job.id)
            self._remember(jobs)

    def _housekeeping(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self._flush_once()
                if time.time() - self._pruned_at > _PRUNE_EVERY:
                    self._prune()
            except StoreUnavailable as exc:
                self._storage_problem(exc)
            except Exception:  # pragma: no cover - keep flushing whatever happens
                log.exception("flushing job logs failed")

    def _storage_problem(self, exc: StoreUnavailable) -> None:
        """One line, at most once a minute: a full disk must not fill the log too."""
        now = time.monotonic()
        if now - self._problem_logged_at >= _PROBLEM_LOG_EVERY:
            self._problem_logged_at = now
            log.warning("cannot save jobs: %s (retrying; answering 503 to new jobs meanwhile)", exc)

    def _prune(self) -> None:
        """Forget finished jobs older than ``keep_days``."""
        self._pruned_at = time.time()
        if self.keep_days is None:
            return
        gone = self.store.prune(time.time() - self.keep_days * 86400.0)
        if gone:
            log.info("pruned %d finished job(s) older than %g days", gone, self.keep_days)

    def _flush_once(self) -> None:
        """New text of live jobs to the journal; finished jobs to their rows."""
        now = time.time()
        with self._lock:
            for job in list(self._live.values()):
                if job.status == "running" and job.started and now > job.started + job.hours * 3600.0:
                    self._expire_locked(job)
            dirty, self._dirty = self._dirty, set()
            jobs = [self._live[i] for i in dirty if i in self._live]
        try:
            # A running job's row stays as submitted (a restart ends queued and
            # running jobs alike); only its new text goes to the journal.
            self.store.append_logs(job for job in jobs if not job.terminal)
        except StoreUnavailable:
            with self._lock:  # try these again at the next flush
                self._dirty.update(job.id for job in jobs)
            raise
        with self._lock:
            done = [job for job in self._live.values() if job.terminal]
        self._save_and_forget(done)
        with self._lock:
            idle = not self._live
        if idle or self.store.journal_size() > _JOURNAL_MAX:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Rows take in every live job's whole log; then the journal can be emptied."""
        with self._lock:
            live = list(self._live.values())
        self.store.save(live)
        self.store.truncate_journal()

    def _expire_locked(self, job: JobRecord) -> None:
        if self._finish_locked(job, "error", _timeout_reason(job)):
            self._dirty.add(job.id)
