"""A blind arena: letters instead of model names, votes in the history DB, an Elo leaderboard.

Why blind: a reader who sees "the big model" tends to prefer it. The letters
A, B, C are dealt in a shuffled order (``deal``), names are revealed only
after the vote, and votes go to a ``votes`` table next to ``responses`` in
the history file (``history.history_path()``).

How a vote counts (pairwise, between the models shown in that round):
- a winner tag: a win over each of the other models (for 3 models "A best"
  is two wins);
- ``"tie"``: a tie between every pair;
- ``"bad"`` (all bad): kept in the table and in the ``votes`` count, but
  it moves no rating (nothing says which was less bad).
Ratings are Elo (start 1000, K=32) over the pairwise games in vote order;
the confidence interval is the 2.5–97.5 percentile of the ratings over
bootstrap resamples of the votes (seeded, so the same votes give the same
table).
"""

from __future__ import annotations

import html
import random
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .private_files import private_file

__all__ = ["BAD", "LETTERS", "TIE", "Leaderboard", "Vote", "deal", "leaderboard", "record_vote", "votes"]

LETTERS = "ABCDEFGH"
TIE = "tie"
BAD = "bad"
START, K = 1000.0, 32.0

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


@dataclass(frozen=True)
class Vote:
    """One round: the models in shown order (A, B, ...) and the winner tag, ``"tie"`` or ``"bad"``."""

    models: tuple[str, ...]
    winner: str
    prompt: str = ""
    run_id: str | None = None
    created: str = ""


def deal(tags: Sequence[str], rng: random.Random | None = None) -> dict[str, str]:
    """Letter → tag in a shuffled order (pass a seeded ``rng`` for a repeatable deal)."""
    shuffled = list(tags)
    (rng or random.Random()).shuffle(shuffled)
    return dict(zip(LETTERS, shuffled))


def _path(path: Path | str | None) -> Path:
    if path:
        return Path(path)
    from .history import history_path

    return history_path()


def record_vote(vote: Vote, *, path: Path | str | None = None) -> None:
    """Append a vote to the ``votes`` table (created if missing; ``responses`` is untouched)."""
    if vote.winner not in (TIE, BAD) and vote.winner not in vote.models:
        raise ValueError(f"winner {vote.winner!r} is none of {vote.models!r}, 'tie' or 'bad'")
    file = private_file(_path(path))
    created = vote.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    with closing(sqlite3.connect(str(file), timeout=5.0)) as conn, conn:
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT INTO votes (created, run_id, prompt, models, winner) VALUES (?, ?, ?, ?, ?)",
            (created, vote.run_id, vote.prompt, "\n".join(vote.models), vote.winner),
        )


