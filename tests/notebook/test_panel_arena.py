"""The blind arena in the panel and in ``%%gridllm --arena``, on the fake API with real widgets.

The key test reads every comm message the widgets send (``Wire``) from the
click on Process to the vote, and every state a front end could ask for,
and looks for the models' names in them; the same scan, run on what was
sent before Process (the model checkboxes) and after the vote, does find
them, so it is known to see what it scans. Polling runs on a fake clock:
no real sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import ipywidgets as widgets
import pytest

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.jobs import JobState
from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.api.retry import RetryPolicy
from gridllm_nb.core import history
from gridllm_nb.core.arena import BAD, TIE, deal, votes
from gridllm_nb.errors import ConfigError
from gridllm_nb.notebook.panel import Panel
from gridllm_nb.widgets.card import slug
from gridllm_nb.widgets.votebar import ArenaOutput

from ..conftest import Wire
from ..fakes import FakeClock, FakeJobsAPI, ServedFake, words_script
from .conftest import CapturePub, cell, one_line_error

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
SMOL, GEMMA, QWEN = "smollm2:135m", "gemma3:270m", "qwen3:0.6b"


@pytest.fixture(autouse=True)
def own_history(history_file):
    """Each test its own SQLite history: a new panel lists only what that test recorded."""
    return history_file


def names(tags: list[str]) -> set[str]:
    """Every form of a tag that would give it away: the tag, its CSS slug, its family."""
    return {f for t in tags for f in (t, slug(t), t.split(":")[0]) if len(f) >= 3}


def leaks(blob: str, tags: list[str]) -> set[str]:
    low = blob.lower()
    return {n for n in names(tags) if n.lower() in low}


def tree(widget: widgets.Widget, skip: tuple[widgets.Widget, ...] = ()) -> list[widgets.Widget]:
    """The widget and every widget its state refers to (children, layouts, styles), once each."""
    seen: dict[str, widgets.Widget] = {}

    def walk(w: Any) -> None:
        if isinstance(w, widgets.Widget) and w.model_id not in seen and w not in skip:
            seen[w.model_id] = w
            for name in w.keys:
                value = getattr(w, name)
                for v in value if isinstance(value, (list, tuple)) else (value,):
                    walk(v)

    walk(widget)
    return list(seen.values())


def states(ws: list[widgets.Widget]) -> str:
    return json.dumps([w.get_state() for w in ws], default=str)


def fake_panel(fake: FakeJobsAPI, tags: list[str], clock: FakeClock, **kw: Any) -> Panel:
    client = JobsClient(BASE, transport=fake.transport(), retry=RetryPolicy(budget=1.0), clock=clock)
    # max_rate 0, no byte budget: every update is shown at once, no timer waits on the real clock
    return Panel(tags, client=client, arena=True, max_rate=0, byte_budget=None, **kw)


def fake_time() -> FakeClock:
    """The running loop's poller on a fake clock: time moves per tick, nothing sleeps."""
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    return clock


async def run_round(panel: Panel, prompt: str = "Which is the best colour?") -> None:
    panel.prompt.value = prompt
    panel.process_button.click()
    await panel.wait()
    await asyncio.sleep(0)  # the run's end is handled just after its task (``_after_run``)


def failing_fake() -> FakeJobsAPI:
    """smollm2 answers; gemma3 fails with a message naming itself; qwen3 is not served at all."""
    fake = FakeJobsAPI(models=[SMOL, GEMMA], failure_message=f"{GEMMA} ran out of memory (a Gemma3 model)")
    fake.scripts[SMOL] = words_script("Blue, because the sky is blue")
    fake.scripts[GEMMA] = [("queued", ""), ("running", "Green is"), ("error", "Green is")]
    return fake


# -- the panel -------------------------------------------------------------------------------


