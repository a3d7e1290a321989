"""The panel in a real browser: JupyterLab and the Voila WebUI, headless Chromium.

Flow: open a notebook that shows the panel, run it, tick two models, type a
prompt, click Process, wait until both cards show completed text from the
real local models. The screenshot of that panel is ``docs/panel.png``.
With the scriptable fake API: Ctrl+Enter / Cmd+Enter runs Process, a long
answer's card scrolls and follows the end while it streams, and History
lists the earlier runs of the SQLite history (one recorded beforehand, as
``%%gridllm`` would) after a re-run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    free_port,
    history_at,
    save_screenshot,
    stop_group,
    wait_http,
    write_notebook,
)

pytestmark = pytest.mark.browser

MODELS = ("smollm2:135m", "gemma3:270m")
PROMPT = "Name three colours of the rainbow."
OPTIONS = '{"max_tokens": 20, "temperature": 0}'
XSS_TEXT = 'Answer: <img src=x onerror="window.__pwned=1;alert(1)"> and <script>window.__pwned=2</script> end'


def slug(tag: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", tag.lower()).strip("-")


def expect() -> Any:
    from playwright.sync_api import expect as _expect

    return _expect


def open_and_run(page: Any, lab: Any, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook")
    expect()(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
    run_all_cells(page)


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, from the menu bar JupyterLab and Notebook 7 share.

    A click while the page is still settling can be lost (the first cell's
    prompt stays ``[ ]:``): then it is clicked again, up to three times.
    """
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for attempt in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            expect()(first_prompt).not_to_have_text(re.compile(r"^\[\s*\]:?$"), timeout=15_000)
            return
        except AssertionError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def drive_panel(page: Any, root: Any) -> Any:
    """Tick both models, type, click Process, wait for two completed cards; returns the panel."""
    panel = root.locator(".gridllm-panel").first
    expect()(panel).to_be_visible(timeout=60_000)
    for tag in MODELS:
        box = panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=60_000)
        box.check()
    process = panel.locator("button.gridllm-process")
    expect()(process).to_be_disabled()
    panel.locator(".gridllm-prompt textarea").press_sequentially(PROMPT)
    expect()(process).to_be_enabled()
    process.click()
    for tag in MODELS:
        card = panel.locator(f".gridllm-card-{slug(tag)}")
        expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=240_000)
        expect()(card.locator(".gridllm-badge")).to_have_text("completed")
        text = card.locator(".gridllm-text").inner_text().strip()
        assert text, f"{tag} completed without text"
    expect()(panel.locator("button.gridllm-cancel")).to_be_hidden()
    return panel


def assert_prompt_not_clipped(panel: Any) -> None:
    """The prompt's right border is inside its row, and no ancestor that clips cuts it off."""
    textarea = panel.locator(".gridllm-prompt textarea")
    expect()(textarea).to_be_visible()
    box, row = textarea.bounding_box(), panel.bounding_box()
    assert box is not None and row is not None
    assert box["x"] >= row["x"] - 0.5 and box["x"] + box["width"] <= row["x"] + row["width"] + 0.5, (box, row)
    found = textarea.evaluate("""(ta) => {
      const r = ta.getBoundingClientRect(), cut = [];
      for (let e = ta.parentElement; e; e = e.parentElement) {
        const s = getComputedStyle(e);
        if (s.overflowX === "visible") continue;
        const q = e.getBoundingClientRect();
        if (r.right > q.right - parseFloat(s.borderRightWidth) + 0.5) cut.push(e.className || e.tagName);
      }
      const hit = document.elementFromPoint(r.right - 0.5, r.top + r.height / 2);
      return { cut, edge: hit === ta, border: getComputedStyle(ta).borderRightWidth };
    }""")
    assert found["cut"] == [] and found["edge"], found
    assert found["border"] != "0px", found


