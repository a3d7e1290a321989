"""Verdicts on live cards in a real JupyterLab: ✓/✗ as each answer ends, "judging…" until the judge answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes import words_script

from .conftest import save_screenshot, write_notebook
from .test_panel_browser import expect, open_and_run

pytestmark = pytest.mark.browser


def test_checks_and_a_judge_on_live_cards_then_in_the_saved_table(page: Any, lab: Any, fake_api: Any,
                                                                  artifacts: Path) -> None:
    fake, url = fake_api
    fake.models.append("j:1")
    fake.scripts["m:1"] = words_script("Paris is the capital <b>of</b> France")
    fake.scripts["j:1"] = [("queued", "")] * 60 + words_script("SCORE: 8 REASON: right <img src=x>")
    write_notebook(lab.root / "checks.ipynb", "%load_ext gridllm_nb",
                   f"%%gridllm m:1 --url {url} --check contains:Paris --check max-words:3 --judge j:1\nhi")
    open_and_run(page, lab, "checks.ipynb")

    card = page.locator(".jp-OutputArea .gridllm-card")
    expect()(card.locator(".gridllm-check-pass")).to_have_text("✓ contains:Paris", timeout=90_000)
    expect()(card.locator(".gridllm-check-fail")).to_have_text("✗ max-words:3: 6 words, over 3")
    expect()(card.locator(".gridllm-check-pending")).to_have_text("… judge:j:1 judging…")
    expect()(card.locator(".gridllm-badge")).to_have_text("completed")
    save_screenshot(card, artifacts, "checks-judging.png")

    table = page.locator(".jp-OutputArea table").filter(has_text="judge:j:1")
    expect()(table).to_be_visible(timeout=90_000)
    head = table.locator("th").first
    expect()(head).to_contain_text("✓ contains:Paris")
    expect()(head).to_contain_text("✗ max-words:3: 6 words, over 3")
    expect()(head).to_contain_text("✓ judge:j:1 0.80: right <img src=x>")  # the judge's words, as text
    assert table.locator("img").count() == 0
    save_screenshot(table, artifacts, "checks-saved.png")
