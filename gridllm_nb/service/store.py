"""SQLite persistence of jobs, so every job, its status and its log survive a restart.

WAL mode lets the GET handlers read while a flush writes; ``synchronous=NORMAL``
keeps commits off the disk's fsync path (a crash can lose at most the last
~100 ms of log, never the database). Only the stdlib ``sqlite3`` is used.

A job's row is written twice: when it is submitted and when it ends, with
the whole log. In between, a running job's log grows by a few bytes per
~100 ms flush, and rewriting the row each time would write the whole log, in
4 KB pages, over and over (``benchmarks/service.py`` measures the bytes written per
byte of answer). So each flush appends only the new text to a journal file
beside the database (``<db>.logs``, one JSON line ``[job id, offset, text]``
per flush; not SQLite's own ``-journal``); a restart replays it onto the
rows it left unfinished, and it is emptied whenever no job is live.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..private_files import private_file
from ..text import one_line

__all__ = ["RESTART_REASON", "TERMINAL", "JobRecord", "JobStore", "StoreUnavailable"]

TERMINAL = frozenset({"completed", "error", "cancelled"})
RESTART_REASON = "interrupted by service restart"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tag TEXT NOT NULL,
    app TEXT NOT NULL,
    command_line TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    hours REAL NOT NULL,
    status TEXT NOT NULL,
    log TEXT NOT NULL DEFAULT '',
    reason TEXT,
    created TEXT NOT NULL,
    started REAL,
    finished REAL,
    seq INTEGER NOT NULL DEFAULT 0,
    finish TEXT,
    tokens INTEGER
);
-- No index on status: it would cost a page write on every save, and only the
-- start-up recovery and the hourly prune ask by status (a scan of a table
-- that retention keeps small).
DROP INDEX IF EXISTS jobs_status;
"""
_COLUMNS = ("id", "tag", "app", "command_line", "prompt", "system", "options",
            "hours", "status", "log", "reason", "created", "started", "finished", "seq", "finish", "tokens")
# Columns added after the first release: (name, type) added to older files on open.
_ADDED_COLUMNS = (("finish", "TEXT"), ("tokens", "INTEGER"))


class StoreUnavailable(Exception):
    """The database takes no writes now (disk full, read-only file): the API answers
    503 with this one line, and writing resumes by itself once it can."""


def _unavailable(exc: BaseException, path: str) -> StoreUnavailable:
    text = str(exc).lower()
    if "full" in text or getattr(exc, "errno", None) == 28:  # ENOSPC
        return StoreUnavailable(f"database is full: {path}")
    if "readonly" in text or "read-only" in text or getattr(exc, "errno", None) in (13, 30):  # EACCES, EROFS
        return StoreUnavailable(f"database is read-only: {path}")
    return StoreUnavailable(f"database cannot be written ({one_line(exc)}): {path}")


