"""Two answers compared word by word: what one says that the other does not.

``diff_texts(a_text, b_text, a, b)`` (or ``results.diff(a, b)``) returns a
``Diff``: ``ratio`` is the word-level similarity (0 to 1, difflib's
``SequenceMatcher.ratio`` over the two word lists, ``autojunk`` off so common
words are never ignored), ``ops`` the opcodes over those word lists. Words are
compared without their whitespace, and each side is shown with its own
whitespace, so line breaks and indentation survive.

How a ``Diff`` looks in a notebook is the display layer's (``display.diff``,
given to core as ``hooks.diff_picture`` by the package root): this module gives it
each side as runs of text marked "only on this side" (``Diff.runs``), never HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import hooks

if TYPE_CHECKING:
    import difflib

    from .results import Result, Results

__all__ = ["Diff", "diff_results", "diff_texts", "similarities", "similarity", "similarity_columns"]

_WORD = re.compile(r"(\S+)(\s*)")
Op = tuple[str, int, int, int, int]


def _split(text: str) -> tuple[str, list[str], list[str]]:
    """Leading whitespace, the words, the whitespace after each word."""
    lead = text[: len(text) - len(text.lstrip())]
    words, gaps = [], []
    for m in _WORD.finditer(text, len(lead)):
        words.append(m.group(1))
        gaps.append(m.group(2))
    return lead, words, gaps


def _matcher(a_words: Sequence[str], b_words: Sequence[str]) -> difflib.SequenceMatcher[str]:
    import difflib  # loaded with the first comparison, not with the package

    return difflib.SequenceMatcher(None, a_words, b_words, autojunk=False)


def similarity(a_text: str, b_text: str) -> float:
    """Word-level similarity of two texts, 0 (nothing shared) to 1 (the same words)."""
    if a_text == b_text:
        return 1.0
    return _matcher(_split(a_text)[1], _split(b_text)[1]).ratio()


@dataclass(frozen=True)
class Diff:
    """A word-level comparison of answer ``a`` with answer ``b``."""

    a: str
    b: str
    ratio: float
    ops: tuple[Op, ...]
    a_text: str = field(default="", repr=False)
    b_text: str = field(default="", repr=False)

    @property
    def only_a(self) -> int:
        """How many of A's words B lacks."""
        return sum(i2 - i1 for tag, i1, i2, _, _ in self.ops if tag in ("replace", "delete"))

    @property
    def only_b(self) -> int:
        """How many of B's words A lacks."""
        return sum(j2 - j1 for tag, _, _, j1, j2 in self.ops if tag in ("replace", "insert"))

    def inline(self) -> str:
        """One plain-text rendering: shared words as they are, ``[-A only-]{+B only+}``."""
        _, a_words, _ = _split(self.a_text)
        _, b_words, _ = _split(self.b_text)
        parts = []
        for tag, i1, i2, j1, j2 in self.ops:
            if tag == "equal":
                parts.append(" ".join(a_words[i1:i2]))
                continue
            if i2 > i1:
                parts.append("[-" + " ".join(a_words[i1:i2]) + "-]")
            if j2 > j1:
                parts.append("{+" + " ".join(b_words[j1:j2]) + "+}")
        return " ".join(parts)

    def __repr__(self) -> str:
        head = f"Diff({self.a} vs {self.b}: {self.ratio:.2f} similar)"
        body = self.inline()
        return f"{head}\n{body}" if body else head

    def runs(self, side: str) -> list[tuple[str, bool]]:
        """Side ``"a"`` or ``"b"`` as (piece, only on this side) runs that join back into its text.

        A marked run is whole words; the whitespace after it is a run of its own, unmarked.
        """
        text = self.a_text if side == "a" else self.b_text
        lead, words, gaps = _split(text)
        runs = [(lead, False)] if lead else []
        for tag, i1, i2, j1, j2 in self.ops:
            start, end = (i1, i2) if side == "a" else (j1, j2)
            if start == end:
                continue
            inner = "".join(w + g for w, g in zip(words[start:end - 1], gaps[start:end - 1])) + words[end - 1]
            runs.append((inner, tag != "equal"))
            if gaps[end - 1]:
                runs.append((gaps[end - 1], False))
        return runs

    def _repr_html_(self) -> str | None:
        return None if hooks.diff_picture is None else hooks.diff_picture(self)


def diff_texts(a_text: str, b_text: str, a: str = "A", b: str = "B") -> Diff:
    """Compare two texts word by word; ``a`` and ``b`` name them."""
    a_words, b_words = _split(a_text)[1], _split(b_text)[1]
    m = _matcher(a_words, b_words)
    ops = tuple(m.get_opcodes())
    return Diff(a, b, 1.0 if a_text == b_text else m.ratio(), ops, a_text, b_text)


def _pick(results: Mapping[str, Result], tag: str) -> Result:
    try:
        return results[tag]
    except KeyError:
        known = ", ".join(results) or "none"
        raise ConfigError(f"no answer from {tag!r} in these results; the tags are: {known}") from None


def diff_results(results: Mapping[str, Result], a: str, b: str) -> Diff:
    """``results.diff(a, b)``: model ``a``'s answer against model ``b``'s."""
    ra, rb = _pick(results, a), _pick(results, b)
    return diff_texts(ra.text, rb.text, a, b)


def similarities(results: Mapping[str, Result]) -> dict[tuple[str, str], float]:
    """Word-level similarity of every ordered pair of answers (1.0 on the diagonal)."""
    tags = list(results)
    sims: dict[tuple[str, str], float] = {}
    for i, a in enumerate(tags):
        sims[a, a] = 1.0
        for b in tags[i + 1:]:
            sims[a, b] = sims[b, a] = similarity(results[a].text, results[b].text)
    return sims


def similarity_columns(results: Results | Mapping[str, Result]) -> dict[str, list[float]]:
    """``to_pandas``' ``sim_<tag>`` columns: each row's answer against ``tag``'s, rows in order."""
    sims = similarities(results)
    return {f"sim_{b}": [round(sims[a, b], 4) for a in results] for b in results}
