"""Long words stay in their column: the saved table and the diff in four front ends, at two widths.

The notebook holds saved outputs only (``results_bundle`` and ``Diff`` built
here, no model run): JupyterLab and Notebook 7 open it untrusted, so their
sanitizer filters the inline styles as it would for a notebook from GitHub;
Voila runs the same outputs from the cells' sources; nbconvert exports it.
Every piece of text in every table cell must lie inside that cell's box, and
every table inside its output; a code block scrolls inside its cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.diff import diff_texts
from gridllm_nb.core.results import Result
from gridllm_nb.display.table import results_bundle
from gridllm_nb.notebook.webui import webui_command

from .conftest import free_port, save_screenshot, stop_group
from .test_panel_browser import expect

pytestmark = pytest.mark.browser

WIDTHS = (1000, 600)
URL = ("https://en.wikipedia.org/wiki/Benz_Patent-Motorwagen#/media/"
       "File:1885Benz_Patent-Motorwagen_replica_in_the_Mercedes-Benz_Museum_Stuttgart.jpg")
HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
IDENT = "load_the_configuration_from_the_environment_or_the_defaults_and_validate_it"
CODE = f"settings = {IDENT}(path='{URL}', digest='{HASH}')"
ANSWERS = {
    "a:1": f"See {URL} for the car.\n\nThe commit is {HASH}, and `{IDENT}` reads it.\n\n"
           f"| link | commit |\n|---|---|\n| {URL} | {HASH} |",
    "b:1": f"Run this:\n\n```python\n{CODE}\n```\n\n- {URL}\n- `{HASH}`",
    "c:1": json.dumps({"url": URL, "sha256": HASH, "call": CODE}),
}
FORMATS = ("markdown", "text", "code", "json")
# JupyterLab's JSON renderer (Voila's too) ranks above HTML: the json format shows as its JSON tree there.
LAB_TABLES = len(FORMATS)

# Every text run and box in each outermost table's cells, measured against the cell; a box that
# scrolls (a code block) is measured itself and what it clips is not. Returns what sticks out.
OVERFLOWS_JS = """
root => {
  const out = [];
  const scrolls = e => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX);
  const tables = [...root.querySelectorAll('table')].filter(t => !t.parentElement.closest('table'));
  for (const table of tables) {
    const t = table.getBoundingClientRect(), room = root.getBoundingClientRect();
    if (t.right > room.right + 1) out.push(`table right ${t.right} > output right ${room.right}`);
    for (const cell of table.querySelectorAll(':scope > * > tr > td, :scope > * > tr > th')) {
      const c = cell.getBoundingClientRect();
      const outside = (r, what) => {
        if (r.width && (r.left < c.left - 1 || r.right > c.right + 1))
          out.push(`${what} [${Math.round(r.left)}, ${Math.round(r.right)}] outside its column ` +
                   `[${Math.round(c.left)}, ${Math.round(c.right)}]`);
      };
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        let clipped = false;
        for (let p = n.parentElement; p && p !== cell; p = p.parentElement) if (scrolls(p)) clipped = true;
        if (clipped) continue;
        if (n.nodeType === Node.TEXT_NODE) {
          const range = document.createRange();
          range.selectNodeContents(n);
          for (const r of range.getClientRects()) outside(r, JSON.stringify(n.data.slice(0, 30)));
        } else {
          outside(n.getBoundingClientRect(), '<' + n.tagName.toLowerCase() + '>');
        }
      }
    }
  }
  return out;
}
"""


def answers() -> list[Result]:
    return [Result(tag=tag, text=text, state=JobState.COMPLETED, elapsed=1.5) for tag, text in ANSWERS.items()]


def outputs() -> list[dict[str, Any]]:
    """The saved bundles: the table in every format, then a diff of two answers with long words."""
    bundles = [results_bundle(answers(), fmt) for fmt in FORMATS]
    d = diff_texts(ANSWERS["a:1"], ANSWERS["a:1"].replace("for the car", f"for {IDENT}"), "a:1", "b:1")
    bundles.append({"text/html": d._repr_html_(), "text/plain": repr(d)})
    return bundles


def saved_notebook(path: Path) -> Path:
    """Each cell shows one bundle: saved as its output, and its source shows it again when run."""
    cells = [{"cell_type": "code", "execution_count": i + 1, "id": f"c{i}", "metadata": {},
              "source": f"from IPython.display import display\ndisplay({bundle!r}, raw=True)",
              "outputs": [{"output_type": "display_data", "data": bundle, "metadata": {}}]}
             for i, bundle in enumerate(outputs())]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                      "name": "python3"}, "language_info": {"name": "python"}}}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def sized(browser: Any) -> Iterator[Any]:
    """``sized(width)``: a fresh page with that window width."""
    contexts = []

    def make(width: int) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        return pg

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


def assert_within_columns(page: Any, where: str, tables: int = len(FORMATS) + 1) -> None:
    outputs_ = page.locator(".jp-OutputArea-output").filter(has=page.locator("table"))
    expect()(outputs_).to_have_count(tables, timeout=90_000)
    expect()(outputs_.filter(has_text=HASH)).to_have_count(tables)
    problems = []
    for i in range(outputs_.count()):
        output = outputs_.nth(i)
        output.scroll_into_view_if_needed()
        problems += [f"{where}, output {i}: {p}" for p in output.evaluate(OVERFLOWS_JS)]
    assert not problems, "\n".join(problems[:20])
    code = outputs_.nth(0).locator("td pre").first  # the markdown answer's fenced block
    assert code.evaluate("e => e.scrollWidth > e.clientWidth"), f"{where}: the long code line scrolls in its block"


def test_long_words_stay_in_their_column_in_lab_and_notebook7(lab: Any, sized: Any, artifacts: Path) -> None:
    pytest.importorskip("notebook", minversion="7")
    saved_notebook(lab.root / "long.ipynb")
    for width in WIDTHS:
        page = sized(width)
        page.goto(lab.notebook_url("long.ipynb"))
        assert_within_columns(page, f"JupyterLab at {width} px", LAB_TABLES)
        if width == 600:  # the file browser takes half of it; closed, the notebook has the whole window
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
            assert_within_columns(page, f"JupyterLab at {width} px with no sidebar", LAB_TABLES)
            outs = page.locator(".jp-OutputArea-output").filter(has=page.locator("table"))
            outs.nth(0).scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "lab-long-words-600.png"))
            save_screenshot(outs.nth(0), artifacts, "table-long-words-600.png")
            save_screenshot(outs.nth(2), artifacts, "table-long-words-code-600.png")
            save_screenshot(outs.last, artifacts, "diff-long-words-600.png")
        page = sized(width)
        page.goto(lab.notebook7_url("long.ipynb"))
        assert_within_columns(page, f"Notebook 7 at {width} px", LAB_TABLES)


def test_long_words_stay_in_their_column_in_nbconvert_html(sized: Any, tmp_path: Path) -> None:
    nb = saved_notebook(tmp_path / "long.ipynb")
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(nb)], check=True,
                   capture_output=True, timeout=120)
    for width in WIDTHS:
        page = sized(width)
        page.route("http*://**", lambda route: route.abort())  # the template's CDN scripts: not needed
        page.goto((tmp_path / "long.html").as_uri())
        assert_within_columns(page, f"nbconvert HTML at {width} px")


def test_long_words_stay_in_their_column_in_voila(sized: Any, tmp_path: Path) -> None:
    pytest.importorskip("voila")
    nb = saved_notebook(tmp_path / "long.ipynb")
    port = free_port()
    log = open(tmp_path / "voila.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(webui_command(nb, port), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        for width in WIDTHS:
            page = sized(width)
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                    break
                except Exception:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.5)
            assert_within_columns(page, f"Voila at {width} px", LAB_TABLES)
    finally:
        stop_group(process)
        log.close()
