"""The magic's arguments (``notebook.args``): ``--help``, and bad arguments as one-line errors."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from gridllm_nb.cli import build_parser
from gridllm_nb.notebook.args import line_parser, parse_line

from .conftest import (
    cell,
    one_line_error,
)


def test_help(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cell(ip, "--help", "ignored") is None
    out = capsys.readouterr().out
    for flag in ("--hours", "--timeout", "--format", "--no-wait", "--no-interpolate", "--url",
                 "--system", "--option", "--out", "{name}"):
        assert flag in out
    assert ip.run_line_magic("gridllm", "help") is None
    assert "models" in capsys.readouterr().out


@pytest.mark.parametrize("line, needle", [
    ("a:1 --hours abc", "--hours"),
    ("a:1 --format yaml", "--format"),
    ("a:1 --out 1x", "--out"),
    ("a:1 --option novalue", "KEY=VALUE"),
    ("a:1 --bogus", "unrecognized"),
    ("a:1 'unclosed", "cannot parse"),
    (" ".join(f"m{i}:1" for i in range(9)), "at most 8"),
])
def test_error_bad_arguments(ip: Any, capsys: pytest.CaptureFixture[str], line: str, needle: str) -> None:
    assert needle in one_line_error(ip, f"%%gridllm {line}\nhello", capsys)



def _options(parser: argparse.ArgumentParser, command: str) -> list[tuple]:
    """``command``'s options: names, destination, default, choices, help."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [(tuple(a.option_strings), a.dest, a.default, tuple(a.choices or ()), a.help)
            for a in sub._actions if a.dest != "help"]


def test_the_leaderboard_takes_the_clis_options() -> None:
    assert _options(line_parser(), "leaderboard") == _options(build_parser(), "leaderboard")
    assert [o[0] for o in _options(line_parser(), "leaderboard")] == [("--method",), ("--mine",)]
    args = parse_line("leaderboard --method elo --mine")
    assert (args.method, args.mine) == ("elo", True)
    args = parse_line("leaderboard")
    assert (args.method, args.mine) == ("bt", False)


def test_help_lists_the_leaderboards_options(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert ip.run_line_magic("gridllm", "help") is None
    out = capsys.readouterr().out
    assert "--method elo" in out and "--mine" in out
    assert ip.run_line_magic("gridllm", "leaderboard --help") is None
    out = capsys.readouterr().out
    assert "{bt,elo}" in out and "Bradley–Terry (default)" in out and "only the votes cast by this user" in out


def test_a_bad_leaderboard_method_is_one_line(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    said = one_line_error(ip, "%gridllm leaderboard --method glicko", capsys)
    assert "--method" in said and "glicko" in said and "invalid choice" in said
