"""The terminal's live columns: rendering with fake updates, then the real CLI in a pseudo-terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
from rich.console import Console

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.cli.live import REFRESH_PER_SECOND, LiveColumns, clean, live_columns

from ..fakes import FakeJobsAPI, ServedFake, words_script

_SGR = re.compile(r"\x1b\[[0-9;]*m")


class Tick:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def console(width: int = 100, height: int = 30) -> Console:
    return Console(file=io.StringIO(), width=width, height=height, force_terminal=True, color_system="truecolor")


def shown(c: Console, renderable) -> str:
    """What ``renderable`` draws, colours removed; any other escape sequence is kept, to be caught."""
    c.print(renderable)
    return _SGR.sub("", c.file.getvalue())


def up(tag: str, state: JobState, text: str = "", **kw) -> JobUpdate:
    return JobUpdate(tag, f"id-{tag}", state, text, **kw)


def two_models(clock: Tick | None = None) -> LiveColumns:
    grid = LiveColumns(["smollm2:135m", "gemma3:270m"], clock=clock or Tick())
    grid(up("smollm2:135m", JobState.RUNNING, "1. Bananas\n2. Apples", delta="1. Bananas\n2. Apples", elapsed=1.25))
    grid(up("gemma3:270m", JobState.QUEUED, elapsed=0.5))
    return grid


def test_columns_side_by_side_with_state_and_elapsed() -> None:
    clock = Tick()
    grid = two_models(clock)
    clock.now += 2.0  # the clock ticks between updates while a job is live
    out = shown(console(), grid)
    lines = out.splitlines()
    assert any("smollm2:135m" in ln and "gemma3:270m" in ln for ln in lines)  # one header row, two columns
    assert any("running · 3.2s" in ln and "queued · 2.5s" in ln for ln in lines)
    assert any("1. Bananas" in ln and "waiting…" in ln for ln in lines)
    assert max(len(ln) for ln in lines) <= 100


def test_a_finished_job_keeps_its_final_time_and_the_token_limit_is_said() -> None:
    clock = Tick()
    grid = two_models(clock)
    grid(up("smollm2:135m", JobState.COMPLETED, "1. Bananas", elapsed=4.0, finish="length", tokens=64))
    grid(up("gemma3:270m", JobState.FAILED, "half", elapsed=2.0, error="the worker died\nwith a traceback"))
    clock.now += 30
    out = shown(console(), grid)
    assert "completed · 4.0s · stopped at 64 tokens" in out
    assert "failed · 2.0s" in out
    assert "the worker died with a traceback" in out  # the error is one line


def test_reconnecting_notice_shows_in_the_header() -> None:
    grid = two_models()
    grid(up("gemma3:270m", JobState.QUEUED, elapsed=1.0, error="reconnecting…"))
    out = shown(console(), grid)
    header_end = out.index("├")
    assert "reconnecting…" in out[:header_end]


def test_rich_markup_in_an_answer_is_shown_literally() -> None:
    grid = LiveColumns(["m"])
    answer = "[bold red]x[/] and [link=http://x]y[/link] and :smile:"
    grid(up("m", JobState.COMPLETED, answer, elapsed=1.0))
    c = console()
    out = shown(c, grid)
    assert "[bold red]x[/]" in out and "[link=http://x]y[/link]" in out and ":smile:" in out
    assert "\x1b]8;" not in c.file.getvalue()  # no hyperlink was made
    assert "\x1b[1;31m" not in c.file.getvalue()  # nor bold red


def test_terminal_escapes_in_an_answer_are_neutralised() -> None:
    grid = LiveColumns(["m"])
    evil = ("safe\x1b[2J\x1b[Hstart\x1b]0;pwned title\x07 mid\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"
            " \x9b31mred\x1bc\x1b7\x1bPq#0;2;0;0;0\x1b\\end\x07\x08\rline")
    grid(up("m", JobState.RUNNING, evil, delta=evil))
    grid(up("m", JobState.FAILED, evil, error="bad \x1b[31mnews\x1b]0;t\x07"))
    c = console()
    c.print(grid)
    raw = c.file.getvalue()
    assert not re.search(r"\x1b(?!\[[0-9;]*m)", raw)  # only colours: no cursor moves, titles, links, resets
    assert "\x9b" not in raw and "\x07" not in raw and "\x08" not in raw
    text = _SGR.sub("", raw)
    assert "safestart mid" in text and "click red" in text and "end" in text and "line" in text
    assert "pwned" not in text
    assert "bad news" in text


def test_clean_removes_control_sequences_and_keeps_text() -> None:
    assert clean("a\x1b[1;31mb\x1b[0mc") == "abc"
    assert clean("t\x1b]0;title\x07u\x1b]2;x\x1b\\v") == "tuv"
    assert clean("a\r\nb\rc\td") == "a\nb\nc\td"
    assert clean("\x1b") == "" and clean("x\x1b[") == "x"  # an unfinished sequence loses its introducer
    assert clean("a\x1b]0;never ended") == "a0;never ended"  # and its rest is harmless text
    assert clean("\x9b2Jok\x9d0;t\x9c") == "ok"
    assert clean("héllo — “quoted” 日本") == "héllo — “quoted” 日本"


def test_narrow_terminal_stacks_panels() -> None:
    grid = two_models()
    out = shown(console(width=44), grid)
    lines = out.splitlines()
    assert not any("smollm2:135m" in ln and "gemma3:270m" in ln for ln in lines)
    top = next(i for i, ln in enumerate(lines) if "smollm2:135m" in ln)
    bottom = next(i for i, ln in enumerate(lines) if "gemma3:270m" in ln)
    assert top < bottom and "running" in lines[top] and "queued" in lines[bottom]
    assert max(len(ln) for ln in lines) <= 44
    # Four models do not fit side by side in 100 columns either (under 24 characters each).
    four = LiveColumns(["a1", "b2", "c3", "d4"])
    assert not any("a1" in ln and "b2" in ln for ln in shown(console(width=100), four).splitlines())
    assert any("a1" in ln and "c3" in ln for ln in shown(console(width=120), LiveColumns(["a1", "b2", "c3"])).splitlines())


def test_live_frame_shows_the_tail_and_the_final_print_everything() -> None:
    words = " ".join(f"w{i:03d}" for i in range(300))
    grid = LiveColumns(["long", "short"])
    grid(up("long", JobState.RUNNING, words, delta=words))
    grid(up("short", JobState.COMPLETED, "done", elapsed=1.0))
    c = console(height=15)
    live = shown(c, grid)
    assert len(live.splitlines()) <= 14  # fits the terminal with a line to spare
    assert "lines above" in live and "w299" in live and "w000" not in live
    final = shown(console(height=15), grid.final(console(height=15)))
    assert all(f"w{i:03d}" in final for i in range(300)) and "lines above" not in final
    # Stacked, the short answer takes what it needs and the long one the rest.
    stacked = shown(console(width=40, height=15), grid)
    assert len(stacked.splitlines()) <= 14 and "done" in stacked and "w299" in stacked


def test_live_grid_prints_the_full_grid_at_the_end_and_on_ctrl_c_but_not_on_errors() -> None:
    c = console()
    with live_columns(["a", "b"], console=c) as grid:
        grid.notice("started the local service")
        grid(up("a", JobState.COMPLETED, "alpha answer", elapsed=1.0))
        grid(up("b", JobState.COMPLETED, "beta answer", elapsed=1.0))
    out = _SGR.sub("", c.file.getvalue())
    assert "started the local service" in out
    assert out.rstrip().endswith("╯") and "alpha answer" in out.split("\x1b[2K")[-1]
    assert REFRESH_PER_SECOND == 8

    c = console()
    with pytest.raises(KeyboardInterrupt), live_columns(["a"], console=c) as grid:
        grid(up("a", JobState.CANCELLED, "partial", elapsed=1.0, error="interrupted"))
        raise KeyboardInterrupt
    assert "partial" in c.file.getvalue().split("\x1b[2K")[-1]

    c = console()
    with pytest.raises(ValueError), live_columns(["a"], console=c):
        raise ValueError("unknown model")
    assert "╭" not in c.file.getvalue().split("\x1b[2K")[-1]


# -- the real CLI ------------------------------------------------------------------------

LONG = " ".join(f"w{i:02d}" for i in range(100))


@pytest.fixture
def grid_api():
    fake = FakeJobsAPI(
        scripts={"good": words_script(LONG, per_step=4), "flaky": words_script("half of it", final="error")},
        models=["good", "flaky"],
        cancel_supported=True,
    )
    with ServedFake(fake) as served:
        yield served


def _exe() -> str:
    return os.path.join(os.path.dirname(sys.executable), "gridllm-nb")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES", "TERM")}
    env.update(TERM="xterm-256color", **extra)
    return env


_TAKE_TTY_AND_EXEC = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                      "os.execv(sys.argv[1], sys.argv[1:])")


def run_in_pty(args: list[str], cols: int = 100, rows: int = 14, timeout: float = 60,
               interrupt_after: str | None = None) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr; everything it wrote, and its exit code.

    With ``interrupt_after``, type Ctrl-C once that text has been written.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    # Its own session with the pty as controlling terminal (as a shell would), so Ctrl-C reaches it.
    proc = subprocess.Popen([sys.executable, "-c", _TAKE_TTY_AND_EXEC, _exe(), *args], stdin=slave, stdout=slave,
                            stderr=slave, env=_env(), close_fds=True, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if interrupt_after and interrupt_after in b"".join(chunks).decode("utf-8", "replace"):
                    os.write(master, b"\x03")  # the terminal turns it into SIGINT
                    interrupt_after = None
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_cli_on_a_terminal_shows_columns_then_the_full_answers(grid_api) -> None:
    code, raw = run_in_pty(["run", "hello", "-m", "good", "-m", "flaky", "--url", grid_api.url])
    assert code == 1  # flaky failed
    text = _SGR.sub("", raw)
    screen_lines = re.split(r"\r?\n|\r|\x1b\[2K|\x1b\[\d*A", text)
    assert any("good" in ln and "flaky" in ln for ln in screen_lines)  # both tags on one screen line
    assert "[good]" not in text and "[flaky]" not in text  # no interleaved fragments
    live, final = text.rsplit("\x1b[2K", 1)  # the live frame is erased, then the full grid printed
    assert "lines above" in live  # 14 rows: the live view showed the tail of the long answer
    words = re.findall(r"\bw\d\d\b", final)
    assert words == LONG.split()  # every word, once, in order
    assert "half of it" in final and "completed" in final and "failed" in final
    assert not re.search(r"\x1b(?!\[[0-9;?]*[a-zA-Z])", raw)  # nothing but CSI from us


def test_cli_json_on_a_terminal_is_unchanged(grid_api) -> None:
    code, raw = run_in_pty(["run", "hello", "-m", "good", "-m", "flaky", "--url", grid_api.url, "--json"])
    assert code == 1 and "\x1b" not in raw
    rows = json.loads(raw.replace("\r\n", "\n"))
    assert [r["tag"] for r in rows] == ["good", "flaky"] and rows[0]["text"] == LONG


def test_cli_piped_output_is_unchanged(grid_api) -> None:
    done = subprocess.run([_exe(), "run", "hello", "-m", "good", "-m", "flaky", "--url", grid_api.url],
                          check=False, capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 1, done.stderr
    assert "\x1b" not in done.stdout
    assert re.fullmatch(
        r"== good \(completed, \d+\.\ds\) ==\n" + re.escape(LONG) + r"\n"
        r"== flaky \(failed, \d+\.\ds\) ==\nhalf of it\nerror: [^\n]+\n",
        done.stdout,
    ), done.stdout


def test_cli_ctrl_c_cancels_and_prints_what_came(grid_api) -> None:
    grid_api.fake.scripts["good"] = words_script(LONG)  # a word per poll: still running when interrupted
    code, raw = run_in_pty(["run", "hello", "-m", "good", "--url", grid_api.url], interrupt_after="w03")
    text = _SGR.sub("", raw)
    assert code == 130
    final = text.rsplit("\x1b[2K", 1)[1]
    assert "cancelled" in final and "w03" in final and "w99" not in final
    assert final.rstrip().endswith("gridllm-nb: interrupted")
    assert all(job.cancelled for job in grid_api.fake.jobs.values())  # as today: the service was asked to cancel
