"""The ``%%gridllm`` magic in a real JupyterLab: cards side by side while streaming, a table after.

Screenshots of both moments go to the test artifacts; with
``GRIDLLM_UPDATE_SCREENSHOT=1`` they also refresh ``docs/magic-live.png`` and
``docs/magic-saved.png``.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import save_screenshot, write_notebook
from .test_panel_browser import RETRY_SHOTS, expect, open_and_run

pytestmark = pytest.mark.browser


def side_by_side(boxes: list[dict[str, float]]) -> bool:
    """Same row (tops within a few pixels), left to right, not overlapping."""
    tops = [b["y"] for b in boxes]
    lefts = [b["x"] for b in boxes]
    return max(tops) - min(tops) < 5 and lefts == sorted(lefts) and all(
        a["x"] + a["width"] <= b["x"] + 1 for a, b in itertools.pairwise(boxes))


def test_cards_side_by_side_while_streaming_then_a_saved_table(page: Any, lab: Any, fake_api: Any,
                                                               artifacts: Path, repo_root: Path) -> None:
    fake, url = fake_api
    fake.models.append("m:2")
    fake.scripts["m:1"] = words_script(" ".join(f"alpha{i}" for i in range(300)), per_step=3)
    fake.scripts["m:2"] = words_script("Karl Benz built the first practical car.\n\n- one\n- two", per_step=1)
    write_notebook(lab.root / "magic.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 m:2 --url {url}\nhi")
    update_docs = os.environ.get("GRIDLLM_UPDATE_SCREENSHOT")
    open_and_run(page, lab, "magic.ipynb")

    # live: one grid, two styled cards side by side, text growing
    grid = page.locator(".jp-OutputArea .gridllm-cards")
    expect()(grid).to_have_count(1, timeout=90_000)
    cards = grid.locator(".gridllm-card")
    expect()(cards).to_have_count(2)
    expect()(cards.nth(0).locator(".gridllm-text")).to_contain_text("alpha60", timeout=60_000)
    expect()(cards.nth(0).locator(".gridllm-badge")).to_have_text("running")
    assert side_by_side([cards.nth(i).bounding_box() for i in range(2)])
    border = cards.nth(0).evaluate("e => getComputedStyle(e).borderTopWidth")
    assert border == "1px", "the card's own stylesheet is applied from the first update"
    save_screenshot(grid, artifacts, "magic-live.png", also=repo_root / "docs" / "magic-live.png" if update_docs else None)

    # the end: the value replaces the grid; a table, the two answers side by side, no widget
    table = page.locator(".jp-OutputArea table").filter(has_text="alpha299")
    expect()(table).to_be_visible(timeout=90_000)
    expect()(grid).to_have_count(0)
    heads = table.locator("th")
    expect()(heads).to_have_count(2)
    assert side_by_side([heads.nth(i).bounding_box() for i in range(2)])
    expect()(table.locator("li")).to_have_count(2)  # the list survived
    outputs = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output")
    expect()(outputs).to_have_count(1)  # one output for the cell, not one per model plus a table
    text = page.locator(".jp-OutputArea").last.inner_text()
    assert "Error" not in text and "not found" not in text
    assert text.count("alpha0 alpha1 alpha2") == 1

    # saved and reloaded: the picture needs no kernel and no widget
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    page.goto(lab.notebook_url("magic.ipynb").replace("?reset&", "?"))
    table = page.locator(".jp-OutputArea table").filter(has_text="alpha299")
    expect()(table).to_be_visible(timeout=60_000)
    assert side_by_side([table.locator("th").nth(i).bounding_box() for i in range(2)])
    save_screenshot(table, artifacts, "magic-saved.png",
                    also=repo_root / "docs" / "magic-saved.png" if update_docs else None)


def test_retry_under_a_blocking_cells_table_and_on_a_no_wait_cells_cards(page: Any, lab: Any, fake_api: Any,
                                                                         artifacts: Path) -> None:
    """A model that failed: a blocking cell offers Retry under its table, a --no-wait cell on its card;
    each click asks the model again in the background and ends as a saved table."""
    fake, url = fake_api
    fake.models.append("m:2")
    fake.scripts["m:1"] = words_script("Paris is the capital of France.")
    fake.scripts["m:2"] = words_script("half an answer", final="error")
    write_notebook(lab.root / "retry.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 m:2 --url {url}\nhi",
                   f"%%gridllm m:2 --url {url} --no-wait\nhi")
    open_and_run(page, lab, "retry.ipynb")
    blocking, background = page.locator(".jp-CodeCell").nth(1), page.locator(".jp-CodeCell").nth(2)

    # The blocking cell: its value (the table), then one line and a Retry button under it.
    offer = blocking.locator(".gridllm-retry-offer")
    expect()(offer).to_contain_text("1 model did not answer: m:2 (failed)", timeout=90_000)
    outputs = blocking.locator(".jp-OutputArea-output")
    expect()(outputs).to_have_count(2)
    expect()(outputs.nth(0).locator("table")).to_contain_text("half an answer")
    # The --no-wait cell: its card stays live, with its own Retry.
    card = background.locator(".gridllm-card-m-2")
    expect()(card).to_have_class(re.compile("gridllm-state-failed"), timeout=90_000)
    expect()(card.locator("button.gridllm-retry")).to_be_visible()
    save_screenshot(page.locator(".jp-Notebook"), artifacts, "magic-retry-offered.png",
                    also=RETRY_SHOTS / "magic-retry-offered.png")

    fake.scripts["m:2"] = words_script(" ".join(f"fixed{i}" for i in range(80)))  # ~8 s, a word a poll
    offer.locator("button.gridllm-retry-all").click()
    live = blocking.locator(".gridllm-card-m-2")  # the line gives way to the retried model's card
    expect()(live.locator(".gridllm-text")).to_contain_text("fixed10", timeout=60_000)
    expect()(live).to_be_visible()
    expect()(offer).to_have_count(0)
    save_screenshot(blocking.locator(".jp-OutputArea"), artifacts, "magic-retry-live.png",
                    also=RETRY_SHOTS / "magic-retry-live.png")
    table = outputs.nth(1).locator("table")
    expect()(table).to_contain_text("fixed79", timeout=60_000)  # ...then its saved picture
    expect()(outputs.nth(1)).to_contain_text("Retried: m:2")
    expect()(blocking.locator(".gridllm-cards")).to_have_count(0)

    card.locator("button.gridllm-retry").click()
    expect()(background.locator("table")).to_contain_text("fixed79", timeout=60_000)
    expect()(background.locator(".gridllm-card")).to_have_count(0)  # every model answered: the picture
    text = page.locator(".jp-Notebook").inner_text()
    assert "Error" not in text and "not found" not in text
    save_screenshot(page.locator(".jp-Notebook"), artifacts, "magic-retry-done.png",
                    also=RETRY_SHOTS / "magic-retry-done.png")


def test_a_grid_shows_its_progress_while_it_runs_then_its_summary(page: Any, lab: Any, fake_api: Any,
                                                                  artifacts: Path) -> None:
    """``--over``: a bar and a line of counts while the jobs run (4 at a time), then the summary table
    and the final counts as plain text: no widget left behind in the saved notebook."""
    fake, url = fake_api
    fake.scripts["m:1"] = words_script("one two three four five six seven eight", per_step=1)
    write_notebook(lab.root / "grid.ipynb", "%load_ext gridllm_nb", "xs = [f'question {i}' for i in range(12)]",
                   f"%%gridllm m:1 --url {url} --over xs --max-live 4 --out g\n{{item}}")
    open_and_run(page, lab, "grid.ipynb")

    output = page.locator(".jp-Cell").last.locator(".jp-OutputArea")
    line = output.get_by_text(re.compile(r"^[1-9]\d*/12 done · 0 failed · \d+:\d\d elapsed · ETA"))
    expect()(line).to_be_visible(timeout=90_000)  # some finished, some still running: counts and an ETA
    assert output.locator("progress, .progress, [role=progressbar]").count() >= 1
    save_screenshot(output, artifacts, "grid-running.png")

    summary = output.locator("table").filter(has_text="m:1")
    expect()(summary).to_be_visible(timeout=90_000)
    expect()(output).to_contain_text("12/12 done · 0 failed")
    expect()(summary.locator("tbody td").nth(1)).to_have_text("12")  # completed
    expect()(output.locator("progress, .progress, [role=progressbar]")).to_have_count(0)
    assert len(fake.jobs) == 12 and len(fake.posts()) < 12  # the waves' submits went out together
    save_screenshot(output, artifacts, "grid-done.png")


# -- --no-wait cells keep streaming while later cells run ----------------------------------------

STEP = 0.25  # seconds per step of a timed job


def timed_jobs(fake: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Make the fake's jobs advance with the clock (a step every ``STEP`` s from their submit), not with
    the polls: a job then takes its own time whenever, and however often, the kernel looks.
    Returns job id -> when it was submitted."""
    from tests.fakes import FakeJob

    submitted: dict[str, float] = {}
    submit = fake._submit

    def stamped(body: dict[str, Any]) -> Any:
        response = submit(body)
        for job_id in fake.jobs:
            submitted.setdefault(job_id, time.monotonic())
        return response

    def by_the_clock(job: Any) -> tuple[str, str]:
        if job.cancelled:
            return ("cancelled", job.steps[min(job.position, len(job.steps) - 1)][1])
        job.position = int((time.monotonic() - submitted[job.id]) / STEP)
        return job.steps[min(job.position, len(job.steps) - 1)]

    monkeypatch.setattr(fake, "_submit", stamped)
    monkeypatch.setattr(FakeJob, "advance", by_the_clock)
    return submitted


