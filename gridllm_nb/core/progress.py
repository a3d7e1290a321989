"""A grid's progress: done / failed / total, elapsed and ETA, redrawn a few times a second at most.

In a kernel it is a progress bar widget (``widgets/progress.py``, which
registers itself here as ``"widget"``: core draws no widget itself); on a
terminal one line on stderr, redrawn in place with ``\\r``; anywhere else
(a pipe, CI, a log file) nothing. A grid calls ``update`` on every job update,
thousands of times, and every redraw of a widget is a comm message: so a
redraw happens only when the counts changed and ``min_interval`` has passed
(or every ``refresh`` seconds, to move the clock and the ETA), and ``close``
always draws the final counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import hooks

if TYPE_CHECKING:
    from ..api.clock import Clock
    from .results import Result


__all__ = ["Counts", "PassCounts", "Progress", "TextProgress", "make_progress", "progress_line", "register_progress"]


class Counts(NamedTuple):
    """How far a grid is: ``done`` completed, ``failed`` ended any other way, of ``total`` jobs."""

    done: int
    failed: int
    total: int
    passing: str = ""  # the running pass rate per model, with checks (``PassCounts.line``)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def live(self) -> int:
        """Jobs not ended yet: running, queued, or not sent."""
        return self.total - self.finished


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_line(counts: Counts, elapsed: float) -> str:
    """``12/100 done · 1 failed · 0:07 elapsed · ETA 0:52`` (the ETA once something has finished)."""
    parts = [f"{counts.done}/{counts.total} done", f"{counts.failed} failed", f"{_duration(elapsed)} elapsed"]
    if counts.live and counts.finished:
        parts.append(f"ETA {_duration(elapsed / counts.finished * counts.live)}")
    if counts.passing:
        parts.append(counts.passing)
    return " · ".join(parts)


class PassCounts:
    """Each model's answers with a verdict and those that passed, kept as verdicts arrive (a
    judge's comes after the answer's checks: an answer seen again replaces what it counted)."""

    def __init__(self, models: Sequence[str]) -> None:
        self._judged = dict.fromkeys(models, 0)
        self._passed = dict.fromkeys(models, 0)
        self._seen: dict[int, tuple[str, bool | None]] = {}

    def saw(self, result: Result) -> None:
        """Count ``result``'s verdict (``Result.passed``) in place of what it counted before."""
        if not result.checks or result.tag not in self._judged:
            return
        before = self._seen.get(id(result))
        if before is not None:
            self._count(before[0], before[1], -1)
        self._seen[id(result)] = (result.tag, result.passed)
        self._count(result.tag, result.passed, 1)

    def _count(self, tag: str, passed: bool | None, sign: int) -> None:
        if passed is not None:
            self._judged[tag] += sign
            self._passed[tag] += sign * passed

    def line(self) -> str:
        """``passed: qwen 8/10 · smollm 5/10`` (empty before the first verdict)."""
        if not any(self._judged.values()):
            return ""
        return "passed: " + " · ".join(f"{tag} {self._passed[tag]}/{n}" for tag, n in self._judged.items() if n)


class Progress:
    """Throttled progress of ``total`` jobs; this base class shows nothing (and counts its draws)."""

    def __init__(self, total: int, *, clock: Clock | None = None, min_interval: float = 0.25,
                 refresh: float = 1.0) -> None:
        self.total = total
        if clock is None:
            from ..api.clock import SystemClock  # asyncio loads with the first grid, not with the package

            clock = SystemClock()
        self.clock = clock
        self.min_interval = min_interval
        self.refresh = refresh
        self.started = self.clock.monotonic()
        self.draws = 0
        self.closed = False
        self._drawn: Counts | None = None
        self._drawn_at = float("-inf")

    def update(self, counts: Counts) -> None:
        """Redraw if worth it: new counts after ``min_interval``, or the same ones after ``refresh``."""
        if self.closed:
            return
        now = self.clock.monotonic()
        wait = self.min_interval if counts != self._drawn else self.refresh
        if now - self._drawn_at >= wait:
            self._redraw(counts, now, final=False)

    def close(self, counts: Counts) -> None:
        """Draw the final counts, whatever the throttle says; later updates are ignored."""
        if not self.closed:
            self._redraw(counts, self.clock.monotonic(), final=True)
            self.closed = True

    def _redraw(self, counts: Counts, now: float, *, final: bool) -> None:
        self._drawn, self._drawn_at = counts, now
        self.draws += 1
        self.draw(counts, progress_line(counts, now - self.started), final=final)

    def draw(self, counts: Counts, line: str, *, final: bool) -> None:
        """Show ``line``; subclasses do."""


class TextProgress(Progress):
    """One line on a terminal's stderr, rewritten in place; a newline at the end."""

    def __init__(self, total: int, *, stream: Any = None, **kwargs: Any) -> None:
        self.stream = stream or sys.stderr
        self._width = 0
        super().__init__(total, **kwargs)

    def draw(self, counts: Counts, line: str, *, final: bool) -> None:
        padding = " " * max(0, self._width - len(line))  # wipe the end of a longer previous line
        self._width = len(line)
        self.stream.write(f"\r{line}{padding}" + ("\n" if final else ""))
        self.stream.flush()


def _in_a_kernel() -> bool:
    ipython = sys.modules.get("IPython")  # never import IPython just to find out
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


_KINDS: dict[str, Callable[..., Progress]] = {"text": TextProgress, "none": Progress}  # drawn here; others: hooks


def register_progress(kind: str, factory: Callable[..., Progress]) -> None:
    """Make ``progress=kind`` draw with ``factory(total, clock=...)`` (the package root gives "widget")."""
    hooks.progress[kind] = factory


def make_progress(kind: str | bool | None, total: int, clock: Clock | None = None) -> Progress:
    """The progress view for ``kind``: ``auto`` (a widget in a kernel, a line on a terminal,
    else nothing), ``widget``, ``text``, or False / None / ``none`` for nothing."""
    if kind is True or kind == "auto":
        kind = "widget" if _in_a_kernel() and "widget" in hooks.progress else "text" if sys.stderr.isatty() else "none"
    if kind is False or kind is None:
        kind = "none"
    if kind == "widget" and kind not in hooks.progress:
        raise ValueError("progress='widget' draws in a notebook: import gridllm_nb.widgets.progress first")
    factory = (_KINDS.get(kind) or hooks.progress.get(kind)) if isinstance(kind, str) else None
    if factory is None:
        raise ValueError(f"progress must be 'auto', 'widget', 'text' or 'none', not {kind!r}")
    return factory(total, clock=clock)
