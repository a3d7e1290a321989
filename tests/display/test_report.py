"""The report file: everything a reader needs, in one page that runs nothing, loads nothing and hides the token.

The page is parsed the way a browser would see its markup: every element
and attribute is checked against what a page that loads nothing may hold
(the browser test, ``tests/browser/test_report_browser.py``, opens it for
real). The hostile answers are the render tests' corpus.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

import gridllm_nb  # noqa: F401  - the package root gives core its report writer
from gridllm_nb.api.jobs import JobState
from gridllm_nb.config import Secret
from gridllm_nb.core.checks import Verdict
from gridllm_nb.core.grid import GridResults
from gridllm_nb.core.results import Result, Results, RunSpec
from gridllm_nb.display.report import POLICY, endpoint_shown, report_html
from gridllm_nb.errors import ConfigError
from tests.display.test_render import ATTACKS

TOKEN = "tok-Very-Secret-9f8e7d"
PASSWORD = "pw-Also-Secret-1234"
URL = f"http://alice:{PASSWORD}@127.0.0.1:8765/remotejobs/v2?api_key=query-Secret-55#frag"
LOADS = {"script", "link", "img", "image", "iframe", "frame", "object", "embed", "video", "audio", "source",
         "track", "svg", "math", "base", "form", "input", "picture", "portal", "applet"}
LOADING_ATTRIBUTES = {"src", "srcset", "srcdoc", "data", "poster", "action", "formaction", "background",
                      "ping", "xlink:href", "manifest", "codebase", "archive", "lowsrc", "dynsrc"}


class Page(HTMLParser):
    """Every element with its attributes, the text of each <style>, and any comment or declaration."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self.decls: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def handle_decl(self, decl: str) -> None:
        self.decls.append(decl)

    def handle_comment(self, data: str) -> None:
        self.decls.append(f"comment {data}")


def assert_inert(page_text: str, *, hostile: bool = False) -> Page:
    """No element that runs or loads, no attribute that loads or handles an event, no CSS that
    fetches, links only to http(s), mailto or #, and the policy that forbids the rest. A page
    without hostile text holds none of those words at all (hostile text holds them, escaped)."""
    page = Page(page_text)
    assert page.decls == ["DOCTYPE html"], page.decls
    for tag, attrs in page.elements:
        assert tag not in LOADS, (tag, attrs)
        for name, value in attrs.items():
            assert name not in LOADING_ATTRIBUTES and not name.startswith("on"), (tag, name, value)
            if name == "href":
                assert tag == "a" and value.startswith(("http:", "https:", "mailto:", "#")), (tag, value)
            if name == "style":
                assert "url(" not in value.lower() and "expression" not in value.lower(), value
        if tag == "meta":
            assert set(attrs) <= {"charset", "http-equiv", "content", "name"}, attrs
            assert attrs.get("http-equiv", "content-security-policy").lower() == "content-security-policy"
    metas = [a for t, a in page.elements if t == "meta" and a.get("http-equiv")]
    assert [m["content"] for m in metas] == [POLICY] and "default-src 'none'" in POLICY
    assert "script-src" not in POLICY and "unsafe-eval" not in POLICY
    assert len(page.styles) == 1 and not re.search(r"@import|url\(|expression|behavior", page.styles[0], re.IGNORECASE)
    assert not re.search(r"<script|<link", page_text, re.IGNORECASE)
    if not hostile:
        assert not re.search(r"\bsrc\s*=|@import|url\(", page_text, re.IGNORECASE)
    return page


