"""Word-level diff of two answers: ratio, highlights, escaping, line breaks, ``to_pandas`` similarities."""

from __future__ import annotations

import re

import pytest

import gridllm_nb
from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.diff import Diff, diff_texts, similarities, similarity
from gridllm_nb.core.results import Result, Results
from gridllm_nb.errors import ConfigError, GridLLMError

SCRIPT = "Hi <script>alert(1)</script> there"
IMG = 'Hi <img src=x onerror="alert(2)"> there'


def results(**texts: str) -> Results:
    return Results("p", {t: Result(tag=t, text=x, state=JobState.COMPLETED) for t, x in texts.items()})


def marked(html_text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag} [^>]*>(.*?)</{tag}>", html_text, re.DOTALL)


def test_identical_answers_are_fully_similar_with_nothing_highlighted() -> None:
    d = diff_texts("the same answer\nhere", "the same answer\nhere", "a:1", "b:1")
    assert isinstance(d, Diff) and d.ratio == 1.0 and d.only_a == d.only_b == 0
    page = d._repr_html_()
    assert "<del" not in page and "<ins" not in page
    assert "100% similar" in page and "a:1" in page and "b:1" in page
    assert repr(d).startswith("Diff(a:1 vs b:1: 1.00 similar)") and "[-" not in repr(d)


def test_disjoint_answers_are_about_zero_and_all_highlighted() -> None:
    d = diff_texts("alpha beta gamma", "one two three four")
    assert d.ratio == pytest.approx(0.0)
    page = d._repr_html_()
    assert marked(page, "del") == ["alpha beta gamma"] and marked(page, "ins") == ["one two three four"]
    assert repr(d).splitlines()[1] == "[-alpha beta gamma-] {+one two three four+}"


def test_each_side_highlights_what_the_other_lacks() -> None:
    d = diff_texts("The cat sat on the mat.", "The dog sat on the mat today.", "a", "b")
    assert 0.4 < d.ratio < 0.8 and (d.only_a, d.only_b) == (2, 3)
    page = d._repr_html_()
    assert marked(page, "del") == ["cat", "mat."] and marked(page, "ins") == ["dog", "mat today."]
    assert 'style="background:#fdd;text-decoration:none"' in page and "class=" not in page.split(">", 1)[1]
    assert "The [-cat-] {+dog+} sat on the" in repr(d)


@pytest.mark.parametrize("evil", [SCRIPT, IMG])
def test_markup_in_answers_is_escaped_on_both_sides(evil: str) -> None:
    for d in (diff_texts(evil, "plain words", "<b>x</b>", "y"), diff_texts("plain words", evil, "y", "<b>x</b>")):
        page = d._repr_html_()
        assert "<script" not in page and "<img" not in page and "<b>x" not in page
        assert "&lt;b&gt;x&lt;/b&gt;" in page  # the tags are escaped too
        assert ("&lt;script&gt;alert(1)&lt;/script&gt;" if "script" in evil else "&lt;img src=x") in page
    page = diff_texts(evil, evil)._repr_html_()
    assert "<script" not in page and "<img" not in page and "&lt;" in page


def test_line_breaks_and_indentation_survive() -> None:
    a = "first line\n\n  indented second\nthird"
    b = "first line\n\n  indented other\nthird"
    page = diff_texts(a, b)._repr_html_()
    assert "white-space:pre-wrap" in page
    assert "first line\n\n  indented <del" in page and "</del>\nthird" in page
    assert "first line\n\n  indented <ins" in page and "</ins>\nthird" in page
    # Whitespace-only differences are not word differences.
    assert similarity("a b\nc", "a  b c") == 1.0


def test_empty_answers() -> None:
    assert diff_texts("", "").ratio == 1.0
    d = diff_texts("", "some words")
    assert d.ratio == 0.0 and d.only_b == 2
    page = d._repr_html_()
    assert "(no text)" in page and marked(page, "ins") == ["some words"]
    assert diff_texts("   \n", "").ratio == 1.0  # no words on either side


def test_results_diff_and_unknown_tag_message() -> None:
    r = results(**{"smollm2:135m": "one two three", "gemma3:270m": "one two four"})
    d = r.diff("smollm2:135m", "gemma3:270m")
    assert (d.a, d.b) == ("smollm2:135m", "gemma3:270m") and d.ratio == pytest.approx(2 / 3)
    with pytest.raises(ConfigError) as info:
        r.diff("smollm2:135m", "nope:1")
    assert isinstance(info.value, GridLLMError)
    assert str(info.value) == "no answer from 'nope:1' in these results; the tags are: smollm2:135m, gemma3:270m"


def test_to_pandas_has_one_similarity_column_per_model() -> None:
    r = results(a="one two three", b="one two four", c="nothing in common")
    df = r.to_pandas()
    assert [c for c in df.columns if c.startswith("sim_")] == ["sim_a", "sim_b", "sim_c"]
    assert list(df["sim_a"]) == [1.0, pytest.approx(2 / 3, abs=1e-4), 0.0]
    assert list(df["sim_b"]) == [pytest.approx(2 / 3, abs=1e-4), 1.0, 0.0]
    assert list(df["sim_c"]) == [0.0, 0.0, 1.0]
    assert similarities(r)["a", "b"] == similarities(r)["b", "a"]
    assert list(df.columns[-4:]) == ["prompt", "sim_a", "sim_b", "sim_c"]  # appended after the rest


def test_diff_is_exported_lazily() -> None:
    assert "Diff" in gridllm_nb.__all__ and gridllm_nb.Diff is Diff
