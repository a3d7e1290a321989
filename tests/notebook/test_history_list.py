"""The panel's History (``HistoryList``): earlier runs from the SQLite history, escaped, newest first."""

from __future__ import annotations

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core import history, recorder
from gridllm_nb.core.results import Result, Results
from gridllm_nb.notebook.history_list import HistoryList, history_entry_html

from ..fakes import FakeJobsAPI
from .test_panel import fake_panel

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def own_history(history_file):
    """Each test its own SQLite history: a new panel lists only what that test recorded."""
    return history_file


async def test_earlier_runs_go_to_the_collapsible_history() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], prompt="first")
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    first = await panel.wait()
    assert panel.history == [] and panel.history_list.get_title(0) == "History (0 earlier runs)"
    panel.prompt.value = "second <b>bold</b>"
    panel.process_button.click()
    second = await panel.wait()
    assert panel.results is second and second.prompt.startswith("second")
    [earlier] = panel.history
    assert earlier.prompt == "first" and earlier["m:1"].text == first["m:1"].text
    assert panel.history_list.selected_index is None  # collapsed
    assert panel.history_list.get_title(0) == "History (1 earlier run)"
    entry = panel.history_list.box.children[0].value
    assert "first" in entry and "Hello from the fake grid" in entry
    assert "<summary>m:1 · completed · " in entry  # one line per model, expandable
    panel.prompt.value = "third"
    panel.process_button.click()
    await panel.wait()
    assert panel.history_list.get_title(0) == "History (2 earlier runs)"
    newest = panel.history_list.box.children[0].value
    assert "second &lt;b&gt;bold&lt;/b&gt;" in newest and "<b>bold" not in newest


def _run(prompt: str, **answers: tuple[str, str]) -> Results:
    return Results(prompt, {tag: Result(tag=tag, text=text, state=JobState(state), elapsed=1.25)
                            for tag, (state, text) in answers.items()})


async def test_a_new_panel_lists_earlier_runs_from_the_sqlite_history(history_file) -> None:
    long = "Red, orange and yellow. " + "More words here. " * 40 + "<img src=x onerror=alert(1)> THE END"
    recorder.record(_run("Name three colours", **{"smollm2:135m": ("completed", long),
                                                 "gemma3:270m": ("failed", "")}), "http://127.0.0.1:1/x")
    recorder.record(_run("Say hi", **{"m:1": ("completed", "hi there")}), "http://127.0.0.1:1/x")
    assert history_file.exists()
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"])
    assert panel.history_list.get_title(0) == "History (2 earlier runs)"
    assert [r.prompt for r in panel.history] == ["Name three colours", "Say hi"]  # oldest first
    newest, oldest = (w.value for w in panel.history_list.box.children)  # shown newest first
    assert "Say hi" in newest and "<summary>m:1 · completed · 1.2 s · hi there</summary>" in newest
    # one line per model: tag · state · time · first words; the full answer inside, as text
    assert "<summary>smollm2:135m · completed · 1.2 s · Red, orange and yellow. More words" in oldest
    assert "<summary>gemma3:270m · failed · 1.2 s</summary>" in oldest
    assert oldest.count("<details") == 2 and "THE END" in oldest
    assert "<img" not in oldest and "&lt;img src=x" in oldest  # render_text, never raw
    # its own run is recorded too, and the next new panel lists it
    panel.checkboxes["m:1"].value = True
    panel.prompt.value = "third"
    panel.process_button.click()
    await panel.wait()
    assert [r["prompt"] for r in history.recent(5)] == ["third", "Say hi", "Name three colours"]
    assert panel.history_list.get_title(0) == "History (2 earlier runs)"  # the shown run is not "earlier"
    later = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"])
    assert later.history_list.get_title(0) == "History (3 earlier runs)"
    assert later.history[-1].prompt == "third" and later.history[-1]["m:1"].text == "Hello from the fake grid"


async def test_runs_made_elsewhere_meanwhile_join_the_history_on_the_next_run() -> None:
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], prompt="first")
    panel.checkboxes["m:1"].value = True
    panel.process_button.click()
    await panel.wait()
    recorder.record(_run("from the magic", **{"x:1": ("completed", "magic answer")}), "http://h/x")
    panel.prompt.value = "second"
    panel.process_button.click()
    await panel.wait()
    assert [r.prompt for r in panel.history] == ["first", "from the magic"]
    assert panel.history_list.get_title(0) == "History (2 earlier runs)"


async def test_without_history_the_panel_lists_its_own_runs_and_records_nothing(history_file) -> None:
    recorder.record(_run("old", **{"m:1": ("completed", "old answer")}), "http://h/x")
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], prompt="first", history=False)
    assert panel.history == [] and panel.history_list.get_title(0) == "History (0 earlier runs)"
    panel.checkboxes["m:1"].value = True
    for prompt in ("first", "second"):
        panel.prompt.value = prompt
        panel.process_button.click()
        await panel.wait()
    assert [r.prompt for r in panel.history] == ["first"]
    assert [r["prompt"] for r in history.recent(5)] == ["old"]


async def test_history_keeps_the_last_runs_only() -> None:
    for i in range(5):
        recorder.record(_run(f"run {i}", **{"m:1": ("completed", f"answer {i}")}), "http://h/x")
    panel = fake_panel(FakeJobsAPI(models=["m:1"]), ["m:1"], history_runs=3)
    assert [r.prompt for r in panel.history] == ["run 2", "run 3", "run 4"]
    assert panel.history_list.get_title(0) == "History (3 earlier runs)"


def test_an_entry_is_escaped_one_line_per_model_with_the_first_words() -> None:
    run = _run("a <b>prompt</b>\nover two lines", **{"m:1": ("completed", "word " * 40), "n:1": ("failed", "")})
    run["n:1"].error = "boom\n<script>x</script>"
    page = history_entry_html(run)
    assert "a &lt;b&gt;prompt&lt;/b&gt; over two lines" in page and "<script" not in page
    first = page.split("<summary>")[1].split("</summary>")[0]
    assert first.startswith("m:1 · completed · 1.2 s · word word") and first.endswith("…")
    assert len(first.split(" · ")[-1]) == 80
    assert "<summary>n:1 · failed · 1.2 s · boom &lt;script&gt;x&lt;/script&gt;</summary>" in page


def test_an_unreadable_history_is_one_line_and_the_list_stays_empty(history_file) -> None:
    history_file.write_text("not a database")
    said: list[str] = []
    listed = HistoryList(say=said.append)
    assert listed.runs == [] and listed.get_title(0) == "History (0 earlier runs)"
    assert len(said) == 1 and said[0].startswith("history not read:")