def body_scroll(card: Any) -> dict[str, float]:
    return card.locator(".gridllm-body").evaluate(
        "(b) => ({top: b.scrollTop, height: b.scrollHeight, client: b.clientHeight,"
        " fontSize: parseFloat(getComputedStyle(b).fontSize)})")


def run_fake_model(page: Any) -> tuple[Any, Any]:
    """Tick the fake API's m:1 in the page's panel, send "hi", wait for its completed card."""
    panel = page.locator(".gridllm-panel").first
    box = panel.locator(".gridllm-model-m-1 input[type=checkbox]")
    expect()(box).to_be_enabled(timeout=60_000)
    box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially("hi")
    panel.locator("button.gridllm-process").click()
    card = panel.locator(".gridllm-card-m-1")
    expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=60_000)
    return panel, card


def test_panel_in_jupyterlab_with_real_models(page: Any, lab: Any, artifacts: Path, repo_root: Path) -> None:
    write_notebook(lab.root / "panel.ipynb",
                   f"import json\nfrom gridllm_nb import Panel\npanel = Panel(options=json.loads({OPTIONS!r}))\npanel")
    open_and_run(page, lab, "panel.ipynb")
    panel = drive_panel(page, page)
    assert_prompt_not_clipped(panel)
    # The README's picture is refreshed only on request: a test run never edits tracked files.
    readme_png = repo_root / "docs" / "panel.png" if os.environ.get("GRIDLLM_UPDATE_SCREENSHOT") else None
    save_screenshot(panel, artifacts, "panel-jupyterlab.png", also=readme_png)


def test_model_html_is_shown_as_text_and_runs_nothing(page: Any, lab: Any, fake_api: Any) -> None:
    fake, url = fake_api
    fake.scripts["m:1"] = [("queued", ""), ("running", XSS_TEXT[:30]), ("completed", XSS_TEXT)]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    write_notebook(lab.root / "xss.ipynb",
                   f"from gridllm_nb import Panel\npanel = Panel(url={url!r})\npanel")
    open_and_run(page, lab, "xss.ipynb")
    panel, card = run_fake_model(page)
    expect()(card.locator(".gridllm-text")).to_contain_text('<img src=x onerror="window.__pwned=1;alert(1)">')
    expect()(card.locator(".gridllm-text")).to_contain_text("<script>window.__pwned=2</script>")
    assert card.locator("img").count() == 0 and card.locator("script").count() == 0
    # the same in markdown mode
    panel.locator("button.gridllm-markdown").click()
    view = card.locator(".gridllm-markdown-view")
    expect()(view).to_contain_text("<img src=x onerror=")
    assert card.locator("img").count() == 0 and card.locator("script").count() == 0
    # back to plain: the streamed text (sent as appended deltas) is all there, as text
    panel.locator("button.gridllm-markdown").click()
    expect()(card.locator(".gridllm-text")).to_have_text(XSS_TEXT)
    assert card.locator("img").count() == 0 and card.locator("script").count() == 0
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_webui_with_voila(page: Any, local_service: Any, artifacts: Path, tmp_path: Path) -> None:
    port = free_port()
    code = ("import json, sys\nfrom gridllm_nb.notebook.webui import serve_webui\n"
            f"sys.exit(serve_webui({port}, {local_service.url!r}, options=json.loads({OPTIONS!r})))")
    env = dict(os.environ)
    env.pop("GRIDLLM_API_TOKEN", None)
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=90, process=process)
        page.goto(f"http://127.0.0.1:{port}/")
        # a title (the tab's and the page's) and one line saying what it is
        expect()(page).to_have_title("GridLLM")
        expect()(page.locator("h1", has_text="GridLLM")).to_be_visible(timeout=60_000)
        expect()(page.get_by_text("One prompt, up to three language models")).to_be_visible()
        assert page.locator(".jp-InputArea-editor, .jp-CodeCell .jp-InputPrompt").count() == 0  # no code shown
        panel = drive_panel(page, page)
        assert "from gridllm_nb" not in page.content()
        assert_prompt_not_clipped(panel)
        save_screenshot(page.locator("body"), artifacts, "panel-voila.png")
    finally:
        stop_group(process)
        log.close()


