"""What ended a process, in words: exit codes, signals, a runner's crash, the log's last lines."""

from __future__ import annotations

import signal
from pathlib import Path

from gridllm_nb.service.exits import describe_exit, log_tail


def test_describe_exit_names_codes_and_signals() -> None:
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(-signal.SIGKILL) == "exited with SIGKILL"


def test_log_tail_keeps_the_last_three_non_blank_lines(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("one\n\ntwo\nthree\n\nfour\n")
    assert log_tail(log) == f'log {log}: "two" / "three" / "four"'
    assert log_tail(tmp_path / "none.log").endswith("unreadable")


def test_a_runner_that_ends_on_a_signal_crashed() -> None:
    assert describe_exit(-signal.SIGSEGV, crash=True) == "crashed (SIGSEGV)"
    assert describe_exit(-signal.SIGKILL, crash=True).startswith("was killed (SIGKILL")
    assert describe_exit(3, crash=True) == "exited with code 3"
    assert describe_exit(None, crash=True) == "stopped answering"
