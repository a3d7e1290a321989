"""Shared fixtures of the notebook tests: a real IPython shell with the extension loaded, a fake jobs API
over real HTTP, and what a kernel would send.

Displays are captured by replacing the shell's display publisher and widget
messages by replacing the comm factory, so what is checked is exactly what
a kernel would send on iopub: display_data / update_display_data with their
display ids, clear_output, and the cards' comm_open / comm_msg / comm_close.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher

from gridllm_nb.core.results import Results
from gridllm_nb.notebook.magic import CellError, GridLLMMagics

from ..fakes import FakeJobsAPI, ServedFake, words_script


class CapturePub(DisplayPublisher):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.on_publish: Any = None
        # displays and widget comm messages (see ``comms``), in the order they were sent
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        msg = {"data": data, "id": (transient or {}).get("display_id"), "update": update, "t": time.monotonic()}
        self.messages.append(msg)
        self.events.append(("display", msg))
        if self.on_publish is not None:
            self.on_publish(msg)

    def clear_output(self, wait: bool = False) -> None:
        self.events.append(("clear", {"wait": wait, "t": time.monotonic()}))

    def cleared(self) -> list[bool]:
        return [m["wait"] for kind, m in self.events if kind == "clear"]

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for m in self.messages:
            if m["id"]:
                out.setdefault(m["id"], []).append(m)
        return out

    def finals(self) -> list[dict[str, Any]]:
        return [msgs[-1]["data"] for msgs in self.by_id().values()]


class Comms:
    """Records every widget comm message (comm_open, comm_msg, comm_close) a kernel would send."""

    def __init__(self, pub: CapturePub) -> None:
        self.pub = pub
        self.messages: list[dict[str, Any]] = []
        self.on_message: Any = None

    def opened(self) -> dict[str, dict[str, Any]]:
        return {m["comm_id"]: m["data"]["state"] for m in self.messages if m["type"] == "comm_open"}

    def closed(self) -> set[str]:
        return {m["comm_id"] for m in self.messages if m["type"] == "comm_close"}

    def of(self, comm_id: str, kind: str = "comm_msg") -> list[dict[str, Any]]:
        return [m for m in self.messages if m["comm_id"] == comm_id and m["type"] == kind]

    def cards(self) -> dict[str, str]:
        """tag -> comm id of each card opened."""
        return {state["tag"]: cid for cid, state in self.opened().items() if state.get("_model_name") == "AnyModel"}

    def shown_text(self, comm_id: str) -> str:
        """The text a front end shows, rebuilt from the comm_open and every delta."""
        shown = self.opened()[comm_id].get("text", "")
        for m in self.of(comm_id):
            content = m["data"].get("content", {})
            if "reset" in content:
                shown = content["reset"]
            elif "append" in content:
                assert content["at"] == len(shown)  # each delta continues exactly where the last ended
                shown += content["append"]
        return shown


def record_comms(pub: CapturePub, monkeypatch: pytest.MonkeyPatch) -> Comms:
    import comm
    from comm.base_comm import BaseComm

    record = Comms(pub)

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                        **keys: Any) -> None:
            msg = {"type": msg_type, "comm_id": self.comm_id, "data": data or {}, "t": time.monotonic(),
                   "thread": threading.current_thread().name}
            record.messages.append(msg)
            record.pub.events.append(("comm", msg))
            if record.on_message is not None:
                record.on_message(msg)

    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    return record


@pytest.fixture()
def ip(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Any]:
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.delenv("GRIDLLM_DEFAULT_MODELS", raising=False)
    shell = get_ipython()
    saved = shell.display_pub
    shell.display_pub = CapturePub()
    shell.display_pub.comms = record_comms(shell.display_pub, monkeypatch)
    shell.run_line_magic("load_ext", "gridllm_nb")
    magics: GridLLMMagics = shell.magics_manager.registry["GridLLMMagics"]
    magics.settings.output = "cards"
    magics.settings.poll_interval = 0.05
    magics.settings.poll_max_interval = 0.05
    magics.settings.update_interval = 0.1
    shell.magics_manager.registry["GridLLMMagics"] = magics
    try:
        yield shell
    finally:
        magics.cancel_background()
        shell.run_line_magic("unload_ext", "gridllm_nb")
        shell.display_pub = saved


def magics_of(shell: Any) -> GridLLMMagics:
    return shell.magics_manager.registry["GridLLMMagics"]


@pytest.fixture()
def fake() -> Iterator[ServedFake]:
    api = FakeJobsAPI(models=["a:1", "b:2", "slow:1", "bad:1"], cancel_supported=True)
    api.scripts["a:1"] = words_script("Paris is the capital of France")
    api.scripts["b:2"] = words_script("It is Paris")
    api.scripts["slow:1"] = [("queued", "")] + [("running", "word " * i) for i in range(1, 400)]
    api.scripts["bad:1"] = [("queued", ""), ("running", "half an"), ("error", "half an")]
    with ServedFake(api) as served:
        yield served


def cell(shell: Any, line: str, body: str) -> Any:
    return shell.run_cell_magic("gridllm", line, body)


def run_cell_text(shell: Any, source: str) -> Any:
    return shell.run_cell(source, store_history=False)


def prompts_sent(api: FakeJobsAPI) -> list[dict[str, Any]]:
    return [json.loads(json.loads(r.content)["commandLine"]) for r in api.posts()]


def comms_of(ip: Any) -> Comms:
    return ip.display_pub.comms


def picture(res: Results) -> dict[str, Any]:
    """What the cell shows at the end: its value's rich display (the saved side-by-side picture)."""
    return res._repr_mimebundle_()


