"""The saved report in headless Chromium: it opens and reads right, and with hostile answers nothing runs or loads.

The report of a run whose answers, errors, prompt and check reasons are the
hostile corpus of ``test_xss_browser`` is opened from disk, twice: as it is
(its Content-Security-Policy in force) and with the policy bypassed, so the
sanitizing alone is put to the test too. Every request the page makes is
recorded and must be the file itself; no dialog opens, no console message
appears (a blocked load would log one), ``window.__pwned`` stays unset and
the attacker's server on 127.0.0.1 hears nothing. A control page with one
live ``<img>`` proves the recorder would catch a load.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import gridllm_nb  # noqa: F401  - the package root gives core its report writer
from gridllm_nb.api.jobs import JobState
from gridllm_nb.config import Secret
from gridllm_nb.core.checks import Verdict
from gridllm_nb.core.grid import GridResults
from gridllm_nb.core.results import Result, Results, RunSpec

from .test_xss_browser import attacker, payloads  # noqa: F401  - attacker: the recording server fixture

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")
TOKEN = "tok-Very-Secret-9f8e7d"
URL = "http://alice:pw-Secret-1234@127.0.0.1:8765/remotejobs/v2"


def _result(tag: str, text: str, **extra: Any) -> Result:
    return Result(tag=tag, text=text, state=extra.pop("state", JobState.COMPLETED), elapsed=2.5, submitted_s=0.0,
                  started_s=0.3, first_token_s=0.8, ended_s=2.5, service_tokens=60, finish_raw="stop", **extra)


def hostile_results(exfil: str) -> Results:
    corpus = payloads(exfil)
    results = Results("\n".join(corpus), spec=RunSpec("p", options={"max_tokens": 64}, url=URL, token=Secret(TOKEN)),
                      run_id="feedface" * 4, started_at=datetime(2026, 3, 1, 12, tzinfo=timezone.utc))
    for i, attack in enumerate(corpus):
        r = _result(f"m:{i}", attack, error=attack)
        r.checks = [Verdict(attack, False, reason=attack), Verdict(f"judge:{attack}", False, None, attack,
                                                                    kind="judge", raw=attack)]
        results._set(r)
    return results


def sample_grid() -> GridResults:
    """What a user would mail: three prompts, two models, a check per prompt and a judge."""
    answers = {
        "France": ("The capital of France is **Paris**.\n\n| city | people |\n|---|---|\n| Paris | 2.1 M |",
                   "I think it is Lyon, but see [Wikipedia](https://en.wikipedia.org/wiki/France)."),
        "Italy": ("**Rome** is the capital.\n\n```python\nprint('Roma')\n```", "Rome."),
        "Norway": ("Oslo.", "The capital of Norway is Bergen, a city of about 285 000 people on the west coast."),
    }
    runs = []
    for country, (a, b) in answers.items():
        city = {"France": "Paris", "Italy": "Rome", "Norway": "Oslo"}[country]
        run = Results(f"What is the capital of {country}? Answer in one sentence.",
                      {"gemma3:270m": _result("gemma3:270m", a), "smollm2:135m": _result("smollm2:135m", b)})
        for r in run.values():
            ok = city in r.text
            r.checks = [Verdict(f"contains:{city}", ok, reason="" if ok else f"no {city!r} in the answer"),
                        Verdict("judge:qwen3:0.6b", ok, 0.9 if ok else 0.2, "names the capital" if ok else "wrong city",
                                kind="judge")]
        runs.append(run)
    grid = GridResults(runs, ["gemma3:270m", "smollm2:135m"], list(answers))
    grid.spec = RunSpec("", system="Answer briefly.", options={"max_tokens": 64, "temperature": 0.2}, url=URL,
                        token=Secret(TOKEN))
    grid.started_at = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    return grid


@pytest.fixture
def watched(browser: Any) -> Iterator[Any]:
    """``watched(bypass_csp)``: a fresh page with every request, dialog and console message recorded."""
    contexts = []

    def make(bypass_csp: bool) -> Any:
        context = browser.new_context(viewport={"width": 1300, "height": 900}, bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.requests, page.dialogs, page.console = [], [], []
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.console.append(f"error: {e}"))
        return page

    yield make
    for context in contexts:
        context.close()


def _visit(page: Any, file: Path) -> None:
    page.goto(file.as_uri())
    page.wait_for_load_state("load")
    page.mouse.move(200, 200)
    for y in range(0, 4000, 400):  # hover over everything: an onmouseover would fire
        page.mouse.wheel(0, 400)
        page.mouse.move(300 + y % 500, 300)
    page.wait_for_timeout(1500)  # time for an onerror, a fetch or a refresh to happen


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-policy", "policy-bypassed"])
def test_a_hostile_report_runs_nothing_and_loads_nothing(watched: Any, attacker: Any, tmp_path: Path,  # noqa: F811
                                                         bypass_csp: bool) -> None:
    exfil, hits = attacker
    file = hostile_results(exfil).save_html(tmp_path / "hostile.html")
    page = watched(bypass_csp)
    _visit(page, file)
    assert page.url == file.as_uri()  # no meta refresh took it away
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert set(page.requests) == {file.as_uri()}, page.requests
    assert page.dialogs == [] and page.console == [], (page.dialogs, page.console)
    assert hits == []
    found = page.evaluate("""() => ({
      cards: document.querySelectorAll('th strong').length,
      loaders: document.querySelectorAll('script, img, iframe, svg, math, object, embed, link, video, form').length,
      text: document.body.innerText.includes('<img src=x onerror=window.__pwned=1>'),
    })""")
    assert found == {"cards": len(payloads(exfil)), "loaders": 0, "text": True}
    if not bypass_csp:
        page.screenshot(path=str(SCREENSHOTS / "report-hostile.png"))


def test_the_recorder_sees_a_load_and_the_policy_stops_it(watched: Any, attacker: Any,  # noqa: F811
                                                         tmp_path: Path) -> None:
    """The control: a live image in a report page is fetched when the policy is bypassed, refused with it."""
    exfil, hits = attacker
    page_text = Results("p", {"a:1": _result("a:1", "x")}).save_html(tmp_path / "r.html").read_text()
    control = tmp_path / "control.html"
    control.write_text(page_text.replace("</body>", f"<img src='{exfil}/control'></body>"), encoding="utf-8")
    open_page = watched(True)
    _visit(open_page, control)
    assert f"{exfil}/control" in open_page.requests and hits == ["/exfil/control"]
    guarded = watched(False)
    _visit(guarded, control)
    assert hits == ["/exfil/control"] and any("Content Security Policy" in m for m in guarded.console)


def test_a_grid_report_reads_well(watched: Any, tmp_path: Path, artifacts: Path) -> None:
    file = sample_grid().save_html(tmp_path / "grid.html")
    page = watched(False)
    _visit(page, file)
    assert page.requests == [file.as_uri()] and page.console == []
    body = page.locator("body")
    for text in ("3 prompts × 2 models", "What is the capital of Norway?", "contains:Oslo",
                 "not distinguishable", "127.0.0.1:8765", "Answer briefly."):
        assert text in body.inner_text(), text
    assert TOKEN not in page.content() and "pw-Secret-1234" not in page.content()
    # the answers sit side by side: the two models' columns share a row
    boxes = [h.bounding_box() for h in page.locator("th:has(strong)").all()[:2]]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    page.set_viewport_size({"width": 1300, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "report-grid.png"), full_page=True)
    page.screenshot(path=str(artifacts / "report-grid.png"), full_page=True)
