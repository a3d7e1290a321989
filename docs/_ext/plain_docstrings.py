"""Docstrings are written for ``help()``: a list may follow its introducing line with no blank line.

reST wants a blank line before and after a list; this adds them before autodoc parses a
docstring, so the reference pages show each docstring as its author wrote it.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^(\s*)[-*] \S")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def loosen_lists(lines: list[str]) -> list[str]:
    out: list[str] = []
    list_indent: int | None = None
    for line in lines:
        item = _ITEM.match(line)
        if item and list_indent is None:
            if out and out[-1].strip():
                out.append("")
            list_indent = len(item.group(1))
        elif list_indent is not None and line.strip() and not item and _indent(line) <= list_indent:
            if out and out[-1].strip():
                out.append("")
            list_indent = None
        elif not line.strip() and list_indent is not None:
            list_indent = None
        out.append(line)
    return out


def _process(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = loosen_lists(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
