"""The ``%%gridllm`` magic in a real JupyterLab: a long answer's live output switches to the card."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import write_notebook
from .test_panel_browser import expect, open_and_run

pytestmark = pytest.mark.browser


def test_a_long_answer_streams_into_a_card_and_ends_as_markdown(page: Any, lab: Any, fake_api: Any) -> None:
    fake, url = fake_api
    text = " ".join(f"word{i}" for i in range(400))  # ~3.3 KB: past the 1500 B switch
    fake.scripts["m:1"] = words_script(text, per_step=4)
    write_notebook(lab.root / "magic.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 --url {url}\nhi")
    open_and_run(page, lab, "magic.ipynb")
    # live: the display became the card, and its text keeps growing by deltas
    card = page.locator(".jp-OutputArea .gridllm-card")
    expect()(card).to_be_visible(timeout=90_000)
    expect()(card.locator(".gridllm-badge")).to_have_text("running")
    expect()(card.locator(".gridllm-text")).to_contain_text("word300", timeout=60_000)
    # the end: the ordinary markdown bundle, the card gone, nothing broken on the way
    final = page.locator(".jp-OutputArea .jp-RenderedMarkdown").filter(has_text="word399")
    expect()(final).to_be_visible(timeout=60_000)
    expect()(final).to_contain_text("completed")
    expect()(card).to_have_count(0)
    outputs = page.locator(".jp-OutputArea").last.inner_text()
    assert "Error" not in outputs and "not found" not in outputs
    assert final.inner_text().count("word0 word1 word2") == 1  # the text once, in order
