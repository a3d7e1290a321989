"""The terminal's live view: one column per model, side by side, redrawn in place.

``gridllm-nb run`` on a terminal feeds every ``JobUpdate`` from
``core.run.arun`` to a ``LiveColumns`` and shows it with rich's ``Live``:

- one column per model: its tag, its state and a ticking clock, a notice
  line (``reconnecting…``) or a one-line error, then the text so far,
  word-wrapped inside the column;
- redrawn 8 times a second by rich's refresh thread, whatever the rate of
  updates (updates only change state; they never draw);
- while live, each column shows the *tail* of its text that fits the
  terminal's height (``… 12 lines above`` marks what scrolled away); when the
  run ends (or Ctrl-C cancels it) the live view is erased and the columns are
  printed once more in full, so the scrollback keeps every word;
- when the terminal is too narrow for a readable column per model
  (fewer than ``MIN_COLUMN`` characters each) the models are stacked as
  panels instead, sharing the height.

Model text, tags and error messages are untrusted. They only ever reach
rich as ``Text`` objects (never markup strings, so ``[bold]`` or
``[link=…]`` show literally), after ``clean`` has removed terminal control
sequences (``ESC [ …``, OSC titles and hyperlinks, other C0/C1 controls), so
an answer cannot move the cursor, recolour the screen or set the title.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..api.jobs import JobState, JobUpdate
from ..core.results import Result, Results
from ..text import one_line

__all__ = ["MIN_COLUMN", "REFRESH_PER_SECOND", "LiveColumns", "clean", "live_columns"]

REFRESH_PER_SECOND = 8
MIN_COLUMN = 24  # characters of text per column; below this the models are stacked

# ESC-introduced sequences (7-bit) and their 8-bit C1 twins, complete ones first.
_CONTROL_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, colours, erase, modes
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC: window title, hyperlinks, clipboard
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f]).*?(?:\x1b\\|\x9c)"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]",  # two-character escapes: ESC c (reset), ESC 7 / ESC 8, charsets
    re.DOTALL,
)
# What is left: lone ESCs, unterminated sequences' introducers, other C0 and C1 controls, DEL.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` with every terminal control sequence and control character removed.

    Newlines and tabs are kept (``\\r\\n`` and a lone ``\\r`` become ``\\n``);
    an unterminated sequence loses its introducer (ESC and the next character), so its rest shows as
    harmless literal text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_CHARS.sub("", _CONTROL_SEQUENCES.sub("", text))


_STATE_STYLE = {
    JobState.SUBMITTED: "dim",
    JobState.QUEUED: "yellow",
    JobState.RUNNING: "cyan",
    JobState.COMPLETED: "green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "magenta",
    JobState.TIMED_OUT: "red",
    JobState.LOST: "red",
}


def _clock_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class LiveColumns:
    """State of the live view; call it with each ``JobUpdate``; rich renders it.

    ``results`` are the run's, which the core brings up to date (``arun(results=...)``):
    the columns only read them. Without, the columns keep their own and apply
    each update themselves. Updates arrive on the run's thread (``run_sync``) while rich's
    refresh thread renders, so both hold ``_lock``. ``clock`` is injectable for tests.
    """

    def __init__(self, tags: Sequence[str], *, results: Results | None = None,
                 clock: Callable[[], float] = time.monotonic, min_column: int = MIN_COLUMN) -> None:
        self._applies = results is None
        self.results = Results() if results is None else results
        self.tags = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))  # the columns, in order
        for tag in self.tags:
            if tag not in self.results:
                self.results._set(Result(tag=tag))
        self.restarted: set[str] = set()
        self.clock = clock
        self.min_column = min_column
        self._started = clock()
        self._seen: dict[str, float] = {}  # tag -> clock() at its last update
        self._lock = threading.Lock()
        self.console: Console | None = None  # where notices go while live

    # -- input ---------------------------------------------------------------------------

    def __call__(self, update: JobUpdate) -> None:
        with self._lock:
            if update.tag not in self.results:
                self.results._set(Result(tag=update.tag))
            if update.tag not in self.tags:
                self.tags.append(update.tag)
            if self._applies:
                self.results[update.tag].apply(update)
            if update.reset:
                self.restarted.add(update.tag)
            self._seen[update.tag] = self.clock()

    def notice(self, line: str) -> None:
        """An informational line (e.g. "started the local service…"), printed above the live frame."""
        if self.console is not None:
            self.console.print(Text(clean(line), style="dim"))

    # -- rendering -----------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The live frame: as wide as the terminal, and no taller (tails of long texts)."""
        # Two columns spare: the ``^C`` a terminal echoes then lands on the frame's last line
        # instead of wrapping and scrolling the frame, which would leave a stale line behind.
        yield self.render(console, max(1, options.max_width - 2), options.max_height)

    def final(self, console: Console) -> RenderableType:
        """The whole answers, for the scrollback once the run has ended."""
        return self.render(console, console.width, None)

    def render(self, console: Console, width: int, height: int | None) -> RenderableType:
        """The columns at ``width``; ``height`` None means uncropped (the final print)."""
        with self._lock:
            tags = list(self.tags)
            if not tags:
                return Text("")
            n = len(tags)
            column = (width - (n + 1) - 2 * n) // n  # borders, then one space of padding either side
            if column >= self.min_column:
                return self._columns(console, tags, column, height)
            return self._stacked(console, tags, width, height)

    def _elapsed(self, tag: str) -> float:
        r = self.results[tag]
        if tag not in self._seen:
            return self.clock() - self._started
        if r.state.terminal:
            return r.elapsed
        return r.elapsed + (self.clock() - self._seen[tag])  # ticks between updates

    def _status_line(self, tag: str) -> Text:
        r = self.results[tag]
        line = Text()
        line.append(r.state.label, style=_STATE_STYLE.get(r.state, ""))
        line.append(f" · {_clock_text(self._elapsed(tag))}", style="dim")
        note = r.finish_note
        if note:
            line.append(f" · {note}", style="yellow")
        if tag in self.restarted:
            line.append(" · restarted", style="yellow")
        return line

    def _notice_line(self, tag: str, live: bool) -> Text | None:
        """The error (terminal states, red) or a transient notice such as ``reconnecting…``."""
        r = self.results[tag]
        if not r.error:
            return None
        message = one_line(clean(r.error))  # errors are one line, whatever they contain
        style = "red" if r.state.terminal else "yellow"
        return Text(message, style=style, no_wrap=live, overflow="ellipsis" if live else "fold")

    def _body(self, console: Console, tag: str, width: int, lines_left: int | None) -> Text:
        r = self.results[tag]
        text = clean(r.text).expandtabs(4).rstrip()
        if not text:
            waiting = "waiting…" if not r.state.terminal else "(no text)"
            return Text(waiting, style="dim italic")
        body = Text(text, overflow="fold")
        if lines_left is None:
            return body
        lines = body.wrap(console, width, overflow="fold")
        if len(lines) <= lines_left:
            return body
        keep = max(1, lines_left - 1)
        hidden = len(lines) - keep
        above = Text(f"… {hidden} line{'s' if hidden != 1 else ''} above", style="dim italic")
        return Text("\n").join([above, *lines[-keep:]]) if lines_left > 1 else Text("\n").join(lines[-1:])

    def _body_height(self, console: Console, tag: str, width: int) -> int:
        return len(self._body(console, tag, width, None).wrap(console, width, overflow="fold"))

    def _columns(self, console: Console, tags: list[str], column: int, height: int | None) -> Table:
        live = height is not None
        notices = {t: self._notice_line(t, live) for t in tags}
        header_lines = 3 if any(notices.values()) else 2
        table = Table(box=box.ROUNDED, padding=(0, 1), show_header=True, header_style="", expand=False)
        for tag in tags:
            header = Text(clean(tag), style="bold", no_wrap=live, overflow="ellipsis")
            parts = [header, self._status_line(tag)]
            if notices[tag] is not None:
                parts.append(notices[tag])
            elif header_lines == 3:
                parts.append(Text(""))
            table.add_column(Group(*parts), width=column, vertical="top", overflow="fold")
        # Top border, header, separator, bottom border, and one spare line so the frame never scrolls.
        budget = None if height is None else max(1, height - header_lines - 4)
        table.add_row(*(self._body(console, t, column, budget) for t in tags))
        return table

    def _stacked(self, console: Console, tags: list[str], width: int, height: int | None) -> Group:
        live = height is not None
        inner = max(1, width - 4)  # panel border and padding
        notices = {t: self._notice_line(t, live) for t in tags}
        budgets: dict[str, int | None] = dict.fromkeys(tags)
        if height is not None:
            spare = height - 1 - 2 * len(tags) - sum(1 for v in notices.values() if v is not None)
            needs = {t: self._body_height(console, t, inner) for t in tags}
            budgets = dict(_share(needs, spare))
        panels = []
        for tag in tags:
            title = Text(clean(tag), style="bold")
            title.append("  ")
            title.append_text(self._status_line(tag))
            parts: list[RenderableType] = []
            if notices[tag] is not None:
                parts.append(notices[tag])
            parts.append(self._body(console, tag, inner, budgets[tag]))
            panels.append(Panel(Group(*parts), title=title, title_align="left", box=box.ROUNDED, expand=True))
        return Group(*panels)


