"""The panel, driven from Python the way a browser would: tick, type, click.

The logic tests use the scriptable fake API (fast, deterministic); the
``models`` tests run the same flows against the real local service.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.api.retry import RetryPolicy
from gridllm_nb.core import history
from gridllm_nb.core.results import Result, Results
from gridllm_nb.display.render import render_text
from gridllm_nb.errors import ConfigError
from gridllm_nb.notebook.panel import Panel
from gridllm_nb.service.launcher import free_port
from gridllm_nb.widgets.card import CardWidget, slug
from gridllm_nb.widgets.prompt import PromptBox
from gridllm_nb.widgets.streamtext import StreamText, utf16_len

from ..conftest import Wire
from ..fakes import FakeClock, FakeJobsAPI, words_script

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
FAST = PollSettings(fast=0.02, slow=0.05)
XSS = 'Look: <script>window.pwned=1</script> and <img src=x onerror="window.pwned=2"> done'


@pytest.fixture(autouse=True)
def own_history(history_file):
    """Each test its own SQLite history: a new panel lists only what that test recorded."""
    return history_file


def fake_panel(fake: FakeJobsAPI, models: list[str] | None = None, **kw) -> Panel:
    client = JobsClient(BASE, transport=fake.transport(), retry=RetryPolicy(budget=1.0))
    kw.setdefault("poll", FAST)
    return Panel(models, client=client, **kw)


def hidden(w) -> bool:
    return w.layout.display == "none"


async def until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- models, cap, buttons -----------------------------------------------------------

async def test_checkboxes_come_from_the_models_endpoint() -> None:
    fake = FakeJobsAPI(models=["smollm2:135m", "gemma3:270m"])
    panel = fake_panel(fake)
    await panel.loaded()
    assert list(panel.checkboxes) == ["smollm2:135m", "gemma3:270m"]
    cb = panel.checkboxes["gemma3:270m"]
    assert cb.description == "gemma3:270m"
    assert "gridllm-model-gemma3-270m" in cb._dom_classes
    assert panel.status.value == "" and hidden(panel.status)  # an empty status line takes no room
    assert "gridllm-panel" in panel._dom_classes


async def test_without_a_models_endpoint_the_status_line_says_so() -> None:
    panel = fake_panel(FakeJobsAPI(models=None))
    await panel.loaded()
    assert panel.checkboxes == {}
    assert "Panel(models=" in panel.status.value and not hidden(panel.status)


async def test_at_most_three_ticked_the_others_disabled_with_a_hint() -> None:
    tags = ["a:1", "b:1", "c:1", "d:1"]
    panel = fake_panel(FakeJobsAPI(models=tags), tags)
    cbs = panel.checkboxes
    for t in tags[:2]:
        cbs[t].value = True
    assert not any(cb.disabled for cb in cbs.values()) and hidden(panel.picker.hint)
    cbs["c:1"].value = True
    assert cbs["d:1"].disabled and not any(cbs[t].disabled for t in tags[:3])
    assert not hidden(panel.picker.hint) and "At most 3" in panel.picker.hint.value
    cbs["b:1"].value = False
    assert not any(cb.disabled for cb in cbs.values()) and hidden(panel.picker.hint)
    assert panel.chosen == ["a:1", "c:1"]


async def test_a_fourth_tick_set_in_code_is_undone_with_the_hint() -> None:
    tags = ["a:1", "b:1", "c:1", "d:1"]
    panel = fake_panel(FakeJobsAPI(models=tags), tags)
    for t in tags:  # disabled or not, code can set it: the kernel holds the cap
        panel.checkboxes[t].value = True
    assert panel.chosen == ["a:1", "b:1", "c:1"] and not panel.checkboxes["d:1"].value
    assert panel.checkboxes["d:1"].disabled
    assert not hidden(panel.picker.hint) and "At most 3 models" in panel.picker.hint.value
    panel.checkboxes["a:1"].value = False
    panel.checkboxes["d:1"].value = True  # room again: this one stays
    assert panel.chosen == ["b:1", "c:1", "d:1"]


async def test_a_fourth_tick_from_the_browser_is_undone_on_the_wire(wire: Wire) -> None:
    """Two clicks racing the disabling: the front end's fourth tick is sent back unticked."""
    tags = ["a:1", "b:1", "c:1", "d:1"]
    panel = fake_panel(FakeJobsAPI(models=tags), tags, max_models=2)
    panel.checkboxes["a:1"].set_state({"value": True})  # what a click sends
    panel.checkboxes["b:1"].set_state({"value": True})
    late = panel.checkboxes["c:1"]
    late.set_state({"value": True})  # clicked before the disabling reached the browser
    assert not late.value and panel.chosen == ["a:1", "b:1"]
    assert wire.updates(late)[-1] == {"value": False}  # the browser is told
    assert not hidden(panel.picker.hint) and "At most 2 models" in panel.picker.hint.value


