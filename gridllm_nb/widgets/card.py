"""One model's answer on screen, live: ``CardWidget``, ``Card`` (its pacing) and ``CardRow``.

The one card of every front end: the panel shows one per ticked model, a
``%%gridllm`` cell one per model in a ``CardRow``. Both update the same way
and cost the same bytes.

``CardWidget`` is a single anywidget (``static/card.js``, ``static/card.css``):
tag, state badge, a clock that ticks in the browser, an error line, the
answer (a DOM text node, or sanitized markdown HTML), a stats line and a
Retry button, where stock ipywidgets would take half a dozen widgets each
updated on its own. Every change of one moment (the text's delta, the
state, the error) travels in one small message (``StreamText.show``); the
elapsed time is sent once, when the answer ends.

``Card`` reads the run's ``Result``, which the core fills (``Result.apply``,
once per update): an update only tells the card that its Result changed.
It shows that Result at a coalesced pace (``update_delay``): at most one
flush per ``interval``; the end, an error, a reset or the first words as
soon as the interval allows; mere text growth (and a change between live
states riding along) also waits until the card's bytes stay within
``byte_budget`` per byte of text, never longer than ``max_stale``.

Model text is untrusted: the plain view is a text node; the markdown view is
``render_text``'s sanitized HTML. The card retries nothing itself: a Retry
click calls its owner's hook, which alone knows the run to ask again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import traitlets

from ..api.jobs import JobState, JobUpdate
from ..core.results import RETRYABLE, Result, Results
from ..display.render import render_text
from ..text import one_line
from .assets import css, esm
from .streamtext import StreamText

__all__ = ["APPEND_OVERHEAD", "BYTE_BUDGET", "DEFAULT_RATE", "MAX_STALE", "Card", "CardRow", "CardWidget",
           "schedule_flush", "slug", "update_delay"]

DEFAULT_RATE = 10.0  # flushes per second per card, at most
BYTE_BUDGET = 1.5  # a text-only flush waits while the card has sent > 1.5 bytes per byte of text...
MAX_STALE = 1.5  # ...but never longer than this many seconds
APPEND_OVERHEAD = 50  # bytes of one append message besides its text (JSON envelope, offset)


def slug(tag: str) -> str:
    """A CSS-class-safe form of a model tag: ``gemma3:270m`` -> ``gemma3-270m``."""
    return re.sub(r"[^a-z0-9_-]+", "-", tag.lower()).strip("-") or "model"


class CardWidget(StreamText):
    """A model's answer card: tag, badge, clock, error line, text and stats, in one widget.

    ``on_retry(callback)`` wires the Retry button (``callback(tag)``, in the
    kernel: a click travels as ``{"event": "retry"}``); it shows on an answer
    that ended without one while the owner offers it (``offer_retry``).
    """

    _esm = esm("deltas", "card")
    _css = css("card")
    live_fields = ("state", "elapsed", "error", "finish", "stats", "markdown", "html", "can_retry", "checks")

    tag = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode(JobState.SUBMITTED.value).tag(sync=True)
    elapsed = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    finish = traitlets.Unicode("").tag(sync=True)  # "stopped at 64 tokens", or nothing
    stats = traitlets.Unicode("").tag(sync=True)  # "queued 0.2 s · first token 0.6 s · 41 tok/s", at the end
    markdown = traitlets.Bool(False).tag(sync=True)
    html = traitlets.Unicode("").tag(sync=True)  # sanitized; only sent while ``markdown``
    can_retry = traitlets.Bool(False).tag(sync=True)  # the owner takes a retry now
    checks = traitlets.Unicode("").tag(sync=True)  # a line per verdict: "✓ contains:Paris", "… judge:m judging…"

    def __init__(self, tag: str, text: str = "", **kwargs: Any) -> None:
        self._retry_hook: Callable[[str], Any] | None = None
        super().__init__(text, tag=tag, **kwargs)

    def on_retry(self, callback: Callable[[str], Any] | None) -> None:
        """What the card's Retry button does: ``callback(tag)``; ``None`` unwires it (and the offer)."""
        self._retry_hook = callback
        if callback is None:
            self.offer_retry(False)

    def offer_retry(self, on: bool) -> None:
        """Offer the Retry button (the owner is free) or hold it back; only with a hook wired.

        A live field, like the state: the change rides in one small message.
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
                  markdown=markdown, html="", checks="")

    def show_answer(self, state: JobState, text: str, error: str | None, elapsed: float,
                    *, html: str | None = None, finish: str = "", stats: str = "", checks: str = "") -> None:
        """Show one moment of a model's answer, in one message of only what changed.

        The elapsed time and the stats go along only once the answer has
        ended: until then the browser's clock counts on its own. With
        ``html`` (sanitized markdown of ``text``) the card shows that
        instead, and the text waits until the card is back in plain mode.
        """
        fields: dict[str, Any] = {"state": state.value, "error": one_line(error) if error else "", "finish": finish,
                                  "checks": checks}
        if state.terminal:
            fields["elapsed"] = round(elapsed, 1)
            fields["stats"] = stats
        if html is None:
            self.show(text, markdown=False, **fields)
        else:
            self.show(markdown=True, html=html, **fields)


def update_delay(update: JobUpdate, *, shown_text: str, shown_state: JobState, shown_error: str | None,
                 last_sent: float, sent: int, now: float, interval: float, byte_budget: float | None,
                 max_stale: float, cost: Callable[[int, int], int]) -> float:
    """Seconds to wait before showing ``update`` (<= 0: now).

    ``sent`` is what the view has sent for this answer so far (set-up not
    included); ``cost(size, new)`` is what it would send now for a text of
    ``size`` bytes of which ``new`` are new.
    """
    wait = last_sent + interval - now
    if byte_budget is None or update.reset or (update.state.terminal and update.state is not shown_state):
        return wait
    if (update.error or "") != (shown_error or "") or not update.text.startswith(shown_text):
        return wait
    if update.text.strip() and not shown_text.strip():  # the first words show at once
        return wait
    size = len(update.text.encode())
    new = size - len(shown_text.encode())
    if sent + cost(size, new) <= byte_budget * size:
        return wait
    return max(wait, last_sent + max_stale - now)


def schedule_flush(timer: asyncio.TimerHandle | None, wait: float,
                   flush: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Run ``flush`` in ``wait`` seconds, or now (``wait <= 0``, or no running loop).

    A ``timer`` already due as soon stands; a later one is replaced.
    Returns the timer to keep (``None`` once flushed).
    """
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if timer is not None:
        if loop is not None and timer.when() <= loop.time() + max(0.0, wait):
            return timer
        timer.cancel()
    if wait <= 0 or loop is None:
        flush()
        return None
    return loop.call_later(wait, flush)


