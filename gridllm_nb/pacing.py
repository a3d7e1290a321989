"""When a live view may show the next change to one model's answer.

Shared by the magic's outputs and the panel's cards: at most one update per
``interval``; a change of state, error or a reset goes out as soon as the
interval allows; mere text growth also waits until the new text is worth
what the update will send (``byte_budget`` bytes sent per new byte), but
never longer than ``max_stale`` seconds, so the view keeps moving.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import JobState, JobUpdate

__all__ = ["update_delay"]


def update_delay(
    update: JobUpdate,
    *,
    shown_text: str,
    shown_state: JobState,
    shown_error: str | None,
    last_sent: float,
    now: float,
    interval: float,
    byte_budget: float | None,
    max_stale: float,
    cost: Callable[[int, int], int],
) -> float:
    """Seconds to wait before showing ``update`` (<= 0: now).

    ``cost(size, new)`` is what the view would send for a text of ``size``
    bytes of which ``new`` are new: the whole text for a display update, the
    delta for an append-only widget.
    """
    wait = last_sent + interval - now
    if byte_budget is None or update.state is not shown_state or update.reset:
        return wait
    if (update.error or "") != (shown_error or "") or not update.text.startswith(shown_text):
        return wait
    size = len(update.text.encode())
    new = size - len(shown_text.encode())
    if new * byte_budget >= cost(size, new):
        return wait
    return max(wait, last_sent + max_stale - now)