async def test_process_is_disabled_without_model_or_prompt() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"])
    assert panel.process_button.disabled and hidden(panel.cancel_button)
    panel.checkboxes["m:1"].value = True
    assert panel.process_button.disabled
    panel.prompt.value = "   \n "
    assert panel.process_button.disabled
    panel.prompt.value = "hi"
    assert not panel.process_button.disabled
    panel.checkboxes["m:1"].value = False
    assert panel.process_button.disabled


# -- runs ---------------------------------------------------------------------------

async def test_a_run_streams_into_one_card_per_model_and_fills_results() -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"], scripts={"n:1": words_script("other answer here")})
    panel = fake_panel(fake, ["m:1", "n:1"])
    prompt = 'Say {name} "verbatim" \\ {{x}} é 🎉\nline2'
    panel.checkboxes["m:1"].value = True
    panel.checkboxes["n:1"].value = True
    panel.prompt.value = prompt
    panel.process_button.click()
    assert panel.running
    assert panel.process_button.disabled and not hidden(panel.cancel_button)
    assert all(cb.disabled for cb in panel.checkboxes.values())
    results = await panel.wait()
    assert not panel.running
    assert not panel.process_button.disabled and hidden(panel.cancel_button)
    assert list(panel.cards) == ["m:1", "n:1"]
    assert panel.card_box.children == tuple(card.widget for card in panel.cards.values())
    m, n = panel.cards["m:1"], panel.cards["n:1"]
    assert m.state is JobState.COMPLETED and m.widget.live("state") == "completed"
    assert "gridllm-card-m-1" in m.widget._dom_classes and m.widget.tag == "m:1"
    assert m.text == "Hello from the fake grid" and n.text == "other answer here"
    assert m.widget.value == "Hello from the fake grid" and not m.widget.live("markdown")
    assert m.widget.live("error") == "" and m.html == ""  # markdown is rendered only when shown
    assert m.widget.live("elapsed") == round(results["m:1"].elapsed, 1)  # the final time, to 0.1 s
    assert results is panel.results and results.ok
    assert results["n:1"].text == "other answer here"
    df = results.to_pandas()
    assert list(df["tag"]) == ["m:1", "n:1"] and set(df["state"]) == {"completed"}
    # the prompt went out verbatim, JSON inside JSON
    sent = [json.loads(json.loads(r.content)["commandLine"])["inputs"] for r in fake.posts()]
    assert sent == [[prompt], [prompt]]
    assert panel.status.value == ""


async def test_the_panels_results_can_be_retried_and_its_cards_follow() -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"], scripts={"n:1": words_script("cut short", final="error")})
    panel = fake_panel(fake, ["m:1", "n:1"], prompt="hi", options={"max_tokens": 4})
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.process_button.click()
    results = await panel.wait()
    assert results.retryable == ["n:1"] and panel.cards["n:1"].text == "cut short"
    fake.scripts["n:1"] = words_script("second answer")
    card = panel.cards["n:1"]
    await results.aretry(on_update=card.push)  # what a Retry button on the card does
    card.flush()
    assert results.ok and card.text == "second answer" and card.state is JobState.COMPLETED
    assert card.widget.value == "second answer" and card.error is None
    body = json.loads(fake.posts()[-1].content)
    assert body["tag"] == "n:1" and json.loads(body["commandLine"])["options"] == {"max_tokens": 4}


async def test_each_update_is_applied_once_and_each_card_reads_its_runs_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The core applies every update to the run's Result; neither the panel nor a card applies it again."""
    applied: list[tuple[Result, JobUpdate]] = []
    apply = Result.apply

    def counting(result: Result, update: JobUpdate) -> None:
        applied.append((result, update))  # keeps every update alive: no id is reused
        apply(result, update)

    monkeypatch.setattr(Result, "apply", counting)
    fake = FakeJobsAPI(models=["m:1", "n:1"], scripts={"n:1": words_script("cut short", final="error")})
    panel = fake_panel(fake, ["m:1", "n:1"], prompt="hi")
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.process_button.click()
    results = await panel.wait()
    fake.scripts["n:1"] = words_script("second answer")
    panel.retry_failed()  # a restart, then the new answer: into the same Results and cards
    await panel.wait()
    assert results.ok and len(applied) > 10
    counts: dict[int, int] = {}
    for _, update in applied:
        counts[id(update)] = counts.get(id(update), 0) + 1
    assert set(counts.values()) == {1}
    assert {id(r) for r, _ in applied} == {id(results["m:1"]), id(results["n:1"])}  # the run's Results only
    for tag, card in panel.cards.items():
        assert card.result is results[tag] and card.text == results[tag].text == card.widget.value


