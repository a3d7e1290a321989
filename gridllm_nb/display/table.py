"""The saved picture of a run: every model's answer side by side, with no widget.

A live card needs a kernel; what a notebook keeps must render on its own in
JupyterLab, Notebook 7, VS Code, nbviewer and on GitHub. GitHub sanitizes
notebook HTML: it drops ``<style>``, ``class`` and ``style`` attributes, so a
CSS grid would come out stacked there. A ``<table>`` survives every one of
those front ends, so the answers sit in table columns, at most three to a
row, and the inline styles only refine what the table already does
(left-aligned, top-aligned text, where JupyterLab would right-align cells).

A column keeps its width whatever its answer holds: the table's layout is
fixed (JupyterLab's stylesheet fixes every output table; the inline style
does it in the other front ends that keep it) and a word longer than its column (a
URL, a hash, an identifier) breaks inside it; a table of the answer's own
is laid out the same way inside its column. A code block scrolls sideways in
its column instead, keeping its lines whole. Each style is written once per table or block, never per word,
and only with values JupyterLab's sanitizer keeps for an untrusted notebook
(it drops ``overflow-wrap:anywhere``, hence ``break-word`` under a fixed layout).

The bundle has ``text/html`` (each answer rendered by ``render``, so
sanitized, under a header with its stats line) and ``text/plain`` (every
front end that cannot show HTML, a terminal, nbval, shows this: each answer
under its tag, state and time); for the ``json`` format ``application/json``
maps tags to the parsed values. No ``text/markdown``: every front end that
renders Markdown renders HTML too, and a third copy of every answer (escaped
character by character, so longer than the text) would make the saved
notebook carry more than three times the text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..text import one_line
from . import render

if TYPE_CHECKING:
    from ..core.results import Result

__all__ = ["PER_ROW", "results_bundle"]

PER_ROW = 3  # answers side by side in one row; more wrap to the next
# Single-quoted attributes: the saved notebook is JSON, where each double quote costs a backslash.
# A column's width is set once, in its header cell; GitHub keeps the attribute, Jupyter both.
_ALIGN = "style='text-align:left;vertical-align:top'"
_HEAD = _ALIGN + " width='{w}%'"
_TABLE = "<table style='width:100%;table-layout:fixed;overflow-wrap:break-word'>"
_PRE = "<pre style='white-space:pre-wrap;overflow-wrap:break-word;margin:0'>{}</pre>"
_CODE = "<pre style='overflow-x:auto;margin:0'><code style='white-space:pre'>{}</code></pre>"


def _head_html(r: Result) -> str:
    parts = [f"<strong>{html.escape(r.tag)}</strong>", html.escape(r.label)]
    if not r.unsent:  # a job never sent took no time
        parts.append(f"{r.elapsed:.1f} s")
    if r.finish_note:
        parts.append(html.escape(r.finish_note))
    head = " · ".join(parts)
    if stats := r.stats_line():
        head += f"<br>{html.escape(stats)}"  # plain: the saved table keeps only allow-listed tags
    for v in r.checks:  # a line per verdict, coloured as on the card
        colour = "#14541a" if v.passed else "#666" if v.pending else "#a00"
        head += f"<br><span style='color:{colour}'>{html.escape(v.line())}</span>"
    return head


def _body_html(r: Result, fmt: str) -> str:
    text = r.text
    if not text:
        body = "<em>(no text)</em>"
    elif fmt == "markdown":
        body = render.answer_html(text, in_column=True)
    elif fmt == "code":
        code, _ = render.extract_code(text)
        body = _CODE.format(html.escape(code))
    elif fmt == "json":
        ok, value = render.parse_json(text)
        shown = json.dumps(value, indent=2, ensure_ascii=False) if ok else f"(not valid JSON)\n{text}"
        body = _PRE.format(html.escape(shown))
    else:
        body = _PRE.format(html.escape(text))
    if r.error:
        body += f"<p style='color:#a00'>⚠ {html.escape(one_line(r.error))}</p>"
    return body


def _rows(results: Sequence[Result]) -> Iterable[Sequence[Result]]:
    for start in range(0, len(results), PER_ROW):
        yield results[start:start + PER_ROW]


def results_html(results: Sequence[Result], fmt: str = "markdown") -> str:
    """The answers as one table, a header row and an answer row per three models."""
    head = _HEAD.format(w=100 // max(1, min(PER_ROW, len(results))))
    rows = []
    for group in _rows(results):
        rows.append("<tr>" + "".join(f"<th {head}>{_head_html(r)}</th>" for r in group) + "</tr>")
        rows.append("<tr>" + "".join(f"<td {_ALIGN}>{_body_html(r, fmt)}</td>" for r in group) + "</tr>")
    # render's wrapper: a "$" in an answer is a price, not the start of LaTeX.
    return f"<div class='{render.NO_MATH_CLASS}'>{_TABLE}{''.join(rows)}</table></div>"


def results_bundle(results: Sequence[Result], fmt: str = "markdown") -> dict[str, Any]:
    """``text/html`` side by side, ``text/plain`` one model after another."""
    if fmt not in render.FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(render.FORMATS)}")
    singles = [render.final_bundle(r.tag, _state_line(r), r.elapsed, r.text, r.error, fmt) for r in results]
    bundle: dict[str, Any] = {
        "text/html": results_html(results, fmt),
        "text/plain": "\n\n".join(b["text/plain"] for b in singles),
    }
    parsed = {r.tag: b["application/json"] for r, b in zip(results, singles) if "application/json" in b}
    if parsed:
        bundle["application/json"] = parsed
    return bundle


def _state_line(r: Result) -> str:
    """The plain text's header after the tag: the state, and why it stopped early.

    The stats line (queued, first token, tok/s) is in the picture only: this fallback is what
    nbval compares and a terminal shows, where figures that differ on every run are noise; so are
    a judge's scores, while the checks' verdicts are the answer's own.
    """
    checks = [v.line() for v in r.checks if v.kind == "check"]
    return " · ".join(part for part in (r.label, r.finish_note, *checks) if part)
