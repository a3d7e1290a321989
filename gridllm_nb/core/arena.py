"""A blind arena: letters instead of model names, votes in the history DB, a leaderboard with shared ranks.

Why blind: a reader who sees "the big model" tends to prefer it. The letters
A, B, C are dealt in a shuffled order (``deal``), names are revealed only
after the vote, and votes go to the history file (``votes``: the table,
who cast each vote, the export).

How a vote counts: pairwise, between the models shown in that round
(``votes.games``): "C better" is two wins (over A and over B) and no game
between A and B; "Tie" a tie between every pair; "All bad" a vote for each
model and no game. The ``Leaderboard`` fits Bradley–Terry ratings over all
the games at once (or Elo, in vote order) with 95% bootstrap intervals, and
models whose intervals overlap share a rank (``ratings``).

``ArenaRound`` is the blindness itself, shared by the panel
(``Panel(arena=True)``) and the magic (``%%gridllm --arena``): the deal,
the run's ``Results`` (by tag, filled by the core like any run's), the
masking of every name in what the browser is sent (titles, errors, status
lines, lettered pictures) until the vote, and the vote. What it does not
mask is the answers' text: the answers are what is judged, and a model
that names itself gives itself away as it would in any blind arena.
"""

from __future__ import annotations

import html
import os
import random
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..api import arguments
from ..api.jobs import JobUpdate
from ..errors import ConfigError
from .ratings import METHODS, rate
from .results import Result, Results
from .votes import BAD, TIE, Vote, export, games, record_vote, votes

__all__ = ["BAD", "LETTERS", "TIE", "ArenaRound", "Leaderboard", "Vote", "deal", "leaderboard", "record_vote",
           "unvoted_runs", "votes"]

