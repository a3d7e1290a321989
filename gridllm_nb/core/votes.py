"""The arena's votes: one row per blind round in the history file, who cast it, and the export.

Votes sit in a ``votes`` table next to ``responses`` in the history file
(``history.history_path()``), so the ranking and the answers it came from
travel together. Each vote keeps the models in shown order (A, B[, C]), the
winner (a tag, ``"tie"`` or ``"bad"``), the prompt, the run it points to,
when it was cast (UTC) and its ``owner``: the login name of the user who
cast it (``getpass.getuser()``), so ``leaderboard(mine=True)`` counts one
person's votes in a shared file. Votes stored before the owner was kept
have none and are nobody's, not "mine".

The table grows by adding columns (``_ADDED``), never by rewriting rows: a
file written by an older version gains the column on its next vote. Reading
never changes the file.

``export`` writes the votes as CSV or JSON, chosen by the file's extension,
for a spreadsheet or another tool. In the CSV a cell that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@`` first) is prefixed with
``'``; the JSON keeps every text exactly.
"""

from __future__ import annotations

import csv
import getpass
import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError
from ..private_files import private_file

__all__ = ["BAD", "EXPORT_FORMATS", "TIE", "Vote", "current_owner", "export", "games", "record_vote", "votes", "write_csv"]

TIE = "tie"
BAD = "bad"
EXPORT_FORMATS = (".csv", ".json")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    run_id TEXT,
    prompt TEXT NOT NULL,
    models TEXT NOT NULL,
    winner TEXT NOT NULL
);
"""
# Columns added since the first table, each nullable: old rows read them as NULL.
_ADDED = (("owner", "TEXT"),)
_COLUMNS = ("created", "run_id", "prompt", "models", "winner") + tuple(name for name, _ in _ADDED)


@dataclass(frozen=True)
class Vote:
    """One round: the models in shown order (A, B, ...) and the winner tag, ``"tie"`` or ``"bad"``.

    ``owner``: who cast it (``current_owner()`` when it is recorded); None for a vote from before owners.
    """

    models: tuple[str, ...]
    winner: str
    prompt: str = ""
    run_id: str | None = None
    created: str = ""
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"created": self.created, "models": list(self.models), "winner": self.winner, "prompt": self.prompt,
                "run_id": self.run_id, "owner": self.owner}


def current_owner() -> str | None:
    """This machine's login name, the owner of the votes cast here (None where the system has none)."""
    try:
        return getpass.getuser() or None
    except (OSError, KeyError, ImportError):  # no $USER and no passwd entry (a bare container)
        return None


def _path(path: Path | str | None) -> Path:
    if path:
        return Path(path)
    from .history import history_path

    return history_path()


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns a table from an older version lacks (another process may add one at the same time)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
    for name, kind in _ADDED:
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE votes ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


def record_vote(vote: Vote, *, path: Path | str | None = None) -> None:
    """Append a vote to the ``votes`` table (created if missing; ``responses`` is untouched).

    A vote without an owner is recorded as this user's (``current_owner``).
    """
    if vote.winner not in (TIE, BAD) and vote.winner not in vote.models:
        raise ValueError(f"winner {vote.winner!r} is none of {vote.models!r}, 'tie' or 'bad'")
    file = private_file(_path(path))
    created = vote.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    owner = vote.owner if vote.owner is not None else current_owner()
    with closing(sqlite3.connect(str(file), timeout=5.0)) as conn, conn:
        conn.executescript(_SCHEMA)
        _migrate(conn)
        conn.execute(
            f"INSERT INTO votes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (created, vote.run_id, vote.prompt, "\n".join(vote.models), vote.winner, owner),
        )


def votes(path: Path | str | None = None, *, mine: bool = False) -> list[Vote]:
    """All stored votes, oldest first (``mine``: only those this user cast); none for a missing file
    or an old DB without the table.

    A file that is no history (garbage, a folder) is a one-line ``ConfigError``.
    """
    from .history import unreadable

    file = _path(path)
    if not file.exists():
        return []
    try:
        with closing(sqlite3.connect(str(file), timeout=5.0)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "votes" not in tables:  # history written before the arena existed
                return []
            have = {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
            columns = ", ".join(c if c in have else f"NULL AS {c}" for c in _COLUMNS)
            rows = conn.execute(f"SELECT {columns} FROM votes ORDER BY id").fetchall()
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(unreadable(file, exc)) from None
    found = [Vote(tuple(str(m).split("\n")), str(w), str(p), r, str(c), o) for c, r, p, m, w, o in rows]
    if mine:
        me = current_owner()
        found = [v for v in found if me is not None and v.owner == me]
    return found


Game = tuple[str, str, float]  # (a, b, a's score: 1 a win, 0.5 a tie)


def games(vote: Vote) -> list[Game]:
    """The pairwise games a vote makes, between the models shown in that round.

    A winner: a win over each other model (for 3 models "C better" is two
    games and says nothing about A against B). ``"tie"``: a tie between every
    pair. ``"bad"`` (all bad): no game, since nothing says which was less bad.
    """
    if vote.winner == BAD:
        return []
    ms = vote.models
    if vote.winner == TIE:
        return [(ms[i], ms[j], 0.5) for i in range(len(ms)) for j in range(i + 1, len(ms))]
    return [(vote.winner, m, 1.0) for m in ms if m != vote.winner]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export(vs: Iterable[Vote], path: Path | str) -> Path:
    """Write the votes to ``path``: ``.csv`` (one row a vote: created, model_a, model_b, model_c,
    winner, prompt, run_id, owner) or ``.json`` (a list of ``Vote.to_dict()``). Returns the path."""
    file = Path(path)
    kind = file.suffix.lower()
    if kind not in EXPORT_FORMATS:
        raise ConfigError(f"export votes to a .csv or .json file, not {file.name!r}")
    vs = list(vs)
    try:
        if kind == ".json":
            file.write_text(json.dumps([v.to_dict() for v in vs], ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
        else:
            with file.open("w", encoding="utf-8", newline="") as out:
                write_csv(vs, out)
    except OSError as exc:
        raise ConfigError(f"cannot write {file}: {exc.strerror or exc}") from None
    return file


def write_csv(vs: Sequence[Vote], out: TextIO) -> None:
    """The votes as CSV to a text stream (``export``'s ``.csv``, and ``gridllm-nb votes`` on stdout)."""
    width = max((len(v.models) for v in vs), default=2)
    letters = [f"model_{chr(ord('a') + i)}" for i in range(max(width, 2))]
    writer = csv.writer(out)
    writer.writerow(["created", *letters, "winner", "prompt", "run_id", "owner"])
    for v in vs:
        shown = list(v.models) + [""] * (len(letters) - len(v.models))
        writer.writerow([_cell(x) for x in (v.created, *shown, v.winner, v.prompt, v.run_id, v.owner)])
