"""The grid's progress bar widget: registered with core on import, a bounded number of messages."""

from __future__ import annotations

import re

import pytest

from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.core import hooks
from gridllm_nb.core import progress as core_progress
from gridllm_nb.core.grid import agrid
from gridllm_nb.core.progress import Counts, Progress, make_progress, register_progress
from gridllm_nb.widgets.progress import WidgetProgress

from ..fakes import FakeClock, FakeJobsAPI, client_for, words_script


def test_importing_the_widgets_layer_registers_the_bar_with_core(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = make_progress("widget", 3)
    assert isinstance(bar, WidgetProgress) and bar.bar.max == 3
    bar.close(Counts(3, 0, 3))
    monkeypatch.setattr(core_progress, "_in_a_kernel", lambda: True)
    auto = make_progress("auto", 2)
    assert isinstance(auto, WidgetProgress)  # in a kernel, with the bar registered
    auto.close(Counts(2, 0, 2))
    monkeypatch.setattr(hooks, "progress", {k: v for k, v in hooks.progress.items() if k != "widget"})
    with pytest.raises(ValueError, match="import gridllm_nb.widgets.progress"):
        make_progress("widget", 1)
    assert type(make_progress(None, 1)) is Progress
    register_progress("widget", WidgetProgress)
    assert isinstance(make_progress("widget", 1), WidgetProgress)
    with pytest.raises(ValueError, match="progress must be"):
        make_progress("fancy", 1)


@pytest.mark.anyio
async def test_the_widget_bar_of_200_jobs_sends_a_bounded_number_of_messages(wire) -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI(default_script=words_script("a b c d e f"))
    start = clock.now
    result = await agrid([f"p{i}" for i in range(200)], ["m"], client=client_for(fake, clock=clock),
                         progress="widget")
    assert result.counts.done == 200
    updates = [state for _, kind, data in wire.sent if kind == "comm_msg" and data.get("method") == "update"
               for state in [data["state"]] if {"value"} & set(state)]
    seconds = clock.now - start
    # at most one redraw per 0.25 s of (fake) time, each a bar and a label message, plus the end
    assert len(updates) <= 2 * (seconds / 0.25 + 2)
    assert len(updates) < 200 / 4  # far fewer than one per job (1400 job updates went through it)
    labels = [state["value"] for state in updates if isinstance(state["value"], str)]
    assert labels and all(re.match(r"\d+/200 done · 0 failed · \d:\d\d elapsed", line) for line in labels)
    closed = {cid for cid, kind, _ in wire.sent if kind == "comm_close"}
    opened = {cid for cid, kind, _ in wire.sent if kind == "comm_open"}
    assert opened and opened <= closed  # every widget of the bar is gone at the end
