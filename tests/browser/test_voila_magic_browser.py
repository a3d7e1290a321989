"""The ``%%gridllm`` magic in a Voila page, with no code shown.

Voila runs a cell before it shows the cell's outputs (progressive rendering
shows each cell as it ends), so a blocking cell appears as its saved
side-by-side table; a ``--no-wait`` cell returns at once and its cards
stream on the page, side by side and styled, and stay there at the end
(Voila applies no display update once a cell has ended).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gridllm_nb.notebook.webui import webui_command
from tests.fakes import words_script

from .conftest import free_port, save_screenshot, stop_group, write_notebook
from .test_magic_browser import side_by_side
from .test_panel_browser import expect

pytestmark = pytest.mark.browser


def test_magic_cells_in_voila(page: Any, fake_api: Any, artifacts: Path, tmp_path: Path) -> None:
    pytest.importorskip("voila")
    fake, url = fake_api
    fake.models.extend(["m:2", "m:3"])
    fake.scripts["m:1"] = words_script(" ".join(f"beta{i}" for i in range(60)), per_step=6)
    fake.scripts["m:2"] = words_script("A short answer,\non two lines.")
    fake.scripts["m:3"] = words_script(" ".join(f"gamma{i}" for i in range(300)), per_step=3)
    nb = write_notebook(tmp_path / "magic.ipynb", "%load_ext gridllm_nb",
                        f"%%gridllm m:1 m:2 --url {url}\nhi",
                        f"%%gridllm m:3 m:2 --url {url} --no-wait\nhi")
    port = free_port()
    env = dict(os.environ)
    env.pop("GRIDLLM_API_TOKEN", None)
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(webui_command(nb, port), cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)

        # the blocking cell: its value, the answers side by side in a table
        table = page.locator("table").filter(has_text="beta59")
        expect()(table).to_be_visible(timeout=120_000)
        assert side_by_side([table.locator("th").nth(i).bounding_box() for i in range(2)])
        assert "A short answer" in table.inner_text() and "%%gridllm" not in page.content()

        # the --no-wait cell: two styled cards side by side, text growing on the page
        cards = page.locator(".gridllm-cards .gridllm-card")
        expect()(cards).to_have_count(2, timeout=60_000)
        expect()(cards.nth(0).locator(".gridllm-text")).to_contain_text("gamma60", timeout=60_000)
        expect()(cards.nth(0).locator(".gridllm-badge")).to_have_text("running")
        assert side_by_side([cards.nth(i).bounding_box() for i in range(2)])
        assert cards.nth(0).evaluate("e => getComputedStyle(e).borderTopWidth") == "1px", "styled while live"
        save_screenshot(page.locator(".gridllm-cards"), artifacts, "magic-voila-live.png")

        # the end: the cards stay, showing how each answer ended
        expect()(cards.nth(0).locator(".gridllm-badge")).to_have_text("completed", timeout=90_000)
        expect()(cards.nth(0).locator(".gridllm-text")).to_contain_text("gamma299")
        expect()(cards.nth(1).locator(".gridllm-badge")).to_have_text("completed")
        save_screenshot(page.locator("body"), artifacts, "magic-voila.png")
    finally:
        stop_group(process)
        log.close()