class Card:
    """One model's answer: its run's ``Result``, shown on a ``CardWidget`` at a coalesced pace.

    ``result`` is the Result the core fills; ``push(update)`` says it
    changed, ``flush`` (or ``show``, at once) sends the card what it is now:
    plain mode only the new characters (a restarted job's new text once,
    whole), markdown mode the whole sanitized HTML, with the state, error
    and, at the end, elapsed time and stats in the same message.

    ``title`` is what the card shows and is styled by (default: the tag),
    and ``mask`` what its error line may say: the blind arena titles its
    cards "A", "B", "C" and masks the names in errors
    (``ArenaRound.title``, ``ArenaRound.mask``), so no model's name reaches
    the browser before the vote. ``on_retry(tag)`` is the Retry button's
    hook (see ``CardWidget``); a ``JobUpdate.restart`` (a retry's first
    update) empties the card and starts its clock again. ``widget`` reuses a
    previous run's card widget, cleared in one small message.
    """

    def __init__(self, result: Result, *, title: str | None = None, mask: Callable[[str], str] | None = None,
                 markdown: bool = False, max_rate: float = DEFAULT_RATE, layout: widgets.Layout | None = None,
                 byte_budget: float | None = BYTE_BUDGET, max_stale: float = MAX_STALE,
                 widget: CardWidget | None = None, on_retry: Callable[[str], Any] | None = None) -> None:
        self.result = result
        self.tag = result.tag
        self.title = title or self.tag
        self.mask = mask
        self.byte_budget = byte_budget
        self.max_stale = max_stale
        self.flushes = 0
        self._markdown = markdown
        self._interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._handle: asyncio.TimerHandle | None = None
        if widget is None:
            # Classes and mode go in with the constructor, so they travel in the comm_open.
            self.widget = CardWidget(self.title, markdown=markdown, layout=layout or widgets.Layout(),
                                     _dom_classes=(f"gridllm-card-{slug(self.title)}",))
            self._clear()
        else:
            self.widget = widget
            self.restart()
            widget.tag = self.title  # an arena card's title loses its name again (no message if unchanged)
        # The widget's tag is the title shown (an arena's letter): the hook is told the model.
        self.widget.on_retry(None if on_retry is None else lambda _title: on_retry(self.tag))

    def _clear(self) -> None:
        """Forget what was shown: nothing pending, an empty submitted card."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pending = False
        self.state = JobState.SUBMITTED
        self.text = ""
        self.error: str | None = None  # as shown: one line, masked
        self._error_shown: str | None = None  # the Result's error it shows
        self.elapsed = 0.0
        self.finish = ""  # "stopped at 64 tokens", or nothing
        self._sent0 = self.widget.sent_bytes  # the byte budget counts this answer's bytes only
        self._last_flush = time.monotonic()  # the card shows its first state from the start

    def restart(self) -> None:
        """Start over for a new answer (a new run, a retry): empty, submitted, the clock at zero, in one message."""
        self._clear()
        self.widget.restart(markdown=self._markdown)

    @property
    def markdown(self) -> bool:
        return self._markdown

    @property
    def html(self) -> str:
        """The sanitized markdown HTML last sent (markdown mode)."""
        return str(self.widget.live("html"))

    def set_markdown(self, on: bool) -> None:
        if on != self._markdown:
            self._markdown = on
            self.show()

    def push(self, update: JobUpdate) -> None:
        """The Result took ``update``: it reaches the widget at most ``max_rate`` times a second.

        A restart (a retry's first update) empties the card at once.
        """
        if update.restarts:
            self.restart()
            return
        self._pending = True
        wait = update_delay(update, shown_text=self.text, shown_state=self.state, shown_error=self._error_shown,
                            last_sent=self._last_flush, sent=self.widget.sent_bytes - self._sent0,
                            now=time.monotonic(), interval=self._interval, byte_budget=self.byte_budget,
                            max_stale=self.max_stale,
                            cost=lambda size, new: APPEND_OVERHEAD + (size if self._markdown else new))
        self._handle = schedule_flush(self._handle, wait, self.flush)

    def flush(self) -> None:
        """Show the Result, if it changed since the last flush."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._pending:
            return
        self._last_flush = time.monotonic()
        self.flushes += 1
        self.show()

    def show(self) -> None:
        """Show the Result as it stands, at once (one message, of only what changed)."""
        self._pending = False
        r = self.result
        error = self.mask(r.error) if r.error and self.mask is not None else r.error
        self.state, self.text, self.elapsed, self.finish = r.state, r.text, r.elapsed, r.finish_note
        self.error, self._error_shown = (one_line(error) if error else None), r.error
        html = render_text(r.text, markdown=True) if self._markdown else None
        stats = r.stats_line() if r.state.terminal else ""
        checks = "\n".join(v.line() for v in r.checks)
        if checks and self.mask is not None:
            checks = self.mask(checks)
        self.widget.show_answer(r.state, r.text, self.error, r.elapsed, html=html, finish=self.finish, stats=stats,
                                checks=checks)


class CardRow(widgets.Box):
    """The cards of ``results`` side by side, at most three a row (``static/card.css``), wrapping on
    narrow screens; ``tags`` picks and orders them (default: all).

    ``title``, ``mask`` and ``on_retry`` go to each card (see ``Card``).
    """

    def __init__(self, results: Results, tags: Sequence[str] | None = None, *, markdown: bool = False,
                 title: Callable[[str], str] | None = None, mask: Callable[[str], str] | None = None,
                 on_retry: Callable[[str], Any] | None = None, **card_options: Any) -> None:
        self.cards = {tag: Card(results[tag], title=title(tag) if title else None, mask=mask, markdown=markdown,
                                on_retry=on_retry, **card_options)
                      for tag in (list(results) if tags is None else tags)}
        super().__init__([card.widget for card in self.cards.values()])
        self.add_class("gridllm-cards")

    def offer_retry(self, on: bool) -> None:
        """Offer the cards' Retry buttons (their owner is free) or hold them back (it is busy)."""
        for card in self.cards.values():
            card.widget.offer_retry(on)

    def push(self, update: JobUpdate) -> None:
        self.cards[update.tag].push(update)

    def flush(self) -> None:
        for card in self.cards.values():
            card.flush()

    def close(self) -> None:
        """Close every widget this row made: the cards, their layouts, its own."""
        for card in self.cards.values():
            card.widget.layout.close()
            card.widget.close()
        self.layout.close()
        super().close()
