"""``CardWidget``: one model's answer as a single widget, cheap to stream.

A card shows the model's tag, a status badge, the elapsed time, an error
line and the answer (plain text, or sanitized markdown HTML). Made of stock
ipywidgets it would be half a dozen widgets, each opened with its whole
state and each updated on its own; here it is one ``StreamText`` whose
every change (the text's delta, the state, the error) travels in a single
small message, and whose clock ticks in the browser: the kernel sends the
elapsed time once, when the answer ends, never once a second.

Model text is untrusted: the plain view is a DOM text node; the markdown
view takes ``html``, which its producer must have sanitized (the panel
renders with markdown-it, raw HTML off, then cleans with nh3).

The card owns its look: ``static/card.js`` (the view) and
``static/card.css`` (the card and the side-by-side grid it sits in), so it
is styled from its first update wherever it shows, the panel or a cell.

A card whose answer ended without one (failed, lost, cancelled, timed out)
shows a Retry button when its owner wired one (``on_retry``): a real
``<button>`` whose click travels as the message ``{"event": "retry"}`` and
calls the owner's hook here, in the kernel. The card itself retries
nothing: only its owner knows the run to ask again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import traitlets

from ..api.jobs import JobState
from ..core.results import RETRYABLE
from .streamtext import INITIALIZE_JS, TEXT_NODE_JS, StreamText, compact_esm

__all__ = ["CardWidget"]

STATIC = Path(__file__).parent / "static"


def compact_css(css: str) -> str:
    """The sheet without comments and runs of white space: each card's comm_open carries it."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    return re.sub(r"\s*([{};:,])\s*", r"\1", re.sub(r"\s+", " ", css)).strip()


class CardWidget(StreamText):
    """A model's answer card: tag, badge, clock, error line and text, in one widget.

    ``show(text, state=..., elapsed=..., error=..., markdown=..., html=...)``
    sends what changed in one message (see ``StreamText.show``).
    """

    _esm = compact_esm(INITIALIZE_JS, TEXT_NODE_JS, (STATIC / "card.js").read_text(encoding="utf-8"))
    _css = compact_css((STATIC / "card.css").read_text(encoding="utf-8"))
    live_fields = ("state", "elapsed", "error", "finish", "stats", "markdown", "html", "can_retry")

    tag = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode(JobState.SUBMITTED.value).tag(sync=True)
    elapsed = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    finish = traitlets.Unicode("").tag(sync=True)  # "stopped at 64 tokens", or nothing
    stats = traitlets.Unicode("").tag(sync=True)  # "queued 0.2 s · first token 0.6 s · 41 tok/s", at the end
    markdown = traitlets.Bool(False).tag(sync=True)
    html = traitlets.Unicode("").tag(sync=True)  # sanitized; only sent while ``markdown``
    # The owner takes a retry now (a hook is wired and nothing of its own is running): the
    # Retry button shows on a card that ended without an answer only while this is true.
    can_retry = traitlets.Bool(False).tag(sync=True)

    def __init__(self, tag: str, text: str = "", **kwargs: Any) -> None:
        self._retry_hook: Callable[[str], Any] | None = None
        super().__init__(text, tag=tag, **kwargs)

    def on_retry(self, callback: Callable[[str], Any] | None) -> None:
        """What the card's Retry button does: ``callback(tag)``; ``None`` unwires it.

        The button shows only while the owner offers it (``offer_retry``):
        an owner whose run is still going holds it back until it is free.
        """
        self._retry_hook = callback
        if callback is None:
            self.offer_retry(False)

    def offer_retry(self, on: bool) -> None:
        """Offer the Retry button (the owner is free to retry) or hold it back; only with a hook wired.

        A live field, like the state: the change rides in one small message, never as a trait update.
        """
        self.show(can_retry=on and self._retry_hook is not None)

    @property
    def retryable(self) -> bool:
        """True while the Retry button shows: a hook, the owner free, an answer that ended without one."""
        return (self._retry_hook is not None and bool(self._live["can_retry"])
                and JobState(self._live["state"]) in RETRYABLE)

    def click_retry(self) -> None:
        """What a click on the Retry button does (from Python, as ``Button.click()``)."""
        if self.retryable:
            assert self._retry_hook is not None
            self._retry_hook(self.tag)

    def _on_front_end_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        # A click on a button the kernel no longer offers (a second click, a stale view) does nothing.
        if isinstance(content, dict) and content.get("event") == "retry":
            self.click_retry()
            return
        super()._on_front_end_msg(widget, content, buffers)

    def restart(self, *, markdown: bool = False) -> None:
        """Make the card ready for a new answer (empty, submitted, clock at zero), in one message."""
        self.show("", state=JobState.SUBMITTED.value, elapsed=0.0, error="", finish="", stats="",
                  markdown=markdown, html="")

    def show_answer(self, state: JobState, text: str, error: str | None, elapsed: float,
                    *, html: str | None = None, finish: str = "", stats: str = "") -> None:
        """Show one moment of a model's answer, in one message of only what changed.

        The elapsed time goes along only once the answer has ended: until
        then the browser's clock counts on its own, from when the card
        appeared (when the job was submitted). With ``html``
        (sanitized markdown of ``text``) the card shows that instead, and
        the text waits until the card is back in plain mode.
        """
        err = " ".join(str(error).split()) if error else ""
        fields: dict[str, Any] = {"state": state.value, "error": err, "finish": finish}
        if state.terminal:  # the stats line goes in the end's one message: no bytes while streaming
            fields["elapsed"] = round(elapsed, 1)
            fields["stats"] = stats
        if html is None:
            self.show(text, markdown=False, **fields)
        else:
            self.show(markdown=True, html=html, **fields)
