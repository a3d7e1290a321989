"""The picture of a ``Diff``: the two answers side by side, each marking what the other lacks.

A two-column ``<table>`` like the saved side-by-side table (``display.table``)
and for the same reasons: inline styles only, so it survives GitHub's and
nbviewer's sanitizing; a fixed layout, so a word longer than its column
breaks inside it. A's text has the words only A has on a red background, B's
the words only B has on a green one, in ``white-space:pre-wrap`` so each
side keeps its own line breaks and indentation. Model text is untrusted:
every run of it is ``html.escape``d, nothing is ever copied in as HTML.
"""

from __future__ import annotations

import html

from ..core.diff import Diff
from .render import NO_MATH_CLASS

__all__ = ["diff_html"]

# Single-quoted attributes: the saved notebook is JSON, where each double quote costs a backslash.
_MARK = {"a": ("<del style='background:#fdd;text-decoration:none'>", "</del>"),
         "b": ("<ins style='background:#dfd;text-decoration:none'>", "</ins>")}
_TABLE = "<table style='width:100%;table-layout:fixed;overflow-wrap:break-word'>"
_CELL = "style='text-align:left;vertical-align:top'"
_HEAD = _CELL + " width='50%'"  # a column's width, once, in its header cell
_PRE = ("<pre style='white-space:pre-wrap;overflow-wrap:break-word;margin:0;font-family:inherit;"
        "background:none'>{}</pre>")


def _side(d: Diff, side: str) -> str:
    mark, close = _MARK[side]
    out = "".join(f"{mark}{html.escape(run)}{close}" if only else html.escape(run) for run, only in d.runs(side))
    return _PRE.format(out or "<em>(no text)</em>")


def _head(tag: str, only: int, other: str) -> str:
    return f"<strong>{html.escape(tag)}</strong> · {only} word{'' if only == 1 else 's'} not in {html.escape(other)}"


def diff_html(d: Diff) -> str:
    """``d`` as a two-column table: its similarity, then each answer under its tag, marked."""
    return (f"<div class='{NO_MATH_CLASS}'>{_TABLE}"
            f"<tr><th colspan='2' style='text-align:left'>{d.ratio:.0%} similar (word level)</th></tr>"
            f"<tr><th {_HEAD}>{_head(d.a, d.only_a, d.b)}</th><th {_HEAD}>{_head(d.b, d.only_b, d.a)}</th></tr>"
            f"<tr><td {_CELL}>{_side(d, 'a')}</td><td {_CELL}>{_side(d, 'b')}</td></tr>"
            "</table></div>")
