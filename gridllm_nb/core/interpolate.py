"""The one place where a ``%%gridllm`` cell body becomes a prompt.

Rules (and nothing else):

* ``{name}`` becomes ``str(value)`` when ``name`` is a plain identifier
  defined in the namespace;
* ``{In[3]}`` / ``{Out[3]}`` become that input / output (negative indices
  count from the end) when it exists;
* ``{{`` gives a literal ``{``, and the ``}}`` that closes it a literal
  ``}`` (so ``{{name}}`` is the text ``{name}``);
* any other brace text stays exactly as written: code such as
  ``{k: v for k, v in d.items()}``, JSON such as ``{"a": {"b": 1}}`` (its
  ``}}`` closes ordinary braces, so it is left alone), undefined names,
  attribute or item access (``{a.b}``, ``{d[0]}``), format specs.

Nothing is ever evaluated: only names are looked up, so a prompt cannot run
code by accident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

_FIELD = re.compile(
    r"\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<hist>In|Out)\[\s*(?P<index>-?\d+)\s*\])\}"
)
_MISSING = object()


def _lookup(match: re.Match[str], namespace: Mapping[str, Any]) -> Any:
    name = match.group("name")
    if name is not None:
        return namespace.get(name, _MISSING)
    history = namespace.get(match.group("hist"), _MISSING)
    index = int(match.group("index"))
    try:
        return history[index]  # In is a list, Out a dict keyed by cell number
    except (KeyError, IndexError, TypeError):
        return _MISSING


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Substitute defined names and In/Out references in ``text``; see the module doc."""
    if "{" not in text:
        return text
    out: list[str] = []
    open_escapes = 0  # "{{" seen whose closing "}}" is still to come
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "{":
            if text.startswith("{{", i):
                out.append("{")
                open_escapes += 1
                i += 2
                continue
            match = _FIELD.match(text, i)
            if match is not None:
                value = _lookup(match, namespace)
                if value is not _MISSING:
                    out.append(str(value))
                    i = match.end()
                    continue
            out.append(ch)
            i += 1
        elif ch == "}" and open_escapes and text.startswith("}}", i):
            out.append("}")
            open_escapes -= 1
            i += 2
        else:
            # Copy the run of ordinary characters in one go.
            j = i + 1
            while j < n and text[j] not in "{}":
                j += 1
            out.append(text[i:j])
            i = j
    return "".join(out)
