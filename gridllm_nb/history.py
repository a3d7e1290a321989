"""A local SQLite history of runs, like simonw/llm's logs.

One row per model per run in ``~/.local/share/gridllm_nb/history.sqlite3``
(``$XDG_DATA_HOME`` is honoured; ``$GRIDLLM_HISTORY`` names another file).
What is stored: time, endpoint URL (without user info or query string),
prompt, system prompt, options, and per model the tag, job id, state,
elapsed time, error and text. What is never stored: the token (it is not
passed in, and its value is scrubbed from every stored string anyway).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import TOKEN_ENV
from .private_files import private_file

__all__ = ["HISTORY_ENV", "clean_url", "history_path", "recent", "record", "record_quietly"]

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


def _connect(path: Path) -> sqlite3.Connection:
    private_file(path)  # prompts and answers: the owner's only
    conn = sqlite3.connect(str(path), timeout=5.0)
    conn.executescript(_SCHEMA)
    return conn


def _scrub(value: Any) -> Any:
    token = os.environ.get(TOKEN_ENV)
    if isinstance(value, str) and token and token in value:
        return value.replace(token, "********")
    return value


def record(
    results: Any,
    url: str,
    *,
    system: str | None = None,
    options: Mapping[str, Any] | None = None,
    path: Path | str | None = None,
) -> str:
    """Store one run (a ``Results``); returns its run id."""
    run_id = uuid.uuid4().hex
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    opts = json.dumps(dict(options), ensure_ascii=False) if options else None
    rows = [
        tuple(
            _scrub(v)
            for v in (
                run_id, created, clean_url(url), results.prompt, system, opts, r.tag, r.job_id,
                r.state.value, round(float(r.elapsed), 3), r.error, r.text,
            )
        )
        for r in results.values()
    ]
    with closing(_connect(Path(path) if path else history_path())) as conn, conn:
        conn.executemany(
            "INSERT INTO responses (run_id, created, url, prompt, system, options, tag, job_id,"
            " state, elapsed, error, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return run_id


def record_quietly(results: Any, url: str | None, *, system: str | None = None,
                   options: Mapping[str, Any] | None = None,
                   warn: Callable[[str], None] | None = None) -> str | None:
    """``record`` for a front end: the history is a convenience, so a failure to write
    it never fails the run; it is said in one line (``warn``, default stderr)."""
    try:
        from .config import resolve_endpoint

        return record(results, resolve_endpoint(url).url, system=system, options=options)
    except Exception as exc:  # noqa: BLE001 - any failure (disk full, locked file) is only reported
        (warn or (lambda m: print(f"gridllm: {m}", file=sys.stderr)))(f"history not written: {exc}")
        return None


def recent(n: int = 10, *, path: Path | str | None = None) -> list[dict[str, Any]]:
    """The last ``n`` runs, newest first: dicts with run_id, created, url, prompt, results."""
    file = Path(path) if path else history_path()
    if not file.exists():
        return []
    with closing(_connect(file)) as conn:
        conn.row_factory = sqlite3.Row
        run_ids = [
            row["run_id"]
            for row in conn.execute(
                "SELECT run_id, MAX(id) AS last FROM responses GROUP BY run_id ORDER BY last DESC LIMIT ?",
                (max(0, int(n)),),
            )
        ]
        runs: list[dict[str, Any]] = []
        for run_id in run_ids:
            rows = conn.execute("SELECT * FROM responses WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
            first = rows[0]
            runs.append(
                {
                    "run_id": run_id,
                    "created": first["created"],
                    "url": first["url"],
                    "prompt": first["prompt"],
                    "system": first["system"],
                    "options": json.loads(first["options"]) if first["options"] else None,
                    "results": [
                        {k: row[k] for k in ("tag", "job_id", "state", "elapsed", "error", "text")}
                        for row in rows
                    ],
                }
            )
    return runs