LINES = [f"line {i:03d}: " + " ".join(["the answer keeps going"] * 3) for i in range(120)]


def long_script(lines: list[str], per_step: int = 2) -> list[tuple[str, str]]:
    steps = [("queued", "")]
    steps += [("running", "\n".join(lines[:i])) for i in range(per_step, len(lines), per_step)]
    return [*steps, ("completed", "\n".join(lines))]


def test_ctrl_enter_long_answer_follows_the_end_and_history_lists_earlier_runs(
        page: Any, lab: Any, fake_api: Any, artifacts: Path, tmp_path: Path) -> None:
    fake, url = fake_api
    fake.scripts["m:1"] = long_script(LINES)
    store = tmp_path / "history.sqlite3"
    # One run recorded beforehand, as %%gridllm records its runs; a new panel lists it.
    write_notebook(lab.root / "keys.ipynb", "\n".join([
        history_at(store),
        "from gridllm_nb import Panel\nfrom gridllm_nb.core import history, recorder",
        "from gridllm_nb.api.jobs import JobState\nfrom gridllm_nb.core.results import Result, Results",
        "from gridllm_nb.api.poller import PollSettings",
        ("recorder.record(Results('from the magic', {'x:1': Result(tag='x:1', text='magic answer <b>here</b>',"
         " state=JobState.COMPLETED, elapsed=2.0)}), 'http://127.0.0.1/x')"),
        f"panel = Panel(url={url!r}, poll=PollSettings(fast=0.1, slow=0.1))",
        "panel",
    ]))
    open_and_run(page, lab, "keys.ipynb")
    panel = page.locator(".gridllm-panel").first
    expect()(panel.locator(".gridllm-history")).to_contain_text("History (1 earlier run)", timeout=60_000)
    box = panel.locator(".gridllm-model-m-1 input[type=checkbox]")
    expect()(box).to_be_enabled(timeout=60_000)
    box.check()
    prompt = panel.locator(".gridllm-prompt textarea")
    prompt.press_sequentially("Tell me a long story.")
    prompt.press("Control+Enter")  # no click: the key runs Process
    card = panel.locator(".gridllm-card-m-1")
    expect()(card).to_have_class(re.compile(r"gridllm-state-running"), timeout=30_000)
    assert page.locator(".gridllm-panel").count() == 1  # the cell did not run again
    assert prompt.input_value() == "Tell me a long story."
    # While it streams, the card's body scrolls and stays at the end.
    samples = []
    for _ in range(200):
        s = body_scroll(card)
        if "gridllm-state-running" not in (card.get_attribute("class") or ""):
            break
        if s["height"] > s["client"] + 40:
            samples.append(s)
            if len(samples) == 4:
                save_screenshot(panel, artifacts, "panel-streaming.png")
            if len(samples) >= 8:
                break
        page.wait_for_timeout(150)
    assert len(samples) >= 3, "the answer ended before it overflowed its card"
    for s in samples:
        assert s["top"] + s["client"] >= s["height"] - 10, s  # at the end
        assert s["client"] <= 24 * s["fontSize"] + 1, s  # the card's height is capped
    assert samples[-1]["height"] > samples[0]["height"]  # it grew while it was followed
    expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=60_000)
    page.wait_for_timeout(300)
    end = body_scroll(card)
    assert end["top"] + end["client"] >= end["height"] - 10 and end["height"] > end["client"] * 2, end
    expect()(card.locator(".gridllm-text")).to_contain_text(LINES[-1])
    assert_prompt_not_clipped(panel)

    # A re-run, by Cmd+Enter: the first run joins the history, below nothing else newer.
    fake.scripts["m:1"] = [("queued", ""), ("running", "Short"), ("completed", "Short and sweet.")]
    prompt.fill("Now a short one.")
    prompt.press("Meta+Enter")
    expect()(card.locator(".gridllm-text")).to_have_text("Short and sweet.", timeout=30_000)
    expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=30_000)
    history = panel.locator(".gridllm-history")
    expect()(history).to_contain_text("History (2 earlier runs)")
    history.locator(".lm-AccordionPanel-title, .jupyter-widget-Collapse-header, .p-Collapse-header").first.click()
    entries = history.locator(".gridllm-history-entry")
    expect()(entries).to_have_count(2)
    newest, oldest = entries.nth(0), entries.nth(1)
    expect()(newest).to_contain_text("Tell me a long story.")
    summary = newest.locator("summary")
    expect()(summary).to_have_count(1)
    expect()(summary).to_contain_text(re.compile(r"m:1 · completed · \d+\.\d s · line 000: the answer"))
    assert summary.bounding_box()["height"] < 30  # one line per model
    expect()(newest.locator("details > div")).to_be_hidden()
    summary.click()  # expands to the full answer, as text
    expect()(newest.locator("details > div")).to_contain_text(LINES[-1])
    expect()(oldest).to_contain_text("from the magic")
    oldest.locator("summary").click()
    expect()(oldest.locator("details > div")).to_contain_text("magic answer <b>here</b>")  # text, not markup
    assert oldest.locator("details b").count() == 0
    save_screenshot(panel, artifacts, "panel-history.png")


