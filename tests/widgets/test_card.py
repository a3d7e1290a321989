"""The card: ``CardWidget`` sends one message per change, holding only what changed (the clock stays
in the browser); ``Card`` shows its run's ``Result`` at a coalesced pace; ``CardRow`` holds them."""

from __future__ import annotations

import json
import re

import pytest

from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.core.results import RETRYABLE, Result, Results
from gridllm_nb.widgets.card import Card, CardRow, CardWidget, slug

from ..conftest import Wire


def test_a_card_opens_with_its_tag_and_sends_nothing_more_until_shown(wire: Wire) -> None:
    card = CardWidget("gemma3:270m")
    (opened,) = wire.of(card, "comm_open")
    assert opened["state"]["tag"] == "gemma3:270m" and opened["state"]["state"] == "submitted"
    assert wire.of(card) == [] and card.sent_bytes == 0


def test_one_message_carries_the_delta_and_the_state_change(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.RUNNING, "Hel", None, 0.42)
    card.show_answer(JobState.RUNNING, "Hello", None, 0.9)  # text only: no state, no clock
    card.show_answer(JobState.RUNNING, "Hello", None, 1.7)  # nothing changed: nothing sent
    card.show_answer(JobState.COMPLETED, "Hello!", None, 2.04)
    assert wire.custom(card) == [
        {"set": {"state": "running"}, "append": "Hel", "at": 0},  # the clock ticks in the browser
        {"append": "lo", "at": 3},
        {"set": {"state": "completed", "elapsed": 2.0}, "append": "!", "at": 5},
    ]
    assert wire.updates(card) == []  # never a trait update: the traits keep their first values
    assert card.sent_bytes == sum(len(json.dumps(d, ensure_ascii=False).encode()) for d in wire.of(card))


def test_an_error_is_one_line_and_the_end_stamps_the_clock(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.RUNNING, "partial", None, 1.0)
    card.show_answer(JobState.FAILED, "partial", "the host\nwent away", 3.25)
    assert wire.custom(card)[-1] == {"set": {"state": "failed", "error": "the host went away", "elapsed": 3.2}}


def test_the_stats_line_rides_in_the_ends_one_message_and_costs_nothing_while_streaming(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.RUNNING, "ab", None, 1.0, stats="ignored while live")
    card.show_answer(JobState.COMPLETED, "abc", None, 2.0, stats="queued 0.2 s · 41 tok/s")
    running, ended = wire.custom(card)
    assert "stats" not in running["set"]
    assert ended == {"set": {"state": "completed", "elapsed": 2.0, "stats": "queued 0.2 s · 41 tok/s"},
                     "append": "c", "at": 2}


def test_markdown_sends_the_sanitized_html_and_the_text_catches_up_later(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.RUNNING, "a **b**", None, 1.0, html="<p>a <strong>b</strong></p>")
    assert card.value == "" and card.live("html") == "<p>a <strong>b</strong></p>"
    card.show_answer(JobState.RUNNING, "a **b** c", None, 1.5)  # back to plain: the text, once
    assert wire.custom(card)[-1] == {"set": {"markdown": False}, "append": "a **b** c", "at": 0}


def test_state_asked_for_later_is_current_and_a_lost_front_end_gets_everything(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.RUNNING, "abc", None, 1.0)
    card.show_answer(JobState.COMPLETED, "abcd", None, 1.25)
    state = card.get_state()
    assert (state["text"], state["state"], state["elapsed"]) == ("abcd", "completed", 1.2)
    card._handle_custom_msg({"have": 0}, [])  # a view that loaded after the first message
    assert wire.custom(card)[-1] == {"reset": "abcd", "set": {"state": "completed", "elapsed": 1.2, "error": "",
                                                              "finish": "", "stats": "", "markdown": False, "html": "",
                                                              "can_retry": False, "checks": ""}}


def test_restart_clears_the_card_for_a_new_answer_in_one_message(wire: Wire) -> None:
    card = CardWidget("m")
    card.show_answer(JobState.FAILED, "half", "boom", 2.0)
    card.restart()
    assert wire.custom(card)[-1] == {"reset": "", "set": {"state": "submitted", "elapsed": 0.0, "error": ""}}
    # the browser restarts its clock when a finished card goes live again
    assert "if (live && !wasLive) since = performance.now()" in CardWidget._esm


def test_model_text_is_a_text_node_and_only_the_sanitized_html_is_markup() -> None:
    esm = CardWidget._esm
    assert "createTextNode" in esm and esm.count("innerHTML") == 1
    assert 'md.innerHTML = model.get("html")' in esm
    assert "textContent = model.get(\"tag\")" in esm  # the tag and error are text too


