"""Model text -> display bundles. Model text is untrusted input.

The rules:

* ``text/plain`` carries the text as it is (a terminal or a ``<pre>`` never
  interprets it);
* ``text/markdown`` carries *sanitized* markdown: outside code, ``<`` and
  ``&`` are escaped (so no raw HTML, no script, no event handler survives)
  and link/image targets with a scheme other than http, https or mailto are
  neutralised (``javascript:`` and ``data:`` links); fenced and inline code
  is kept verbatim, since markdown never interprets it;
* nothing here ever produces ``text/html``.

Formats: ``markdown`` (the answer as markdown), ``text`` (verbatim in a
fenced block), ``code`` (the fenced code extracted), ``json`` (parsed and
pretty-printed; ``application/json`` added for objects and arrays).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "FORMATS",
    "error_bundle",
    "escape_markdown_inline",
    "extract_code",
    "fence",
    "final_bundle",
    "header",
    "live_bundle",
    "parse_json",
    "sanitize_markdown",
]

FORMATS = ("markdown", "text", "code", "json")

# Only unindented fences count as code: an indented one may belong to a list
# item that ends early, and then what follows would be read as HTML.
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
# One-line code spans, not after a backslash, without "|" (a GFM table would
# split the span into cells and expose its content as HTML).
_INLINE_CODE = re.compile(r"(?<!\\)(?P<ticks>`+)(?P<body>[^`\n|]+?)(?P=ticks)(?!`)")
# Markdown's own line breaks only (str.splitlines also splits on \u2028 etc.).
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_SAFE_SCHEMES = ("http:", "https:", "mailto:")
# [text](target ...) and ![alt](target ...)
_LINK_TARGET = re.compile(r"(\]\(\s*<?)([^)\s>]*)")
# [label]: target
_LINK_DEF = re.compile(r"^( {0,3}\[[^\]]+\]:\s*<?)(\S+?)(>?(?:\s|$))", re.MULTILINE)


def _split_fences(text: str) -> list[tuple[bool, str]]:
    """Split markdown into (is_code, chunk) pieces along fenced code blocks.

    An unclosed fence (a block still streaming) runs to the end of the text,
    as markdown renders it.
    """
    pieces: list[tuple[bool, str]] = []
    lines = _LINES.findall(text)
    buf: list[str] = []
    fence: str | None = None
    for line in lines:
        stripped = line.rstrip("\r\n")
        if fence is None:
            m = _FENCE_OPEN.match(stripped)
            if m and not (m.group("fence")[0] == "`" and "`" in m.group("info")):
                if buf:
                    pieces.append((False, "".join(buf)))
                buf = [line]
                fence = m.group("fence")
                continue
            buf.append(line)
        else:
            buf.append(line)
            s = stripped.strip()
            if s and set(s) == {fence[0]} and len(s) >= len(fence):
                pieces.append((True, "".join(buf)))
                buf, fence = [], None
    if buf:
        pieces.append((fence is not None, "".join(buf)))
    return pieces


def _safe_target(target: str) -> str:
    t = target.strip()
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", t)
    if m is None:
        # A relative target; but a browser may still read "java\tscript:" etc.
        return target if ":" not in re.sub(r"[\s\x00-\x1f]", "", t).split("/")[0] else "#"
    return target if (m.group(1).lower() + ":") in _SAFE_SCHEMES else "#"


def _escape_prose(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _LINK_TARGET.sub(lambda m: m.group(1) + _safe_target(m.group(2)), text)
    text = _LINK_DEF.sub(lambda m: m.group(1) + _safe_target(m.group(2)) + m.group(3), text)
    return text


def sanitize_markdown(text: str) -> str:
    """Markdown safe to hand to a trusted renderer: no HTML, no script links."""
    out: list[str] = []
    for is_code, chunk in _split_fences(text):
        if is_code:
            out.append(chunk)
            continue
        pos = 0
        for m in _INLINE_CODE.finditer(chunk):
            out.append(_escape_prose(chunk[pos : m.start()]))
            out.append(m.group(0))
            pos = m.end()
        out.append(_escape_prose(chunk[pos:]))
    return "".join(out)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&~])")


def escape_markdown_inline(text: str) -> str:
    """Escape a short label (a model tag, an error message) for inline markdown."""
    text = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", text)


def fence(body: str, info: str = "") -> str:
    """A fenced block that no backtick run inside ``body`` can close early."""
    longest = max((len(m.group(0)) for m in re.finditer(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9_+.#\-]", "", info)
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{ticks}{info}\n{body}{ticks}"


def extract_code(text: str) -> tuple[str, str]:
    """The fenced code in ``text`` as (code, language); all blocks joined.

    When the model wrote no fence, the whole (stripped) text is the code.
    """
    blocks: list[str] = []
    language = ""
    for is_code, chunk in _split_fences(text):
        if not is_code:
            continue
        lines = _LINES.findall(chunk)
        m = _FENCE_OPEN.match(lines[0].rstrip("\r\n"))
        info = (m.group("info").strip().split() or [""])[0] if m else ""
        language = language or info
        body = lines[1:]
        if body and set(body[-1].strip()) <= {"`", "~"} and body[-1].strip():
            body = body[:-1]
        blocks.append("".join(body).rstrip("\n"))
    if not blocks:
        return text.strip(), ""
    return "\n\n".join(blocks), language


def parse_json(text: str) -> tuple[bool, Any]:
    """(True, value) for the JSON in ``text``: the whole text, a fenced block, or the first object/array."""
    candidates = [text.strip()]
    code, _ = extract_code(text)
    if code != text.strip():
        candidates.append(code.strip())
    for candidate in candidates:
        try:
            return True, json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            value, _end = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        return True, value
    return False, None


def header(tag: str, state: str, elapsed: float, error: str | None = None) -> tuple[str, str]:
    """(plain, markdown) one-line heading: tag, state, elapsed time[, error]."""
    note = f" — {' '.join(str(error).split())}" if error else ""
    plain = f"{tag} · {state} · {elapsed:.1f}s{note}"
    md_note = f" — {escape_markdown_inline(error)}" if error else ""
    md = f"**{escape_markdown_inline(tag)}** · {escape_markdown_inline(state)} · {elapsed:.1f}s{md_note}"
    return plain, md


def live_bundle(tag: str, state: str, elapsed: float, text: str, error: str | None = None) -> dict[str, Any]:
    """What a model's output shows while it streams: light, plain text only."""
    plain, _ = header(tag, state, elapsed, error)
    return {"text/plain": f"{plain}\n{text}" if text else plain}