DIFF_A = "The cat sat on the mat.\nIt was <b>warm</b>."
DIFF_B = 'The dog sat on the mat today.\nIt was <img src=x onerror="window.__pwned=3"> warm.'


def test_compare_shows_a_highlighted_word_diff(page: Any, lab: Any, fake_api: Any) -> None:
    """Two answers, Compare on: A's words that B lacks and B's that A lacks are highlighted, as text."""
    fake, url = fake_api
    fake.models = ["m:1", "n:1"]
    fake.scripts["m:1"] = [("queued", ""), ("completed", DIFF_A)]
    fake.scripts["n:1"] = [("queued", ""), ("completed", DIFF_B)]
    write_notebook(lab.root / "compare.ipynb", f"from gridllm_nb import Panel\npanel = Panel(url={url!r})\npanel")
    open_and_run(page, lab, "compare.ipynb")
    panel = page.locator(".gridllm-panel").first
    for tag in ("m-1", "n-1"):
        box = panel.locator(f".gridllm-model-{tag} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=60_000)
        box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially("hi")
    panel.locator("button.gridllm-process").click()
    for tag in ("m-1", "n-1"):
        expect()(panel.locator(f".gridllm-card-{tag}")).to_have_class(re.compile(r"gridllm-state-completed"),
                                                                       timeout=60_000)
    diff = panel.locator(".gridllm-diff")
    expect()(diff).to_be_hidden()
    panel.locator("button.gridllm-compare").click()
    expect()(diff).to_be_visible()
    expect()(diff).to_contain_text("similar (word level)")
    expect()(diff.locator("del", has_text="cat")).to_be_visible()
    expect()(diff.locator("ins", has_text="dog")).to_be_visible()
    expect()(diff.locator("ins").last).to_contain_text('<img src=x onerror="window.__pwned=3">')
    assert diff.locator("img").count() == 0 and diff.locator("b").count() == 0
    colours = diff.evaluate("(d) => [getComputedStyle(d.querySelector('del')).backgroundColor,"
                            " getComputedStyle(d.querySelector('ins')).backgroundColor]")
    assert colours == ["rgb(255, 221, 221)", "rgb(221, 255, 221)"]
    save_screenshot(panel, Path("/tmp"), "gridllm-compare.png")
    assert page.evaluate("window.__pwned") is None


RETRY_SHOTS = Path("/tmp/retry-shots")  # where a person looks at the Retry screenshots
STORY = "Write a long story about a dragon who learns to bake bread."  # smollm2: 300 tokens, ~5 s here


def card_state(card: Any) -> str:
    return card.locator(".gridllm-badge").inner_text().strip()


def test_retry_asks_a_timed_out_model_again_in_the_same_card(page: Any, lab: Any, artifacts: Path,
                                                             tmp_path: Path) -> None:
    """Real models, a real cut: the panel's 1 s ``timeout`` ends a 300-token answer TIMED_OUT (the
    service cancels the job); Retry asks that model again (a retry has no such limit) and only it."""
    store = tmp_path / "history.sqlite3"
    write_notebook(lab.root / "retry.ipynb", "\n".join([
        history_at(store),
        "from gridllm_nb import Panel",
        "panel = Panel(options={'max_tokens': 300, 'temperature': 0}, timeout=1.0)",
        "panel",
    ]))
    open_and_run(page, lab, "retry.ipynb")
    panel = page.locator(".gridllm-panel").first
    expect()(panel).to_be_visible(timeout=60_000)
    for tag in MODELS:
        box = panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=60_000)
        box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially(STORY)
    process, cancel = panel.locator("button.gridllm-process"), panel.locator("button.gridllm-cancel")
    process.click()
    cards = {tag: panel.locator(f".gridllm-card-{slug(tag)}") for tag in MODELS}
    for card in cards.values():  # no Retry while the run goes
        expect()(card.locator("button.gridllm-retry")).to_be_hidden()
    for card in cards.values():
        expect()(card).to_have_class(re.compile(r"gridllm-state-(completed|timed_out)"), timeout=120_000)
    expect()(cancel).to_be_hidden()
    cut = [tag for tag, card in cards.items() if card_state(card) == "timed out"]
    assert MODELS[0] in cut, "the 1 s timeout did not cut smollm2's 300-token story"
    for tag, card in cards.items():  # the button: on the cut cards only, a real, named button
        retry = card.locator("button.gridllm-retry")
        if tag in cut:
            expect()(retry).to_be_visible()
            expect()(retry).to_have_attribute("aria-label", f"Retry {tag}")
        else:
            expect()(retry).to_be_hidden()
    expect()(panel.locator(".gridllm-status")).to_contain_text("did not complete")
    save_screenshot(panel, artifacts, "panel-retry-offered.png", also=RETRY_SHOTS / "panel-retry-offered.png")

    tag, others = MODELS[0], list(MODELS[1:])  # the long answer: it streams for seconds
    card = cards[tag]
    before = {t: (card_state(cards[t]), cards[t].locator(".gridllm-text").inner_text()) for t in others}
    retry = card.locator("button.gridllm-retry")
    retry.focus()
    page.keyboard.press("Enter")  # the keyboard presses it, as a click would
    # The card starts over (its clock back at 0, counting live) while Process waits and Cancel shows.
    expect()(card).not_to_have_class(re.compile(r"gridllm-state-timed_out"), timeout=30_000)
    expect()(retry).to_be_hidden()
    expect()(process).to_be_disabled()
    expect()(cancel).to_be_visible()
    expect()(panel.locator(".gridllm-status")).to_be_hidden()
    for t in others:
        expect()(cards[t].locator("button.gridllm-retry")).to_be_hidden()  # one thing at a time
    expect()(card.locator(".gridllm-elapsed")).to_have_text(re.compile(r"^\d+ s$"))
    expect()(card).to_have_class(re.compile(r"gridllm-state-running"), timeout=120_000)
    expect()(card.locator(".gridllm-text")).to_contain_text(re.compile(r"\w+ \w+ \w+"), timeout=120_000)
    save_screenshot(panel, artifacts, "panel-retry-streaming.png", also=RETRY_SHOTS / "panel-retry-streaming.png")

    expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=240_000)
    text = card.locator(".gridllm-text").inner_text()
    assert text.strip() and card.locator(".gridllm-error").is_hidden()
    expect()(cancel).to_be_hidden()
    expect()(process).to_be_enabled()
    for t in others:  # not asked again: as they were, a cut one still offering its Retry
        assert (card_state(cards[t]), cards[t].locator(".gridllm-text").inner_text()) == before[t]
        if before[t][0] == "timed out":
            expect()(cards[t].locator("button.gridllm-retry")).to_be_visible()
    expect()(page.locator(f".gridllm-card-{slug(tag)}")).to_have_count(1)  # the same card, not a new one
    save_screenshot(panel, artifacts, "panel-retry-done.png", also=RETRY_SHOTS / "panel-retry-done.png")


