"""%%gridllm --check, --judge and --estimate: the magic hands them to the shared core."""

from __future__ import annotations

from typing import Any

import pytest

from gridllm_nb.core.grid import GridResults

from .conftest import CellError, cell, prompts_sent


def test_a_cell_checks_every_answer_as_it_ends(ip: Any, fake) -> None:
    results = cell(ip, f"a:1 b:2 --url {fake.url} --check contains:Paris --check max-words:3", "capital?")
    assert [v.line() for v in results["a:1"].checks] == ["✓ contains:Paris", "✗ max-words:3: 6 words, over 3"]
    assert results["b:2"].passed is True
    assert "✗ max-words:3: 6 words, over 3" in results._repr_mimebundle_()["text/plain"]


def test_over_reads_each_elements_expected_value(ip: Any, fake) -> None:
    ip.user_ns["qs"] = [{"q": "France", "expected": "Paris"}, {"q": "Italy", "expected": "Rome"}]
    g = cell(ip, f"a:1 --url {fake.url} --over qs --check contains:{{expected}}", "capital of {q}?")
    assert isinstance(g, GridResults) and [run["a:1"].passed for run in g] == [True, False]
    assert "1/2 50%" in repr(g)


def test_estimate_sends_nothing_and_says_what_the_grid_would_cost(ip: Any, fake, capsys) -> None:
    ip.user_ns["xs"] = ["a", "b", "c"]
    assert cell(ip, f"a:1 b:2 --url {fake.url} --over xs --estimate", "{item}") is None
    assert capsys.readouterr().out.startswith("estimate: 6 jobs · no history for a:1, b:2: time unknown")
    assert not prompts_sent(fake.fake)
    with pytest.raises(CellError, match="--estimate goes with --over"):
        cell(ip, f"a:1 --url {fake.url} --estimate", "hi")


def test_a_bad_check_is_one_line_before_anything_is_sent(ip: Any, fake) -> None:
    with pytest.raises(CellError, match="unknown check 'nope'"):
        cell(ip, f"a:1 --url {fake.url} --check nope", "hi")
    assert not prompts_sent(fake.fake)
