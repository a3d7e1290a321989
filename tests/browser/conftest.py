"""Browser fixtures: JupyterLab and a fake jobs API on 127.0.0.1, headless Debian Chromium.

See ``shared/BROWSER-TESTING.md``: Chromium is ``/usr/bin/chromium`` (never
``playwright install``), Lab runs with temporary settings/config/runtime
dirs and a fixed token, and the kernels inherit the server's environment,
which points ``GRIDLLM_API_URL`` at the session's local service.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridllm_nb.service.launcher import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
TOKEN = "gridllm-browser-test"


def history_at(store: Path) -> str:
    """A notebook's first lines that point the kernel's history at ``store`` (the test's own file)."""
    return f"import os\nos.environ['GRIDLLM_HISTORY'] = {str(store)!r}"


def write_notebook(path: Path, *sources: str) -> Path:
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                   "outputs": [], "source": src} for i, src in enumerate(sources)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def wait_http(url: str, *, timeout: float, headers: dict[str, str] | None = None,
              process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def stop_group(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class Lab:
    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={TOKEN}"

    def notebook7_url(self, name: str) -> str:
        """The same server's Notebook 7 front end (the ``notebook`` package's server extension)."""
        return f"{self.url}/notebooks/{name}?token={TOKEN}"


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-artifacts")


@pytest.fixture(scope="module")
def lab(local_service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    settings = base / "settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
    env.update({
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "GRIDLLM_API_URL": local_service.url,
    })
    env.pop("GRIDLLM_API_TOKEN", None)
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--IdentityProvider.token={TOKEN}", "--LabApp.news_url=None",
           f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(base / "lab.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"token {TOKEN}"}
    try:
        wait_http(f"{url}/api/status", timeout=90, headers=headers, process=process)
        yield Lab(url, root)
    finally:
        try:
            httpx.post(f"{url}/api/shutdown", headers=headers, timeout=5)
            process.wait(timeout=15)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            pass
        stop_group(process)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def fake_api() -> Iterator[tuple[Any, str]]:
    """The scriptable fake jobs API over real HTTP (uvicorn in a thread); yields (fake, base url)."""
    import uvicorn

    from tests.fakes import FakeJobsAPI

    fake = FakeJobsAPI(models=["m:1"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.asgi_app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", interface="asgi3"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake API did not start")
        time.sleep(0.05)
    try:
        yield fake, f"http://127.0.0.1:{port}/remotejobs/v2"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def save_screenshot(element: Any, artifacts: Path, name: str, also: Path | None = None) -> Path:
    element.scroll_into_view_if_needed()
    out = artifacts / name
    element.screenshot(path=str(out))
    if also is not None:
        also.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, also)
    return out
