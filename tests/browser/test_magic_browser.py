"""The ``%%gridllm`` magic in a real JupyterLab: cards side by side while streaming, a table after.

Screenshots of both moments go to the test artifacts; with
``GRIDLLM_UPDATE_SCREENSHOT=1`` they also refresh ``docs/magic-live.png`` and
``docs/magic-saved.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import save_screenshot, write_notebook
from .test_panel_browser import expect, open_and_run

pytestmark = pytest.mark.browser


def side_by_side(boxes: list[dict[str, float]]) -> bool:
    """Same row (tops within a few pixels), left to right, not overlapping."""
    tops = [b["y"] for b in boxes]
    lefts = [b["x"] for b in boxes]
    return max(tops) - min(tops) < 5 and lefts == sorted(lefts) and all(
        a["x"] + a["width"] <= b["x"] + 1 for a, b in zip(boxes, boxes[1:]))


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