@dataclass
class JobRecord:
    """One job as stored; the in-memory copy of a live job is the same object.

    ``started``/``finished`` are epoch seconds (runtime = finished - started);
    ``created`` is the ISO 8601 text the API shows.
    """

    id: str
    tag: str
    app: str
    command_line: str
    prompt: str
    system: str | None
    options: dict[str, Any]
    hours: float
    created: str
    status: str = "queued"
    log: str = ""
    reason: str | None = None
    started: float | None = None
    finished: float | None = None
    seq: int = 0
    # Why generation ended on its own ("stop" or "length") and the tokens made;
    # None where the engine does not say.
    finish: str | None = None
    tokens: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    # The status JSON of a finished job, rendered once (it can no longer change).
    rendered: bytes | None = field(default=None, repr=False, compare=False)
    # What the store holds of this job: its row's status, and how much of the
    # log the row and the journal hold together.
    saved_status: str | None = field(default=None, repr=False, compare=False)
    saved_len: int = field(default=0, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def _row(self) -> tuple[Any, ...]:
        log, status = self.log, self.status
        self.saved_status, self.saved_len = status, len(log)
        return (self.id, self.tag, self.app, self.command_line, self.prompt, self.system,
                json.dumps(self.options), self.hours, status, log, self.reason,
                self.created, self.started, self.finished, self.seq, self.finish, self.tokens)

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> JobRecord:
        values = dict(zip(_COLUMNS, row))
        values["options"] = json.loads(values["options"] or "{}")
        record = cls(**values)
        record.saved_status, record.saved_len = record.status, len(record.log)
        return record


class JobStore:
    """Thread-safe access: one writer connection and one reader connection, each locked.

    A service holds an exclusive lock file beside the database (``exclusive``),
    because ``recover()`` would otherwise end the live jobs of another service
    using the same file. Pass ``exclusive=False`` only to inspect a database.
    """

    def __init__(self, path: str | Path, *, exclusive: bool = True) -> None:
        from ..errors import ConfigError

        self.path = str(path)
        self._lock_file = None
        try:
            self._open(exclusive)
        except (sqlite3.Error, OSError) as exc:
            if self._lock_file is not None:
                self._lock_file.close()
            raise ConfigError(str(_unavailable(exc, self.path))) from None

    def _open(self, exclusive: bool) -> None:
        from ..errors import ConfigError

        if self.path != ":memory:":
            # The real path: a second service reaching the same file through a symlink takes the same lock.
            self.path = os.path.realpath(Path(self.path).expanduser())
            for suffix in ("", ".lock", ".logs"):
                private_file(self.path + suffix)
            if exclusive:
                self._lock_file = open(f"{self.path}.lock", "a")  # noqa: SIM115 - held for the store's life
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    self._lock_file.close()
                    raise ConfigError(f"job database {self.path} is in use by another gridllm_nb service") from None
        self.journal_path = None if self.path == ":memory:" else Path(f"{self.path}.logs")
        self._journal_lock = threading.Lock()
        self._write = self._connect()
        self._write.executescript(_SCHEMA)
        present = {row[1] for row in self._write.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in present:
                self._write.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        self._read = self._connect() if self.path != ":memory:" else self._write
        self._write_lock = threading.Lock()
        self._read_lock = self._write_lock if self._read is self._write else threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def recover(self, now: float) -> int:
        """End every job a previous process left unfinished: ``error``, log kept, reason stated.

        The journal's text is put back onto those rows first, then emptied.
        They are not requeued: a half-streamed answer that restarts from
        scratch would confuse a client mid-stream, while an explicit error is
        something it already knows how to show.
        """
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE status NOT IN ('completed','error','cancelled')"
            ).fetchall()
        unfinished = self._replay([JobRecord._from_row(row) for row in rows])
        for job in unfinished:
            job.status, job.reason = "error", RESTART_REASON
            job.finished = job.finished or now
        self.save(unfinished)
        self.truncate_journal()
        return len(unfinished)

    # -- the journal of growing logs ------------------------------------------------
    def append_logs(self, jobs: Iterable[JobRecord]) -> None:
        """Journal what each job's log gained since the store last saw it (one write)."""
        lines, lengths = [], []
        for job in jobs:
            log, start = job.log, job.saved_len
            if len(log) > start:
                lines.append(json.dumps([job.id, start, log[start:]], ensure_ascii=False, separators=(",", ":")))
                lengths.append((job, len(log)))
        if not lines:
            return
        if self.journal_path is not None:  # an in-memory store has nothing to survive
            data = ("\n".join(lines) + "\n").encode("utf-8")
            try:
                with self._journal_lock, open(self.journal_path, "ab") as journal:
                    journal.write(data)
            except OSError as exc:
                raise _unavailable(exc, str(self.journal_path)) from None
        for job, length in lengths:
            job.saved_len = length

    def journal_size(self) -> int:
        try:
            return self.journal_path.stat().st_size if self.journal_path else 0
        except FileNotFoundError:
            return 0

    def truncate_journal(self) -> None:
        """Empty the journal; call only when every live job's row holds its whole log."""
        if self.journal_path is not None and self.journal_size():
            with self._journal_lock:
                self.journal_path.write_bytes(b"")

    def _replay(self, records: list[JobRecord]) -> list[JobRecord]:
        """Add the journal's text to unfinished records, in order, where it continues them."""
        pending = {r.id: r for r in records if not r.terminal}
        if not pending or not self.journal_size():
            return records
        with self._journal_lock:
            data = self.journal_path.read_bytes()  # type: ignore[union-attr]
        for line in data.splitlines():
            try:
                job_id, at, text = json.loads(line)
            except (ValueError, TypeError):
                continue  # a line cut short by a crash
            if not (type(job_id) is str and type(at) is int and type(text) is str):
                continue  # not a line this store wrote ([id, offset, text]): skipped like a cut one
            job = pending.get(job_id)
            if job is not None and at == len(job.log):
                job.log += text
                job.saved_len = len(job.log)
        return records

    def save(self, records: Iterable[JobRecord]) -> None:
        """Upsert whole records in one transaction (the flusher's batch)."""
        records = list(records)
        if not records:
            return
        marks = ",".join("?" * len(_COLUMNS))
        with self._write_lock:
            # Rows are built under the lock so a later save always carries a
            # newer-or-equal view of a record than an earlier one.
            saved = [(r, r.saved_status, r.saved_len) for r in records]
            rows = [r._row() for r in records]
            try:
                self._write.execute("BEGIN")
                try:
                    self._write.executemany(
                        f"INSERT INTO jobs ({','.join(_COLUMNS)}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET "
                        + ",".join(f"{c}=excluded.{c}" for c in _COLUMNS[1:]), rows)
                    self._write.execute("COMMIT")
                except BaseException:
                    if self._write.in_transaction:  # SQLite ends it by itself on a full disk
                        self._write.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                for record, status, length in saved:  # nothing was saved after all
                    record.saved_status, record.saved_len = status, length
                raise _unavailable(exc, self.path) from None

    def get(self, ids: Sequence[str]) -> dict[str, JobRecord]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._read_lock:
            rows = self._read.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE id IN ({marks})", list(ids)).fetchall()
        return {r.id: r for r in self._replay([JobRecord._from_row(row) for row in rows])}

    def prune(self, finished_before: float) -> int:
        """Delete jobs that ended before ``finished_before`` (epoch s); freed pages are reused,
        so under steady use the file stops growing. Returns how many went."""
        try:
            with self._write_lock:
                cur = self._write.execute(
                    "DELETE FROM jobs WHERE status IN ('completed','error','cancelled') AND finished < ?",
                    (finished_before,))
                return cur.rowcount
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc, self.path) from None

    def max_seq(self) -> int:
        with self._read_lock:
            (value,) = self._read.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()
        return int(value)

    def close(self) -> None:
        with self._write_lock:
            self._write.close()
        if self._read is not self._write:
            with self._read_lock:
                self._read.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
