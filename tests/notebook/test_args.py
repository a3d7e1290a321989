"""The magic's arguments (``notebook.args``): ``--help``, and bad arguments as one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

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

