"""The ``%%gridllm`` magic in a Voila page: the answers side by side, styled, with no code shown."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gridllm_nb.webui import webui_command
from tests.fakes import words_script

from .conftest import free_port, save_screenshot, stop_group, write_notebook
from .test_magic_browser import side_by_side
from .test_panel_browser import expect

pytestmark = pytest.mark.browser


def test_magic_cells_in_voila(page: Any, fake_api: Any, artifacts: Path, tmp_path: Path) -> None:
    pytest.importorskip("voila")
    fake, url = fake_api
    fake.models.append("m:2")
    fake.scripts["m:1"] = words_script(" ".join(f"beta{i}" for i in range(150)), per_step=6)
    fake.scripts["m:2"] = words_script("A short answer,\non two lines.")
    nb = write_notebook(tmp_path / "magic.ipynb", "%load_ext gridllm_nb", f"%%gridllm m:1 m:2 --url {url}\nhi")
    port = free_port()
    env = dict(os.environ)
    env.pop("GRIDLLM_API_TOKEN", None)
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(webui_command(nb, port), cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        # Voila runs the notebook before it answers a page: wait for its port, then one long page load.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
        table = page.locator("table").filter(has_text="beta149")
        expect()(table).to_be_visible(timeout=120_000)
        assert side_by_side([table.locator("th").nth(i).bounding_box() for i in range(2)])
        assert "A short answer" in table.inner_text() and "%%gridllm" not in page.content()
        expect()(page.locator(".gridllm-cards")).to_have_count(0)  # the live grid gave way to the value
        save_screenshot(page.locator("body"), artifacts, "magic-voila.png")
    finally:
        stop_group(process)
        log.close()