def fake_time() -> FakeClock:
    """The running loop's one poller on a fake clock: the jobs move per poll, with no real sleeps."""
    clock = FakeClock()
    use_poller(Poller(FAST, clock=clock))
    return clock


def tags_posted(fake: FakeJobsAPI) -> list[str]:
    return [json.loads(r.content)["tag"] for r in fake.posts()]


async def run_with_one_failure(fake: FakeJobsAPI, wire_free: bool = True, **kw) -> tuple[Panel, Results]:
    """m:1 answers, n:1 fails with half its text; returns the panel once the run is over."""
    fake_time()
    fake.scripts.setdefault("m:1", words_script("first answer"))
    fake.scripts["n:1"] = words_script("cut short", final="error")
    panel = fake_panel(fake, ["m:1", "n:1"], prompt="hi", options={"max_tokens": 4}, **kw)
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.process_button.click()
    assert not any(c.widget.live("can_retry") for c in panel.cards.values())  # no Retry while it runs
    results = await panel.wait()
    assert results is not None and results.retryable == ["n:1"]
    return panel, results


async def test_a_failed_cards_retry_button_asks_that_model_again_into_the_same_card_and_results(
        wire: Wire) -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"])
    panel, results = await run_with_one_failure(fake)
    failed, answered = panel.cards["n:1"], panel.cards["m:1"]
    assert failed.widget.retryable and not answered.widget.retryable  # the button: the failed card only
    assert failed.widget.live("can_retry") and answered.widget.live("can_retry")  # offered; shown by state
    assert "did not complete: n:1" in panel.status.value
    result = results["n:1"]
    before = len(fake.posts())
    answered_messages = len(wire.custom(answered.widget))
    fake.scripts["n:1"] = words_script("second answer")

    failed.widget._handle_custom_msg({"event": "retry"}, [])  # what the card's button sends
    assert panel.running and panel.status.value == ""
    # One thing at a time: Process and the models wait, Cancel is there, no Retry is offered.
    assert panel.process_button.disabled and not hidden(panel.cancel_button) and panel.prompt.disabled
    assert all(cb.disabled for cb in panel.checkboxes.values())
    assert not any(c.widget.live("can_retry") for c in panel.cards.values())
    assert panel.process() is panel.task  # Process meanwhile starts nothing
    failed.widget._handle_custom_msg({"event": "retry"}, [])  # a second click: nothing more

    assert await panel.wait() is results
    assert tags_posted(fake)[before:] == ["n:1"]  # only the failed model, once
    body = json.loads(fake.posts()[-1].content)
    assert json.loads(body["commandLine"]) == {"inputs": ["hi"], "options": {"max_tokens": 4}}
    assert results["n:1"] is result and result.ok and result.text == "second answer"  # the same Result
    assert failed.state is JobState.COMPLETED and failed.widget.value == "second answer"
    assert failed.error is None and failed.widget.live("error") == ""
    # The card started over from empty (one message), then streamed the new answer.
    sent = wire.custom(failed.widget)
    restart = next(i for i, m in enumerate(sent) if m.get("reset") == "")
    assert sent[restart]["set"]["state"] == "submitted" and sent[restart]["set"]["elapsed"] == 0.0
    assert "".join(m.get("append", "") for m in sent[restart + 1:]) == "second answer"
    assert len(wire.custom(answered.widget)) == answered_messages + 2  # held back, offered again: nothing else
    assert answered.widget.value == "first answer"
    # Back to idle: Process, no Cancel, the status line clear, the history row updated by the core.
    assert not panel.process_button.disabled and hidden(panel.cancel_button) and panel.status.value == ""
    assert not failed.widget.retryable and results.ok
    (run,) = history.recent(1)
    assert run["run_id"] == results.run_id
    assert {r["tag"]: (r["state"], r["text"]) for r in run["results"]} == {
        "m:1": ("completed", "first answer"), "n:1": ("completed", "second answer")}
    panel.process_button.click()  # a new run: this one joins History, with the retried answer
    await panel.wait()
    assert panel.history[-1]["n:1"].state is JobState.COMPLETED and panel.history[-1]["n:1"].text == "second answer"