# -- the Retry button -------------------------------------------------------------------


def test_retry_is_offered_only_with_a_hook_and_travels_as_one_live_field(wire: Wire) -> None:
    card = CardWidget("m")
    card.offer_retry(True)  # no hook: nothing to offer, nothing sent
    assert wire.custom(card) == [] and not card.live("can_retry")
    asked: list[str] = []
    card.on_retry(asked.append)
    assert wire.custom(card) == []  # wired, not yet offered: the owner decides when
    card.offer_retry(True)
    card.offer_retry(True)  # unchanged: nothing more
    assert wire.custom(card) == [{"set": {"can_retry": True}}]
    assert wire.updates(card) == []  # never a trait update
    card.on_retry(None)  # unwired: the offer goes with it
    assert wire.custom(card)[-1] == {"set": {"can_retry": False}}


def test_a_retry_click_calls_the_hook_only_on_an_offered_card_that_ended_without_an_answer() -> None:
    card = CardWidget("gemma3:270m")
    asked: list[str] = []
    card.on_retry(asked.append)
    card.offer_retry(True)
    click = {"event": "retry"}
    card.show_answer(JobState.RUNNING, "par", None, 1.0)
    card._handle_custom_msg(click, [])  # still running: a stale click does nothing
    card.show_answer(JobState.COMPLETED, "partial", None, 2.0)
    card._handle_custom_msg(click, [])  # answered: nothing to retry
    assert asked == [] and not card.retryable
    for state in (JobState.FAILED, JobState.LOST, JobState.CANCELLED, JobState.TIMED_OUT):
        card.show_answer(state, "partial", "why", 2.0)
        card._handle_custom_msg(click, [])  # what the button sends
    assert asked == ["gemma3:270m"] * 4
    card.offer_retry(False)  # the owner is busy: the button is held back, a click does nothing
    card._handle_custom_msg(click, [])
    card.click_retry()
    assert len(asked) == 4
    card.offer_retry(True)
    card.click_retry()  # from Python, as Button.click()
    assert len(asked) == 5


def test_the_retry_button_is_a_real_button_shown_by_state_and_offer() -> None:
    esm = CardWidget._esm
    assert 'part("button", "gridllm-retry", head)' in esm and 'retry.type = "button"' in esm
    assert 'model.send({ event: "retry" })' in esm
    assert 'model.get("can_retry") && RETRYABLE.has(state)' in esm
    shown_on = re.search(r"const RETRYABLE = new Set\(\[(.*?)\]\)", esm)
    assert shown_on and set(json.loads(f"[{shown_on.group(1)}]")) == {s.value for s in RETRYABLE}
    assert ".gridllm-retry:focus-visible" in CardWidget._css


# -- Card: the run's Result, shown ---------------------------------------------------------


def update(tag: str, state: JobState, text: str, error: str | None = None, elapsed: float = 1.0,
           **kw: object) -> JobUpdate:
    return JobUpdate(tag=tag, job_id="j1", state=state, text=text, error=error, elapsed=elapsed, **kw)  # type: ignore[arg-type]


def feed(result: Result, card: Card, u: JobUpdate) -> None:
    """What the core and a front end do with one update: the Result takes it, the card is told."""
    result.apply(u)
    card.push(u)


def test_a_card_shows_its_results_state_and_never_applies_an_update_itself(wire) -> None:
    result = Result(tag="m")
    card = Card(result, max_rate=0, byte_budget=None)  # every update shown at once
    feed(result, card, update("m", JobState.RUNNING, "Hel", elapsed=0.5))
    result.apply(update("m", JobState.RUNNING, "Hello", elapsed=0.9))  # applied, not yet told
    assert card.widget.value == "Hel"
    feed(result, card, update("m", JobState.COMPLETED, "Hello!", elapsed=2.04, finish="length", tokens=3))
    assert (card.state, card.text, card.elapsed) == (JobState.COMPLETED, "Hello!", 2.04)
    assert card.finish == "stopped at 3 tokens" == card.widget.live("finish")
    assert card.widget.live("stats") == result.stats_line() != ""  # the Result's own times
    assert [m.get("append") for m in wire.custom(card.widget)] == ["Hel", "lo!"]


