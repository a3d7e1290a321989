"""``Card``: one model's answer on screen, live: a ``CardWidget`` fed at a coalesced pace.

The one card of every front end: the panel shows one per ticked model, a
``%%gridllm`` cell one per model in a ``CardGrid``. Pacing (``pacing``) and
the widget (``cardwidget``) meet here, so both front ends update the same
way and cost the same bytes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from .cardwidget import CardWidget
from ..api.jobs import JobState, JobUpdate, finish_note
from .pacing import schedule_flush, update_delay
from ..display.render import render_text
from ..core.results import Result

__all__ = ["APPEND_OVERHEAD", "BYTE_BUDGET", "DEFAULT_RATE", "MAX_STALE", "Card", "CardGrid", "one_line", "slug"]

DEFAULT_RATE = 10.0  # flushes per second per card, at most
BYTE_BUDGET = 1.5  # a text-only flush waits while the card has sent > 1.5 bytes per byte of text...
MAX_STALE = 1.5  # ...but never longer than this many seconds
APPEND_OVERHEAD = 50  # bytes of one append message besides its text (JSON envelope, offset)


def slug(tag: str) -> str:
    """A CSS-class-safe form of a model tag: ``gemma3:270m`` -> ``gemma3-270m``."""
    return re.sub(r"[^a-z0-9_-]+", "-", tag.lower()).strip("-") or "model"


def one_line(text: str) -> str:
    """Messages (errors, notices) shown on one line."""
    return " ".join(str(text).split())


class Card:
    """One model's answer: a ``CardWidget`` fed at a coalesced pace.

    ``widget`` is what the front end shows. Plain mode sends each flush's new
    characters only (a restarted job's new text once, whole); markdown mode
    sends the whole rendered, sanitized HTML. Only the visible form is kept
    current; switching modes brings the other one up to date in a single
    message. State, error and elapsed time ride in the same message as the
    text, and the clock ticks in the browser.

    ``title`` is what the card shows and is styled by (default: the tag): the
    blind arena titles its cards "A", "B", "C", so the model's tag never
    reaches the browser before the vote.

    ``on_retry(tag)`` is what the card's Retry button does (shown on an
    answer that ended without one, while the owner offers it: ``offer_retry``);
    a ``JobUpdate.restart`` (a retry's first update) empties the card and
    starts its clock again.
    """

    def __init__(self, tag: str, *, markdown: bool = False, max_rate: float = DEFAULT_RATE,
                 layout: widgets.Layout | None = None, byte_budget: float | None = BYTE_BUDGET,
                 max_stale: float = MAX_STALE, widget: CardWidget | None = None, title: str | None = None,
                 on_retry: Callable[[str], Any] | None = None) -> None:
        self.tag = tag
        self.title = title or tag
        self.byte_budget = byte_budget
        self.max_stale = max_stale
        self.flushes = 0
        self._markdown = markdown
        self._interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._handle: asyncio.TimerHandle | None = None
        if widget is None:
            # Classes and mode go in with the constructor, so they travel in the comm_open.
            widget = CardWidget(self.title, markdown=markdown, layout=layout or widgets.Layout(),
                                _dom_classes=(f"gridllm-card-{slug(self.title)}",))
            self.widget = widget
            self._clear()
        else:  # the same model's card from the previous run: cleared in one small message
            self.widget = widget
            self.restart()
            widget.tag = self.title  # an arena card's title lost its name again (no message if unchanged)
        # The widget's tag is the title shown (an arena's letter): the hook is told the model.
        widget.on_retry(None if on_retry is None else lambda _title: on_retry(self.tag))

    def _clear(self) -> None:
        """Forget the answer shown: nothing pending, an empty submitted card, a new Result."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pending: JobUpdate | None = None
        self.state = JobState.SUBMITTED
        self.text = ""
        self.error: str | None = None
        self.elapsed = 0.0
        self.finish = ""  # "stopped at 64 tokens", or nothing
        # Every update goes through a Result as it arrives (not as it is shown), so the
        # card's stats line has the same times as ``Results`` whatever the pacing holds back.
        self.result = Result(tag=self.tag)
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
            self.apply(self.state, self.text, self.error, self.elapsed)

    # coalescing
    def _wait_for(self, update: JobUpdate, now: float) -> float:
        """Seconds until ``update`` may be shown (see ``pacing.update_delay``)."""
        return update_delay(update, shown_text=self.text, shown_state=self.state, shown_error=self.error,
                            last_sent=self._last_flush, sent=self.widget.sent_bytes - self._sent0, now=now,
                            interval=self._interval, byte_budget=self.byte_budget, max_stale=self.max_stale,
                            cost=lambda size, new: APPEND_OVERHEAD + (size if self._markdown else new))

    def push(self, update: JobUpdate) -> None:
        """Take an update; it reaches the widget at most ``max_rate`` times a second.

        A restart (a retry's first update) empties the card at once.
        """
        if update.restarts:
            self.restart()
            return
        self.result.apply(update)
        self._pending = update
        self._handle = schedule_flush(self._handle, self._wait_for(update, time.monotonic()), self.flush)

    def flush(self) -> None:
        """Show the newest pending update."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        update, self._pending = self._pending, None
        if update is None:
            return
        self._last_flush = time.monotonic()
        self.flushes += 1
        self.finish = finish_note(update.state, update.finish, update.tokens)
        self.apply(update.state, update.text, update.error, update.elapsed)

    def apply(self, state: JobState, text: str, error: str | None, elapsed: float) -> None:
        """Show this state at once (one message, of only what changed)."""
        self.state, self.text, self.error, self.elapsed = state, text, (one_line(error) if error else None), elapsed
        html = render_text(text, markdown=True) if self._markdown else None
        stats = self.result.stats_line() if state.terminal else ""
        self.widget.show_answer(state, text, self.error, elapsed, html=html, finish=self.finish, stats=stats)

    def fail(self, message: str) -> None:
        self.apply(JobState.FAILED, self.text, message, self.elapsed)


class CardGrid(widgets.Box):
    """Cards side by side, at most three a row (``static/card.css``), wrapping on narrow screens.

    ``on_retry(tag)``: each card's Retry button (see ``Card``), shown once offered (``offer_retry``).
    """

    def __init__(self, tags: Sequence[str], *, markdown: bool = False,
                 on_retry: Callable[[str], Any] | None = None, **card_options: object) -> None:
        self.cards = {tag: Card(tag, markdown=markdown, on_retry=on_retry, **card_options)  # type: ignore[arg-type]
                      for tag in tags}
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
        """Close every widget this grid made: the cards, their layouts, its own."""
        for card in self.cards.values():
            card.widget.layout.close()
            card.widget.close()
        self.layout.close()
        super().close()
