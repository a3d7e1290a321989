"""``gridllm-nb webui``: the panel as a standalone web page, served by Voila.

The page is a small notebook written to a temporary directory and run by
Voila with the sources stripped, so a visitor sees the WebUI only: a title,
one line saying what it is, and the panel; no notebook chrome, no code. Voila listens on 127.0.0.1 only. The endpoint is
the configured one (argument > ``GRIDLLM_API_URL`` > config file > the
embedded local service, which is started here when nobody serves it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import URL_ENV, resolve_endpoint
from ..errors import ConfigError

__all__ = ["PAGE_INTRO", "PAGE_NAME", "PAGE_TITLE", "serve_webui", "webui_command", "write_page"]

PAGE_NAME = "gridllm.ipynb"
PAGE_TITLE = "GridLLM"  # the browser tab's title and the page's heading
PAGE_INTRO = ("One prompt, up to three language models: tick the models, write the prompt, "
              "press Process (or Ctrl+Enter) and their answers stream in side by side.")


def _page_source(options: Mapping[str, Any] | None) -> str:
    args = f"options=json.loads({json.dumps(dict(options))!r})" if options else ""
    return f"import json\nfrom gridllm_nb import Panel\n\nPanel({args})"


def write_page(directory: str | Path, *, options: Mapping[str, Any] | None = None) -> Path:
    """Write the page notebook (a heading and one line, then the panel) into ``directory``; returns its path.

    The endpoint is not written into the page: the kernel inherits
    ``GRIDLLM_API_URL`` (and the token, if any) from Voila's environment.
    """
    nb = {
        "cells": [
            {"cell_type": "markdown", "id": "gridllm-title", "metadata": {},
             "source": f"# {PAGE_TITLE}\n\n{PAGE_INTRO}"},
            {"cell_type": "code", "execution_count": None, "id": "gridllm-webui",
             "metadata": {}, "outputs": [], "source": _page_source(options)},
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "title": PAGE_TITLE,
        },
        "nbformat": 4, "nbformat_minor": 5,
    }
    path = Path(directory) / PAGE_NAME
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def webui_command(page: str | Path, port: int) -> list[str]:
    """The Voila command line: loopback only, no browser, sources stripped.

    Progressive rendering: each cell's outputs reach the page as the cell
    runs, so a ``%%gridllm`` cell's cards stream there too, instead of the
    page waiting for the whole notebook to finish.
    """
    return [
        sys.executable, "-m", "voila", str(page),
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        f"--port={int(port)}",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--progressive_rendering=True",
        "--Voila.port_retries=0",
        "--VoilaConfiguration.file_allowlist=[]",
    ]


def serve_webui(port: int = 8866, url: str | None = None, *, options: Mapping[str, Any] | None = None,
                env: Mapping[str, str] | None = None) -> int:
    """Serve the panel at ``http://127.0.0.1:<port>/`` until interrupted; returns Voila's exit code."""
    try:
        import voila  # noqa: F401
    except ImportError:
        raise ConfigError("the WebUI needs Voila: pip install 'gridllm_nb[webui]'") from None
    from ..core.local import ensure_running

    endpoint = resolve_endpoint(url)
    ensure_running(endpoint)
    child_env = dict(os.environ if env is None else env)
    child_env[URL_ENV] = endpoint.url  # the kernel inherits it; the token stays in its own variable
    with tempfile.TemporaryDirectory(prefix="gridllm_webui_") as tmp:
        page = write_page(tmp, options=options)
        print(f"gridllm_nb: WebUI at http://127.0.0.1:{int(port)}/ (jobs go to {endpoint.url}); Ctrl-C stops it")
        process = subprocess.Popen(webui_command(page, port), cwd=tmp, env=child_env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                return process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()
