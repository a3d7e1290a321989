"""`make screenshots`: every picture of the README and the docs, from the built-in models answering.

Starts the local service (SmolLM2 135M and Gemma 3 270M) and a throwaway JupyterLab, runs one
notebook in headless Chromium (Debian's /usr/bin/chromium, as the browser tests do) and
photographs the magic live and saved, a grid with its progress, the arena before and after a
vote, and the panel; then records the terminal's live columns with rich's own SVG export.
Writes docs/images/. Look at each picture before committing it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # the browser tests' own set-up, not a copy
    CHROMIUM,
    CHROMIUM_ARGS,
    TOKEN,
    stop_group,
    wait_http,
    write_notebook,
)

IMAGES = ROOT / "docs" / "images"
MODELS = ["smollm2:135m", "gemma3:270m"]
CELLS = [
    "import os\nos.environ['GRIDLLM_HISTORY'] = {history!r}\n%load_ext gridllm_nb",
    ("%%gridllm smollm2:135m gemma3:270m --option max_tokens=96\n"
     "Explain recursion to a five-year-old in two sentences."),
    ("questions = ['Name a colour.', 'Name a fruit.', 'Name a city.', 'Name a planet.', 'Name a river.',\n"
     "             'Name a tree.', 'Name a bird.', 'Name a metal.']"),
    ("%%gridllm smollm2:135m gemma3:270m --over questions --option max_tokens=24 --out g\n"
     "Answer in one short sentence: {item}"),
    ("from gridllm_nb import Panel\n"
     "Panel(['smollm2:135m', 'gemma3:270m'], options={'max_tokens': 96})"),
]
# The arena in a notebook of its own: its cell blocks the kernel until the answers are in.
ARENA_CELLS = [CELLS[0], "%%gridllm smollm2:135m gemma3:270m --arena --option max_tokens=48\nWhy is the sky blue?"]


def slug(tag: str) -> str:
    """A tag as the widgets' CSS classes spell it."""
    return re.sub(r"[^a-z0-9_-]+", "-", tag.lower()).strip("-")


def expect() -> Any:
    from playwright.sync_api import expect as _expect

    return _expect


def start_lab(base: Path, service_url: str) -> tuple[subprocess.Popen, str, Path]:
    from gridllm_nb.service.launcher import free_port

    root = base / "root"
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    root.mkdir()
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), GRIDLLM_API_URL=service_url)
    env.pop("GRIDLLM_API_TOKEN", None)
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={TOKEN}", "--LabApp.news_url=None",
           f"--ServerApp.root_dir={root}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(base / "lab.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/status", timeout=90, headers={"Authorization": f"token {TOKEN}"}, process=process)
    return process, url, root


def shoot(locator: Any, name: str) -> None:
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(IMAGES / name))
    print(f"  docs/images/{name}", flush=True)