async def test_nothing_sent_before_the_vote_names_a_model(wire: Wire, history_file) -> None:
    fake_time_clock = fake_time()
    fake = failing_fake()
    tags = [SMOL, GEMMA, QWEN]
    panel = fake_panel(fake, tags, fake_time_clock, rng=random.Random(5))
    for t in tags:
        panel.checkboxes[t].value = True
    panel.compare.toggle.value = True
    panel.markdown_toggle.value = True
    before = len(wire.sent)
    assert leaks(json.dumps(wire.sent[:before]), tags) == names(tags)  # the scan sees the checkboxes' tags

    await run_round(panel)
    blind = panel.arena_round
    assert blind is not None and blind.letters == deal(tags, random.Random(5))
    a, b, c = blind.tags
    during = json.dumps(wire.sent[before:])
    assert leaks(during, tags) == set(), during
    # ...and every state a front end could ask for, the model checkboxes aside
    assert leaks(states(tree(panel, skip=(panel.picker.box,))), tags) == set()

    # What was shown instead: letters everywhere.
    assert [card.widget.tag for card in panel.cards.values()] == ["A", "B", "C"]
    assert [card.widget._dom_classes for card in panel.cards.values()] == [
        ("gridllm-card-a",), ("gridllm-card-b",), ("gridllm-card-c",)]
    gemma, qwen = panel.cards[GEMMA], panel.cards[QWEN]
    assert gemma.state is JobState.FAILED and gemma.widget.live("error").startswith(f"{blind.letter(GEMMA)} ran out")
    assert f"unknown model '{blind.letter(QWEN)}'" in qwen.widget.live("error")
    # each card reads the run's real Result (the core's, by tag) and masks what it shows of it
    assert all(card.result is panel.results[tag] for tag, card in panel.cards.items())
    assert GEMMA in panel.results[GEMMA].error and GEMMA not in gemma.error
    assert "2 of 3 model(s) did not complete" in panel.status.value
    assert list(panel.compare.a.options) == ["A", "B", "C"]
    assert list(panel.vote_bar.buttons) == ["A", "B", "C", TIE, BAD]
    assert panel.vote_bar.layout.display is None and not any(x.disabled for x in panel.vote_bar.buttons.values())
    # the real run is in the history, and not listed in the panel's
    assert [r["tag"] for r in history.recent(1)[0]["results"]] == [a, b, c]
    assert panel.history_list.box.children == ()

    cut = len(wire.sent)
    panel.vote_bar.buttons["C"].click()
    assert [(v.models, v.winner, v.prompt, v.run_id) for v in votes(history_file)] == [
        ((a, b, c), c, "Which is the best colour?", panel.results.run_id)]
    assert history.recent(1)[0]["run_id"] == panel.results.run_id
    assert [card.widget.tag for card in panel.cards.values()] == [f"A · {a}", f"B · {b}", f"C · {c}"]
    assert all(x.disabled for x in panel.vote_bar.buttons.values())
    assert panel.vote_bar.buttons["C"].button_style == "success"
    assert panel.vote_bar.line.value == f"Your vote: C better. A was {a} · B was {b} · C was {c}."
    assert leaks(json.dumps(wire.sent[cut:]), tags) == names(tags) - {slug(t) for t in tags}


async def test_panel_vote_winner_and_a_new_round_with_a_new_deal(history_file) -> None:
    clock = fake_time()
    fake = FakeJobsAPI(models=[SMOL, GEMMA])
    panel = fake_panel(fake, [SMOL, GEMMA], clock, rng=random.Random(0))
    for t in (SMOL, GEMMA):
        panel.checkboxes[t].value = True
    assert panel.vote_bar.layout.display == "none"
    await run_round(panel, "one")
    first = panel.arena_round
    assert first is not None
    widgets_by_letter = {card.title: card.widget for card in panel.cards.values()}
    panel.vote("A")
    assert votes(history_file)[0].winner == first.letters["A"]

    # Process again: a new round, a new deal, the cards lettered again, the bar waiting.
    deals = {tuple(first.letters.values())}
    for i in range(6):  # a seeded rng: some deal of these comes out the other way round
        panel.prompt.value = f"again {i}"
        panel.process_button.click()
        assert panel.vote_bar.layout.display == "none"
        await panel.wait()
        await asyncio.sleep(0)
        deals.add(panel.arena_round.tags)
        assert [card.widget.tag for card in panel.cards.values()] == ["A", "B"]
        assert {card.title: card.widget for card in panel.cards.values()} == widgets_by_letter  # kept by letter
        assert not any(x.disabled for x in panel.vote_bar.buttons.values())
    assert len(deals) == 2
    panel.vote("tie")
    assert [v.winner for v in votes(history_file)] == [first.letters["A"], TIE]
    # the earlier rounds joined the history, named (the first voted on, the others left without a vote)
    assert len(panel.history_list.box.children) == 6


async def test_no_history_lists_a_round_until_its_vote() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(models=[SMOL, GEMMA])
    panel = fake_panel(fake, [SMOL, GEMMA], clock)
    for t in (SMOL, GEMMA):
        panel.checkboxes[t].value = True
    await run_round(panel, "blind one")
    run_id = panel.arena_round.run_id
    assert run_id is not None and history.recent(1)[0]["run_id"] == run_id  # recorded, by tag

    def listed(p: Panel) -> str:
        p.history_list.sync()  # what any refresh of its History would show
        return json.dumps([e.value for e in p.history_list.box.children])

    other = Panel([SMOL, GEMMA], client=JobsClient(BASE, transport=fake.transport()))  # opened meanwhile
    assert listed(panel) == listed(other) == "[]"
    panel.vote("B")
    assert "blind one" in listed(other) and leaks(listed(other), [SMOL, GEMMA]) == {SMOL, GEMMA, "smollm2", "gemma3"}

    # Rows are written from the first submit: a History refreshed while a round still runs lists it not.
    fake.default_script = [("queued", "")] + [("running", "still thinking")] * 10_000
    panel.prompt.value = "mid-run"
    panel.process_button.click()
    for _ in range(50):
        if history.recent(1) and history.recent(1)[0]["prompt"] == "mid-run":
            break
        await asyncio.sleep(0.01)
    assert history.recent(1)[0]["prompt"] == "mid-run"  # in the database already
    assert "mid-run" not in listed(Panel([SMOL], client=JobsClient(BASE, transport=fake.transport())))
    panel.cancel_button.click()
    await panel.wait()
    await asyncio.sleep(0)
    fake.default_script = words_script("Hello from the fake grid")

    # A round left without a vote joins the History when the next one starts, not before.
    await run_round(panel, "left unvoted")
    assert "left unvoted" not in listed(Panel([SMOL], client=JobsClient(BASE, transport=fake.transport())))
    await run_round(panel, "the next one")
    assert "left unvoted" in listed(panel) and "the next one" not in listed(panel)