def _share(needs: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` lines among panels: short ones get what they need, long ones share the rest.

    Every panel gets at least one line (the frame may then overflow; rich crops it).
    """
    given: dict[str, int] = {}
    left = dict(needs)
    while left:
        fair = max(1, (total - sum(given.values())) // len(left))
        small = {t: n for t, n in left.items() if n <= fair}
        if not small:
            for t in left:
                given[t] = fair
            break
        for t, n in small.items():
            given[t] = max(1, n)
            del left[t]
    return {t: given[t] for t in needs}


@contextmanager
def live_columns(tags: Sequence[str], console: Console | None = None, **kwargs: Any) -> Iterator[LiveColumns]:
    """Show a ``LiveColumns`` while the block runs, then print it in full.

    The live frame is transient: on the way out (normal end or Ctrl-C) it is
    erased and the uncropped columns are printed in its place. When the block
    raises anything else (a usage or configuration error) nothing is
    printed, so that error stays the one line it is.
    """
    console = console or Console()
    columns = LiveColumns(tags, **kwargs)
    live = Live(columns, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True)
    columns.console = console
    show_final = False
    with live:
        try:
            yield columns
            show_final = True
        except KeyboardInterrupt:
            show_final = True
            raise
        finally:
            live.stop()
            if show_final:
                console.print(columns.final(console))
