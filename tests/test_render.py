"""Model text -> bundles: sanitized markdown, plain text, code, json; never text/html."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridllm_nb.render import (
    error_bundle,
    extract_code,
    fence,
    final_bundle,
    live_bundle,
    parse_json,
    sanitize_markdown,
)

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "hello <iframe src='javascript:alert(1)'></iframe>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "![x](data:text/html;base64,PHNjcmlwdD4=)",
    "[ref]: javascript:alert(1)\n\n[ref]",
    "`a\n\n<img src=x onerror=alert(1)>\n\n`",  # not a code span across paragraphs
    "\\`<img src=x onerror=alert(1)>`",  # escaped backtick: not a code span
    "| `a|<img src=x onerror=alert(1)>` |\n|---|",  # GFM table splits at the pipe
    "- item\n  ```\n<img src=x onerror=alert(1)>\n  ```",  # indented fence ends with the list item
    "```\nok\n```\n<img src=x onerror=alert(1)>",
    "&#106;avascript and [x](&#106;avascript:alert(1))",
    "text\u2028```\n<img src=x onerror=alert(1)>",
]


def _prose(md: str) -> str:
    """The markdown outside top-level fenced blocks."""
    out, inside = [], False
    for line in md.split("\n"):
        if re.match(r"^(`{3,}|~{3,})", line):
            inside = not inside
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_raw_html_or_script_links(attack: str) -> None:
    md = sanitize_markdown(attack)
    prose = _prose(md)
    # Outside fenced code, no "<" survives (inline code spans allowed, checked below).
    without_spans = re.sub(r"(?<!\\)(`+)[^`\n|]+?\1(?!`)", "", prose)
    assert "<" not in without_spans
    for target in re.findall(r"\]\(\s*([^)\s]*)", md):
        assert target == "#" or target.startswith(("http:", "https:", "mailto:")) or ":" not in target


def test_links_and_code_kept() -> None:
    text = "See [docs](https://example.org) and `List<int>`.\n\n```python\nif a < b and c > d:\n    pass\n```\n"
    md = sanitize_markdown(text)
    assert "[docs](https://example.org)" in md
    assert "`List<int>`" in md
    assert "if a < b and c > d:" in md
    assert sanitize_markdown("a & b < c") == "a &amp; b &lt; c"


def test_final_bundle_markdown_and_plain_only() -> None:
    b = final_bundle("smollm2:135m", "completed", 1.25, "**Paris** <b>", None, "markdown")
    assert set(b) == {"text/markdown", "text/plain"}
    assert b["text/plain"] == "smollm2:135m · completed · 1.2s\n**Paris** <b>"
    assert b["text/markdown"].startswith("**smollm2:135m** · completed · 1.2s\n\n")
    assert "&lt;b>" in b["text/markdown"]


def test_final_bundle_shows_error_and_partial_text() -> None:
    b = final_bundle("m", "failed", 2.0, "partial", "boom <x>", "markdown")
    assert "failed" in b["text/plain"] and "boom <x>" in b["text/plain"] and "partial" in b["text/plain"]
    assert "<x>" not in b["text/markdown"]


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


def test_live_bundle_is_light() -> None:
    assert live_bundle("m", "running", 0.5, "abc") == {"text/plain": "m · running · 0.5s\nabc"}
    assert live_bundle("m", "queued", 0.0, "") == {"text/plain": "m · queued · 0.0s"}


def test_error_bundle_one_line() -> None:
    b = error_bundle("unknown\nmodel <x>")
    assert b["text/plain"] == "gridllm: unknown model <x>"
    assert "<" not in b["text/markdown"].replace("\\<", "")


def test_fence_longer_than_content() -> None:
    assert fence("a ```` b").startswith("`````")


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("<>&`|\\[]()!:# \n-*abcjavscript~")), max_size=80))
def test_sanitized_prose_never_has_raw_lt(text: str) -> None:
    assert "text/html" not in final_bundle("m", "completed", 0, text, None, "markdown")
    md = sanitize_markdown(text)
    prose = _prose(md)
    without_spans = re.sub(r"(?<!\\)(`+)[^`\n|]+?\1(?!`)", "", prose)
    assert "<" not in without_spans