async def test_fewer_than_two_models_is_one_line_and_nothing_runs() -> None:
    clock = fake_time()
    fake = FakeJobsAPI(models=[SMOL, GEMMA])
    panel = fake_panel(fake, [SMOL, GEMMA], clock, prompt="p")
    panel.checkboxes[SMOL].value = True
    assert not panel.process_button.disabled  # the click is what says why
    panel.process_button.click()
    assert panel.task is None and fake.posts() == []
    assert panel.status.value == "the arena compares 2 or 3 models, 1 chosen"
    with pytest.raises(ConfigError, match="no arena"):
        Panel([SMOL], client=JobsClient(BASE, transport=fake.transport())).vote("A")


# -- %%gridllm --arena ----------------------------------------------------------------------


@pytest.fixture()
def arena_fake() -> Any:
    api = FakeJobsAPI(models=["alpha:1", "beta:2"], failure_message="beta:2 crashed")
    api.scripts["alpha:1"] = words_script("Paris is the capital of France")
    api.scripts["beta:2"] = [("queued", ""), ("running", "It is"), ("error", "It is")]
    with ServedFake(api) as served:
        yield served


def test_magic_arena_sends_letters_only_until_the_vote(ip: Any, arena_fake: ServedFake, history_file,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    tags = ["alpha:1", "beta:2"]
    pub: CapturePub = ip.display_pub
    out = cell(ip, f"alpha:1 beta:2 --arena --url {arena_fake.url} --out r", "capital of France?")
    assert leaks(capsys.readouterr().out, tags) == set()
    assert isinstance(out, ArenaOutput) and ip.user_ns["r"] is out
    blind = out.round
    # Everything the cell sent (displays, widget messages) and its value's every form: letters only.
    sent = json.dumps([event for _, event in pub.events], default=str)
    bundle = out._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert leaks(sent + json.dumps(bundle) + states(tree(out)), tags) == set()
    assert bundle["text/html"].count("<strong>A</strong>") == 1 and "<strong>B</strong>" in bundle["text/html"]
    assert f"{blind.letter('beta:2')} crashed" in bundle["text/plain"]
    assert "Paris is the capital of France" in bundle["text/html"]
    # the history has the real run, by tag
    assert {r["tag"] for r in history.recent(1)[0]["results"]} == set(tags)
    assert blind.run_id == history.recent(1)[0]["run_id"]

    out.vote_bar.buttons[blind.letter("alpha:1")].click()
    assert [(v.models, v.winner, v.run_id) for v in votes(history_file)] == [(blind.tags, "alpha:1", blind.run_id)]
    assert f"<strong>{blind.title('alpha:1')}</strong>" in out.picture.value  # "A · alpha:1" or "B · alpha:1"
    assert "beta:2 crashed" in out.picture.value
    assert all(b.disabled for b in out.vote_bar.buttons.values())
    assert "alpha:1" in repr(out) and "beta:2" in out.vote_bar.line.value


@pytest.mark.parametrize("line, needle", [
    ("alpha:1 --arena", "the arena compares 2 or 3 models, 1 chosen"),
    ("alpha:1 beta:2 --arena --no-wait", "--arena cannot be used with --over or --no-wait"),
    ("alpha:1 beta:2 --arena --over xs", "--arena cannot be used with --over or --no-wait"),
])
def test_magic_arena_errors_are_one_line(ip: Any, arena_fake: ServedFake, line: str, needle: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["xs"] = ["q"]
    assert needle in one_line_error(ip, f"%%gridllm {line} --url {arena_fake.url}\np", capsys)
    assert arena_fake.fake.posts() == []


def test_magic_arena_needs_a_notebook(ip: Any, arena_fake: ServedFake,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ip.magics_manager.registry["GridLLMMagics"].settings.output = "stream"
    assert "--arena needs a notebook" in one_line_error(ip, f"%%gridllm alpha:1 beta:2 --arena --url {arena_fake.url}\np",
                                                        capsys)
    assert arena_fake.fake.posts() == []


def test_line_arena_shows_the_panel_blind(ip: Any, arena_fake: ServedFake,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    ip.run_line_magic("gridllm", f"config url={arena_fake.url}")
    ip.run_line_magic("gridllm", "arena")
    (panel,) = shown
    assert isinstance(panel, Panel) and panel.arena and panel.vote_bar.layout.display == "none"
    assert list(panel.checkboxes) == ["alpha:1", "beta:2"] and "Arena" in panel.children[1].value
