"""A local SQLite history of runs, like simonw/llm's logs, written while the run goes.

One row per model per run in ``~/.local/share/gridllm_nb/history.sqlite3``
(``$XDG_DATA_HOME`` is honoured; ``$GRIDLLM_HISTORY`` names another file).
A row is written when its job is submitted (state ``submitted`` and the job
id), and updated when the job ends: so a kernel that dies mid-run leaves the
job ids behind, and ``attach`` can follow the jobs again (``RunRecorder``).
What is stored: time, endpoint URL (without user info or query string),
prompt, system prompt, options, hours, and per model the tag, job id, state,
elapsed time, error, text and the run-relative times of ``Result``. A
prompt × model grid is one run too: its rows also hold their prompt's index
(``prompt_index``, None for an ordinary run); ``core.grid.from_history``
gives it back as a ``GridResults``. What is
never stored: the token (it is not passed in, and its value is scrubbed from
every stored string anyway).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..api.jobs import JobState, JobUpdate
from ..config import TOKEN_ENV, Secret, resolve_endpoint
from ..errors import ConfigError
from ..private_files import private_file
from .checks import Verdict
from .results import Result, Results, RunSpec

__all__ = ["HISTORY_ENV", "SCHEMA_VERSION", "RunRecorder", "clean_url", "created_at", "history_path", "is_grid", "load_run",
           "local_time", "new_run_id", "reading", "recent", "record", "results_from_run", "short_id", "stored_run", "unreadable"]

HISTORY_ENV = "GRIDLLM_HISTORY"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    created TEXT NOT NULL,
    url TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system TEXT,
    options TEXT,
    tag TEXT NOT NULL,
    job_id TEXT,
    state TEXT NOT NULL,
    elapsed REAL,
    error TEXT,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_run ON responses (run_id);
"""

# Columns added since the first schema, in order: version N of the file has the first N groups.
# A file written before (``PRAGMA user_version`` 0) gets them with ALTER TABLE on first open.
_ADDED: tuple[tuple[tuple[str, str], ...], ...] = (
    (("hours", "REAL"), ("submitted_s", "REAL"), ("started_s", "REAL"), ("first_token_s", "REAL"),
     ("ended_s", "REAL"), ("finish", "TEXT"), ("tokens", "INTEGER")),
    (("checks", "TEXT"),),  # the verdicts of checks and judges, JSON (``core.checks.Verdict``)
    (("prompt_index", "INTEGER"),),  # a grid's row: its prompt's place in the grid
)
SCHEMA_VERSION = len(_ADDED)

_RUN_COLUMNS = ("run_id", "created", "url", "prompt", "system", "options", "hours")
_RESULT_COLUMNS = ("job_id", "state", "elapsed", "error", "text", "submitted_s", "started_s", "first_token_s",
                   "ended_s", "finish", "tokens", "checks")
_INSERT = (f"INSERT INTO responses ({', '.join(_RUN_COLUMNS + ('prompt_index', 'tag') + _RESULT_COLUMNS)})"
           f" VALUES ({', '.join('?' * (len(_RUN_COLUMNS) + 2 + len(_RESULT_COLUMNS)))})")
_UPDATE = (f"UPDATE responses SET {', '.join(f'{c} = ?' for c in _RESULT_COLUMNS)}"
           " WHERE run_id = ? AND tag = ? AND prompt_index IS ?")


