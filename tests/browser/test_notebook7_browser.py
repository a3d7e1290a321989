"""Notebook 7: the magic's live cards and saved table, and the panel, in the other Jupyter front end."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import write_notebook
from .test_magic_browser import side_by_side
from .test_panel_browser import expect, run_all_cells, run_fake_model

pytestmark = pytest.mark.browser


def test_magic_and_panel_in_notebook7(page: Any, lab: Any, fake_api: Any) -> None:
    pytest.importorskip("notebook", minversion="7")
    fake, url = fake_api
    fake.models.append("m:2")
    fake.scripts["m:1"] = words_script(" ".join(f"word{i}" for i in range(300)), per_step=4)
    fake.scripts["m:2"] = words_script("A short answer,\non two lines.")
    write_notebook(lab.root / "nb7.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 m:2 --url {url}\nhi",
                   f"from gridllm_nb import Panel\npanel = Panel(url={url!r})\npanel")
    page.goto(lab.notebook7_url("nb7.ipynb"))
    page.wait_for_selector(".jp-Notebook")
    assert "/notebooks/nb7.ipynb" in page.url  # Notebook 7 itself, not a redirect to JupyterLab
    expect()(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=90_000)
    run_all_cells(page)
    # the magic: styled live cards side by side while the answers stream, then the saved table
    magic_cell = page.locator(".jp-CodeCell").nth(1)
    cards = magic_cell.locator(".jp-OutputArea .gridllm-cards .gridllm-card")
    expect()(cards).to_have_count(2, timeout=90_000)
    expect()(cards.nth(0).locator(".gridllm-text")).to_contain_text("word40", timeout=60_000)
    assert side_by_side([cards.nth(i).bounding_box() for i in range(2)])
    assert cards.nth(0).evaluate("e => getComputedStyle(e).borderTopWidth") == "1px"
    final = magic_cell.locator(".jp-OutputArea table").filter(has_text="word299")
    expect()(final).to_be_visible(timeout=60_000)
    expect()(magic_cell.locator(".gridllm-cards")).to_have_count(0)
    assert side_by_side([final.locator("th").nth(i).bounding_box() for i in range(2)])
    # the panel: tick, type, process, a completed card
    fake.scripts["m:1"] = words_script("Hello from the fake grid in Notebook 7")
    _panel, card = run_fake_model(page)
    expect()(card.locator(".gridllm-text")).to_have_text("Hello from the fake grid in Notebook 7")
    outputs = page.locator(".jp-Notebook").inner_text()
    assert "Error" not in outputs and "Traceback" not in outputs
    # saved and reloaded: the magic's table needs no kernel and no widget
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    page.goto(lab.notebook7_url("nb7.ipynb"))
    final = page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea table").filter(has_text="word299")
    expect()(final).to_be_visible(timeout=60_000)
    assert side_by_side([final.locator("th").nth(i).bounding_box() for i in range(2)])
