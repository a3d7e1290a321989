"""gridllm-nb grid FILE: prompt files, checks, the score table, --min-pass and --estimate, over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridllm_nb.cli import main
from gridllm_nb.cli.grid import read_prompt_file
from gridllm_nb.errors import ConfigError

from ..fakes import FakeJobsAPI, ServedFake, words_script


@pytest.fixture
def served():
    fake = FakeJobsAPI(scripts={"right": words_script("the answer is 4"), "wrong": words_script("it is 5"),
                                "j": words_script("SCORE: 6 REASON: fine")}, models=["right", "wrong", "j"])
    with ServedFake(fake) as s:
        yield s


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    file = tmp_path / "suite.jsonl"
    file.write_text("\n".join(json.dumps({"prompt": f"2+2? ({i})", "expected": "4"}) for i in range(4)) + "\n")
    return file


def test_a_prompt_file_runs_checked_and_scored(served, suite, capsys, history_file) -> None:
    code = main(["grid", str(suite), "-m", "right", "-m", "wrong", "--url", served.url,
                 "--check", "contains:{expected}", "--judge", "j"])
    out = capsys.readouterr().out
    assert code == 0
    right, wrong = out.splitlines()[1:3]
    assert right.startswith("right") and "4/4 100% [51%, 100%]" in right and "0.60" in right
    assert wrong.startswith("wrong") and "0/4 0% [0%, 49%]" in wrong


def test_min_pass_guards_a_model_change(served, suite, capsys, history_file) -> None:
    argv = ["grid", str(suite), "-m", "right", "-m", "wrong", "--url", served.url, "--check", "contains:{expected}"]
    assert main([*argv, "--min-pass", "0.8"]) == 1
    assert "gridllm-nb: wrong passed 0%, under --min-pass 0.8" in capsys.readouterr().err
    assert main(["grid", str(suite), "-m", "right", "--url", served.url, "--check", "contains:4",
                 "--min-pass", "0.8"]) == 0


def test_json_has_a_row_per_prompt_and_model_with_its_verdicts(served, suite, capsys, history_file) -> None:
    assert main(["grid", str(suite), "-m", "right", "--url", served.url, "--check", "contains:{expected}",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and rows[0]["passed"] is True
    assert rows[0]["checks"] == [{"name": "contains:{expected}", "passed": True, "score": 1.0, "reason": "",
                                  "kind": "check"}]


def test_estimate_sends_nothing(served, suite, capsys, history_file) -> None:
    assert main(["grid", str(suite), "-m", "right", "--url", served.url, "--estimate"]) == 0
    assert capsys.readouterr().out.startswith("estimate: 4 jobs · no history for right: time unknown")
    assert not served.fake.jobs


def test_run_takes_checks_too(served, capsys, history_file) -> None:
    assert main(["run", "2+2?", "-m", "right", "--url", served.url, "--check", "contains:4", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["passed"] is True and row["checks"][0]["name"] == "contains:4"


@pytest.mark.parametrize(("argv", "message"), [
    (["--check", "nope"], "unknown check 'nope'"), (["--min-pass", "2", "--check", "json"], "--min-pass is a share"),
    (["--min-pass", "0.5"], "--min-pass needs --check or --judge"),
])
def test_usage_errors_are_one_line_exit_2(served, suite, capsys, argv, message, history_file) -> None:
    assert main(["grid", str(suite), "-m", "right", "--url", served.url, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_prompt_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("prompt,expected\n\"hi, there\",x\nbye,y\n")
    assert read_prompt_file(str(csv_file)) == [{"prompt": "hi, there", "expected": "x"},
                                               {"prompt": "bye", "expected": "y"}]
    lines = tmp_path / "p.jsonl"
    lines.write_text('"just a prompt"\n\n{"prompt": "p", "n": 1}\n')
    assert read_prompt_file(str(lines)) == [{"prompt": "just a prompt"}, {"prompt": "p", "n": 1}]
    for name, text, message in (("a.txt", "x", "is .jsonl or .csv"), ("b.csv", "q\nx\n", "needs a 'prompt' column"),
                                ("c.jsonl", "{oops\n", "line 1: not JSON"), ("d.jsonl", "", "no prompts"),
                                ("e.jsonl", "[1]\n", "an object with a 'prompt'")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_prompt_file(str(tmp_path / name))
    with pytest.raises(ConfigError, match="cannot read the prompt file"):
        read_prompt_file(str(tmp_path / "missing.jsonl"))