async def test_cancel_stops_a_retry_keeps_its_text_and_offers_retry_again() -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"], cancel_supported=True)
    panel, results = await run_with_one_failure(fake)
    fake.scripts["n:1"] = [("queued", ""), ("running", "never"), ("running", "never ends")]  # runs until cancelled
    panel.cards["n:1"].widget.click_retry()
    await until(lambda: panel.cards["n:1"].text == "never ends")
    panel.cancel_button.click()
    await panel.wait()
    card = panel.cards["n:1"]
    assert results["n:1"].state is JobState.CANCELLED and card.widget.live("state") == "cancelled"
    assert card.text == "never ends" and panel.status.value == "cancelled"
    assert results["m:1"].text == "first answer"  # the other model untouched
    assert card.widget.retryable and not panel.process_button.disabled and hidden(panel.cancel_button)


async def test_a_retry_that_cannot_run_says_why_in_one_line() -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"])
    panel, results = await run_with_one_failure(fake)
    panel.retry_failed(["m:1"])  # answered already: from Python, a one-line refusal
    await panel.wait()
    assert panel.status.value.startswith("m:1 completed: only a model that failed") and "\n" not in panel.status.value
    fake.models = ["m:1"]  # the service no longer serves n:1: it refuses the job, the card says so
    panel.cards["n:1"].widget.click_retry()
    await panel.wait()
    card = panel.cards["n:1"]
    assert results["n:1"].state is JobState.FAILED and card.widget.retryable
    assert card.error is not None and "unknown model tag 'n:1'" in card.error and card.text == ""
    assert panel.status.value == "1 of 2 model(s) did not complete: n:1"  # the run as it stands
    fake.models, fake.scripts["n:1"] = ["m:1", "n:1"], words_script("back again")
    panel.retry_failed()  # every model that did not answer (here n:1): the default
    assert (await panel.wait()).ok and panel.cards["n:1"].widget.value == "back again"
    panel.retry_failed()
    assert panel.task.done() and panel.status.value == "nothing to retry: every model answered"


async def test_without_a_run_there_is_nothing_to_retry() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"])
    assert panel.retry_failed() is None and panel.status.value == "nothing to retry: no run yet"


# -- in a kernel: the background loop -----------------------------------------------------

def held(cond, timeout: float = 20.0) -> None:
    """Wait for ``cond`` without yielding to the running loop, as a cell's ``time.sleep`` holds the kernel's."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture()
def in_kernel(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The panel believes it lives in an IPython kernel; returns the names of the threads its cards are
    shown from (``Card.show``: every flush, pacing timers included)."""
    import threading

    from gridllm_nb.notebook import panel_run
    from gridllm_nb.widgets.card import Card

    monkeypatch.setattr(panel_run, "in_kernel", lambda: True)
    threads: list[str] = []
    show = Card.show

    def recorded(card: Card) -> None:
        threads.append(threading.current_thread().name)
        show(card)

    monkeypatch.setattr(Card, "show", recorded)
    return threads


async def test_in_a_kernel_a_run_streams_to_its_end_while_the_kernels_loop_is_held(in_kernel: list[str]) -> None:
    """Issue 25: Process, then a cell that holds the kernel's loop (here: this test's loop, held by
    synchronous waits): the run goes on, on the background loop, and its cards are sent every update
    (paced, and the Markdown toggle's redraw) from that loop's thread; ``await panel.wait()`` still works."""
    from gridllm_nb.core.sync import Background

    from ..fakes import ServedFake

    words = " ".join(f"w{i}" for i in range(40))
    fake = FakeJobsAPI(models=["m:1", "n:1"])
    fake.scripts["m:1"] = words_script(words)
    fake.scripts["n:1"] = words_script("alpha beta gamma")
    with ServedFake(fake) as served:
        # paced at 20 updates a second; the model list, too, loads in the background
        panel = Panel(url=served.url, poll=FAST, max_rate=20, byte_budget=None)
        held(lambda: bool(panel.checkboxes))
        for tag in ("m:1", "n:1"):
            panel.checkboxes[tag].value = True
        panel.prompt.value = "count"
        panel.process_button.click()
        assert isinstance(panel.task, Background) and panel.running and panel.process_button.disabled
        held(lambda: "w3 " in panel.cards["m:1"].text)
        assert panel.running, "the run ended before it could be watched streaming"
        panel.markdown_toggle.value = True  # from this thread: redrawn where the run sends its updates
        held(lambda: not panel.running)
        assert not panel.running, "the run did not go on while the loop that started it was held"
        results = await panel.wait()
    assert results is not None and results.ok
    assert panel.cards["m:1"].text == words
    assert panel.cards["m:1"].markdown and panel.cards["m:1"].html == f"<p>{words}</p>\n"
    assert in_kernel and set(in_kernel) == {"gridllm-background"}, set(in_kernel)
    assert not panel.process_button.disabled and hidden(panel.cancel_button)  # the run's end, on its thread


