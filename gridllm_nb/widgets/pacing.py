"""When a live view may show the next change to one model's answer.

Shared by the magic's outputs and the panel's cards: at most one update per
``interval``; the end of the answer, an error, a reset or the first words
go out as soon as the interval allows; text growth (and a change between
live states, which can ride along with it) also waits until the view's bytes stay
within budget (everything it has sent for this answer, this update
included, at most ``byte_budget`` bytes per byte of text), but never
longer than ``max_stale`` seconds, so the view keeps moving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..api.jobs import JobState, JobUpdate

__all__ = ["schedule_flush", "update_delay"]


def update_delay(
    update: JobUpdate,
    *,
    shown_text: str,
    shown_state: JobState,
    shown_error: str | None,
    last_sent: float,
    sent: int,
    now: float,
    interval: float,
    byte_budget: float | None,
    max_stale: float,
    cost: Callable[[int, int], int],
) -> float:
    """Seconds to wait before showing ``update`` (<= 0: now).

    ``sent`` is what the view has sent for this answer so far (set-up not
    included); ``cost(size, new)`` is what it would send now for a text of
    ``size`` bytes of which ``new`` are new: the whole text for a display
    update, the delta for an append-only widget.
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
