"""SQLite persistence of jobs, so every job, its status and its log survive a restart.

WAL mode lets the GET handlers read while a flush writes; ``synchronous=NORMAL``
keeps commits off the disk's fsync path (a crash can lose at most the last
~100 ms of log, never the database). Only the stdlib ``sqlite3`` is used.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RESTART_REASON", "TERMINAL", "JobRecord", "JobStore"]

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
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
"""
_COLUMNS = ("id", "tag", "app", "command_line", "prompt", "system", "options",
            "hours", "status", "log", "reason", "created", "started", "finished", "seq", "finish", "tokens")
# Columns added after the first release: (name, type) added to older files on open.
_ADDED_COLUMNS = (("finish", "TEXT"), ("tokens", "INTEGER"))


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

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def _row(self) -> tuple[Any, ...]:
        return (self.id, self.tag, self.app, self.command_line, self.prompt, self.system,
                json.dumps(self.options), self.hours, self.status, self.log, self.reason,
                self.created, self.started, self.finished, self.seq, self.finish, self.tokens)

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> JobRecord:
        values = dict(zip(_COLUMNS, row))
        values["options"] = json.loads(values["options"] or "{}")
        return cls(**values)


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
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
            if exclusive:
                self._lock_file = open(f"{self.path}.lock", "a")  # noqa: SIM115 - held for the store's life
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    self._lock_file.close()
                    raise ConfigError(f"job database {self.path} is in use by another gridllm_nb service") from None
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

        Requeueing was considered and rejected: a half-streamed answer that
        restarts from scratch would confuse a client mid-stream, while an
        explicit error is something it already knows how to show.
        """
        with self._write_lock:
            cur = self._write.execute(
                "UPDATE jobs SET status='error', reason=?, finished=COALESCE(finished, ?) "
                "WHERE status NOT IN ('completed','error','cancelled')",
                (RESTART_REASON, now),
            )
            return cur.rowcount

    def save(self, records: Iterable[JobRecord]) -> None:
        """Upsert whole records in one transaction (the flusher's batch)."""
        records = list(records)
        if not records:
            return
        marks = ",".join("?" * len(_COLUMNS))
        with self._write_lock:
            # Rows are built under the lock so a later save always carries a
            # newer-or-equal view of a record than an earlier one.
            rows = [r._row() for r in records]
            self._write.execute("BEGIN")
            try:
                self._write.executemany(f"INSERT OR REPLACE INTO jobs ({','.join(_COLUMNS)}) VALUES ({marks})", rows)
            except BaseException:
                self._write.execute("ROLLBACK")
                raise
            self._write.execute("COMMIT")

    def get(self, ids: Sequence[str]) -> dict[str, JobRecord]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._read_lock:
            rows = self._read.execute(f"SELECT {','.join(_COLUMNS)} FROM jobs WHERE id IN ({marks})", list(ids)).fetchall()
        return {row[0]: JobRecord._from_row(row) for row in rows}

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
