"""Model text -> display data. Model text is untrusted input.

This is the one place where a model's answer becomes something a front end
renders, so every rule about untrusted text lives here:

* ``text/plain`` carries the text as it is (a terminal or a ``<pre>`` never
  interprets it);
* ``text/html`` (the ``markdown`` format, and the panel's markdown view) is
  produced by a real Markdown parser with raw HTML disabled (markdown-it-py)
  and then sanitized by nh3 against an explicit allow-list: no ``style``,
  ``class``, ``src`` or event handler from model text, no svg or math, links
  only to http, https, mailto or a ``#`` fragment. Markdown images become
  their alt text: an ``<img>`` would make the browser fetch a URL the model
  chose, which is a way to exfiltrate the notebook's content;
* ``text/markdown`` must stay inert even under a renderer that *allows* raw
  HTML (Jupyter's does), so it is never the model's Markdown: prose is
  escaped character by character (``escape_markdown``) and verbatim text is
  fenced by ``fence``, whose fence outlasts any backtick run inside.

Regex "sanitizing" of Markdown is deliberately absent: Markdown's grammar
(code spans, fences, entities, lazy continuation lines) defeats it.

Formats: ``markdown`` (the answer rendered), ``text`` (verbatim in a fenced
block), ``code`` (the fenced code extracted), ``json`` (parsed and
pretty-printed; ``application/json`` added for objects and arrays).
"""

from __future__ import annotations

import functools
import html
import json
import re
import string
from typing import TYPE_CHECKING, Any

from ..text import one_line

if TYPE_CHECKING:  # the parser and the sanitizer load on first use: ``%load_ext`` stays fast
    from markdown_it import MarkdownIt

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_SCHEMES",
    "ALLOWED_TAGS",
    "FORMATS",
    "answer_html",
    "error_bundle",
    "escape_markdown",
    "escape_markdown_inline",
    "extract_code",
    "fence",
    "final_bundle",
    "header",
    "parse_json",
    "render_text",
]

FORMATS = ("markdown", "text", "code", "json")

# What the HTML rendering of an answer may contain: what markdown-it emits
# for CommonMark + tables + strikethrough, minus images, classes and styles.
ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "pre", "code", "em", "strong", "del", "s", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "a",
})
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {"a": frozenset({"href"}), "ol": frozenset({"start"})}
ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
# Front ends such as JupyterLab typeset $...$ and \\(...\\) found in the text of
# any rendered output with MathJax; model text is not meant as LaTeX (and
# "$5 and $10" is not math), so every rendering is wrapped in this class.
NO_MATH_CLASS = "tex2jax_ignore mathjax_ignore"
_NO_MATH = NO_MATH_CLASS

# Only unindented fences count as code: an indented one may belong to a list
# item that ends early.
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$")
# Markdown's own line breaks only (str.splitlines also splits on \u2028 etc.).
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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


# -- Markdown that no renderer can turn into markup ------------------------------

# CommonMark lets a backslash escape any ASCII punctuation, and an escaped
# character is always literal text. Left as they are: characters that start
# no construct in CommonMark, GFM or marked (links and tags need the escaped
# "<", "[", "(" around them). ":" is escaped: GFM's extended autolinks
# ("http://..." in bare text) would otherwise swallow the escapes after it.
_KEEP = frozenset(",;?'\"/%")
_ESCAPES = {c: "\\" + c for c in string.punctuation if c not in _KEEP}
# Not backslash-escaped: a math preprocessor (Jupyter's) reads "\\(" and
# "\$" before Markdown does; a numeric character reference is just text.
_ESCAPES["\\"] = "&#92;"
_ESCAPES["$"] = "&#36;"
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_LEADING_SPACE = re.compile(r"^[ \t]+")


def _escape_chars(text: str) -> str:
    return text.translate(_ESCAPE_TABLE)


def _keep_indent(line: str) -> str:
    # Leading spaces would make an indented code block or vanish; no-break
    # spaces keep the indentation visible and mean nothing to Markdown.
    return _LEADING_SPACE.sub(lambda m: m.group(0).replace("\t", "    ").replace(" ", "\u00a0"), line)


def escape_markdown(text: str) -> str:
    """Markdown that renders as exactly ``text``, line breaks kept, and never as markup.

    Safe under any CommonMark renderer, raw HTML allowed or not: every
    character that could open a construct (``<``, ``&``, backticks, ``[``,
    ``*``, ``#``...) is escaped, lines within a paragraph end in a hard break
    and blank lines separate paragraphs.
    """
    paragraphs: list[list[str]] = [[]]
    for line in _LINE_BREAK.split(text):
        if line.strip():
            paragraphs[-1].append(_keep_indent(_escape_chars(line.rstrip())))
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("\\\n".join(lines) for lines in paragraphs if lines)


def _no_math_markdown(md: str) -> str:
    # An HTML block of our own around Markdown: the blank lines end it, so
    # the Markdown inside is still Markdown (and still escaped).
    return f'<div class="{_NO_MATH}">\n\n{md}\n\n</div>'


