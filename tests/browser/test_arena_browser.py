"""The blind arena in a real JupyterLab with the real local models, headless Chromium.

The panel: tick both models, Process, and until the vote neither the page
(the model checkboxes aside: they are the user's own choice) nor any
WebSocket frame the kernel sent after the click names a model; "A better"
reveals the names on the cards and stores the vote in the history DB. The
magic: ``%%gridllm --arena`` shows a lettered picture with the vote under
it, and the names after the vote. Screenshots before and after each vote go
to the artifacts and to ``/tmp/arena-shots/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import history_at, save_screenshot, write_notebook
from .test_panel_browser import MODELS, OPTIONS, expect, open_and_run, slug

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/arena-shots")
PROMPT = "Name three colours of the rainbow."


def giveaways() -> set[str]:
    """What would name a model: its tag, its CSS slug, its family (lower case)."""
    return {f.lower() for t in MODELS for f in (t, slug(t), t.split(":")[0])}


def found(text: str) -> set[str]:
    low = text.lower()
    return {g for g in giveaways() if g in low}


def page_without_choices(page: Any) -> str:
    """The page's HTML (attributes, titles, text) with the model checkboxes taken out."""
    return page.evaluate("""() => {
      const copy = document.body.cloneNode(true);
      copy.querySelectorAll(".gridllm-models").forEach((e) => e.remove());
      return copy.outerHTML;
    }""")


def listen_to_kernel(page: Any) -> list[str]:
    """Every WebSocket frame the page receives, as text (binary frames decoded leniently)."""
    frames: list[str] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(
            payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)))

    page.on("websocket", on_socket)
    return frames


def test_arena_panel_hides_the_names_until_the_vote(page: Any, lab: Any, artifacts: Path, tmp_path: Path) -> None:
    from gridllm_nb.core.arena import votes
    from gridllm_nb.core.history import recent

    store = tmp_path / "history.sqlite3"
    frames = listen_to_kernel(page)
    write_notebook(lab.root / "arena.ipynb", "\n".join([
        "import json",
        history_at(store),
        "from gridllm_nb import Panel",
        f"panel = Panel(arena=True, options=json.loads({OPTIONS!r}))",
        "panel",
    ]))
    open_and_run(page, lab, "arena.ipynb")
    panel = page.locator(".gridllm-panel").first
    expect()(panel).to_be_visible(timeout=60_000)
    expect()(panel).to_contain_text("their answers show as A, B, C until you vote")
    for tag in MODELS:
        box = panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=60_000)
        box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially(PROMPT)
    page.wait_for_timeout(500)  # the last keystrokes' syncs arrive before the click
    assert found(json.dumps(frames)) == giveaways()  # the frames are seen: the checkboxes name the models
    mark = len(frames)
    panel.locator("button.gridllm-process").click()

    cards = {letter: panel.locator(f".gridllm-card-{letter.lower()}") for letter in "AB"}
    for card in cards.values():
        expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=240_000)
        assert card.locator(".gridllm-text").inner_text().strip()
    vote_a = panel.locator("button.gridllm-vote-a")
    expect()(vote_a).to_be_enabled(timeout=30_000)
    for name in ("B better", "Tie", "All bad"):
        expect()(panel.get_by_role("button", name=name)).to_be_enabled()
    assert [cards[x].locator(".gridllm-card-tag").inner_text() for x in "AB"] == ["A", "B"]

    # Before the vote: nothing on the page but the checkboxes, nothing the kernel sent since, names a model.
    assert found(page_without_choices(page)) == set()
    after_click = "\n".join(frames[mark:])
    assert after_click and found(after_click) == set()
    SHOTS.mkdir(parents=True, exist_ok=True)
    save_screenshot(panel, artifacts, "arena-panel-before-vote.png", also=SHOTS / "arena-panel-before-vote.png")

    vote_a.click()
    line = panel.locator(".gridllm-vote-line")
    expect()(line).to_contain_text("Your vote: A better. A was ")
    title_a = cards["A"].locator(".gridllm-card-tag")
    expect()(title_a).to_have_text(re.compile(r"^A · "))
    shown = {x: cards[x].locator(".gridllm-card-tag").inner_text().split(" · ", 1)[1] for x in "AB"}
    assert sorted(shown.values()) == sorted(MODELS)
    expect()(line).to_contain_text(f"A was {shown['A']} · B was {shown['B']}")
    for name in ("A better", "B better", "Tie", "All bad"):
        expect()(panel.get_by_role("button", name=name)).to_be_disabled()
    (vote,) = votes(store)
    assert (vote.models, vote.winner, vote.prompt) == ((shown["A"], shown["B"]), shown["A"], PROMPT)
    assert vote.run_id == recent(1, path=store)[0]["run_id"]
    save_screenshot(panel, artifacts, "arena-panel-after-vote.png", also=SHOTS / "arena-panel-after-vote.png")


def test_arena_magic_letters_then_names(page: Any, lab: Any, artifacts: Path, tmp_path: Path) -> None:
    from gridllm_nb.core.arena import votes

    store = tmp_path / "history.sqlite3"
    write_notebook(lab.root / "arena-magic.ipynb",
                   history_at(store) + "\n%load_ext gridllm_nb",
                   f"%%gridllm {' '.join(MODELS)} --arena --option max_tokens=20 --option temperature=0\n{PROMPT}")
    open_and_run(page, lab, "arena-magic.ipynb")
    output = page.locator(".jp-Cell").last.locator(".jp-OutputArea")
    arena = output.locator(".gridllm-arena")
    expect()(arena).to_be_visible(timeout=240_000)
    tie = arena.get_by_role("button", name="Tie")
    expect()(tie).to_be_enabled()
    heads = arena.locator(".gridllm-arena-picture th strong")
    expect()(heads).to_have_text(["A", "B"])
    assert found(output.evaluate("e => e.outerHTML")) == set()  # the cell's source names them; its output does not
    save_screenshot(arena, artifacts, "arena-magic-before-vote.png", also=SHOTS / "arena-magic-before-vote.png")

    tie.click()
    expect()(heads.first).to_have_text(re.compile(r"^A · "))
    expect()(arena.locator(".gridllm-vote-line")).to_contain_text("Your vote: Tie. A was ")
    (vote,) = votes(store)
    assert vote.winner == "tie" and sorted(vote.models) == sorted(MODELS)
    assert heads.all_inner_texts() == [f"A · {vote.models[0]}", f"B · {vote.models[1]}"]
    save_screenshot(arena, artifacts, "arena-magic-after-vote.png", also=SHOTS / "arena-magic-after-vote.png")
