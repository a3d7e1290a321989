"""The saved picture of a run: answers side by side in a table, safe, with no widget."""

from __future__ import annotations

import html

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.results import Result, Results
from gridllm_nb.display.table import results_bundle

from .test_render import assert_safe_bundle, model_text


def results(*answers: tuple[str, str], **fields) -> Results:
    return Results("p", {tag: Result(tag=tag, text=text, state=JobState.COMPLETED, elapsed=1.25, **fields)
                         for tag, text in answers})


def test_answers_sit_side_by_side_three_to_a_row() -> None:
    five = results(*((f"m{i}:1", f"answer {i}") for i in range(5)))
    html = results_bundle(list(five.values()))["text/html"]
    assert html.count("<tr>") == 4  # a header row and an answer row per three models
    first_row = html.split("</tr>")[0]
    assert all(f"m{i}:1" in first_row for i in range(3)) and "m3:1" not in first_row
    assert html.count("width='33%'") == 5  # in each header cell, never in an answer's


def test_line_breaks_and_lists_are_kept() -> None:
    bundle = results_bundle(list(results(("a:1", "A. red, blue\nB. yellow\n\n- one\n- two")).values()))
    assert "<br" in bundle["text/html"] and "<li>one</li>" in bundle["text/html"]
    assert "B. yellow" in bundle["text/plain"]


def test_an_answer_cut_by_the_token_limit_says_so() -> None:
    cut = results(("a:1", "Once upon a"), finish_raw="length", service_tokens=64)
    bundle = results_bundle(list(cut.values()))
    assert "stopped at 64 tokens" in bundle["text/html"] and "stopped at 64 tokens" in bundle["text/plain"]
    whole = results(("a:1", "Done."), finish_raw="stop", service_tokens=2)
    assert "stopped" not in results_bundle(list(whole.values()))["text/html"]


def test_the_stats_line_is_in_the_picture_escaped_and_not_in_the_plain_fallback() -> None:
    """The plain text is what nbval compares: no figures there that change on every run."""
    timed = results(("a:1", "One two three."), finish_raw="stop", service_tokens=12,
                    submitted_s=0.0, started_s=0.5, first_token_s=0.75, ended_s=2.25)
    stats = timed["a:1"].stats_line()
    assert "first token" in stats and "tok/s" in stats
    bundle = results_bundle(list(timed.values()))
    assert html.escape(stats) in bundle["text/html"]
    assert "tok/s" not in bundle["text/plain"] and "completed" in bundle["text/plain"].splitlines()[0]


def test_the_results_value_is_the_picture() -> None:
    r = results(("a:1", "**bold**"), ("b:2", "`code`"))
    assert r._repr_mimebundle_() == results_bundle(list(r.values()))
    assert "<strong>bold</strong>" in r._repr_mimebundle_()["text/html"]
    r.format = "text"
    assert "**bold**" in r._repr_mimebundle_()["text/html"]


def test_errors_show_under_the_partial_text() -> None:
    r = Results("p", {"a:1": Result(tag="a:1", text="half an", state=JobState.FAILED, error="engine <b>died</b>")})
    html = results_bundle(list(r.values()))["text/html"]
    assert "half an" in html and "engine &lt;b&gt;died&lt;/b&gt;" in html


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(model_text, model_text, model_text), min_size=1, max_size=4),
       st.sampled_from(["markdown", "text", "code", "json"]))
def test_any_answers_render_safely(answers: list[tuple[str, str, str]], fmt: str) -> None:
    r = Results("p", {f"{tag}#{i}": Result(tag=f"{tag}#{i}", text=text, state=JobState.FAILED, error=error)
                      for i, (tag, text, error) in enumerate(answers)})
    assert_safe_bundle(results_bundle(list(r.values()), fmt))


def test_long_words_break_in_their_column_and_code_scrolls_in_it() -> None:
    long = "x" * 300
    r = results(("a:1", f"{long} {long}\n\n```\n{long}\n```\n\n| head |\n|---|\n| {long} |"), ("b:1", long))
    page = results_bundle(list(r.values()))["text/html"]
    assert page.count("table-layout:fixed;overflow-wrap:break-word") == 1  # once per table, never per word
    assert page.count("<pre style='overflow-x:auto'><code style='white-space:pre'>") == 1
    assert page.count("<table style='width:100%;table-layout:fixed'>\n<thead>") == 1  # the answer's own table
    code = results_bundle(list(r.values()), "code")["text/html"]
    assert code.count("<pre style='overflow-x:auto;margin:0'><code style='white-space:pre'>") == 2
    text = results_bundle(list(r.values()), "text")["text/html"]
    assert text.count("white-space:pre-wrap;overflow-wrap:break-word") == 2


def test_verdicts_are_in_the_header_escaped_and_the_checks_in_the_plain_text() -> None:
    from gridllm_nb.core.checks import Verdict

    r = Result(tag="m", text="hi", state=JobState.COMPLETED, checks=[
        Verdict("contains:<b>", False, 0.0, "no '<b>' in the answer"),
        Verdict("judge:j", True, 0.7, "fine", kind="judge")])
    bundle = results_bundle([r], "text")
    assert "<span style='color:#a00'>✗ contains:&lt;b&gt;: no &#x27;&lt;b&gt;&#x27; in the answer</span>" in \
        bundle["text/html"]
    assert "✓ judge:j 0.70: fine" in bundle["text/html"]
    assert "✗ contains:<b>: no '<b>' in the answer" in bundle["text/plain"]
    assert "judge" not in bundle["text/plain"]  # a judge's score differs from run to run


def test_a_job_never_sent_says_so_and_shows_no_time() -> None:
    unsent = Result(tag="b:2", state=JobState.SUBMITTED, error="not sent: the grid stopped before its turn")
    r = Results("p", {"a:1": Result(tag="a:1", text="ok", state=JobState.COMPLETED, job_id="j1", elapsed=1.25),
                      "b:2": unsent})
    page = results_bundle(list(r.values()))["text/html"]
    assert "<strong>a:1</strong> · completed · 1.2 s" in page
    assert "<strong>b:2</strong> · not sent" in page and "not sent · 0.0 s" not in page
