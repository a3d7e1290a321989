"""Word-level diff of two answers: ratio, the marked runs of each side, ``to_pandas`` similarities.

How a diff looks (its HTML, escaping) is tested with the display layer: tests/display/test_diff.py.
"""

from __future__ import annotations

import pytest

import gridllm_nb
from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.diff import Diff, diff_texts, similarities, similarity
from gridllm_nb.core.results import Result, Results
from gridllm_nb.errors import ConfigError, GridLLMError


def results(**texts: str) -> Results:
    return Results("p", {t: Result(tag=t, text=x, state=JobState.COMPLETED) for t, x in texts.items()})


def marked(d: Diff, side: str) -> list[str]:
    return [run for run, only in d.runs(side) if only]


def test_identical_answers_are_fully_similar_with_nothing_marked() -> None:
    d = diff_texts("the same answer\nhere", "the same answer\nhere", "a:1", "b:1")
    assert isinstance(d, Diff) and d.ratio == 1.0 and d.only_a == d.only_b == 0
    assert marked(d, "a") == marked(d, "b") == []
    assert repr(d).startswith("Diff(a:1 vs b:1: 1.00 similar)") and "[-" not in repr(d)


def test_disjoint_answers_are_about_zero_and_all_marked() -> None:
    d = diff_texts("alpha beta gamma", "one two three four")
    assert d.ratio == pytest.approx(0.0)
    assert marked(d, "a") == ["alpha beta gamma"] and marked(d, "b") == ["one two three four"]
    assert repr(d).splitlines()[1] == "[-alpha beta gamma-] {+one two three four+}"


def test_each_side_marks_what_the_other_lacks() -> None:
    d = diff_texts("The cat sat on the mat.", "The dog sat on the mat today.", "a", "b")
    assert 0.4 < d.ratio < 0.8 and (d.only_a, d.only_b) == (2, 3)
    assert marked(d, "a") == ["cat", "mat."] and marked(d, "b") == ["dog", "mat today."]
    assert "The [-cat-] {+dog+} sat on the" in repr(d)


def test_the_runs_join_back_into_each_text_with_its_whitespace() -> None:
    a = "  first line\n\n  indented second\nthird "
    b = "first line\n\n  indented other\nthird"
    d = diff_texts(a, b)
    assert "".join(run for run, _ in d.runs("a")) == a and "".join(run for run, _ in d.runs("b")) == b
    assert marked(d, "a") == ["second"] and marked(d, "b") == ["other"]
    # Whitespace-only differences are not word differences.
    assert similarity("a b\nc", "a  b c") == 1.0


def test_empty_answers() -> None:
    assert diff_texts("", "").ratio == 1.0
    d = diff_texts("", "some words")
    assert d.ratio == 0.0 and d.only_b == 2
    assert d.runs("a") == [] and marked(d, "b") == ["some words"]
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
