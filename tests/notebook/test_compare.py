"""The panel's Compare pane: two answers word by word, escaped, shown while its toggle is on."""

from __future__ import annotations

import asyncio
import re

import pytest

from ..fakes import FakeJobsAPI, words_script
from .test_panel import fake_panel, hidden, until

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def own_history(history_file):
    """Each test its own SQLite history: a new panel lists only what that test recorded."""
    return history_file


async def test_compare_shows_an_escaped_word_diff_of_two_answers() -> None:
    fake = FakeJobsAPI(models=["m:1", "n:1", "o:1"], scripts={
        "m:1": words_script("the cat sat on the mat <script>window.pwned=1</script>"),
        "n:1": words_script('the dog sat on the mat <img src=x onerror="window.pwned=2">'),
        "o:1": words_script("something else entirely"),
    })
    panel = fake_panel(fake, ["m:1", "n:1", "o:1"], prompt="p")
    assert "gridllm-compare" in panel.compare.toggle._dom_classes and panel.compare.toggle in panel.children[5].children
    assert hidden(panel.compare) and panel.compare in panel.children
    for t in ("m:1", "n:1", "o:1"):
        panel.checkboxes[t].value = True
    panel.process_button.click()
    await panel.wait()
    await until(lambda: not panel.running)
    await asyncio.sleep(0.05)  # _after_run is scheduled right after the task
    assert hidden(panel.compare)  # off: nothing computed, nothing shown
    panel.compare.toggle.value = True
    assert not hidden(panel.compare) and "gridllm-diff" in panel.compare.html._dom_classes
    assert list(panel.compare.a.options) == ["m:1", "n:1", "o:1"]
    assert (panel.compare.a.value, panel.compare.b.value) == ("m:1", "n:1")
    page = panel.compare.html.value
    assert "m:1" in page and "n:1" in page and "similar" in page
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page and "&lt;img src=x" in page
    assert re.search(r"<del [^>]*>cat</del>", page) and re.search(r"<ins [^>]*>dog</ins>", page)
    assert page == panel.results.diff("m:1", "n:1")._repr_html_()
    panel.compare.b.value = "o:1"  # a dropdown change brings the diff up to date
    assert "o:1" in panel.compare.html.value and "something else entirely" in panel.compare.html.value
    assert panel.compare.html.value == panel.results.diff("m:1", "o:1")._repr_html_()
    panel.process_button.click()  # a second run with Compare on: a note while it runs, the diff when it ends
    assert panel.running and "when the run ends" in panel.compare.html.value
    await panel.wait()
    await until(lambda: "similar" in panel.compare.html.value)
    assert (panel.compare.a.value, panel.compare.b.value) == ("m:1", "o:1")  # the choice is kept
    assert panel.compare.html.value == panel.results.diff("m:1", "o:1")._repr_html_()
    panel.compare.toggle.value = False
    assert hidden(panel.compare)


async def test_compare_with_one_model_says_it_needs_two() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], prompt="p")
    panel.compare.toggle.value = True
    assert not hidden(panel.compare) and hidden(panel.compare.pick) and "two answers" in panel.compare.html.value
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    await panel.wait()
    assert hidden(panel.compare.pick) and "two answers" in panel.compare.html.value