async def test_in_a_kernel_cancel_and_retry_reach_the_background_run(in_kernel: list[str]) -> None:
    from ..fakes import ServedFake

    fake = FakeJobsAPI(models=["m:1"], cancel_supported=True)
    fake.scripts["m:1"] = [("queued", ""), ("running", "never"), ("running", "never ends")]  # until cancelled
    with ServedFake(fake) as served:
        panel = Panel(["m:1"], url=served.url, poll=FAST, prompt="go")
        panel.checkboxes["m:1"].value = True
        panel.process_button.click()
        held(lambda: panel.cards["m:1"].text == "never ends")
        panel.cancel_button.click()
        held(lambda: not panel.running)
        results = await panel.wait()
        assert results is not None and results["m:1"].state is JobState.CANCELLED
        assert panel.status.value == "cancelled" and panel.cards["m:1"].widget.retryable
        fake.scripts["m:1"] = words_script("back again")
        panel.cards["m:1"].widget.click_retry()
        held(lambda: not panel.running)
        assert (await panel.wait()).ok and panel.cards["m:1"].widget.value == "back again"
    assert set(in_kernel) == {"gridllm-background"}


# -- Ctrl+Enter -------------------------------------------------------------------------

def browser_sends(widget, data: dict) -> None:
    """A comm message from the front end, as ipywidgets receives it."""
    widget._handle_msg({"content": {"data": data}, "buffers": []})


async def test_ctrl_enter_in_the_prompt_runs_process() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"])
    assert isinstance(panel.prompt, PromptBox) and "gridllm-prompt" in panel.prompt._dom_classes
    panel.checkboxes["m:1"].value = True
    # what the browser sends on Ctrl+Enter / Cmd+Enter, through the widget's comm handler:
    # the text (as on every keystroke), then "submit" with it
    browser_sends(panel.prompt, {"method": "update", "state": {"value": "typed"}})
    assert panel.prompt.value == "typed" and not panel.process_button.disabled
    browser_sends(panel.prompt, {"method": "custom", "content": {"submit": "typed"}})
    assert panel.running
    res = await panel.wait()
    assert res.prompt == "typed" and res.ok
    # a submit whose text had not been synced yet brings its text along
    browser_sends(panel.prompt, {"method": "custom", "content": {"submit": "typed again"}})
    assert panel.prompt.value == "typed again"
    res = await panel.wait()
    assert res.prompt == "typed again"
    # nothing to run: the status line says why, nothing starts
    panel.prompt.value = " "
    panel.prompt.submit()
    assert not panel.running and "write a prompt" in panel.status.value


async def test_a_model_that_runs_again_keeps_its_card_widget(wire: Wire) -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1"])
    panel = fake_panel(fake, ["m:1", "n:1"], prompt="first")
    panel.checkboxes["m:1"].value = panel.checkboxes["n:1"].value = True
    panel.process_button.click()
    await panel.wait()
    m_widget, n_widget = panel.cards["m:1"].widget, panel.cards["n:1"].widget
    n_id = n_widget.model_id
    before = len(wire.custom(m_widget))
    panel.checkboxes["n:1"].value = False
    panel.prompt.value = "second"
    panel.process_button.click()
    res = await panel.wait()
    assert res.ok and panel.cards["m:1"].widget is m_widget  # no second comm_open
    assert len(wire.of(m_widget, "comm_open")) == 1 and m_widget.value == res["m:1"].text
    restart, *rest = wire.custom(m_widget)[before:]
    assert restart == {"reset": "", "set": {"state": "submitted", "elapsed": 0.0, "stats": ""}}  # the last answer's stats go
    assert "".join(m.get("append", "") for m in rest) == res["m:1"].text
    assert any(cid == n_id and t == "comm_close" for cid, t, _ in wire.sent)  # the unticked model's card
    assert panel.card_box.children == (m_widget,)


async def test_updates_are_coalesced_to_about_ten_per_second_per_card() -> None:
    text = " ".join(f"w{i}" for i in range(150))
    fake = FakeJobsAPI(models=["m:1"], scripts={"m:1": words_script(text)})
    panel = fake_panel(fake, ["m:1"], poll=PollSettings(fast=0.005, slow=0.005))
    panel.checkboxes["m:1"].value = True
    panel.prompt.value = "go"
    t0 = time.monotonic()
    panel.process_button.click()
    updates = 0
    orig = panel.cards  # cards exist right after the click
    card = orig["m:1"]
    res = await panel.wait()
    took = time.monotonic() - t0
    updates = card.flushes
    assert res["m:1"].text == text and card.text == text
    assert len(fake.gets()) > 100  # many more updates than flushes
    assert updates <= took * 10 + 2, (updates, took)


