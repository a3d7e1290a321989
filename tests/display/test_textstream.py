"""The one labelled live text stream (``display.textstream``): the CLI's lines and the magic's terminal output."""

from __future__ import annotations

import io

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import RECONNECTING
from gridllm_nb.display.textstream import TextStream

RUN, DONE = JobState.RUNNING, JobState.COMPLETED


def test_labels_each_model_and_marks_resets() -> None:
    out = io.StringIO()
    stream = TextStream(out)
    stream(JobUpdate("a", "1", RUN, "Hel", delta="Hel"))
    stream(JobUpdate("b", "2", RUN, "Yo", delta="Yo"))
    stream(JobUpdate("a", "1", RUN, "Hello", delta="lo"))
    stream(JobUpdate("a", "1", RUN, "New", delta="New", reset=True))
    stream(JobUpdate("a", "1", DONE, "New", elapsed=1.5))
    text = out.getvalue()
    assert text.startswith("[a] Hel\n[b] Yo\n[a] lo\n[a] (restarted) New")
    assert "[a: completed in 1.5s]" in text


def test_the_notice_shows_once_inline() -> None:
    out = io.StringIO()
    stream = TextStream(out)
    for u in (JobUpdate("m", "1", RUN, "Hi", delta="Hi"),
              JobUpdate("m", "1", RUN, "Hi", error=f"{RECONNECTING} (no answer from the service)"),
              JobUpdate("m", "1", RUN, "Hi", error=f"{RECONNECTING} (no answer from the service)"),
              JobUpdate("m", "1", RUN, "Hi"),
              JobUpdate("m", "1", RUN, "Hi there", delta=" there"),
              JobUpdate("m", "1", DONE, "Hi there", elapsed=1.0)):
        stream(u)
    text = out.getvalue()
    assert text.count(RECONNECTING) == 1 and "Hi (reconnecting… (no answer from the service))  there" in text


def test_one_at_a_time_never_interleaves_and_shows_ended_answers_first() -> None:
    """The magic's terminal output: the model shown streams; the others wait and come whole, ended ones first."""
    out = io.StringIO()
    stream = TextStream(out, ["a", "b", "c"], one_at_a_time=True)
    stream(JobUpdate("a", "1", RUN, "A1"))
    stream(JobUpdate("b", "2", RUN, "B1"))
    stream(JobUpdate("c", "3", RUN, "C1"))
    stream(JobUpdate("a", "1", RUN, "A1 A2"))
    stream(JobUpdate("c", "3", DONE, "C1 C2", elapsed=2.0))
    stream(JobUpdate("b", "2", RUN, "B1 B2"))
    assert out.getvalue() == "[a] A1 A2"  # b and c wait while a streams
    stream(JobUpdate("a", "1", DONE, "A1 A2 A3", elapsed=3.0))
    assert out.getvalue() == ("[a] A1 A2 A3\n[a: completed in 3.0s]\n"
                              "[c] C1 C2\n[c: completed in 2.0s]\n"  # ended: before b, which still runs
                              "[b] B1 B2")
    stream(JobUpdate("b", "2", RUN, "B1 B2", error=f"{RECONNECTING} (no answer)"))  # b is shown: its notice too
    stream(JobUpdate("b", "2", DONE, "B1 B2 B3", elapsed=4.0))
    assert out.getvalue().endswith(f"[b] B1 B2 ({RECONNECTING} (no answer))  B3\n[b: completed in 4.0s]\n")


def test_finish_ends_every_model_still_going_with_the_note() -> None:
    out = io.StringIO()
    stream = TextStream(out, ["a", "b"], one_at_a_time=True)
    stream(JobUpdate("a", "1", RUN, "half"))
    stream(JobUpdate("b", "2", RUN, "other", elapsed=0.5))
    stream.finish("interrupted")
    assert out.getvalue() == ("[a] half\n[a: running in 0.0s — interrupted]\n"
                              "[b] other\n[b: running in 0.5s — interrupted]\n")


def test_a_retry_starts_the_model_over_under_a_new_label() -> None:
    out = io.StringIO()
    stream = TextStream(out)
    stream(JobUpdate("a", "1", JobState.FAILED, "half", error="boom", elapsed=1.0))
    stream(JobUpdate.restart("a"))
    stream(JobUpdate("a", "2", DONE, "whole", elapsed=2.0))
    assert out.getvalue() == "[a] half\n[a: failed in 1.0s — boom]\n[a] whole\n[a: completed in 2.0s]\n"


def test_code_answers_are_printed_again_as_extracted() -> None:
    out = io.StringIO()
    stream = TextStream(out, ["a"], fmt="code", one_at_a_time=True)
    stream(JobUpdate("a", "1", DONE, "Here:\n```python\nprint(1)\n```", elapsed=1.0))
    text = out.getvalue()
    assert text.startswith("[a] Here:") and text.count("print(1)") == 2 and text.endswith("[a: completed in 1.0s]\n")
