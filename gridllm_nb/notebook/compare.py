"""The panel's Compare pane: two answers of the run on show, word by word, escaped.

Shown while its toggle is on; two dropdowns pick the answers and the pane
shows ``Results.diff`` of them (``core.diff``: every piece of model text
``html.escape``'d, never live HTML) once the run has ended. What it
compares comes from its owner (``source``): the panel's Results, lettered
while an arena round waits for its vote, so the pane names no model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..core.results import Results

__all__ = ["ComparePane"]


class ComparePane(widgets.VBox):
    """Dropdowns A and B over ``source()``'s answers and their word diff; ``toggle`` shows it.

    ``refresh()`` brings it up to date (the owner calls it when its run
    starts, ends or is revealed; the toggle and dropdowns call it too).
    """

    def __init__(self, source: Callable[[], Results | None]) -> None:
        self.source = source
        self.toggle = widgets.ToggleButton(value=False, description="Compare",
                                           tooltip="Compare two answers word by word")
        self.toggle.add_class("gridllm-compare")
        self.a = widgets.Dropdown(description="A", options=[], style={"description_width": "initial"},
                                  layout=widgets.Layout(width="auto", margin="0 12px 0 0"))
        self.b = widgets.Dropdown(description="B", options=[], style={"description_width": "initial"},
                                  layout=widgets.Layout(width="auto", margin="0 12px 0 0"))
        self.html = widgets.HTML("")
        self.html.add_class("gridllm-diff")
        self.pick = widgets.HBox([self.a, self.b])
        self._syncing = False
        super().__init__([self.pick, self.html], layout=widgets.Layout(display="none"))
        self.add_class("gridllm-diff-box")
        for control in (self.toggle, self.a, self.b):
            control.observe(self.refresh, names="value")

    def refresh(self, _change: Any = None) -> None:
        """Compare on and two answers or more: the dropdowns list the run's models, the HTML their diff."""
        if self._syncing:
            return
        results = self.source()
        tags = list(results) if results is not None else []
        self.layout.display = None if self.toggle.value else "none"
        self.pick.layout.display = None if len(tags) >= 2 else "none"
        if not self.toggle.value:
            return
        if len(tags) < 2:
            self.html.value = "<em>Compare needs two answers: run two models or more.</em>"
            return
        self._syncing = True  # new options set the values: one refresh, not three
        try:
            a, b = self.a.value, self.b.value
            if list(self.a.options) != tags:
                self.a.options, self.b.options = tags, tags
            self.a.value = a if a in tags else tags[0]
            self.b.value = b if b in tags and b != self.a.value else next(t for t in tags if t != self.a.value)
        finally:
            self._syncing = False
        assert results is not None
        if not results.done:
            self.html.value = "<em>the comparison is shown when the run ends</em>"
            return
        self.html.value = results.diff(self.a.value, self.b.value)._repr_html_()