def run_results(answers: dict[str, str], **spec: object) -> Results:
    results = Results("Which is the capital of France? <b>bold</b> & more", {
        tag: Result(tag=tag, text=text, state=JobState.COMPLETED, elapsed=1.5, submitted_s=0.0, started_s=0.2,
                    first_token_s=0.5, ended_s=1.5, service_tokens=40, finish_raw="stop")
        for tag, text in answers.items()
    }, spec=RunSpec("p", **spec), run_id="0123456789abcdef", started_at=datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    return results


def test_a_runs_report_has_the_prompt_the_answers_stats_checks_and_the_header(tmp_path: Path) -> None:
    results = run_results({"a:1": "**Paris**, see [the map](https://example.org/map)", "b:1": "Lyon"},
                          system="Be brief.", options={"max_tokens": 64, "temperature": 0.2}, url=URL, hours=0.5,
                          token=Secret(TOKEN))
    results["a:1"].checks = [Verdict("contains:Paris", True),
                             Verdict("judge:m:1", True, 0.9, "correct and short", kind="judge")]
    results["b:1"].checks = [Verdict("contains:Paris", False, reason="no 'Paris' in the answer"),
                             Verdict("judge:m:1", False, None, "unparseable verdict", kind="judge", raw="hmm <b>?")]
    path = results.save_html(tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    page_text = path.read_text(encoding="utf-8")
    page = assert_inert(page_text)
    text = " ".join(" ".join(page.text).split())
    for expected in ("Which is the capital of France? <b>bold</b> & more", "a:1", "b:1", "Be brief.",
                     '"max_tokens": 64', "http://alice:***@127.0.0.1:8765/remotejobs/v2", "0123456789abcdef",
                     "✓ contains:Paris", "✗ contains:Paris: no 'Paris' in the answer", "✓ judge:m:1 0.90: correct",
                     "the judge said: hmm <b>?", "first token", "40", "Lyon", "2026-03-01"):
        assert expected in text, expected
    assert "<strong>Paris</strong>" in page_text  # the answer's Markdown, rendered
    assert '<a href="https://example.org/map" rel="noopener noreferrer nofollow">' in page_text
    assert re.search(r"written</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d", page_text)
    for secret in (TOKEN, PASSWORD, "query-Secret-55", "frag"):
        assert secret not in page_text, secret


def test_the_token_is_masked_wherever_it_was_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = "env-Token-abcdef123456"
    monkeypatch.setenv("GRIDLLM_API_TOKEN", other)
    results = run_results({"a:1": f"your token is {TOKEN} and {other}"}, token=Secret(TOKEN))
    results["a:1"].error = f"401 for {TOKEN}"
    page_text = report_html(results)
    assert TOKEN not in page_text and other not in page_text and page_text.count("********") >= 3


@pytest.mark.parametrize("fmt", ["markdown", "text", "code", "json"])
def test_hostile_answers_stay_inert_in_every_format(fmt: str) -> None:
    results = run_results({f"m:{i}": attack for i, attack in enumerate(ATTACKS)})
    results.format = fmt
    for i, r in enumerate(results.values()):
        r.error = ATTACKS[i]
        r.checks = [Verdict(ATTACKS[i], False, reason=ATTACKS[-1 - i], kind="judge", raw=ATTACKS[i])]
    results.prompt = "\n".join(ATTACKS)
    assert_inert(report_html(results), hostile=True)


def test_a_grids_report_has_the_score_table_and_every_prompt(tmp_path: Path) -> None:
    runs = []
    for i, city in enumerate(["Paris", "Rome", "Oslo"]):
        run = run_results({"a:1": f"It is {city}.", "b:1": "No idea."})
        run.prompt = f"Capital number {i}?"
        for tag, r in run.items():
            r.checks = [Verdict(f"contains:{city}", tag == "a:1", reason="" if tag == "a:1" else "missing")]
        runs.append(run)
    grid = GridResults(runs, ["a:1", "b:1"], ["fr", "it", "no"])
    grid.spec = RunSpec("", options={"max_tokens": 8}, url=URL, token=Secret(TOKEN))
    page_text = grid.save_html(tmp_path / "grid.html").read_text(encoding="utf-8")
    page = assert_inert(page_text)
    text = " ".join(" ".join(page.text).split())
    assert "3 prompts × 2 models" in text and "Prompt 2 · it" in text and "Capital number 2?" in text
    assert "3/3 100%" in text and "0/3 0%" in text  # the score table: passed of checked, with its interval
    assert text.count("It is Oslo.") == 1 and TOKEN not in page_text and PASSWORD not in page_text


def test_a_grid_without_checks_shows_its_summary() -> None:
    grid = GridResults([run_results({"a:1": "x"})], ["a:1"])
    text = " ".join(" ".join(Page(report_html(grid)).text).split())
    assert "completed failed total success mean time" in text and "a:1 1 0 1 100% 1.5 s" in text


def test_the_endpoint_is_shown_without_password_query_or_fragment() -> None:
    assert endpoint_shown(URL) == "http://alice:***@127.0.0.1:8765/remotejobs/v2"
    assert endpoint_shown("https://api.example.org/remotejobs/v2") == "https://api.example.org/remotejobs/v2"


def test_a_report_that_cannot_be_written_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write the report"):
        run_results({"a:1": "x"}).save_html(tmp_path / "missing" / "r.html")