async def test_a_failed_job_shows_in_its_card_and_the_others_keep_going() -> None:
    fake = FakeJobsAPI(models=["ok:1", "bad:1"],
                       scripts={"bad:1": [("queued", ""), ("running", "partial"), ("error", "partial")]})
    panel = fake_panel(fake, ["ok:1", "bad:1"], prompt="p")
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.process_button.click()
    res = await panel.wait()
    assert res["ok:1"].state is JobState.COMPLETED
    bad = panel.cards["bad:1"]
    assert bad.state is JobState.FAILED and bad.text == "partial" and bad.widget.live("state") == "failed"
    assert "bad:1" in panel.status.value and "\n" not in panel.status.value


async def test_cancel_ends_live_jobs_cancelled_and_keeps_text() -> None:
    text = " ".join(f"w{i}" for i in range(400))
    fake = FakeJobsAPI(models=["m:1"], scripts={"m:1": words_script(text)}, cancel_supported=True)
    panel = fake_panel(fake, ["m:1"], prompt="long", poll=PollSettings(fast=0.02, slow=0.02))
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    await until(lambda: len(panel.cards["m:1"].text) > 10)
    assert not hidden(panel.cancel_button)
    panel.cancel_button.click()
    res = await panel.wait()
    card = panel.cards["m:1"]
    assert res["m:1"].state is JobState.CANCELLED and card.widget.live("state") == "cancelled"
    assert card.text and text.startswith(card.text) and card.text != text
    assert panel.status.value == "cancelled"
    assert hidden(panel.cancel_button) and not panel.process_button.disabled
    assert any(r.method == "DELETE" for r in fake.requests)


async def test_unknown_model_fails_its_card_with_a_suggestion_and_the_rest_runs() -> None:
    fake = FakeJobsAPI(models=["smollm2:135m"])
    panel = fake_panel(fake, ["smollm2:135m", "smollm2:136m"], prompt="p")
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.process_button.click()
    res = await panel.wait()
    assert res["smollm2:135m"].ok
    bad = panel.cards["smollm2:136m"]
    assert bad.state is JobState.FAILED
    assert "unknown model" in bad.error and "did you mean smollm2:135m" in bad.error
    assert bad.widget.live("error") == bad.error and "\n" not in bad.error
    assert len(fake.posts()) == 1


def test_without_a_running_loop_a_click_runs_to_the_end() -> None:
    fake = FakeJobsAPI(models=["m:1"])
    panel = fake_panel(fake, ["m:1"], prompt="p")
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()  # no loop: runs synchronously
    assert panel.results is not None and panel.results.ok
    assert panel.cards["m:1"].text == "Hello from the fake grid"
    assert not panel.process_button.disabled and hidden(panel.cancel_button)


# -- model text is never live HTML ------------------------------------------------------

def test_render_text_escapes_plain_and_sanitizes_markdown() -> None:
    plain = render_text(XSS)
    assert "<script" not in plain and "<img" not in plain and "&lt;script&gt;" in plain
    md = render_text(XSS + "\n\n[x](javascript:alert(1)) **bold**", markdown=True)
    assert "<script" not in md and "<img" not in md and "javascript:" not in md.split("&lt;")[0]
    assert "<strong>bold</strong>" in md
    assert 'href="javascript' not in md
    assert slug("Gemma3:270M") == "gemma3-270m"


async def test_script_and_img_in_model_text_are_shown_as_text() -> None:
    fake = FakeJobsAPI(models=["m:1"], scripts={"m:1": [("running", XSS[:20]), ("completed", XSS)]})
    panel = fake_panel(fake, ["m:1"], prompt="p")
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    await panel.wait()
    card = panel.cards["m:1"]
    assert card.text == XSS
    # plain mode: the raw text, which the front end puts in a DOM text node (textContent)
    assert card.widget.value == XSS
    assert "innerHTML" not in StreamText._esm and "createTextNode" in StreamText._esm
    # the card's only innerHTML is the markdown view, fed the kernel's sanitized ``html``
    assert CardWidget._esm.count("innerHTML") == 1 and 'md.innerHTML = model.get("html")' in CardWidget._esm
    panel.markdown_toggle.value = True
    assert card.widget.live("markdown")
    assert "<script" not in card.html and "<img" not in card.html
    assert "&lt;img src=x" in card.html
    panel.markdown_toggle.value = False
    assert not card.widget.live("markdown") and card.widget.value == XSS


