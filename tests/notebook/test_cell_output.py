"""A cell's live output (``notebook.cell_output``): its cards, paced and sent only what changed, the picture
at the end, the Retry buttons, and a ``--no-wait`` run that keeps streaming while later cells run."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.results import Results

from ..display.test_render import assert_safe_bundle
from ..fakes import ServedFake, words_script
from .conftest import (
    WIDGET,
    CapturePub,
    cell,
    check_cards_run,
    comms_of,
    fresh_output,
    magics_of,
    picture,
    prompts_sent,
    run_cell_text,
    wait_for_background,
    widget_of,
)


def test_cards_send_only_deltas(ip: Any, fake: ServedFake) -> None:
    magics_of(ip).settings.byte_budget = None  # rate limit only: many small deltas
    res = cell(ip, f"slow:1 a:1 --url {fake.url} --timeout 2", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["a:1"].state is JobState.COMPLETED
    check_cards_run(ip, res)
    comms = comms_of(ip)
    for tag, cid in comms.cards().items():
        msgs = comms.of(cid)
        contents = [m["data"]["content"] for m in msgs]
        assert all(m["data"]["method"] == "custom" for m in msgs)  # never a state update resending the text
        assert not any("reset" in c for c in contents)  # deltas only
        assert comms.opened()[cid]["text"] == ""  # the comm_open did not carry text either
        assert comms.shown_text(cid) == res[tag].text or res[tag].state is JobState.TIMED_OUT
        # the state and the clock go out only when the state changes: the browser ticks the clock
        sets = [c["set"] for c in contents if "set" in c]
        states = [x["state"] for x in sets if "state" in x]
        assert len(states) == len(set(states)) <= 4
    slow = comms.of(comms.cards()["slow:1"])[:-1]  # the end shows at once
    assert len(slow) >= 5
    assert min(b["t"] - a["t"] for a, b in itertools.pairwise(slow)) >= 0.09  # at most ~10 a second


def test_cards_never_get_html_from_the_live_text(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    res = cell(ip, f"a:1 --url {fake.url}", "go")
    assert_safe_bundle(check_cards_run(ip, res))
    # live, the text only goes to the card (shown as a text node), never to an HTML widget
    assert [st for st in comms_of(ip).opened().values() if st.get("_model_name") == "HTMLModel"] == []


def _feed_cards(chunk: int, every: float, duration: float, **kwargs: Any) -> tuple[Any, list[tuple[float, str]]]:
    from gridllm_nb.api.jobs import JobUpdate
    from gridllm_nb.notebook.cell_output import CardsView

    class Shell:
        display_pub = CapturePub()

    sent: list[tuple[float, str]] = []

    async def main() -> Any:
        view = CardsView(Shell(), "p", ["m"], "markdown", max_rate=10.0, **kwargs)
        view.record(JobUpdate("m", "j", JobState.RUNNING, ""))
        card = view.grid.cards["m"].widget
        original = card.send
        card.send = lambda content, buffers=None: (sent.append((time.monotonic(), content.get("append", ""))),
                                                   original(content, buffers))
        text = ""
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end:
            text += "x" * chunk
            view.record(JobUpdate("m", "j", JobState.RUNNING, text))
            await asyncio.sleep(every)
        view.record(JobUpdate("m", "j", JobState.COMPLETED, text))
        view.finish()
        return view

    view = asyncio.run(main())
    return view, sent


def test_card_updates_wait_until_worth_their_bytes() -> None:
    from gridllm_nb.widgets.card import APPEND_OVERHEAD

    view, sent = _feed_cards(chunk=5, every=0.05, duration=3.0, byte_budget=2.0, max_stale=1.0)  # 100 B/s
    first = sent[0][1]
    assert first and set(first) == {"x"} and len(first) <= 15  # the first words show within one interval
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(g >= 0.09 for g in gaps[:-1])  # (the end shows at once)
    # each flush keeps what the card sent within 2 bytes per byte of text, or the card was 1 s stale
    spent, shown = APPEND_OVERHEAD + len(first), len(first)
    for gap, (_, delta) in zip(gaps, sent[1:]):
        spent, shown = spent + APPEND_OVERHEAD + len(delta), shown + len(delta)
        assert spent <= 2 * shown or gap >= 0.95, (gap, spent, shown)
    assert len(sent) <= 3.0 / 0.95 + 3
    assert view.ended  # the picture took the cards' place


def test_card_updates_fast_growth_still_at_most_10_per_second() -> None:
    _view, sent = _feed_cards(chunk=400, every=0.02, duration=1.5)
    assert all(b[0] - a[0] >= 0.09 for a, b in itertools.pairwise(sent[:-1]))
    assert len(sent) >= 5


def test_updates_are_coalesced(ip: Any, fake: ServedFake) -> None:
    magics_of(ip).settings.poll_interval = 0.01
    magics_of(ip).settings.poll_max_interval = 0.01
    magics_of(ip).settings.byte_budget = None  # rate limit only (the budget is tested below)
    res = cell(ip, f"slow:1 --url {fake.url} --timeout 2.5", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["slow:1"].text.startswith("word")
    comms = comms_of(ip)
    live = [m for m in comms.of(comms.cards()["slow:1"]) if "append" in m["data"]["content"]][:-1]
    assert len(live) >= 5  # (the last one, the end, shows at once)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(live)]
    assert min(gaps) >= 0.09  # at most ~10 updates per second
    assert len(live) <= 2.5 / 0.1 + 2
    assert "timed out" in picture(res)["text/plain"]  # and always a final picture


def test_a_blocking_cell_offers_retry_under_its_value_and_the_click_updates_the_same_results(
        ip: Any, fake: ServedFake) -> None:
    fresh_output(ip)
    outcome = run_cell_text(ip, f"%%gridllm bad:1 a:1 --url {fake.url} --option max_tokens=5\nhi")
    res: Results = outcome.result
    assert res.retryable == ["bad:1"]
    pub: CapturePub = ip.display_pub
    _grid, offer_id = pub.by_id()  # the cell's live grid (its value replaced it), then the offer
    (offer,) = pub.by_id()[offer_id]
    assert offer["update"] is False and pub.events.index(("display", offer)) > pub.events.index(
        next(e for e in pub.events if e[0] == "clear"))  # after the value took the grid's place
    assert offer["data"]["text/plain"] == (f"gridllm: 1 model did not answer: bad:1 (failed); "
                                           f"Out[{outcome.execution_count}].retry() asks again")
    line, button = widget_of(offer["data"][WIDGET]["model_id"]).children
    assert line.value.startswith("1 model did not answer: bad:1") and button.description == "Retry"
    offer_widgets = {offer["data"][WIDGET]["model_id"], line.model_id, button.model_id}
    result, kept = res["bad:1"], res["a:1"].text
    fake.fake.scripts["bad:1"] = words_script("fixed now")
    posts = len(fake.fake.posts())

    async def click() -> None:
        button.click()  # in the kernel, a click is handled on its running loop
        button.click()  # a second click while it runs: nothing more
        await wait_for_background(ip)

    asyncio.run(click())
    assert res["bad:1"] is result and res.ok and result.text == "fixed now" and res["a:1"].text == kept
    assert [json.loads(r.content)["tag"] for r in fake.fake.posts()[posts:]] == ["bad:1"]
    assert prompts_sent(fake.fake)[-1] == {"inputs": ["hi"], "options": {"max_tokens": 5}}
    # In the offer's place: the retried model's live card, then its saved picture (no widget).
    _line, cards, final = pub.by_id()[offer_id]
    assert cards["update"] and WIDGET in cards["data"] and final["update"]
    saved = Results("hi", {"bad:1": result})._repr_mimebundle_()  # the retried model's, captioned
    assert final["data"] == {"text/html": f"<p><em>Retried: bad:1</em></p>{saved['text/html']}",
                             "text/plain": f"Retried: bad:1\n\n{saved['text/plain']}"}
    comms = comms_of(ip)
    assert comms.shown_text(comms.cards()["bad:1"]) == "fixed now"  # the newest card of bad:1: the retry's
    assert offer_widgets <= comms.closed()  # the offer's widgets went with it...
    closes = [i for i, (kind, m) in enumerate(pub.events)
              if kind == "comm" and m["type"] == "comm_close" and m["comm_id"] in offer_widgets]
    assert min(closes) > pub.events.index(("display", final))  # ...once the picture had taken the output


def test_no_offer_when_every_model_answered_or_when_the_cell_is_over(ip: Any, fake: ServedFake) -> None:
    fresh_output(ip)
    assert run_cell_text(ip, f"%%gridllm a:1 --url {fake.url}\nhi").result.ok
    assert len(ip.display_pub.by_id()) == 1  # the grid only
    cell(ip, f"bad:1 --url {fake.url}", "hi")  # run from code: no moment under a value to offer it in
    fresh_output(ip)
    run_cell_text(ip, "1 + 1")  # ...and the next cell does not get it
    assert ip.display_pub.messages == []


def test_a_no_wait_cells_failed_cards_offer_retry_and_stay_live_until_all_answered(
        ip: Any, fake: ServedFake) -> None:
    fresh_output(ip)
    comms = comms_of(ip)

    async def run_then_retry() -> None:
        assert cell(ip, f"bad:1 a:1 --url {fake.url} --no-wait --out later", "hi") is None
        await wait_for_background(ip)
        later: Results = ip.user_ns["later"]
        assert later.retryable == ["bad:1"]
        (msgs,) = ip.display_pub.by_id().values()
        ended = msgs[-1]
        # The run is over, the cards stay (with the picture for front ends without widgets).
        assert ended["update"] and set(ended["data"]) == {WIDGET, "text/html", "text/plain"}
        assert ended["data"]["text/html"] == later._repr_mimebundle_()["text/html"]
        cards = comms.cards()
        bad, good = widget_of(cards["bad:1"]), widget_of(cards["a:1"])
        assert bad.retryable and not good.retryable
        assert {"set": {"can_retry": True}} in [m["data"]["content"] for m in comms.of(cards["bad:1"])]
        # A retry the service refuses (its token, say): the card says why in one line, and offers Retry again.
        fake.fake.inject(httpx.Response(401, json={"success": False, "error": "unauthorized"}))
        bad._handle_custom_msg({"event": "retry"}, [])
        await wait_for_background(ip)
        error = later["bad:1"].error or ""
        assert later["bad:1"].state is JobState.FAILED and "401" in error and "\n" not in error
        assert bad.live("error") == error and bad.retryable and later["bad:1"].text == ""
        fake.fake.scripts["bad:1"] = words_script("fixed now")
        good._handle_custom_msg({"event": "retry"}, [])  # answered: its (hidden) button does nothing
        assert not magics_of(ip).tasks
        bad._handle_custom_msg({"event": "retry"}, [])  # what the failed card's button sends
        assert magics_of(ip).tasks and not bad.live("can_retry")
        await wait_for_background(ip)

    asyncio.run(run_then_retry())
    later = ip.user_ns["later"]
    assert later.ok and later["bad:1"].text == "fixed now"
    (msgs,) = ip.display_pub.by_id().values()
    assert msgs[-1]["data"] == later._repr_mimebundle_()  # everything answered: the saved picture
    assert comms.shown_text(comms.cards()["bad:1"]) == "fixed now"


def test_a_no_wait_cell_offers_no_retry_while_its_run_goes(ip: Any, fake: ServedFake) -> None:
    async def main() -> None:
        cell(ip, f"bad:1 slow:1 --url {fake.url} --no-wait --out later", "hi")
        view, later = magics_of(ip).last_view, ip.user_ns["later"]
        for _ in range(200):
            if later["bad:1"].state.terminal:
                break
            await asyncio.sleep(0.05)
        assert later.retryable == ["bad:1"] and not later["slow:1"].state.terminal
        assert view.retry() is None and len(magics_of(ip).tasks) == 1  # the run alone: no retry started
        assert not widget_of(comms_of(ip).cards()["bad:1"]).retryable  # its button waits for the run's end
        magics_of(ip).cancel_background()
        await wait_for_background(ip)

    asyncio.run(main())


def test_untrusted_text_is_escaped(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    final = check_cards_run(ip, cell(ip, f"a:1 --url {fake.url}", "hi"))
    assert_safe_bundle(final)  # rendered as Jupyter would, raw HTML allowed: nothing live
    assert "&lt;img src=x" in final["text/html"]



# -- a --no-wait run keeps streaming while later cells run ----------------------------------------

TWENTY = " ".join(f"w{i}" for i in range(20))  # 22 polls of the fake: about a second at 0.05 s a poll


def test_a_no_wait_run_streams_while_the_next_cell_sleeps_and_its_times_are_the_jobs(
        ip: Any, fake: ServedFake) -> None:
    """A cell that holds the kernel's loop (``time.sleep``) stops nothing: the run is on the background loop,
    its cards are sent from that loop's thread (their pacing timers run there too), and its times are the job's."""
    fake.fake.scripts["a:1"] = words_script(TWENTY)
    magics_of(ip).settings.byte_budget = None  # rate limit only: many small deltas
    comms = comms_of(ip)

    async def kernel() -> tuple[float, float]:
        assert cell(ip, f"a:1 --url {fake.url} --no-wait --out later", "hi") is None
        start = time.monotonic()
        time.sleep(3.0)  # noqa: ASYNC251 - the next cell, holding the kernel's loop throughout
        return start, time.monotonic()

    start, end = asyncio.run(kernel())
    later: Results = ip.user_ns["later"]
    assert later.ok and later["a:1"].text == TWENTY
    card = comms.cards()["a:1"]
    sent = comms.of(card)
    appends = [m for m in sent if "append" in m["data"]["content"]]
    assert len(appends) >= 3 and all(start < m["t"] < end for m in appends)  # streamed during the sleep
    assert {m["thread"] for m in sent} == {"gridllm-background"}  # every delta and timer flush: one thread
    assert comms.shown_text(card) == TWENTY  # the deltas continue each other exactly
    (msgs,) = ip.display_pub.by_id().values()
    assert msgs[-1]["t"] < end and msgs[-1]["data"] == picture(later)  # the picture, before the sleep ended
    assert later["a:1"].elapsed < 2.5  # the job's time, not the sleep's


def test_no_wait_runs_and_a_blocking_cell_stream_side_by_side(ip: Any, fake: ServedFake) -> None:
    """Two --no-wait runs on the one background loop (one poller) and a blocking cell on its own: each card's
    deltas continue each other exactly, and the background cards move while the blocking cell runs."""
    fake.fake.scripts["a:1"] = words_script(TWENTY)
    fake.fake.scripts["b:2"] = words_script(TWENTY.upper())
    comms = comms_of(ip)

    async def kernel() -> tuple[float, float]:
        cell(ip, f"a:1 --url {fake.url} --no-wait --out first", "one")
        cell(ip, f"b:2 --url {fake.url} --no-wait --out second", "two")
        start = time.monotonic()
        blocking = cell(ip, f"slow:1 --url {fake.url} --timeout 1.5", "three")
        assert blocking["slow:1"].text
        end = time.monotonic()
        await wait_for_background(ip)
        return start, end

    start, end = asyncio.run(kernel())
    first, second = ip.user_ns["first"], ip.user_ns["second"]
    assert first.ok and second.ok
    cards = comms.cards()
    for tag, text in (("a:1", TWENTY), ("b:2", TWENTY.upper())):
        assert comms.shown_text(cards[tag]) == text
        moved = [m for m in comms.of(cards[tag]) if "append" in m["data"]["content"] and start < m["t"] < end]
        assert moved, f"{tag}'s card stood still while the blocking cell ran"