def votes(path: Path | str | None = None) -> list[Vote]:
    """All stored votes, oldest first; none for a missing file or an old DB without the table."""
    file = _path(path)
    if not file.exists():
        return []
    with closing(sqlite3.connect(str(file), timeout=5.0)) as conn:
        try:
            rows = conn.execute("SELECT created, run_id, prompt, models, winner FROM votes ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # history written before the arena existed
            return []
    return [Vote(tuple(m.split("\n")), w, p, r, c) for c, r, p, m, w in rows]


def _games(vs: Iterable[Vote]) -> list[tuple[str, str, float]]:
    """Pairwise games (a, b, score of a: 1 win, 0.5 tie)."""
    games: list[tuple[str, str, float]] = []
    for v in vs:
        if v.winner == BAD:
            continue
        if v.winner == TIE:
            ms = v.models
            games += [(ms[i], ms[j], 0.5) for i in range(len(ms)) for j in range(i + 1, len(ms))]
        else:
            games += [(v.winner, m, 1.0) for m in v.models if m != v.winner]
    return games


def _elo(games: Iterable[tuple[str, str, float]], models: Iterable[str]) -> dict[str, float]:
    rating = {m: START for m in models}
    for a, b, score in games:
        expected = 1.0 / (1.0 + 10 ** ((rating[b] - rating[a]) / 400.0))
        rating[a] += K * (score - expected)
        rating[b] -= K * (score - expected)
    return rating


class Leaderboard:
    """Elo ratings with a bootstrap confidence interval, as a DataFrame and an inline SVG."""

    def __init__(self, vs: Sequence[Vote], *, rounds: int = 200, seed: int = 0) -> None:
        self.votes = list(vs)
        models = sorted({m for v in self.votes for m in v.models})
        self.rating = _elo(_games(self.votes), models)
        rng = random.Random(seed)
        samples: dict[str, list[float]] = {m: [] for m in models}
        for _ in range(rounds if self.votes else 0):
            boot = _elo(_games(rng.choices(self.votes, k=len(self.votes))), models)
            for m in models:
                samples[m].append(boot[m])
        self.rows: list[dict[str, Any]] = []
        for m in models:
            s = sorted(samples[m]) or [self.rating[m]]
            played = [g for g in _games(self.votes) if m in g[:2]]
            wins = sum(1 for a, b, sc in played if (sc == 1.0 and a == m))
            losses = sum(1 for a, b, sc in played if (sc == 1.0 and b == m))
            self.rows.append({
                "model": m, "rating": round(self.rating[m], 1),
                "ci_low": round(s[int(0.025 * (len(s) - 1))], 1),
                "ci_high": round(s[round(0.975 * (len(s) - 1))], 1),
                "votes": sum(1 for v in self.votes if m in v.models),
                "wins": wins, "losses": losses, "ties": len(played) - wins - losses,
            })
        self.rows.sort(key=lambda r: -r["rating"])

    def to_pandas(self) -> Any:
        import pandas as pd

        columns = ["model", "rating", "ci_low", "ci_high", "votes", "wins", "losses", "ties"]
        return pd.DataFrame(self.rows, columns=columns)

    def __repr__(self) -> str:
        if not self.rows:
            return "Leaderboard (no votes yet)"
        lines = [f"{'model':<24} {'rating':>7} {'95% CI':>15} {'votes':>5} {'W':>3} {'L':>3} {'T':>3}"]
        for r in self.rows:
            ci = f"{r['ci_low']:.0f}–{r['ci_high']:.0f}"
            lines.append(f"{r['model']:<24} {r['rating']:>7.1f} {ci:>15} {r['votes']:>5} "
                         f"{r['wins']:>3} {r['losses']:>3} {r['ties']:>3}")
        return "\n".join(lines)

    def _svg(self) -> str:
        """Ratings as dots with CI whiskers, one row per model; tag names escaped."""
        lo = min(r["ci_low"] for r in self.rows) - 10
        hi = max(r["ci_high"] for r in self.rows) + 10
        width, left, row = 420, 150, 22

        def x(v: float) -> float:
            return left + (v - lo) / (hi - lo) * (width - left - 10)

        parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(self.rows) + 8}"'
                  ' role="img" aria-label="Elo ratings with 95% confidence intervals">')]
        for i, r in enumerate(self.rows):
            y = 14 + i * row
            parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" font-size="12">'
                         f'{html.escape(r["model"])}</text>'
                         f'<line x1="{x(r["ci_low"]):.1f}" x2="{x(r["ci_high"]):.1f}" y1="{y}" y2="{y}"'
                         ' stroke="#888" stroke-width="2"/>'
                         f'<circle cx="{x(r["rating"]):.1f}" cy="{y}" r="4" fill="#1f77b4"/>')
        parts.append("</svg>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        if not self.rows:
            return "<p>No arena votes yet.</p>"
        head = "".join(f"<th>{h}</th>" for h in ("model", "rating", "95% CI", "votes", "wins", "losses", "ties"))
        body = "".join(
            f"<tr><td>{html.escape(r['model'])}</td><td>{r['rating']:.1f}</td>"
            f"<td>{r['ci_low']:.0f}–{r['ci_high']:.0f}</td><td>{r['votes']}</td>"
            f"<td>{r['wins']}</td><td>{r['losses']}</td><td>{r['ties']}</td></tr>"
            for r in self.rows
        )
        return f'<div class="gridllm-leaderboard"><table><tr>{head}</tr>{body}</table>{self._svg()}</div>'


def leaderboard(path: Path | str | None = None, *, rounds: int = 200, seed: int = 0) -> Leaderboard:
    """The arena's ranking from the votes in the history DB (or ``path``)."""
    return Leaderboard(votes(path), rounds=rounds, seed=seed)
