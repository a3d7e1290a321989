"""The panel's History: earlier runs, newest first, one collapsible line per model.

A new panel lists the runs of the local SQLite history (``core.history``)
made before it, by other panels or by ``%%gridllm``; the run on show joins
the list when the next one starts. A blind arena round still waiting for
its vote is listed nowhere (``arena.unvoted_runs``), or the list would name
its models. Each entry is built here from escaped pieces and
``render_text``'s answers: never copied model or user HTML. Its look is
``widgets/static/panel.css``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets

from ..core.arena import unvoted_runs
from ..core.history import is_grid, local_time, recent, results_from_run
from ..core.results import Results
from ..display.render import render_text
from ..text import one_line, shorten

__all__ = ["HISTORY_RUNS", "HistoryList", "history_entry_html"]

HISTORY_RUNS = 20  # earlier runs listed, newest first


def history_entry_html(results: Results, created: str | None = None) -> str:
    """One earlier run: the prompt, then one expandable line per model (tag · state · time · first words).

    Every piece of model or user text is escaped (``render_text`` for the
    answers, ``html.escape`` for the rest): the entry is built, never copied.
    """
    when = local_time(created)
    head = f'<span class="gridllm-history-when">{html.escape(when)}</span>' if when else ""
    prompt = shorten(one_line(results.prompt), 200)
    parts = [f'<div class="gridllm-history-prompt">{head}<b>Prompt:</b> {html.escape(prompt)}</div>']
    for r in results.values():
        body = r.text or r.error or ""
        first_words = shorten(one_line(body), 80)
        line = " · ".join(x for x in (r.tag, r.label, f"{r.elapsed:.1f} s", first_words) if x)
        error = (f'<div class="gridllm-error">{html.escape(one_line(r.error))}</div>'
                 if r.error and r.text else "")
        parts.append(f'<details class="gridllm-history-model"><summary>{html.escape(line)}</summary>'
                     f"<div>{error}{render_text(body)}</div></details>")
    return "".join(parts)


class HistoryList(widgets.Accordion):
    """"History (N earlier runs)", collapsed: the last ``limit`` runs, newest first.

    ``recorded`` lists the SQLite history's runs (and each run archived
    goes there through the core); without it the list holds only the runs
    archived here. ``say`` puts a one-line problem (an unreadable history)
    where its owner shows such things.
    """

    def __init__(self, *, limit: int = HISTORY_RUNS, recorded: bool = True,
                 say: Callable[[str], None] = print) -> None:
        self.limit = limit
        self.recorded = recorded
        self.say = say
        self._entries: list[tuple[str, widgets.HTML, Results]] = []  # (run id, widget, run), newest first
        self.box = widgets.VBox([])
        self.box.add_class("gridllm-history-list")
        super().__init__([self.box], selected_index=None)
        self.set_title(0, "History (0 earlier runs)")
        self.add_class("gridllm-history")
        if recorded:
            self.sync()

    @property
    def runs(self) -> list[Results]:
        """The runs listed, oldest first."""
        return [results for _, _, results in reversed(self._entries)]

    def _entry(self, results: Results, created: str | None) -> widgets.HTML:
        entry = widgets.HTML(history_entry_html(results, created))
        entry.add_class("gridllm-history-entry")
        return entry

    def _show(self) -> None:
        for _, widget, _ in self._entries[self.limit:]:  # fell off the end
            widget.close()
        del self._entries[self.limit:]
        self.box.children = tuple(widget for _, widget, _ in self._entries)
        n = len(self._entries)
        self.set_title(0, f"History ({n} earlier run{'' if n == 1 else 's'})")

    def sync(self) -> None:
        """List the SQLite history's recent runs not listed yet (the run on show is never among them:
        this runs when the panel opens, and when that run becomes an earlier one)."""
        try:
            runs = recent(self.limit)
        except Exception as exc:  # noqa: BLE001 - an unreadable history must not break the panel
            self.say(f"history not read: {exc}")
            return
        known = {run_id for run_id, _, _ in self._entries} | unvoted_runs()  # an arena round stays blind
        fresh = []
        for run in runs:
            if run["run_id"] not in known and not is_grid(run):  # a grid is no run of cards
                results = results_from_run(run)
                fresh.append((run["run_id"], self._entry(results, run.get("created")), results))
        # What the database holds that is not listed is newer than what is (the first time: all
        # of it), so it goes on top, in the database's order.
        self._entries[:0] = fresh
        self._show()

    def archive(self, results: Results) -> None:
        """The run on show becomes an earlier run."""
        if results.run_id is None:  # not in the SQLite history: listed from memory
            self._entries.insert(0, ("", self._entry(results, None), results))
        if self.recorded:
            self.sync()  # a recorded run is in the database now, with whatever else ran since
        else:
            self._show()