LETTERS = "ABCDEFGH"
ARENA_MODELS = (2, 3)  # fewest and most models in one round: a vote between more is hard to cast
# The rounds on show in this process, not voted on yet: every panel's History skips their runs,
# so no panel names the models of a round still blind in another (``unvoted_runs``).
_BLIND: weakref.WeakSet[ArenaRound] = weakref.WeakSet()
_BLIND_LOCK = threading.Lock()  # rounds run on the background loop's thread; Histories refresh on the kernel's


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
    (``deal``; pass a seeded ``rng`` for a repeatable one). ``results`` is
    the round's run, by tag, in letter order: the front end passes it to
    ``arun(results=...)`` and its cards read it. Until ``cast``, ``mask``
    replaces every tag in a message by its letter, and ``title``, ``hide``
    and ``shown`` give what a front end may send the browser; after it,
    ``title`` and ``shown`` name the models.
    """

    def __init__(self, tags: Sequence[str], prompt: str = "", *, rng: random.Random | None = None) -> None:
        tags = list(dict.fromkeys(tags))
        low, high = ARENA_MODELS
        if not low <= len(tags) <= high:
            raise ConfigError(f"the arena compares {low} or {high} models, {len(tags)} chosen")
        self.letters = deal(tags, rng)
        self.prompt = prompt
        self.results = Results(prompt, {t: Result(tag=t) for t in self.tags})
        self.vote: Vote | None = None
        self._letter = {tag: letter for letter, tag in self.letters.items()}
        self._owner = _names(tags)  # a name as found in a message (lower case) -> its tag
        alternatives = "|".join(re.escape(n) for n in sorted(self._owner, key=len, reverse=True))
        self._names = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)
        with _BLIND_LOCK:
            _BLIND.add(self)

    @property
    def run_id(self) -> str | None:
        """The run in the history (from its first submit): the vote points to it; until the vote no History lists it."""
        return self.results.run_id

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
        self.close()
        return vote

    def close(self) -> None:
        """The round leaves the screen without a vote (a new round took its place): it can no
        longer be voted on, so the History may list it, names and all."""
        with _BLIND_LOCK:
            _BLIND.discard(self)

    def reveal(self) -> str:
        """Who was who, in one line (empty before the vote)."""
        if not self.voted:
            return ""
        return " · ".join(f"{letter} was {tag}" for letter, tag in self.letters.items())


def unvoted_runs() -> frozenset[str]:
    """History run ids of the arena rounds of this process still waiting for their vote."""
    with _BLIND_LOCK:
        rounds = list(_BLIND)
    return frozenset(r.run_id for r in rounds if r.run_id)


class Leaderboard:
    """The arena's ranking: ratings with 95% bootstrap intervals and shared ranks (``ratings``),
    as a DataFrame, a text table and an inline SVG; the votes it counts, exportable."""

    def __init__(self, vs: Sequence[Vote], *, method: str = "bt", rounds: int = 200, seed: int = 0,
                 mine: bool = False) -> None:
        self.votes = list(vs)
        self.method = method
        self.mine = mine
        matches = [games(v) for v in self.votes]
        models = sorted({m for v in self.votes for m in v.models})
        self.rows: list[dict[str, Any]] = rate(matches, models, method=method, rounds=rounds, seed=seed)
        played = [g for match in matches for g in match]
        for r in self.rows:
            m = r["model"]
            r.update({k: round(r[k], 1) for k in ("rating", "ci_low", "ci_high")})
            r["votes"] = sum(1 for v in self.votes if m in v.models)
            r["wins"] = sum(1 for a, b, s in played if (a == m and s == 1.0) or (b == m and s == 0.0))
            r["losses"] = sum(1 for a, b, s in played if (b == m and s == 1.0) or (a == m and s == 0.0))
            r["ties"] = sum(1 for a, b, s in played if m in (a, b) and s == 0.5)

    @property
    def title(self) -> str:
        """What the ratings are: ``Bradley–Terry ratings`` or ``Elo ratings`` (``, your votes only``)."""
        name = "Elo" if self.method == "elo" else "Bradley–Terry"
        return f"{name} ratings{', your votes only' if self.mine else ''}"

    def export_votes(self, path: Path | str) -> Path:
        """The votes counted here, to ``path``: ``.csv`` or ``.json`` by its extension (``votes.export``)."""
        return export(self.votes, path)

    def to_pandas(self) -> Any:
        import pandas as pd

        columns = ["model", "rank", "rating", "ci_low", "ci_high", "votes", "wins", "losses", "ties"]
        return pd.DataFrame(self.rows, columns=columns)

    def __repr__(self) -> str:
        if not self.rows:
            return f"Leaderboard (no votes yet{' of yours' if self.mine else ''})"
        lines = [f"{'model':<24} {'rank':>4} {'rating':>7} {'95% CI':>11} {'votes':>5} {'W':>3} {'L':>3} {'T':>3}"]
        for r in self.rows:
            ci = f"{r['ci_low']:.0f}–{r['ci_high']:.0f}"
            lines.append(f"{r['model']:<24} {r['rank']:>4} {r['rating']:>7.1f} {ci:>11} {r['votes']:>5} "
                         f"{r['wins']:>3} {r['losses']:>3} {r['ties']:>3}")
        return "\n".join(lines) + f"\n{self.title}, 95% intervals; models whose intervals overlap share a rank"

    def _svg(self) -> str:
        """Ratings as dots with CI whiskers, one row per model; tag names escaped."""
        lo = min(r["ci_low"] for r in self.rows) - 10
        hi = max(r["ci_high"] for r in self.rows) + 10
        width, left, row = 420, 150, 22

        def x(v: float) -> float:
            return left + (v - lo) / (hi - lo) * (width - left - 10)

        parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(self.rows) + 8}"'
                  f' role="img" aria-label="{self.title} with 95% intervals">')]
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
            return f"<p>No arena votes{' of yours' if self.mine else ''} yet.</p>"
        head = "".join(f"<th>{h}</th>" for h in ("rank", "model", "rating", "95% CI", "votes", "wins", "losses",
                                                 "ties"))
        body = "".join(
            f"<tr><td>{r['rank']}</td><td>{html.escape(r['model'])}</td><td>{r['rating']:.1f}</td>"
            f"<td>{r['ci_low']:.0f}–{r['ci_high']:.0f}</td><td>{r['votes']}</td>"
            f"<td>{r['wins']}</td><td>{r['losses']}</td><td>{r['ties']}</td></tr>"
            for r in self.rows
        )
        note = f"<p>{html.escape(self.title)}, 95% intervals; models whose intervals overlap share a rank.</p>"
        return f'<div class="gridllm-leaderboard">{note}<table><tr>{head}</tr>{body}</table>{self._svg()}</div>'


def leaderboard(path: Path | str | None = None, *, method: str = "bt", mine: bool = False, rounds: int = 200,
                seed: int = 0) -> Leaderboard:
    """The arena's ranking from the votes in the history DB (or ``path``).

    ``method``: ``"bt"`` (Bradley–Terry, the default) or ``"elo"``; ``mine``:
    only the votes cast by this user (votes stored before owners were kept
    count as nobody's).
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a file path (str or Path) or None, not {type(path).__name__}")
    if isinstance(path, str):
        arguments.unicode(path, "path")
    for name, value in (("rounds", rounds), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a whole number ≥ 0, not {value!r:.40}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(map(repr, METHODS))}, not {method!r:.40}")
    arguments.flag(mine, "mine")
    return Leaderboard(votes(path, mine=mine), method=method, rounds=rounds, seed=seed, mine=mine)