def prompt_of(cell: Any) -> str:
    return cell.locator(".jp-InputPrompt").inner_text().strip()


def test_no_wait_cells_keep_streaming_while_later_cells_run(page: Any, lab: Any, fake_api: Any, artifacts: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25: a --no-wait cell, a 15-second ``time.sleep`` cell, another --no-wait cell, a blocking
    ``%%gridllm`` cell. Each --no-wait answer is whole on the page before the cell after it ends, and its
    "completed · N s" is the job's own time (within 2 s)."""
    fake, url = fake_api
    fake.models += ["m:2", "m:3"]
    words = " ".join(f"w{i}" for i in range(20))
    for tag in ("m:1", "m:2"):
        fake.scripts[tag] = words_script(f"{tag} {words} end")  # 23 steps: 5.5 s of the job's own
    fake.scripts["m:3"] = words_script(" ".join(f"x{i}" for i in range(40)))  # ~10 s: the blocking cell
    own = (len(fake.scripts["m:1"]) - 1) * STEP
    timed_jobs(fake, monkeypatch)
    write_notebook(lab.root / "interleaved.ipynb", "%load_ext gridllm_nb",
                   f"%%gridllm m:1 --url {url} --no-wait\nfirst",
                   "import time\ntime.sleep(15)",
                   f"%%gridllm m:2 --url {url} --no-wait\nsecond",
                   f"%%gridllm m:3 --url {url}\nthird")
    open_and_run(page, lab, "interleaved.ipynb")
    cells = page.locator(".jp-CodeCell")

    for no_wait, after, tag in ((1, 2, "m:1"), (3, 4, "m:2")):
        output = cells.nth(no_wait).locator(".jp-OutputArea")
        done = re.compile(rf"{re.escape(tag)} · completed · (\d+\.\d) ?s")
        expect()(output).to_contain_text(done, timeout=60_000)
        expect()(output).to_contain_text(f"{tag} {words} end")
        # ...while the cell after it still runs (a cell that has ended shows its number, not "*")
        assert prompt_of(cells.nth(after)) == "[*]:", f"{tag} ended only after cell {after} had"
        shown = float(done.search(output.inner_text()).group(1))  # type: ignore[union-attr]
        assert abs(shown - own) <= 2.0, f"{tag} says {shown} s, its job took {own} s"
        if no_wait == 1:
            save_screenshot(page.locator(".jp-Notebook"), artifacts, "no-wait-during-sleep.png")
    save_screenshot(page.locator(".jp-Notebook"), artifacts, "no-wait-during-blocking-cell.png")
    expect()(cells.nth(4).locator(".jp-OutputArea table")).to_contain_text("x39", timeout=60_000)
    expect()(cells.nth(4).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"))