def history_path() -> Path:
    env = os.environ.get(HISTORY_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gridllm_nb" / "history.sqlite3"


def clean_url(url: str) -> str:
    """The URL without user info, query or fragment (where a credential could hide)."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def short_id(run_id: str) -> str:
    """The first 8 characters: what listings show, and enough to name a run (``load_run``)."""
    return run_id[:8]


def _connect(path: Path) -> sqlite3.Connection:
    private_file(path)  # prompts and answers: the owner's only
    conn = sqlite3.connect(str(path), timeout=5.0)
    conn.executescript(_SCHEMA)
    _migrate(conn)
    conn.execute("CREATE INDEX IF NOT EXISTS responses_row ON responses (run_id, tag, prompt_index)")
    return conn


@contextmanager
def reading(file: Path) -> Iterator[sqlite3.Connection]:
    """The history open for reading (rows as ``sqlite3.Row``); a file that is not one (garbage, a
    folder, another program's database) is a one-line ``ConfigError`` saying what to do."""
    try:
        with closing(_connect(file)) as conn:
            conn.row_factory = sqlite3.Row
            yield conn
    except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
        raise ConfigError(unreadable(file, exc)) from None


def unreadable(file: Path, exc: BaseException) -> str:
    """The one line for a history file that cannot be read."""
    return (f"cannot read the history {file} ({exc}): move it aside (a new one is then started) "
            f"or name another with ${HISTORY_ENV}")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a file written by an older version up to ``SCHEMA_VERSION`` (new columns only: old rows stay)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    # Another process (or this one's writer thread) may be migrating the same file: one at a time,
    # and the version read again once this one holds the write lock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        have = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
        for group in _ADDED[version:]:
            for name, kind in group:
                if name not in have:
                    conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
        conn.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class _Scrubber:
    """Every stored string without the token: the environment's, and the run's own."""

    def __init__(self, token: Secret | None = None) -> None:
        secrets = [os.environ.get(TOKEN_ENV) or "", token.reveal() if token else ""]
        self.secrets = [s for s in secrets if s]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "********")
        return value

    def row(self, values: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(self(v) for v in values)


def _result_values(r: Result) -> tuple[Any, ...]:
    """``_RESULT_COLUMNS`` of one result, as they stand now."""
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(float(value), 3)

    return (r.job_id, r.state.value, rounded(r.elapsed), r.error, r.text, rounded(r.submitted_s),
            rounded(r.started_s), rounded(r.first_token_s), rounded(r.ended_s), r.finish_raw, r.service_tokens,
            json.dumps([v.to_dict() for v in r.checks], ensure_ascii=False) if r.checks else None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_values(run_id: str, created: str, url: str, prompt: str, system: str | None,
                options: Mapping[str, Any] | None, hours: float | None) -> tuple[Any, ...]:
    opts = json.dumps(dict(options), ensure_ascii=False) if options else None
    return (run_id, created, clean_url(url), prompt, system, opts, hours)


def _write(path: Path, ops: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    """Apply ``ops`` (``insert`` / ``update`` rows) in order, in one transaction, a batch per kind."""
    with closing(_connect(path)) as conn, conn:
        for kind, group in itertools.groupby(ops, key=lambda op: op[0]):
            conn.executemany(_INSERT if kind == "insert" else _UPDATE, [values for _, values in group])


def record(
    results: Results,
    url: str,
    *,
    system: str | None = None,
    options: Mapping[str, Any] | None = None,
    hours: float | None = None,
    path: Path | str | None = None,
) -> str:
    """Store one finished run (a ``Results``) at once; returns its run id.

    Runs made by ``arun`` are stored as they go (``RunRecorder``); this is
    for Results made some other way.
    """
    run_id = uuid.uuid4().hex
    scrub = _Scrubber()
    head = _run_values(run_id, _now(), url, results.prompt, system, options, hours)
    rows = [("insert", scrub.row(head + (None, r.tag) + _result_values(r))) for r in results.values()]
    _write(Path(path) if path else history_path(), rows)
    return run_id


class RunRecorder:
    """One run's rows, written as its jobs go: a row when a job is submitted, an update when it ends.

    ``observe`` takes every update of the run (``runner`` calls it before
    the front end's ``on_update``) and writes only those two moments, so
    the history costs one insert per job and one update per end, never a
    write per poll. Writes run on a worker thread, in order, batched
    (``executemany``), off the event loop. ``close`` waits for them.

    The history is a convenience: a write that fails never fails the run;
    it is said once, in one line (``warn``, default stderr).

    ``results`` is one run's ``Results``, or a grid's list of them (one per
    prompt, ``run_id`` then given): a grid's rows hold their prompt and its
    index, and each is inserted when its own job is submitted (or ends
    unsent), so a thousand-job grid costs one insert and one update a job.
    ``stored``: the run's rows exist already (a retry or a reattach), so
    every write updates them; otherwise a row's first write inserts it.
    """

    def __init__(self, results: Results | Sequence[Results], spec: RunSpec, url: str, *, stored: bool,
                 path: Path | str | None = None, warn: Callable[[str], None] | None = None,
                 run_id: str | None = None) -> None:
        self.grid = not isinstance(results, Results)
        runs = [results] if isinstance(results, Results) else list(results)
        self.run_id: str = run_id or (runs[0].run_id if runs else None) or ""
        if not self.run_id:
            raise ValueError("a RunRecorder needs a run id")
        self.path = Path(path) if path else history_path()
        self._scrub = _Scrubber(spec.token)
        started = runs[0].started_at if runs and not self.grid else None
        created = (started or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        self._heads = [_run_values(self.run_id, created, url, run.prompt if self.grid else spec.prompt,
                                   spec.system, spec.options, spec.hours) for run in runs]
        self._warn = warn or (lambda m: print(f"gridllm: {m}", file=sys.stderr))
        self._runs = runs
        everything = [(i, r) for i, run in enumerate(runs) for r in run.values()]
        self._key = {id(r): (i if self.grid else None, r.tag) for i, r in everything}  # the row of each result
        self._rows: set[tuple[int | None, str]] = set(self._key.values()) if stored else set()  # rows in the file
        self._job = {self._key[id(r)]: r.job_id for _, r in everything}  # the job each row holds
        self._ended = {self._key[id(r)] for _, r in everything if r.state.terminal}
        self._verdicts = {self._key[id(r)]: list(r.checks) for _, r in everything}  # as last written
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # rows written so far (inserts and updates)
        self.failed: str | None = None  # why the history could not be written, once it could not

    def observe(self, result: Result, update: JobUpdate) -> None:
        """Called with every update; queues a write when a job was submitted or ended."""
        key = self._key[id(result)]
        if update.restarts:  # about to be submitted again: the row waits for the new job
            self._job[key] = None
            self._ended.discard(key)
            return
        if result.job_id and result.job_id != self._job.get(key):
            self._job[key] = result.job_id
            self._ended.discard(key)
            self._queue(result)
        if update.state.terminal and key not in self._ended:
            self._ended.add(key)
            self._verdicts[key] = list(result.checks)
            self._queue(result)
        elif update.state.terminal and result.checks != self._verdicts.get(key, result.checks):
            self._verdicts[key] = list(result.checks)  # a judge's verdict, after the end
            self._queue(result)

    def _queue(self, result: Result) -> None:
        index, tag = key = self._key[id(result)]
        if key in self._rows:
            values = _result_values(result) + (self.run_id, tag, index)
            self._ops.append(("update", self._scrub.row(values)))
        else:
            # A run's first write inserts every model's row, in the order they were asked for
            # (the history and ``attach`` show them so, whichever job was submitted first); a row
            # whose submit is still on its way holds no job id yet, and gets it as an update.
            # A grid's row is inserted on its own: its jobs go out in order, a slot at a time.
            pending = [result] if self.grid else [*self._runs[0].values(), result]
            for r in pending:
                row = self._key[id(r)]
                if row not in self._rows:
                    self._rows.add(row)
                    head = self._heads[row[0] or 0]
                    self._ops.append(("insert", self._scrub.row(head + row + _result_values(r))))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="gridllm-history")

    async def _drain(self) -> None:
        while self._ops:
            ops, self._ops = self._ops, []
            if self.failed:
                continue
            try:
                await asyncio.to_thread(_write, self.path, ops)
                self.written += len(ops)
            except Exception as exc:  # noqa: BLE001 - any failure (disk full, locked file) is only reported
                self.failed = str(exc)
                self._warn(f"history not written ({self.path}): {exc}")

    async def close(self) -> None:
        """Wait until every queued write is done."""
        while self._task is not None and not self._task.done():
            await self._task


def new_run_id() -> str:
    return uuid.uuid4().hex


# -- reading ------------------------------------------------------------------------------------


def _rows_by_run(conn: sqlite3.Connection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for run_id in run_ids:
        rows = conn.execute("SELECT * FROM responses WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        if not rows:
            continue
        first = rows[0]
        runs.append({
            "run_id": run_id,
            "created": first["created"],
            "url": first["url"],
            "prompt": first["prompt"],
            "system": first["system"],
            "options": json.loads(first["options"]) if first["options"] else None,
            "hours": first["hours"],
            "results": [{k: row[k] for k in ("tag", "prompt_index", "prompt") + _RESULT_COLUMNS} for row in rows],
        })
    return runs


def recent(n: int = 10, *, path: Path | str | None = None) -> list[dict[str, Any]]:
    """The last ``n`` runs, newest first (by when they started): dicts with run_id, created, url,
    prompt, system, options, hours, results (one dict per model, or per prompt × model for a grid:
    tag, prompt_index, prompt and the columns of ``_RESULT_COLUMNS``)."""
    file = Path(path) if path else history_path()
    if not file.exists():
        return []
    with reading(file) as conn:
        run_ids = [row["run_id"] for row in conn.execute(
            "SELECT run_id, MIN(id) AS first FROM responses GROUP BY run_id ORDER BY first DESC LIMIT ?",
            (max(0, int(n)),))]
        return _rows_by_run(conn, run_ids)


def _find(conn: sqlite3.Connection, run: str | None, file: Path) -> str:
    """The one run id that ``run`` names (a whole id or its start); the newest run for None."""
    if run is None:
        row = conn.execute("SELECT run_id FROM responses GROUP BY run_id ORDER BY MIN(id) DESC LIMIT 1").fetchone()
        if row is None:
            raise ConfigError(f"no runs in the history yet ({file})")
        return str(row[0])
    wanted = run.strip().lower()
    if not wanted:
        raise ConfigError("an empty run id: `gridllm-nb history` lists the runs with their ids")
    matches = [row[0] for row in conn.execute(
        "SELECT DISTINCT run_id FROM responses WHERE substr(run_id, 1, ?) = ? LIMIT 3", (len(wanted), wanted))]
    if not matches:
        raise ConfigError(f"no run {run} in the history ({file}); `gridllm-nb history` lists them")
    if len(matches) > 1:
        named = ", ".join([short_id(m) for m in matches[:2]] + ["…"] * (len(matches) > 2))
        raise ConfigError(f"{run} names more than one run ({named}): give more of its id")
    return str(matches[0])


def load_run(run: str | None = None, *, path: Path | str | None = None) -> Results:
    """The run ``run`` names (a run id or a unique start of one; default: the newest), as ``Results``.

    They carry the run's id and a ``spec`` (prompt, system prompt, options,
    hours and URL as stored; the token comes from the configuration, never
    from the file), so they can be retried or followed again (``attach``).
    A grid's run is ``core.grid.from_history``'s.
    """
    stored = stored_run(run, path=path)
    if is_grid(stored):
        raise ConfigError(f"run {short_id(stored['run_id'])} is a grid: core.grid.from_history reads it")
    return results_from_run(stored, with_spec=True)


def stored_run(run: str | None = None, *, path: Path | str | None = None) -> dict[str, Any]:
    """The run ``run`` names (default: the newest) as ``recent`` gives runs."""
    file = Path(path) if path else history_path()
    if not file.exists():
        raise ConfigError(f"no runs in the history yet ({file})")
    with reading(file) as conn:
        [stored] = _rows_by_run(conn, [_find(conn, run, file)])
    return stored


def is_grid(run: Mapping[str, Any]) -> bool:
    """Whether a run as ``recent`` returns it is a prompt × model grid."""
    return any(r.get("prompt_index") is not None for r in run.get("results", []))


def _state(value: Any) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        return JobState.LOST


def results_from_run(run: Mapping[str, Any], *, with_spec: bool = False) -> Results:
    """A run as ``recent`` returns it, as ``Results``; ``with_spec`` adds what retrying it needs."""
    results = Results(str(run.get("prompt") or ""), run_id=run.get("run_id"), started_at=created_at(run))
    for r in run.get("results", []):
        results._set(Result(
            tag=r["tag"], job_id=r.get("job_id"), text=r.get("text") or "", state=_state(r.get("state")),
            error=r.get("error"), elapsed=float(r.get("elapsed") or 0.0), finish_raw=r.get("finish"),
            service_tokens=r.get("tokens"), submitted_s=r.get("submitted_s"), started_s=r.get("started_s"),
            first_token_s=r.get("first_token_s"), ended_s=r.get("ended_s"), checks=_verdicts(r.get("checks")),
        ))
    if with_spec:
        results.spec = RunSpec(results.prompt, system=run.get("system"), options=run.get("options"),
                               hours=run.get("hours"), url=_endpoint_url(str(run.get("url") or "")))
    return results


def _verdicts(stored: Any) -> list[Verdict]:
    """The stored verdicts (none where the column is empty or unreadable)."""
    try:
        return [Verdict.from_dict(v) for v in json.loads(stored)] if stored else []
    except (ValueError, TypeError, AttributeError):
        return []


def _endpoint_url(stored: str) -> str | None:
    """The stored URL, or None when it is the configured endpoint's: a default local service is then
    started again on demand, as for a new run."""
    try:
        configured = resolve_endpoint()
    except ConfigError:
        return stored or None
    return None if not stored or clean_url(configured.url) == stored else stored


def local_time(created: str | None) -> str:
    """A ``created`` time from the history, as local ``YYYY-MM-DD HH:MM``."""
    if not created:
        return ""
    try:
        return datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created


def created_at(run: Mapping[str, Any]) -> datetime | None:
    """When the run started, from its ``created`` column (UTC)."""
    try:
        when = datetime.fromisoformat(str(run.get("created")))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
