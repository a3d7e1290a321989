"""A widget's front-end code: ``static/<name>.js`` and ``static/<name>.css``, read once per class.

Every anywidget here sends its module and sheet in each comm_open (a card's
travels once per model per run), so they are read compacted: no comments
in the sheets, no indentation and no comment lines in the modules. A module may be several
files joined in order (``esm("deltas", "card")``): the shared part first,
the widget's own view, which ends with its ``export default``, last.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["STATIC", "css", "esm"]

STATIC = Path(__file__).parent / "static"


def _read(name: str, suffix: str) -> str:
    return (STATIC / f"{name}{suffix}").read_text(encoding="utf-8")


def esm(*names: str) -> str:
    """One ES module from ``static/<name>.js`` of each name, in order, without indentation and
    without its whole-line ``//`` comments."""
    lines = (line.strip() for name in names for line in _read(name, ".js").splitlines())
    return "\n".join(line for line in lines if not line.startswith("//")) + "\n"


def css(*names: str) -> str:
    """``static/<name>.css`` of each name, in order, without comments and runs of white space."""
    sheet = re.sub(r"/\*.*?\*/", "", "\n".join(_read(name, ".css") for name in names), flags=re.DOTALL)
    return re.sub(r"\s*([{};:,])\s*", r"\1", re.sub(r"\s+", " ", sheet)).strip()
