"""The picture of a word-level diff: two columns, marks on what each side lacks, escaped, lines kept."""

from __future__ import annotations

import re

import pytest

import gridllm_nb  # noqa: F401  (the package root gives core its pictures)
from gridllm_nb.core import hooks
from gridllm_nb.core.diff import diff_texts
from gridllm_nb.display.diff import diff_html

SCRIPT = "Hi <script>alert(1)</script> there"
IMG = 'Hi <img src=x onerror="alert(2)"> there'


def marked(html_text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag} [^>]*>(.*?)</{tag}>", html_text, re.DOTALL)


def test_a_diff_in_a_notebook_is_its_picture() -> None:
    d = diff_texts("one two", "one three", "a", "b")
    assert hooks.diff_picture is not None  # given by the package root: ``import gridllm_nb``
    assert d._repr_html_() == diff_html(d)


def test_identical_answers_have_nothing_highlighted() -> None:
    page = diff_html(diff_texts("the same answer\nhere", "the same answer\nhere", "a:1", "b:1"))
    assert "<del" not in page and "<ins" not in page
    assert "100% similar" in page and "a:1" in page and "b:1" in page


def test_disjoint_answers_are_all_highlighted() -> None:
    page = diff_html(diff_texts("alpha beta gamma", "one two three four"))
    assert marked(page, "del") == ["alpha beta gamma"] and marked(page, "ins") == ["one two three four"]


def test_each_side_highlights_what_the_other_lacks_with_inline_styles_only() -> None:
    page = diff_html(diff_texts("The cat sat on the mat.", "The dog sat on the mat today.", "a", "b"))
    assert marked(page, "del") == ["cat", "mat."] and marked(page, "ins") == ["dog", "mat today."]
    assert "style='background:#fdd;text-decoration:none'" in page and "class=" not in page.split(">", 1)[1]
    assert "2 words not in b" in page and "3 words not in a" in page


def test_long_words_break_inside_their_column() -> None:
    page = diff_html(diff_texts("x" * 200, "y" * 200))
    assert page.count("table-layout:fixed") == 1 and page.count("overflow-wrap:break-word") == 3
    assert page.count("width='50%'") == 2  # once per column, in its header cell


@pytest.mark.parametrize("evil", [SCRIPT, IMG])
def test_markup_in_answers_is_escaped_on_both_sides(evil: str) -> None:
    for d in (diff_texts(evil, "plain words", "<b>x</b>", "y"), diff_texts("plain words", evil, "y", "<b>x</b>")):
        page = diff_html(d)
        assert "<script" not in page and "<img" not in page and "<b>x" not in page
        assert "&lt;b&gt;x&lt;/b&gt;" in page  # the tags are escaped too
        assert ("&lt;script&gt;alert(1)&lt;/script&gt;" if "script" in evil else "&lt;img src=x") in page
    page = diff_html(diff_texts(evil, evil))
    assert "<script" not in page and "<img" not in page and "&lt;" in page


def test_line_breaks_and_indentation_survive() -> None:
    a = "first line\n\n  indented second\nthird"
    b = "first line\n\n  indented other\nthird"
    page = diff_html(diff_texts(a, b))
    assert "white-space:pre-wrap" in page
    assert "first line\n\n  indented <del" in page and "</del>\nthird" in page
    assert "first line\n\n  indented <ins" in page and "</ins>\nthird" in page


def test_empty_answers() -> None:
    page = diff_html(diff_texts("", "some words"))
    assert "(no text)" in page and marked(page, "ins") == ["some words"]