async def test_long_text_goes_out_as_deltas_that_join_to_the_text(wire: Wire) -> None:
    lines = [f"line {i} é🎉 " + "x" * 60 for i in range(40)]
    text = "\n".join(lines)
    steps = [("running", text[:i]) for i in range(0, len(text), 97)] + [("completed", text)]
    fake = FakeJobsAPI(models=["m:1"], scripts={"m:1": steps})
    panel = fake_panel(fake, ["m:1"], prompt="p", max_rate=1000)
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    await panel.wait()
    card = panel.cards["m:1"]
    assert card.widget.value == text
    sent = wire.custom(card.widget)
    assert len(sent) > 10 and all("reset" not in m for m in sent)  # no resend
    appends = [m for m in sent if "append" in m]
    assert "".join(m["append"] for m in appends) == text
    at = 0
    for m in appends:  # each delta says where it goes, in JavaScript string units
        assert m["at"] == at
        at += utf16_len(m["append"])
    assert wire.updates(card.widget) == []  # the synced traits are never resent
    opened = wire.of(card.widget, "comm_open")
    assert len(opened) == 1 and opened[0]["state"]["text"] == ""
    # every byte after the comm_open, state changes included, within the budget of 2 per byte of text
    stream_bytes = sum(len(json.dumps(d, ensure_ascii=False).encode()) for d in wire.of(card.widget))
    assert stream_bytes == card.widget.sent_bytes
    assert stream_bytes <= 2 * len(text.encode())


async def test_switching_modes_brings_the_shown_view_up_to_date_once(wire: Wire) -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], prompt="p")
    panel._prepare("p", ["m:1"])
    card = panel.cards["m:1"]
    card.result.apply(JobUpdate(tag="m:1", job_id="j", state=JobState.RUNNING, text="one **two**", elapsed=1.0))
    card.show()
    panel.markdown_toggle.value = True
    assert "<strong>two</strong>" in card.html
    card.result.apply(JobUpdate(tag="m:1", job_id="j", state=JobState.RUNNING, text="one **two** three",
                                elapsed=2.0))
    card.show()  # markdown only while shown
    assert "three" in card.html and card.widget.value == "one **two**"
    panel.markdown_toggle.value = False
    assert card.widget.value == "one **two** three"
    texts = [{k: m[k] for k in ("append", "at")} for m in wire.custom(card.widget) if "append" in m]
    assert texts == [{"append": "one **two**", "at": 0}, {"append": " three", "at": 11}]


# -- the real local service -----------------------------------------------------------

REAL = {"max_tokens": 12, "temperature": 0}


@pytest.mark.models
async def test_real_models_answer_side_by_side(service_url: str) -> None:
    panel = Panel(url=service_url, options=REAL)
    await panel.loaded()
    assert {"smollm2:135m", "gemma3:270m"} <= set(panel.checkboxes)
    panel.checkboxes["smollm2:135m"].value = True
    panel.checkboxes["gemma3:270m"].value = True
    panel.prompt.value = "Name one colour."
    panel.process_button.click()
    res = await asyncio.wait_for(panel.wait(), 240)
    for tag in ("smollm2:135m", "gemma3:270m"):
        assert res[tag].state is JobState.COMPLETED, res[tag]
        assert res[tag].text.strip()
        assert panel.cards[tag].text == res[tag].text
        assert panel.cards[tag].widget.live("state") == "completed"


@pytest.mark.models
async def test_real_unknown_model_and_cancel(service_url: str) -> None:
    panel = Panel(["smollm2:135m", "nosuch:1b"], url=service_url, options={"max_tokens": 400, "temperature": 0})
    for cb in panel.checkboxes.values():
        cb.value = True
    panel.prompt.value = "Write a long story about a lighthouse keeper."
    panel.process_button.click()
    await until(lambda: "smollm2:135m" in panel.cards and panel.cards["nosuch:1b"].state is JobState.FAILED, 60)
    assert "unknown model" in panel.cards["nosuch:1b"].error
    await until(lambda: panel.cards["smollm2:135m"].state in (JobState.RUNNING, JobState.COMPLETED), 120)
    panel.cancel_button.click()
    res = await asyncio.wait_for(panel.wait(), 60)
    assert res["smollm2:135m"].state in (JobState.CANCELLED, JobState.COMPLETED)
    assert res["nosuch:1b"].state is JobState.FAILED
    assert not panel.running and hidden(panel.cancel_button)


