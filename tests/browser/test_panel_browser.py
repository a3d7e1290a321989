"""The panel in a real browser: JupyterLab and the Voila WebUI, headless Chromium.

Flow: open a notebook that shows the panel, run it, tick two models, type a
prompt, click Process, wait until both cards show completed text from the
real local models. The screenshot of that panel is ``docs/panel.png``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port, save_screenshot, stop_group, wait_http, write_notebook

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
    """Run > Run All Cells, from the menu bar JupyterLab and Notebook 7 share."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


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
    code = ("import json, sys\nfrom gridllm_nb.webui import serve_webui\n"
            f"sys.exit(serve_webui({port}, {local_service.url!r}, options=json.loads({OPTIONS!r})))")
    env = dict(os.environ)
    env.pop("GRIDLLM_API_TOKEN", None)
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=90, process=process)
        page.goto(f"http://127.0.0.1:{port}/")
        assert page.locator(".jp-InputArea, .jp-CodeCell .jp-InputPrompt").count() == 0  # no code shown
        panel = drive_panel(page, page)
        assert "from gridllm_nb" not in page.content()
        save_screenshot(panel, artifacts, "panel-voila.png")
    finally:
        stop_group(process)
        log.close()
