"""Notebook 7: the magic's live card and the panel, in the other Jupyter front end."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import write_notebook
from .test_panel_browser import expect

pytestmark = pytest.mark.browser


def test_magic_and_panel_in_notebook7(page: Any, lab: Any, fake_api: Any) -> None:
    pytest.importorskip("notebook", minversion="7")
    fake, url = fake_api
    fake.scripts["m:1"] = words_script(" ".join(f"word{i}" for i in range(300)), per_step=4)
    write_notebook(lab.root / "nb7.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 --url {url}\nhi",
                   f"from gridllm_nb import Panel\npanel = Panel(url={url!r})\npanel")
    page.goto(lab.notebook7_url("nb7.ipynb"))
    page.wait_for_selector(".jp-Notebook")
    assert "/notebooks/nb7.ipynb" in page.url  # Notebook 7 itself, not a redirect to JupyterLab
    expect()(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # the magic: a live card while the answer streams, then the final markdown
    expect()(page.locator(".jp-OutputArea .gridllm-card")).to_be_visible(timeout=90_000)
    final = page.locator(".jp-OutputArea .jp-RenderedMarkdown").filter(has_text="word299")
    expect()(final).to_be_visible(timeout=60_000)
    # the panel: tick, type, process, a completed card
    fake.scripts["m:1"] = words_script("Hello from the fake grid in Notebook 7")
    panel = page.locator(".gridllm-panel").first
    box = panel.locator(".gridllm-model-m-1 input[type=checkbox]")
    expect()(box).to_be_enabled(timeout=60_000)
    box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially("hi")
    panel.locator("button.gridllm-process").click()
    card = panel.locator(".gridllm-card-m-1")
    expect()(card).to_have_class(re.compile(r"gridllm-state-completed"), timeout=60_000)
    expect()(card.locator(".gridllm-text")).to_have_text("Hello from the fake grid in Notebook 7")
    outputs = page.locator(".jp-Notebook").inner_text()
    assert "Error" not in outputs and "Traceback" not in outputs