def test_a_card_counts_on_its_owner_to_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[JobUpdate] = []
    monkeypatch.setattr(Result, "apply", lambda self, u: applied.append(u))
    card = Card(Result(tag="m"), max_rate=0, byte_budget=None)
    card.push(update("m", JobState.RUNNING, "abc"))
    card.flush()
    assert applied == []


def test_a_masked_card_never_sends_the_name_in_its_error(wire) -> None:
    result = Result(tag="gemma3:270m")
    card = Card(result, title="A", mask=lambda text: text.replace("gemma3:270m", "A"), max_rate=0)
    feed(result, card, update("gemma3:270m", JobState.FAILED, "half", error="gemma3:270m\nran out of memory"))
    assert card.error == "A ran out of memory" == card.widget.live("error")
    assert result.error == "gemma3:270m\nran out of memory"  # the Result keeps the truth
    assert "gemma3" not in json.dumps([wire.of(card.widget, "comm_open"), wire.custom(card.widget)])
    assert card.widget.tag == "A" and "gridllm-card-a" in card.widget._dom_classes


def test_a_restart_empties_the_card_at_once() -> None:
    result = Result(tag="m")
    card = Card(result, max_rate=1.0)  # no running loop: every flush is at once
    feed(result, card, update("m", JobState.FAILED, "partial", error="boom"))
    assert card.state is JobState.FAILED
    restart = JobUpdate.restart("m")
    feed(result, card, restart)
    assert (card.state, card.text, card.widget.value, card.widget.live("error")) == (
        JobState.SUBMITTED, "", "", "")


def test_a_card_row_holds_one_card_per_result_in_the_order_asked(wire) -> None:
    results = Results("p", {t: Result(tag=t) for t in ("a:1", "b:2", "c:3")})
    row = CardRow(results, ["c:3", "a:1"], title=str.upper, max_rate=0)
    assert list(row.cards) == ["c:3", "a:1"] and row.cards["a:1"].result is results["a:1"]
    assert [c.widget.tag for c in row.cards.values()] == ["C:3", "A:1"] and "gridllm-cards" in row._dom_classes
    u = update("a:1", JobState.COMPLETED, "done")
    results["a:1"].apply(u)
    row.push(u)
    assert row.cards["a:1"].widget.value == "done" and row.cards["c:3"].widget.value == ""
    ids = {c.widget.model_id for c in row.cards.values()} | {row.model_id}
    row.close()
    assert ids <= {cid for cid, kind, _ in wire.sent if kind == "comm_close"}
    assert slug("Gemma3:270M") == "gemma3-270m" and slug("::") == "model"


def test_the_front_end_lives_in_static_files_and_is_one_module() -> None:
    from gridllm_nb.widgets.assets import STATIC

    esm = CardWidget._esm
    assert esm.count("export default") == 1 and "function initialize" in esm and "function textNode" in esm
    assert "//" not in CardWidget._css and "/*" not in CardWidget._css  # compacted: no comments
    for name in ("deltas.js", "card.js", "card.css"):
        assert (STATIC / name).is_file()


# -- verdicts ---------------------------------------------------------------------------


def test_verdicts_ride_in_one_small_live_field_and_a_judge_shows_judging_first(wire) -> None:
    from gridllm_nb.core.checks import Verdict

    result = Result(tag="m")
    card = Card(result, max_rate=0, byte_budget=None)
    feed(result, card, update("m", JobState.RUNNING, "Paris", elapsed=0.5))
    assert card.widget.live("checks") == ""
    result.apply(update("m", JobState.COMPLETED, "Paris", elapsed=1.0))
    result.checks = [Verdict("contains:Paris", True, 1.0), Verdict("json", False, 0.0, "not JSON: Expecting value"),
                     Verdict("judge:j", None, kind="judge")]
    card.push(update("m", JobState.COMPLETED, "Paris", elapsed=1.0))
    assert card.widget.live("checks") == "✓ contains:Paris\n✗ json: not JSON: Expecting value\n… judge:j judging…"
    result.checks = [*result.checks[:2], Verdict("judge:j", True, 0.8, "right", kind="judge")]
    card.push(update("m", JobState.COMPLETED, "Paris", elapsed=1.0))
    last = wire.custom(card.widget)[-1]
    assert last == {"set": {"checks": "✓ contains:Paris\n✗ json: not JSON: Expecting value\n✓ judge:j 0.80: right"}}
    card.restart()
    assert card.widget.live("checks") == ""


def test_verdicts_are_text_nodes_in_the_browser() -> None:
    esm = CardWidget._esm
    assert "row.textContent = row.title = line" in esm and esm.count("innerHTML") == 1