def escape_markdown_inline(text: str) -> str:
    """Escape a short label (a model tag, a state, an error message) for one line of Markdown."""
    return _escape_chars(one_line(text))


# -- HTML: a real parser, then an allow-list sanitizer --------------------------------


def _image_as_text(renderer: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    """A Markdown image as its alt text (or its URL, as text): nothing is ever fetched."""
    from markdown_it.common.utils import escapeHtml

    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    return escapeHtml(alt or str(token.attrGet("src") or ""))


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # html=False: raw HTML in the answer is text, never passed through.
    # breaks=True: a model's single newline means a new line, as in the panel's plain view.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_text)
    return md


def _allowed_attribute(tag: str, attribute: str, value: str) -> str | None:
    # nh3 checks the scheme of absolute URLs only; a relative link (which
    # JupyterLab would open as a file of the server) is dropped here.
    if attribute == "href" and not value.startswith(("http:", "https:", "mailto:", "#")):
        return None
    return value


def _sanitize(fragment: str) -> str:
    import nh3

    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_allowed_attribute,
        url_schemes=set(ALLOWED_SCHEMES),
        link_rel=LINK_REL,
    )


# In a column of a table, a code block scrolls sideways rather than run over the next column (the
# code's own style too: JupyterLab wraps every <code>), and a table of the answer's own takes the
# column's width, its long words breaking in its cells. These tags come out of nh3 with no attribute
# (none is allowed on them), text there is escaped and the attributes nh3 keeps are double-quoted:
# these strings occur only as markup.
_IN_COLUMN = re.compile(r"<pre><code>|<table>")
_IN_COLUMN_STYLE = {"<pre><code>": "<pre style='overflow-x:auto'><code style='white-space:pre'>",
                    "<table>": "<table style='width:100%;table-layout:fixed'>"}


def answer_html(text: str, *, in_column: bool = False) -> str:
    """A model's Markdown answer as HTML that is safe to put in a page.

    Parsed by markdown-it (raw HTML off, images as text), then cleaned by
    nh3 against ``ALLOWED_TAGS``/``ALLOWED_ATTRIBUTES``: the parser decides
    what is markup, the sanitizer guarantees what markup can be.
    ``in_column``: styled to stay inside a narrow column (code blocks scroll, tables fit).
    """
    clean = _sanitize(_parser().render(text))
    if in_column:
        clean = _IN_COLUMN.sub(lambda m: _IN_COLUMN_STYLE[m[0]], clean)
    return clean


def render_text(text: str, *, markdown: bool = False) -> str:
    """HTML for a model's text in a card: escaped in a ``<pre>``, or ``answer_html``."""
    if not markdown:
        return f"<pre>{html.escape(text, quote=False)}</pre>"
    return answer_html(text)


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
    """(plain, markdown) one-line heading: tag, state, elapsed time[, error].

    The Markdown is escaped like model text: the tag comes from the user or
    the service and the error from the service, and neither is markup.
    """
    note = f" — {one_line(error)}" if error else ""
    plain = f"{tag} · {state} · {elapsed:.1f}s{note}"
    md_tag = escape_markdown_inline(tag)
    md_note = f" — {escape_markdown_inline(error)}" if error else ""
    md = f"{f'**{md_tag}** · ' if md_tag else ''}{escape_markdown_inline(state)} · {elapsed:.1f}s{md_note}"
    return plain, md


def _header_html(tag: str, state: str, elapsed: float, error: str | None) -> str:
    note = f" — {html.escape(one_line(error))}" if error else ""
    return f"<p><strong>{html.escape(tag)}</strong> · {html.escape(state)} · {elapsed:.1f}s{note}</p>"


def final_bundle(
    tag: str, state: str, elapsed: float, text: str, error: str | None = None, fmt: str = "markdown"
) -> dict[str, Any]:
    """The output kept in the notebook: ``text/markdown`` + ``text/plain`` (+ JSON for ``json``).

    The ``markdown`` format adds ``text/html``, the answer rendered by
    ``answer_html``: front ends prefer it, so the answer shows formatted while
    ``text/markdown`` (escaped, inert) stays a safe fallback.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    plain_head, md_head = header(tag, state, elapsed, error)
    bundle: dict[str, Any] = {}
    if not text:
        body_plain, body_md = "", ""
    elif fmt == "markdown":
        body_plain, body_md = text, escape_markdown(text)
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
    if fmt == "markdown":
        answer = answer_html(text) if text else ""
        bundle["text/html"] = f'<div class="{_NO_MATH}">{_header_html(tag, state, elapsed, error)}{answer}</div>'
    bundle["text/markdown"] = _no_math_markdown(f"{md_head}\n\n{body_md}" if body_md else md_head)
    bundle["text/plain"] = f"{plain_head}\n{body_plain}" if body_plain else plain_head
    return bundle


def error_bundle(message: str) -> dict[str, Any]:
    """A one-line error shown in place of a model's output (``--no-wait`` runs)."""
    line = "gridllm: " + one_line(message)
    return {"text/plain": line, "text/markdown": _no_math_markdown(escape_markdown_inline(line))}