def final_bundle(
    tag: str, state: str, elapsed: float, text: str, error: str | None = None, fmt: str = "markdown"
) -> dict[str, Any]:
    """The output kept in the notebook: ``text/markdown`` + ``text/plain`` (+ JSON for ``json``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    plain_head, md_head = header(tag, state, elapsed, error)
    bundle: dict[str, Any] = {}
    if not text:
        body_plain, body_md = "", ""
    elif fmt == "markdown":
        body_plain, body_md = text, sanitize_markdown(text)
    elif fmt == "text":
        body_plain, body_md = text, fence(text, "text")
    elif fmt == "code":
        code, language = extract_code(text)
        body_plain, body_md = code, fence(code, language)
    else:
        ok, value = parse_json(text)
        if ok:
            pretty = json.dumps(value, indent=2, ensure_ascii=False)
            body_plain, body_md = pretty, fence(pretty, "json")
            if isinstance(value, (dict, list)):
                bundle["application/json"] = value
        else:
            note = "(not valid JSON)"
            body_plain = f"{note}\n{text}"
            body_md = f"*{note}*\n\n{fence(text, 'text')}"
    bundle["text/markdown"] = f"{md_head}\n\n{body_md}" if body_md else md_head
    bundle["text/plain"] = f"{plain_head}\n{body_plain}" if body_plain else plain_head
    return bundle


def error_bundle(message: str) -> dict[str, Any]:
    """A one-line error shown in place of a model's output (``--no-wait`` runs)."""
    line = "gridllm: " + " ".join(str(message).split())
    return {"text/plain": line, "text/markdown": escape_markdown_inline(line)}
