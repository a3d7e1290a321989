"""Shortening what is shown: a message on one line, a text cut to fit with "…".

Errors, notices, prompts and first words of answers reach a status line, a
card's error line, a history entry or a terminal column; all of them want
the same two things, so every layer (the service too) takes them from here.
"""

from __future__ import annotations

__all__ = ["one_line", "shorten"]

ELLIPSIS = "…"


def one_line(text: object) -> str:
    """``text`` with every run of white space (newlines included) as one space, stripped."""
    return " ".join(str(text).split())


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and "…" in ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + ELLIPSIS
