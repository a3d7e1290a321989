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

With three models, "C better" is two games (C beat A, C beat B) and says
nothing about A against B, so no game is made up for that pair; "Tie" is
three ties; "All bad" is one vote for each of the three, and no game.

``ArenaRound`` is the blindness itself, shared by the panel
(``Panel(arena=True)``) and the magic (``%%gridllm --arena``): the deal,
the masking of every name in what the browser is sent (titles, errors,
status lines, lettered ``Results``) until the vote, and the vote. What it
does not mask is the answers' text: the answers are what is judged, and a
model that names itself gives itself away as it would in any blind arena.
"""

from __future__ import annotations

import html
import os
import random
import re
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api import checks
from ..api.jobs import JobUpdate
from ..errors import ConfigError
from ..private_files import private_file
from .results import Result, Results

__all__ = ["BAD", "LETTERS", "TIE", "ArenaRound", "Leaderboard", "Vote", "deal", "leaderboard", "record_vote",
           "unvoted_runs", "votes"]

LETTERS = "ABCDEFGH"
TIE = "tie"
BAD = "bad"
START, K = 1000.0, 32.0
ARENA_MODELS = (2, 3)  # fewest and most models in one round: a vote between more is hard to cast
# The history run ids of the rounds on show in this process, not voted on yet: every panel's
# History skips them, so no panel names the models of a round still blind in another.
_UNVOTED: set[str] = set()

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


def _names(tags: Sequence[str]) -> dict[str, str]:
    """What names a model in a message: its tag, and the family before ":" that only it has in the
    round (``gemma3`` of ``gemma3:270m``; a family two of them share tells nobody which is which)."""
    names = {t.lower(): t for t in tags}
    families: dict[str, list[str]] = {}
    for t in tags:
        families.setdefault(t.split(":", 1)[0].lower(), []).append(t)
    for family, members in families.items():
        if len(members) == 1 and len(family) >= 3:
            names.setdefault(family, members[0])
    return names


class ArenaRound:
    """One blind round: which letter is which model, the names hidden until the vote, the vote.

    ``letters`` maps "A", "B"[, "C"] to the tags, dealt in a shuffled order
    (``deal``; pass a seeded ``rng`` for a repeatable one). Until ``cast``,
    ``mask`` replaces every tag in a message by its letter, and ``title``,
    ``hide``, ``take`` and ``shown`` give what a front end may send the
    browser; after it, ``title`` and ``shown`` name the models. ``results``
    holds the real answers, by tag, for the history (``take`` fills it).
    """

    def __init__(self, tags: Sequence[str], prompt: str = "", *, rng: random.Random | None = None) -> None:
        tags = list(dict.fromkeys(tags))
        low, high = ARENA_MODELS
        if not low <= len(tags) <= high:
            raise ConfigError(f"the arena compares {low} or {high} models, {len(tags)} chosen")
        self.letters = deal(tags, rng)
        self.prompt = prompt
        self.results = Results(prompt, {t: Result(tag=t) for t in self.tags})
        self._run_id: str | None = None
        self.vote: Vote | None = None
        self._letter = {tag: letter for letter, tag in self.letters.items()}
        self._owner = _names(tags)  # a name as found in a message (lower case) -> its tag
        alternatives = "|".join(re.escape(n) for n in sorted(self._owner, key=len, reverse=True))
        self._names = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)

    @property
    def run_id(self) -> str | None:
        """The run in the history, once recorded: the vote points to it; until the vote no History lists it."""
        return self._run_id

    @run_id.setter
    def run_id(self, run_id: str | None) -> None:
        self._run_id = run_id
        if run_id is not None and not self.voted:
            _UNVOTED.add(run_id)

    @property
    def tags(self) -> tuple[str, ...]:
        """The models in shown order: A's, B's[, C's]."""
        return tuple(self.letters.values())

    @property
    def voted(self) -> bool:
        return self.vote is not None

    def letter(self, tag: str) -> str:
        return self._letter[tag]

    def title(self, tag: str) -> str:
        """A card's title: the letter, and after the vote ``A · gemma3:270m``."""
        letter = self._letter[tag]
        return f"{letter} · {tag}" if self.voted else letter

    def mask(self, text: str) -> str:
        """``text`` with every model's name replaced by its letter (until the vote)."""
        if self.voted or not text:
            return text
        return self._names.sub(lambda m: self._letter[self._owner[m.group(0).lower()]], text)

    def hide(self, update: JobUpdate) -> JobUpdate:
        """The update with its error masked (its tag kept, for the kernel side's routing)."""
        return replace(update, error=self.mask(update.error)) if update.error else update

    def take(self, update: JobUpdate) -> JobUpdate:
        """Keep the real update in ``results``; return it as the browser may see it: lettered."""
        self.results[update.tag].apply(update)
        if self._run_id is None and self.results.run_id:
            self.run_id = self.results.run_id  # in the history from its first submit: no History lists it
        return replace(self.hide(update), tag=self._letter[update.tag])

    def adopt(self, results: Results) -> Results:
        """The run's final ``Results`` become ``results``; returns them as ``shown``."""
        self.results = results
        return self.shown()

    def shown(self, results: Results | None = None) -> Results:
        """``results`` (default: this round's) keyed by ``title``, errors masked: what may be shown."""
        results = self.results if results is None else results
        lettered = {}
        for tag in self.tags:
            if tag in results:
                r = results[tag]
                lettered[self.title(tag)] = replace(r, tag=self.title(tag),
                                                    error=self.mask(r.error) if r.error else r.error)
        return Results(results.prompt, lettered, format=results.format)

    def choices(self) -> list[tuple[str, str]]:
        """(button label, choice) for each way to vote: a letter, ``"tie"`` or ``"bad"``."""
        return [(f"{letter} better", letter) for letter in self.letters] + [("Tie", TIE), ("All bad", BAD)]

    def cast(self, choice: str, *, path: Path | str | None = None) -> Vote:
        """Store the vote (``record_vote``, in the history DB) and lift the blind; once per round."""
        if self.vote is not None:
            raise ConfigError("this round has its vote already: run a new one")
        if choice in self.letters:
            winner = self.letters[choice]
        elif choice in (TIE, BAD):
            winner = choice
        else:
            raise ConfigError(f"unknown vote {choice!r}: one of {', '.join(c for _, c in self.choices())}")
        vote = Vote(self.tags, winner, prompt=self.prompt, run_id=self.run_id)
        record_vote(vote, path=path)
        self.vote = vote
        _UNVOTED.discard(self.run_id or "")
        return vote

    def close(self) -> None:
        """The round leaves the screen without a vote (a new round took its place): it can no
        longer be voted on, so the History may list it, names and all."""
        _UNVOTED.discard(self.run_id or "")

    def reveal(self) -> str:
        """Who was who, in one line (empty before the vote)."""
        if not self.voted:
            return ""
        return " · ".join(f"{letter} was {tag}" for letter, tag in self.letters.items())


def unvoted_runs() -> frozenset[str]:
    """History run ids of the arena rounds of this process still waiting for their vote."""
    return frozenset(_UNVOTED)


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
    """All stored votes, oldest first; none for a missing file or an old DB without the table.

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
            rows = conn.execute("SELECT created, run_id, prompt, models, winner FROM votes ORDER BY id").fetchall()
        return [Vote(tuple(str(m).split("\n")), str(w), str(p), r, c) for c, r, p, m, w in rows]
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(unreadable(file, exc)) from None


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
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a file path (str or Path) or None, not {type(path).__name__}")
    if isinstance(path, str):
        checks.unicode(path, "path")
    for name, value in (("rounds", rounds), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a whole number ≥ 0, not {value!r:.40}")
    return Leaderboard(votes(path), rounds=rounds, seed=seed)