def test_cards_keep_streaming_while_a_later_cell_sleeps(page: Any, lab: Any, fake_api: Any, artifacts: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25: the panel's runs go on while a later cell holds the kernel (``time.sleep(12)``).

    Run All (the panel's cell, then the sleeping one): the model list arrives while the second cell
    sleeps. Then tick two models, Process, run the sleeping cell again: both cards stream to their end
    before it does. (JupyterLab 4.6 with ipykernel 7 handles a widget's messages on a kernel subshell
    once the widget has answered one there, so a click may start its run on that subshell's loop; what
    a cell starts (the model list) runs on the kernel's own loop unless it goes to the background loop.)
    """
    from tests.fakes import words_script

    from .test_magic_browser import prompt_of, timed_jobs

    fake, url = fake_api
    fake.models = ["m:1", "n:1"]
    words = " ".join(f"w{i}" for i in range(12))
    for tag in fake.models:
        fake.scripts[tag] = words_script(f"{tag} {words} end")  # 15 steps: 3.75 s of the job's own
    timed_jobs(fake, monkeypatch)
    write_notebook(lab.root / "panel-sleep.ipynb",
                   "from gridllm_nb import Panel\nfrom gridllm_nb.api.poller import PollSettings\n"
                   f"panel = Panel(url={url!r}, poll=PollSettings(fast=0.1, slow=0.1))\npanel",
                   "import time\ntime.sleep(12)")
    open_and_run(page, lab, "panel-sleep.ipynb")
    cells = page.locator(".jp-CodeCell")
    sleeping = cells.nth(1).locator(".jp-InputPrompt")
    expect()(sleeping).to_have_text("[*]:")
    panel = page.locator(".gridllm-panel").first
    boxes = [panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]") for tag in fake.models]
    for box in boxes:
        expect()(box).to_be_enabled(timeout=10_000)
    assert prompt_of(cells.nth(1)) == "[*]:", "the model list arrived only once the sleeping cell had ended"
    expect()(sleeping).to_have_text(re.compile(r"\[\d+\]"), timeout=30_000)

    for box in boxes:
        box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially("count")
    panel.locator("button.gridllm-process").click()
    cards = [panel.locator(f".gridllm-card-{slug(tag)}") for tag in fake.models]
    expect()(cards[0]).to_have_class(re.compile(r"gridllm-state-(queued|running)"), timeout=10_000)
    cells.nth(1).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")  # time.sleep(12) again, while the cards stream
    expect()(sleeping).to_have_text("[*]:")
    expect()(cards[0].locator(".gridllm-text")).to_contain_text(re.compile(r"\bw5\b"), timeout=10_000)
    save_screenshot(page.locator(".jp-Notebook"), artifacts, "panel-during-sleep.png",
                    also=Path("/tmp/panel-shots/panel-during-sleep.png"))
    for tag, card in zip(fake.models, cards):
        expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=10_000)
        expect()(card.locator(".gridllm-text")).to_have_text(f"{tag} {words} end")
    assert prompt_of(cells.nth(1)) == "[*]:", "the cards completed only once the sleeping cell had ended"
    expect()(sleeping).to_have_text(re.compile(r"\[\d+\]"), timeout=30_000)
    expect()(panel.locator("button.gridllm-process")).to_be_enabled()
