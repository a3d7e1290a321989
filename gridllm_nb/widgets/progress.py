"""A grid's progress bar in a notebook: core's ``progress="widget"``.

Core counts and throttles (``core/progress.py``) and draws no widget; the
package root registers this bar with it (``register_progress``), loaded on
first use, so ``progress="auto"`` picks it wherever a kernel shows it.
"""

from __future__ import annotations

from typing import Any

from ..core.progress import Counts, Progress, progress_line

__all__ = ["WidgetProgress"]


class WidgetProgress(Progress):
    """An ``IntProgress`` bar and a label in the cell's output.

    At the end the widgets are closed and the output becomes the final line
    as plain text, so a saved notebook shows how the grid ended, not a
    widget that no longer exists.
    """

    def __init__(self, total: int, **kwargs: Any) -> None:
        import ipywidgets as w
        from IPython.display import display

        super().__init__(total, **kwargs)
        self.bar = w.IntProgress(value=0, min=0, max=max(total, 1), bar_style="info",
                                 layout=w.Layout(width="40%"))
        self.label = w.Label(value=progress_line(Counts(0, 0, total), 0.0))
        self.box = w.HBox([self.bar, self.label])
        self.handle = display(self.box, display_id=True)

    def draw(self, counts: Counts, line: str, *, final: bool) -> None:
        if final:
            if self.handle is not None:  # None where nothing displays (no IPython shell)
                self.handle.update({"text/plain": line}, raw=True)
            for widget in (self.box, self.bar, self.label):
                for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
                    if part is not None:
                        part.close()
            return
        if self.bar.value != counts.finished:
            self.bar.value = counts.finished
        if counts.failed and self.bar.bar_style != "warning":
            self.bar.bar_style = "warning"
        self.label.value = line

