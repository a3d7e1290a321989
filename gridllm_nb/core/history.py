"""A local SQLite history of runs, like simonw/llm's logs, written while the run goes.

One row per model per run in ``~/.local/share/gridllm_nb/history.sqlite3``
(``$XDG_DATA_HOME`` is honoured; ``$GRIDLLM_HISTORY`` names another file).
Every row of a run is written when its first job is submitted (state
``submitted``; a job not sent yet has no job id), updated with its job id
when that job is submitted, and again when it ends (``recorder.RunRecorder``):
so a kernel that dies mid-run leaves every job behind, and ``attach`` can
follow the sent ones again, ``retry`` send the others. This module holds the
schema, its migrations and the reading. What is stored: time, endpoint URL
(without user info or query string), prompt, system prompt, options, hours,
the checks and judges (``assessors``: a Python callable by its name only),
and per model the tag, job id, state, elapsed time, error, text, verdicts and
the run-relative times of ``Result``. A prompt × model grid is one run too:
its rows also hold their prompt's index (``prompt_index``, None for an
ordinary run) and, with checks or judges, their prompt's row (``prompt_row``,
what their ``{column}`` fields read); ``core.grid_history.from_history``
gives it back as a ``GridResults``. What is
never stored: the token (it is not passed in, and its value is scrubbed from
every stored string anyway).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..api.jobs import JobState
from ..config import resolve_endpoint
from ..errors import ConfigError
from ..private_files import private_file
from .checks import BUILT_INS, Check, Verdict, parse_check
from .judge import DEFAULT_RUBRIC, Judge, judge
from .results import Result, Results, RunSpec

__all__ = ["HISTORY_ENV", "INSERT", "SCHEMA_VERSION", "UPDATE", "clean_url", "connect", "created_at", "history_path",
           "is_grid", "kept_assessors", "load_run", "local_time", "reading", "recent", "results_from_run", "short_id",
           "spec_of_run", "stored_run", "unkept_line", "unreadable"]

HISTORY_ENV = "GRIDLLM_HISTORY"
_ALL = 2**63 - 1  # SQLite's largest LIMIT: asking for more runs than that is asking for them all

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
    (("assessors", "TEXT"), ("prompt_row", "TEXT")),  # the checks and judges, and the row they read (JSON)
)
SCHEMA_VERSION = len(_ADDED)

_RUN_COLUMNS = ("run_id", "created", "url", "prompt", "system", "options", "hours", "assessors", "prompt_row")
_RESULT_COLUMNS = ("job_id", "state", "elapsed", "error", "text", "submitted_s", "started_s", "first_token_s",
                   "ended_s", "finish", "tokens", "checks")
INSERT = (f"INSERT INTO responses ({', '.join(_RUN_COLUMNS + ('prompt_index', 'tag') + _RESULT_COLUMNS)})"
           f" VALUES ({', '.join('?' * (len(_RUN_COLUMNS) + 2 + len(_RESULT_COLUMNS)))})")
UPDATE = (f"UPDATE responses SET {', '.join(f'{c} = ?' for c in _RESULT_COLUMNS)}"
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


def connect(path: Path) -> sqlite3.Connection:
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
        with closing(connect(file)) as conn:
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
            "assessors": first["assessors"],
            "results": [{k: row[k] for k in ("tag", "prompt_index", "prompt", "prompt_row") + _RESULT_COLUMNS}
                        for row in rows],
        })
    return runs


def recent(n: int = 10, *, path: Path | str | None = None) -> list[dict[str, Any]]:
    """The last ``n`` runs, newest first (by when they started): dicts with run_id, created, url,
    prompt, system, options, hours, assessors (JSON, ``kept_assessors``), results (one dict per model,
    or per prompt × model for a grid: tag, prompt_index, prompt, prompt_row and the columns of
    ``_RESULT_COLUMNS``)."""
    file = Path(path) if path else history_path()
    if not file.exists():
        return []
    with reading(file) as conn:
        run_ids = [row["run_id"] for row in conn.execute(
            "SELECT run_id, MIN(id) AS first FROM responses GROUP BY run_id ORDER BY first DESC LIMIT ?",
            (min(max(0, int(n)), _ALL),))]
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
    A grid's run is ``core.grid_history.from_history``'s.
    """
    stored = stored_run(run, path=path)
    if is_grid(stored):
        raise ConfigError(f"run {short_id(stored['run_id'])} is a grid: core.grid_history.from_history reads it")
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
        results.spec = spec_of_run(run)
    return results


def spec_of_run(run: Mapping[str, Any]) -> RunSpec:
    """What retrying a run as ``recent`` returns it needs: its prompt, system prompt, options, hours, URL,
    and its checks and judges made again (those that cannot be: ``RunSpec.unkept_checks``)."""
    checks, unkept = _assessors(run)
    return RunSpec(str(run.get("prompt") or ""), system=run.get("system"), options=run.get("options"),
                   hours=run.get("hours"), url=_endpoint_url(str(run.get("url") or "")), checks=checks,
                   unkept_checks=unkept)


def kept_assessors(items: Sequence[Any]) -> str | None:
    """A run's checks and judges as the history keeps them (JSON; None without any): a built-in check
    by its spec, a judge by what ``judge()`` takes; anything else (a Python callable) by its name
    only, since it cannot come back from a file."""
    if not items:
        return None
    kept: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Judge):
            kept.append({"judge": item.model, "rubric": item.rubric, "scale": item.scale, "pass_mark": item.pass_mark,
                         "options": dict(item.options), "pairwise": item.pairwise})
            continue
        kind, _, argument = str(getattr(item, "name", "")).partition(":")
        built_in = BUILT_INS.get(kind)
        if (isinstance(item, Check) and item.test is None and built_in is not None and built_in[0] is item.make
                and argument == item.argument):
            kept.append({"check": item.name})
        else:
            kept.append({"name": str(getattr(item, "name", None) or type(item).__name__)})
    return json.dumps(kept, ensure_ascii=False, default=str)


def _assessors(run: Mapping[str, Any]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """The checks and judges ``kept_assessors`` stored for ``run``, made again, and the names of those
    that cannot be: a Python callable, a check that no longer parses (its schema file gone), or every
    verdict's of a run written before the history kept them."""
    stored = run.get("assessors")
    if not stored:
        names = (v.name for r in run.get("results", []) for v in _verdicts(r.get("checks")))
        return (), tuple(dict.fromkeys(names))
    try:
        entries = [e for e in json.loads(stored) if isinstance(e, dict)]
    except (ValueError, TypeError):
        return (), ()
    made: list[Any] = []
    unkept: list[str] = []
    for entry in entries:
        try:
            if "judge" in entry:
                made.append(judge(entry["judge"], entry.get("rubric") or DEFAULT_RUBRIC, scale=entry.get("scale", 10),
                                  pass_mark=entry.get("pass_mark", 0.5), options=entry.get("options"),
                                  pairwise=bool(entry.get("pairwise"))))
            elif "check" in entry:
                made.append(parse_check(entry["check"]))
            else:
                unkept.append(str(entry.get("name")))
        except (ConfigError, TypeError, ValueError):
            unkept.append(str(entry.get("judge") or entry.get("check")))
    return tuple(made), tuple(unkept)


def unkept_line(names: Sequence[str]) -> str:
    """The one line a retry or a reattach says of the checks and judges it cannot run on the new answers."""
    return (f"not run on the answers that end now: {', '.join(names)} (the history keeps no Python code, "
            f"nor the checks of a run written by an older gridllm_nb)")


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