def _closed_port() -> int:
    return free_port()  # free, so nothing listens there


async def test_service_down_is_one_line_on_the_status_line_and_in_the_card() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/remotejobs/v2"
    panel = Panel(["smollm2:135m"], url=url, retry=RetryPolicy(budget=0.5))
    panel.checkboxes["smollm2:135m"].value = True
    panel.prompt.value = "hello"
    panel.process_button.click()
    res = await asyncio.wait_for(panel.wait(), 30)
    assert res["smollm2:135m"].state is JobState.FAILED
    assert "cannot reach" in panel.status.value and "\n" not in panel.status.value
    assert "cannot reach" in panel.cards["smollm2:135m"].widget.live("error")
    assert not panel.process_button.disabled


async def test_panel_lists_nothing_when_the_service_is_down() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/remotejobs/v2"
    panel = Panel(url=url, retry=RetryPolicy(budget=0.3))
    await panel.loaded()
    assert panel.checkboxes == {} and "cannot reach" in panel.status.value


# -- arguments --------------------------------------------------------------------

SECRET = "Zq7sekretPASSWORDx9"
REFUSED = {  # each argument given wrong: (keywords, what the one line says)
    "models-not-tags": ({"models": [123]}, "models must be tags (str); got int"),
    "models-none-named": ({"models": [" "]}, "no model given"),
    "url-not-text": ({"url": 8080}, "url must be text (a str) or None, not int"),
    "url-port-out-of-range": ({"url": "http://127.0.0.1:99999/x"}, "its port is not in 1-65535"),
    "url-not-http": ({"url": f"ftp://u:{SECRET}@h/x"}, "not an http(s) URL: 'ftp://u:***@h/x'"),
    "token-not-text": ({"token": 5}, "token must be text or a Secret or None, not int"),
    "token-not-a-header": ({"token": "two words"}, "characters an HTTP header cannot carry"),
    "client-not-a-client": ({"client": BASE}, "client must be a JobsClient or None, not str"),
    "options-not-a-dict": ({"options": "max_tokens=8"}, "options must be a dict"),
    "options-not-json": ({"options": {"temperature": float("nan")}}, "options must be standard JSON values"),
    "hours-not-finite": ({"hours": float("nan")}, "hours must be a finite number"),
    "timeout-not-a-number": ({"timeout": "10"}, "timeout must be a number of seconds or None, not str"),
    "system-not-text": ({"system": 1}, "system must be text (a str) or None, not int"),
    "poll-not-settings": ({"poll": 0.1}, "poll must be PollSettings or None, not float"),
    "markdown-not-a-flag": ({"markdown": "yes"}, "markdown must be True or False, not str"),
    "max_models-zero": ({"max_models": 0}, "max_models must be a whole number ≥ 1, not 0"),
    "max_models-not-whole": ({"max_models": 2.5}, "max_models must be a whole number ≥ 1, not float"),
    "max_rate-none": ({"max_rate": None}, "max_rate must be a number of updates a second, not NoneType"),
    "max_rate-negative": ({"max_rate": -1}, "max_rate must be at least 0, not -1"),
    "byte_budget-infinite": ({"byte_budget": float("inf")}, "byte_budget must be a finite number, not inf"),
    "max_stale-text": ({"max_stale": "1"}, "max_stale must be a number of seconds, not str"),
    "retry-not-a-policy": ({"retry": 3}, "retry must be a RetryPolicy or None, not int"),
    "prompt-not-text": ({"prompt": 123}, "prompt must be text (a str), not int"),
    "prompt-not-unicode": ({"prompt": "a\udcffb"}, "prompt is not valid Unicode text"),
    "history-not-a-flag": ({"history": "no"}, "history must be True or False, not str"),
    "history_runs-negative": ({"history_runs": -1}, "history_runs must be a whole number ≥ 0, not -1"),
    "arena-not-a-flag": ({"arena": 1}, "arena must be True or False, not int"),
    "rng-not-a-generator": ({"rng": 42}, "rng must be a random.Random or None, not int"),
}


@pytest.mark.parametrize(("kw", "said"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_wrong_argument_is_one_config_error_naming_it_before_any_widget(kw: dict, said: str) -> None:
    from ipywidgets.widgets.widget import _instances

    kw = {"models": ["m:1"], **kw}
    before = len(_instances)
    with pytest.raises(ConfigError) as caught:
        Panel(**kw)
    assert said in str(caught.value) and "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)
    assert len(_instances) == before  # refused before anything was built


def test_one_tag_names_one_model() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), " m:1 ")
    assert list(panel.checkboxes) == ["m:1"]