def check_cards_run(ip: Any, res: Results, *, value: bool = True) -> dict[str, Any]:
    """One output per cell: the live grid of cards, then the picture.

    ``value``: a blocking cell, whose value replaces the grid (clear_output,
    then the value) and whose widgets are closed; otherwise the grid's own
    output is updated in place and the cards stay open, since a front end
    that ignores display updates after the cell (Voila) still shows them.
    Returns the final bundle.
    """
    pub: CapturePub = ip.display_pub
    comms = comms_of(ip)
    (msgs,) = pub.by_id().values()  # one output for all models
    first = msgs[0]
    assert first["update"] is False and "application/vnd.jupyter.widget-view+json" in first["data"]
    grid = first["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert grid in comms.opened()
    cards = comms.cards()
    assert list(cards) == list(res)  # one card per model, in the order asked
    for tag, cid in cards.items():
        assert res[tag].text.startswith(comms.shown_text(cid))  # every character went out once, as deltas
    if value:
        assert comms.closed() >= {grid, *cards.values()}
        assert len(msgs) == 1 and pub.cleared() == [True]
        final = picture(res)
    else:
        assert not comms.closed() & {grid, *cards.values()}
        assert len(msgs) == 2 and msgs[-1]["update"] is True
        final = msgs[-1]["data"]
        assert final == picture(res) or final["text/plain"].startswith("gridllm:")
    assert set(final) - {"application/json"} == {"text/html", "text/plain"}
    return final


def one_line_error(ip: Any, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    result = run_cell_text(ip, source)
    assert isinstance(result.error_in_exec, CellError), result.error_in_exec
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def fresh_output(ip: Any) -> None:
    """Forget the outputs and comms so far: the next command's are the only ones."""
    ip.display_pub.messages.clear()
    ip.display_pub.events.clear()
    comms_of(ip).messages.clear()


WIDGET = "application/vnd.jupyter.widget-view+json"


def widget_of(model_id: str) -> Any:
    from ipywidgets.widgets.widget import _instances

    return _instances[model_id]


def wait_for_background(ip: Any) -> None:
    """Inside a running loop: until this kernel's background runs and retries have ended."""
    async def idle() -> None:
        for _ in range(400):
            if not magics_of(ip).tasks:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the background tasks did not end")

    return idle()

