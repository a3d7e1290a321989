"""What a grid would cost before it is sent: jobs, tokens and wall time per model, from the history.

A thousand-prompt grid is an hour or a minute depending on the models: the
local history knows how each model answered lately (``core.history``), so
the estimate takes each model's recent completed answers, their median
tokens per answer, tokens per second and queue time, and works out the
grid's tokens and wall time at its ``max_live``. It says what it stands
on (how many past answers), and "no history: unknown" for a model it has
never seen, rather than guessing. Nothing is submitted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .history import history_path, reading

__all__ = ["Estimate", "ModelEstimate", "estimate", "estimate_grid", "model_history"]

RECENT = 200  # past answers per model the figures come from, at most


@dataclass(frozen=True)
class ModelEstimate:
    """One model's share of a grid: ``jobs``, and from ``basis`` past answers (0: unknown) the
    expected ``tokens``, and ``seconds``: the wall time of its jobs alone at the grid's ``max_live``
    (the grid's own, ``Estimate.seconds``, pools every model's jobs in the same slots)."""

    model: str
    jobs: int
    basis: int
    tokens_per_answer: float | None = None
    tokens_per_s: float | None = None
    queue_s: float | None = None
    job_s: float | None = None  # submitted → ended, median
    tokens: int | None = None
    seconds: float | None = None

    def line(self) -> str:
        if not self.basis:
            return f"{self.model}: {self.jobs} jobs · no history: unknown"
        rate = "" if self.tokens_per_s is None else f", {self.tokens_per_s:.0f} tok/s"
        queue = "" if self.queue_s is None else f", queued {self.queue_s:.1f} s"
        return (f"{self.model}: {self.jobs} jobs · ~{_tokens(self.tokens)} tokens · ~{_duration(self.seconds)}"
                f" (from {self.basis} past answer{'s' * (self.basis != 1)}: {self.tokens_per_answer:.0f} tok/answer"
                f"{rate}{queue})")


@dataclass(frozen=True)
class Estimate:
    """The grid's estimate: one ``ModelEstimate`` per model, and the total at ``max_live``."""

    models: tuple[ModelEstimate, ...]
    max_live: int

    @property
    def jobs(self) -> int:
        return sum(m.jobs for m in self.models)

    @property
    def known(self) -> bool:
        return all(m.basis for m in self.models)

    @property
    def seconds(self) -> float | None:
        """The grid's wall time: every model's jobs share the ``max_live`` slots."""
        if not self.known:
            return None
        work = sum(m.jobs * (m.job_s or 0.0) for m in self.models)
        return work / max(1, min(self.max_live, self.jobs))

    @property
    def tokens(self) -> int | None:
        return sum(m.tokens or 0 for m in self.models) if self.known else None

    def line(self) -> str:
        """``estimate: 400 jobs · ~52k tokens · ~3:20 at max_live 32`` (what is unknown says so)."""
        unknown = [m.model for m in self.models if not m.basis]
        head = f"estimate: {self.jobs} jobs"
        if unknown:
            return f"{head} · no history for {', '.join(unknown)}: time unknown"
        return (f"{head} · ~{_tokens(self.tokens)} tokens · ~{_duration(self.seconds)} at max_live {self.max_live}"
                f" (from {sum(m.basis for m in self.models)} past answers)")

    def __str__(self) -> str:
        return "\n".join([self.line(), *("  " + m.line() for m in self.models)])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def to_list(self) -> list[dict[str, Any]]:
        return [vars(m).copy() for m in self.models]


def _tokens(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1000:.1f}k" if n >= 10_000 else str(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def model_history(models: Sequence[str], *, path: Path | str | None = None,
                  recent: int = RECENT) -> dict[str, list[Mapping[str, Any]]]:
    """Each model's last ``recent`` completed answers in the history (newest first): tokens, text length
    and run-relative times. A missing history is no answers."""
    file = Path(path) if path else history_path()
    found: dict[str, list[Mapping[str, Any]]] = {m: [] for m in models}
    if not file.exists():
        return found
    with reading(file) as conn:
        for model in models:
            found[model] = [dict(row) for row in conn.execute(
                "SELECT tokens, length(text) AS chars, submitted_s, started_s, first_token_s, ended_s FROM responses"
                " WHERE tag = ? AND state = 'completed' ORDER BY id DESC LIMIT ?", (model, recent))]
    return found


def _model_estimate(model: str, jobs: int, past: Sequence[Mapping[str, Any]], max_live: int,
                    max_tokens: int | None) -> ModelEstimate:
    if not past:
        return ModelEstimate(model, jobs, 0)
    tokens = [r["tokens"] if r["tokens"] else max(1, round((r["chars"] or 0) / 4)) for r in past]
    per_answer = statistics.median(tokens)
    if max_tokens:
        per_answer = min(per_answer, max_tokens)

    def gap(r: Mapping[str, Any], a: str, b: str) -> float | None:
        return None if r[a] is None or r[b] is None else max(0.0, r[b] - r[a])

    rates = [t / g for t, r in zip(tokens, past) if (g := gap(r, "first_token_s", "ended_s"))]
    queue = _median([gap(r, "submitted_s", "started_s") for r in past])
    job_s = _median([gap(r, "submitted_s", "ended_s") for r in past])
    rate = _median(rates)
    if job_s is None:  # times not recorded: the answer's tokens at its rate, after its queue
        job_s = (queue or 0.0) + (per_answer / rate if rate else 0.0)
    return ModelEstimate(model, jobs, len(past), per_answer, rate, queue, job_s, round(jobs * per_answer),
                         jobs * job_s / max(1, min(max_live, jobs)))


def estimate_grid(prompts: Sequence[str], models: Sequence[str], *, max_live: int = 32,
                  options: Mapping[str, Any] | None = None, path: Path | str | None = None) -> Estimate:
    """The estimate of ``prompts`` × ``models`` at ``max_live`` (``options["max_tokens"]`` caps the
    tokens per answer), from the history at ``path`` (default: the configured one)."""
    past = model_history(models, path=path)
    jobs = len(prompts)
    max_tokens = (options or {}).get("max_tokens")
    max_tokens = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None
    return Estimate(tuple(_model_estimate(m, jobs, past[m], max_live, max_tokens) for m in models), max_live)


def estimate(prompts: Sequence[str] | int, models: Sequence[str] | str, *, max_live: int = 32,
             options: Mapping[str, Any] | None = None) -> Estimate:
    """What ``grid(prompts, models, max_live=...)`` would cost, from the history; nothing is sent.
    ``prompts`` may be their number."""
    texts = [""] * prompts if isinstance(prompts, int) else list(prompts)
    return estimate_grid(texts, [models] if isinstance(models, str) else list(models), max_live=max_live,
                         options=options)