def wait_until(check: Any, timeout: float = 120, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not get there in time")
        time.sleep(every)


def open_and_run(page: Any, lab_url: str, name: str) -> Any:
    """Open ``name`` in JupyterLab, Run All, and return its code cells."""
    page.goto(f"{lab_url}/lab/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook")
    expect()(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    return page.locator(".jp-CodeCell")


def notebook_pictures(page: Any, lab_url: str) -> None:
    cells = open_and_run(page, lab_url, "shots.ipynb")

    magic = cells.nth(1)
    texts = magic.locator(".gridllm-card .gridllm-text")
    expect()(texts).to_have_count(2, timeout=180_000)
    wait_until(lambda: all(len(texts.nth(i).inner_text().split()) >= 6 for i in range(2)))
    shoot(magic, "magic-live.png")
    expect()(magic.locator(".jp-OutputArea table")).to_be_visible(timeout=180_000)
    shoot(magic.locator(".jp-OutputArea"), "magic-saved.png")

    grid = cells.nth(3)
    bar = grid.locator("progress, .progress, [role=progressbar]").first
    expect()(bar).to_be_visible(timeout=180_000)
    wait_until(lambda: re.search(r"\b([4-9]|1[0-2])/16 done", grid.inner_text()) is not None
               or grid.locator("table").count() > 0)
    shoot(grid, "grid.png")

    panel = cells.nth(4).locator(".gridllm-panel").first
    expect()(panel).to_be_visible(timeout=120_000)
    for tag in MODELS:
        box = panel.locator(f".gridllm-model-{slug(tag)} input[type=checkbox]")
        expect()(box).to_be_enabled(timeout=60_000)
        box.check()
    panel.locator(".gridllm-prompt textarea").press_sequentially("What makes a good cup of tea?")
    panel.locator("button.gridllm-process").click()
    for tag in MODELS:
        card = panel.locator(f".gridllm-card-{slug(tag)}")
        expect()(card.locator(".gridllm-badge")).to_have_text("completed", timeout=240_000)
    expect()(panel.locator("button.gridllm-cancel")).to_be_hidden()
    shoot(panel, "panel.png")


def arena_pictures(page: Any, lab_url: str) -> None:
    arena = open_and_run(page, lab_url, "arena.ipynb").nth(1)
    vote = arena.locator("button.gridllm-vote-a")
    expect()(vote).to_be_enabled(timeout=240_000)
    shoot(arena, "arena-before.png")
    vote.click()
    expect()(arena.locator(".gridllm-vote-line")).to_contain_text("Your vote", timeout=30_000)
    shoot(arena, "arena-after.png")


async def terminal_picture(url: str) -> None:
    """The CLI's live columns, photographed by rich itself (Console(record=True), save_svg)."""
    from rich.console import Console

    from gridllm_nb.cli.live import LiveColumns
    from gridllm_nb.core.run import arun

    columns = LiveColumns(MODELS)
    shot: list[Any] = []

    def on_update(update: Any) -> None:
        columns(update)
        if not shot and all(len(columns.results[t].text.split()) >= 8 for t in MODELS):
            console = Console(record=True, width=100, force_terminal=True, color_system="truecolor",
                              file=open(os.devnull, "w"))  # noqa: SIM115
            console.print(columns.render(console, 98, 16))
            shot.append(console)

    await arun("Explain what a rainbow is, in a few sentences.", MODELS, url=url,
               options={"max_tokens": 128}, on_update=on_update, history=False, announce=None)
    if not shot:
        raise RuntimeError("the answers ended before both columns had text")
    # rich's template fetches Fira Code from a CDN: the picture uses the reader's own monospace font.
    svg = re.sub(r"@font-face\s*\{[^}]*\}", "", shot[0].export_svg(title="gridllm-nb run"))
    (IMAGES / "terminal.svg").write_text(svg, encoding="utf-8")
    print("  docs/images/terminal.svg", flush=True)


def main() -> int:
    from playwright.sync_api import sync_playwright

    from gridllm_nb.service.launcher import start_service

    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []

    def attempt(what: str, take: Any, *args: Any) -> None:
        """One set of pictures; a failure is reported and the others are still taken."""
        try:
            take(*args)
        except Exception as exc:  # noqa: BLE001 -- reported below, and the exit code says so
            failed.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        print("starting the local service with the built-in models...", flush=True)
        with start_service(db=base / "jobs.sqlite3", timeout=180.0) as service:
            attempt("the terminal", lambda: asyncio.run(terminal_picture(service.url)))
            lab, lab_url, root = start_lab(base, service.url)
            try:
                history = str(base / "history.sqlite3")
                for name, cells in (("shots.ipynb", CELLS), ("arena.ipynb", ARENA_CELLS)):
                    write_notebook(root / name, *[c.format(history=history) if "{history" in c else c
                                                  for c in cells])
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                    try:
                        for what, take in (("the notebook", notebook_pictures), ("the arena", arena_pictures)):
                            page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
                            page.set_default_timeout(60_000)
                            attempt(what, take, page, lab_url)
                    finally:
                        browser.close()
            finally:
                stop_group(lab)
    for line in failed:
        print(f"not taken: {line}", file=sys.stderr)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
