"""%%gridllm and %gridllm in a real IPython shell, against a fake jobs API over real HTTP.

Displays are captured by replacing the shell's display publisher and widget
messages by replacing the comm factory, so what is checked is exactly what
a kernel would send on iopub: display_data / update_display_data with their
display ids, clear_output, and the cards' comm_open / comm_msg / comm_close.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from IPython.core.displaypub import DisplayPublisher

from gridllm_nb.core import run as runner
from gridllm_nb.config import resolve_endpoint
from gridllm_nb.api.jobs import JobState
from gridllm_nb.notebook.magic import CellError, GridLLMMagics, Interrupted
from gridllm_nb.core.results import Results

from ..fakes import FakeJobsAPI, ServedFake, words_script
from ..display.test_render import assert_safe_bundle


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
            msg = {"type": msg_type, "comm_id": self.comm_id, "data": data or {}, "t": time.monotonic()}
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


# -- registration and help --------------------------------------------------------


def test_load_ext_registers_both_magics(ip: Any) -> None:
    assert "gridllm" in ip.magics_manager.magics["cell"]
    assert "gridllm" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "gridllm_nb")
    assert "gridllm" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "gridllm_nb")
    magics_of(ip).settings.output = "cards"


def test_extension_via_config() -> None:
    from traitlets.config import Config

    from gridllm_nb.notebook.magic import GridLLM

    c = Config()
    c.GridLLM.default_models = ["a:1"]
    c.GridLLM.poll_interval = 0.5
    s = GridLLM(config=c)
    assert s.default_models == ["a:1"] and s.poll_interval == 0.5


def test_help(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cell(ip, "--help", "ignored") is None
    out = capsys.readouterr().out
    for flag in ("--hours", "--timeout", "--format", "--no-wait", "--no-interpolate", "--url",
                 "--system", "--option", "--out", "{name}"):
        assert flag in out
    assert ip.run_line_magic("gridllm", "help") is None
    assert "models" in capsys.readouterr().out


# -- a run, its displays and its value ----------------------------------------------


def test_two_models_side_by_side(ip: Any, fake: ServedFake) -> None:
    ip.user_ns["country"] = "France"
    res = cell(ip, f"a:1 b:2 --url {fake.url} --out r", "capital of {country}? {k: v for k, v in d.items()}")
    assert isinstance(res, Results) and ip.user_ns["r"] is res
    assert res["a:1"].text == "Paris is the capital of France" and res["a:1"].state is JobState.COMPLETED
    assert res["b:2"].text == "It is Paris"
    assert res["a:1"].job_id and res["a:1"].elapsed > 0
    assert "a:1" in repr(res) and "completed" in repr(res)
    assert res.to_pandas().shape[0] == 2
    sent = prompts_sent(fake.fake)
    assert [s["inputs"] for s in sent] == [["capital of France? {k: v for k, v in d.items()}"]] * 2
    final = check_cards_run(ip, res)
    # side by side: one table row of headers, one of answers
    html = final["text/html"]
    assert html.count("<tr>") == 2 and html.index("a:1") < html.index("b:2")
    assert "Paris is the capital of France" in html and "It is Paris" in html
    assert final["text/plain"].startswith("a:1 · completed") and "\n\nb:2 · completed" in final["text/plain"]


def test_jobs_run_in_parallel(ip: Any, fake: ServedFake) -> None:
    cell(ip, f"a:1 b:2 slow:1 --url {fake.url} --timeout 1", "go")
    posts = [i for i, r in enumerate(fake.fake.requests) if r in fake.fake.posts()]
    assert len(posts) == 3 and max(posts) <= 5  # all submitted at once, not one after another
    ids_per_get = [r.url.path.rsplit("/", 1)[1].count(",") + 1 for r in fake.fake.gets()]
    assert max(ids_per_get) == 3  # polled together in one batched GET


def test_updates_are_coalesced(ip: Any, fake: ServedFake) -> None:
    magics_of(ip).settings.poll_interval = 0.01
    magics_of(ip).settings.poll_max_interval = 0.01
    magics_of(ip).settings.byte_budget = None  # rate limit only (the budget is tested below)
    res = cell(ip, f"slow:1 --url {fake.url} --timeout 2.5", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["slow:1"].text.startswith("word")
    comms = comms_of(ip)
    live = [m for m in comms.of(comms.cards()["slow:1"]) if "append" in m["data"]["content"]][:-1]
    assert len(live) >= 5  # (the last one, the end, shows at once)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(live)]
    assert min(gaps) >= 0.09  # at most ~10 updates per second
    assert len(live) <= 2.5 / 0.1 + 2
    assert "timed out" in picture(res)["text/plain"]  # and always a final picture


def test_every_option_is_sent(ip: Any, fake: ServedFake) -> None:
    cell(ip, f"a:1 --url {fake.url} --hours 2 --system 'Be brief.' --option max_tokens=16 "
             "--option temperature=0 --option stop='[\"\\n\"]' --option name=text", "hi")
    body = json.loads(fake.fake.posts()[0].content)
    assert body["hours"] == 2 and body["tag"] == "a:1"
    command = json.loads(body["commandLine"])
    assert command == {"inputs": ["hi"], "system": "Be brief.",
                       "options": {"max_tokens": 16, "temperature": 0, "stop": ["\n"], "name": "text"}}


def test_config_defaults_are_used(ip: Any, fake: ServedFake) -> None:
    s = magics_of(ip).settings
    s.default_models = ["b:2"]
    s.url = fake.url
    s.options = {"max_tokens": 5}
    s.system = "sys"
    res = cell(ip, "", "hi")
    assert list(res) == ["b:2"]
    assert json.loads(json.loads(fake.fake.posts()[0].content)["commandLine"])["options"] == {"max_tokens": 5}


def test_no_interpolate(ip: Any, fake: ServedFake) -> None:
    ip.user_ns["x"] = "VALUE"
    cell(ip, f"a:1 --url {fake.url} --no-interpolate", "{x} and {{x}}")
    cell(ip, f"a:1 --url {fake.url}", "{x} and {{x}}")
    assert [s["inputs"][0] for s in prompts_sent(fake.fake)] == ["{x} and {{x}}", "VALUE and {x}"]


def test_in_out_interpolation_through_the_shell(ip: Any, fake: ServedFake) -> None:
    ip.run_cell("1 + 41", store_history=True)
    n = ip.execution_count - 1
    cell(ip, f"a:1 --url {fake.url}", f"value {{Out[{n}]}} from {{In[{n}]}}")
    assert prompts_sent(fake.fake)[0]["inputs"][0] == "value 42 from 1 + 41"


@pytest.mark.parametrize("fmt, check", [
    ("text", lambda html, pl: "<pre style=" in html and ">Paris is the capital of France</pre>" in html),
    ("code", lambda html, pl: "<code>Paris is the capital of France</code>" in html),
    ("markdown", lambda html, pl: "<p>Paris is the capital of France</p>" in html),
])
def test_format_option(ip: Any, fake: ServedFake, fmt: str, check: Any) -> None:
    final = check_cards_run(ip, cell(ip, f"a:1 --url {fake.url} --format {fmt}", "hi"))
    assert check(final["text/html"], final["text/plain"])
    assert final["text/plain"].endswith("\nParis is the capital of France")


def test_json_format(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script('Here: {"city": "Paris", "n": [1, 2]}')
    final = check_cards_run(ip, cell(ip, f"a:1 --url {fake.url} --format json", "hi"))
    assert final["application/json"] == {"a:1": {"city": "Paris", "n": [1, 2]}}
    assert "&quot;city&quot;: &quot;Paris&quot;" in final["text/html"]


def test_untrusted_text_is_escaped(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    final = check_cards_run(ip, cell(ip, f"a:1 --url {fake.url}", "hi"))
    assert_safe_bundle(final)  # rendered as Jupyter would, raw HTML allowed: nothing live
    assert "&lt;img src=x" in final["text/html"]


def test_timeout_option(ip: Any, fake: ServedFake) -> None:
    res = cell(ip, f"slow:1 a:1 --url {fake.url} --timeout 2", "hi")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["slow:1"].text
    assert res["a:1"].state is JobState.COMPLETED
    assert any(r.method == "DELETE" for r in fake.fake.requests)  # asked the service to stop it


def test_one_failed_job_keeps_partial_text(ip: Any, fake: ServedFake) -> None:
    res = cell(ip, f"bad:1 a:1 --url {fake.url}", "hi")
    assert res["bad:1"].state is JobState.FAILED and res["bad:1"].text == "half an" and res["bad:1"].error
    assert res["a:1"].state is JobState.COMPLETED
    final = check_cards_run(ip, res)
    assert final["text/plain"].startswith("bad:1 · failed") and "half an" in final["text/plain"]


def test_history_is_recorded(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ip, f"a:1 --url {fake.url}", "remember me")
    capsys.readouterr()
    ip.run_line_magic("gridllm", "history 3")
    out = capsys.readouterr().out
    assert "remember me" in out and "a:1" in out and "completed" in out


# -- errors: one line, no traceback ---------------------------------------------------


def one_line_error(ip: Any, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    result = run_cell_text(ip, source)
    assert isinstance(result.error_in_exec, CellError), result.error_in_exec
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_error_no_model(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no model given" in one_line_error(ip, "%%gridllm\nhello", capsys)


def test_error_empty_prompt(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    assert "empty prompt" in one_line_error(ip, f"%%gridllm a:1 --url {fake.url}\n   \n", capsys)


def test_error_unknown_model(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    text = one_line_error(ip, f"%%gridllm a:1 b:3 --url {fake.url}\nhello", capsys)
    assert "b:3" in text and "did you mean b:2" in text and "a:1, b:2" in text
    assert ip.display_pub.messages == []  # no half-made outputs


def test_error_unreachable(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from gridllm_nb.service.launcher import free_port

    port = free_port()
    text = one_line_error(ip, f"%%gridllm a:1 --url http://127.0.0.1:{port}/remotejobs/v2\nhello", capsys)
    assert f"127.0.0.1:{port}" in text and "cannot reach" in text and "check the URL, the token" in text


def test_error_unauthorized(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake.fake.token = "right"
    monkeypatch.setenv("GRIDLLM_API_TOKEN", "wrong-token-value")
    text = one_line_error(ip, f"%%gridllm a:1 --url {fake.url}\nhello", capsys)
    assert "GRIDLLM_API_TOKEN" in text and "wrong-token-value" not in text


@pytest.mark.parametrize("line, needle", [
    ("a:1 --hours abc", "--hours"),
    ("a:1 --format yaml", "--format"),
    ("a:1 --out 1x", "--out"),
    ("a:1 --option novalue", "KEY=VALUE"),
    ("a:1 --bogus", "unrecognized"),
    ("a:1 'unclosed", "cannot parse"),
    (" ".join(f"m{i}:1" for i in range(9)), "at most 8"),
])
def test_error_bad_arguments(ip: Any, capsys: pytest.CaptureFixture[str], line: str, needle: str) -> None:
    assert needle in one_line_error(ip, f"%%gridllm {line}\nhello", capsys)


# -- interrupt, no-wait, re-running ----------------------------------------------------


def _no_stray_tasks(loop: asyncio.AbstractEventLoop | None = None) -> list[asyncio.Task[Any]]:
    tasks = asyncio.all_tasks(loop) if loop else []
    return [t for t in tasks if not t.done() and t.get_name() != "gridllm-poller"
            and "arun" in getattr(t.get_coro(), "__qualname__", "")]


def interrupt_once(comms: Comms, text: str, *, real_signal: bool = False, check: Any = None) -> None:
    """Interrupt the run soon after ``text`` first reaches a card (``check()`` runs then).

    A KeyboardInterrupt raised from a loop callback, as SIGINT landing while
    the loop waits; or (``real_signal``) a real SIGINT to the main thread.
    """
    main = threading.main_thread().ident

    shown: dict[str, str] = {}  # comm id -> the text its card shows so far

    def on_message(msg: dict[str, Any]) -> None:
        content = msg["data"].get("content", {}) if msg["type"] == "comm_msg" else {}
        if "reset" in content:
            shown[msg["comm_id"]] = str(content["reset"])
        elif "append" in content:
            shown[msg["comm_id"]] = shown.get(msg["comm_id"], "") + str(content["append"])
        else:
            return
        if shown[msg["comm_id"]] and text in shown[msg["comm_id"]] and not getattr(on_message, "done", False):
            on_message.done = True  # type: ignore[attr-defined]
            if check is not None:
                check()
            if real_signal:
                threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
            else:
                def kbi() -> None:
                    raise KeyboardInterrupt
                asyncio.get_running_loop().call_soon(kbi)

    comms.on_message = on_message


def test_keyboard_interrupt_keeps_partial_outputs(ip: Any, fake: ServedFake,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    interrupt_once(comms_of(ip), "word")
    capsys.readouterr()
    result = run_cell_text(ip, f"%%gridllm slow:1 a:1 --url {fake.url} --timeout 30 --out partial\nhi")
    comms_of(ip).on_message = None
    assert isinstance(result.error_in_exec, Interrupted)
    err = capsys.readouterr()
    assert "Traceback" not in err.out + err.err and "interrupted" in err.out + err.err
    res = ip.user_ns["partial"]
    assert res["slow:1"].state is JobState.CANCELLED and res["slow:1"].text.startswith("word")
    final = check_cards_run(ip, res, value=False)  # the picture takes the grid's place
    assert final["text/plain"].startswith("slow:1 · cancelled") and "word" in final["text/plain"]
    assert {"text/html", "text/plain"} == set(final)
    assert any(r.method == "DELETE" for r in fake.fake.requests)
    # and the next cell works
    again = cell(ip, f"a:1 --url {fake.url}", "again")
    assert again["a:1"].state is JobState.COMPLETED


def test_real_sigint_during_a_run(ip: Any, fake: ServedFake) -> None:
    interrupt_once(comms_of(ip), "word word", real_signal=True)
    # Python's own SIGINT handler, whatever an earlier test or library left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = run_cell_text(ip, f"%%gridllm slow:1 --url {fake.url} --timeout 30 --out partial\nhi")
    finally:
        signal.signal(signal.SIGINT, previous)
    comms_of(ip).on_message = None
    assert isinstance(result.error_in_exec, Interrupted)
    assert ip.user_ns["partial"]["slow:1"].state is JobState.CANCELLED


def test_interrupt_inside_a_running_loop_leaks_no_task(ip: Any, fake: ServedFake) -> None:
    """The kernel case: its loop is running, so the run goes to a worker thread; Ctrl-C hits the cell's thread."""
    threads: list[str] = []
    interrupt_once(comms_of(ip), "word", real_signal=True,
                   check=lambda: threads.append(threading.current_thread().name))

    async def main() -> tuple[Any, list[Any]]:
        # as ipykernel does while a cell runs (asyncio.run's own handler would cancel main() instead)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            result = run_cell_text(ip, f"%%gridllm slow:1 --url {fake.url} --timeout 30 --out partial\nhi")
        finally:
            signal.signal(signal.SIGINT, previous)
        await asyncio.sleep(0.05)
        return result, _no_stray_tasks(asyncio.get_running_loop())

    result, strays = asyncio.run(main())
    comms_of(ip).on_message = None
    assert isinstance(result.error_in_exec, Interrupted) and strays == []
    assert ip.user_ns["partial"]["slow:1"].state is JobState.CANCELLED
    assert threads == ["gridllm-run"]  # the run was off the kernel's loop
    assert not any(t.name == "gridllm-run" for t in threading.enumerate())  # the worker is gone


def test_no_wait_returns_at_once_and_keeps_streaming(ip: Any, fake: ServedFake) -> None:
    pub: CapturePub = ip.display_pub

    async def main() -> tuple[Any, int, float]:
        t = time.monotonic()
        value = cell(ip, f"a:1 b:2 --url {fake.url} --no-wait --out later", "hi")
        took = time.monotonic() - t
        opened = len(pub.messages)  # the displays exist before the cell returns
        # running another cell while the first still streams
        second = cell(ip, f"a:1 --url {fake.url}", "second")
        assert second["a:1"].state is JobState.COMPLETED
        for _ in range(200):
            if not magics_of(ip).tasks:
                break
            await asyncio.sleep(0.05)
        return value, opened, took

    value, opened, took = asyncio.run(main())
    assert value is None and opened == 1 and took < 0.5  # the grid exists before the cell returns
    later = ip.user_ns["later"]
    assert later.done and later["a:1"].text == "Paris is the capital of France"
    first, second = pub.by_id().values()  # one output per cell
    assert first[-1]["update"] and first[-1]["data"] == picture(later)  # the picture, in place
    assert len(second) == 1 and pub.cleared() == [True]  # the blocking cell's value replaced its grid


def no_wait_unknown_model(ip: Any, fake: ServedFake) -> None:
    """Run a --no-wait cell for an unknown model in a loop, until its background task ends."""
    async def main() -> None:
        assert cell(ip, f"a:9 --url {fake.url} --no-wait", "hi") is None
        for _ in range(100):
            if not magics_of(ip).tasks:
                break
            await asyncio.sleep(0.05)

    asyncio.run(main())


def test_no_wait_error_shows_in_place(ip: Any, fake: ServedFake) -> None:
    no_wait_unknown_model(ip, fake)
    (final,) = ip.display_pub.finals()
    assert final["text/plain"].startswith("gridllm: unknown model 'a:9'")
    comms = comms_of(ip)
    assert comms.opened() and comms.closed() == set(comms.opened())


def test_no_wait_without_a_loop_runs_to_completion(ip: Any, fake: ServedFake) -> None:
    res = cell(ip, f"a:1 --url {fake.url} --no-wait", "hi")
    assert res["a:1"].state is JobState.COMPLETED


def test_terminal_streams_text(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    magics_of(ip).settings.output = "auto"  # a plain shell has no kernel: text on stdout
    cell(ip, f"a:1 b:2 --url {fake.url}", "hi")
    out = capsys.readouterr().out
    assert "[a:1] " in out and "Paris is the capital of France" in out
    assert "[b:2: completed in" in out
    assert ip.display_pub.messages == []


# -- line magic ----------------------------------------------------------------------------


def test_line_models_status_cancel(ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("gridllm", f"models --url {fake.url}")
    out = capsys.readouterr().out
    assert "a:1  (local)" in out
    res = cell(ip, f"a:1 --url {fake.url}", "hi")
    job = res["a:1"].job_id
    capsys.readouterr()
    ip.run_line_magic("gridllm", f"status {job} nope --url {fake.url}")
    out = capsys.readouterr().out
    assert f"{job}  a:1  completed" in out and "nope  unknown" in out
    ip.run_line_magic("gridllm", f"cancel {job} --url {fake.url}")
    assert f"cancelled: {job}" in capsys.readouterr().out


def test_line_models_not_supported(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with ServedFake(FakeJobsAPI(models=None)) as served:
        ip.run_line_magic("gridllm", f"models --url {served.url}")
        assert "does not list its models" in capsys.readouterr().out
        ip.run_line_magic("gridllm", f"cancel abc --url {served.url}")
        assert "no cancel" in capsys.readouterr().out


def test_line_config_shows_and_sets(ip: Any, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLLM_API_TOKEN", "sekrit-token-42")
    ip.run_line_magic("gridllm", "config url=http://127.0.0.1:9/remotejobs/v2 models=a:1,b:2 "
                                 "timeout=30 options='{\"max_tokens\":8}' format=code history=false")
    out = capsys.readouterr().out
    assert "endpoint: http://127.0.0.1:9/remotejobs/v2" in out
    assert "GRIDLLM_API_TOKEN is set" in out and "sekrit" not in out
    s = magics_of(ip).settings
    assert s.default_models == ["a:1", "b:2"] and s.timeout == 30.0 and s.options == {"max_tokens": 8}
    assert s.default_format == "code" and s.history is False


def test_line_config_errors(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown setting" in one_line_error(ip, "%gridllm config colour=red", capsys)
    assert "wants a number" in one_line_error(ip, "%gridllm config timeout=soon", capsys)
    assert "not an http" in one_line_error(ip, "%gridllm config url=ftp://x", capsys)


def test_line_local_status(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from gridllm_nb.service.launcher import free_port

    port = free_port()
    magics_of(ip).settings.url = f"http://127.0.0.1:{port}/remotejobs/v2"
    ip.run_line_magic("gridllm", "local status")
    assert "not running" in capsys.readouterr().out
    ip.run_line_magic("gridllm", "local stop")
    assert "no background local service" in capsys.readouterr().out


def test_line_panel(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    shown = []
    module = types.ModuleType("gridllm_nb.notebook.panel")

    class Panel:
        def __init__(self, models: Any = None, **kwargs: Any) -> None:
            self.args = (models, kwargs)

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            shown.append(self)
            return {"text/plain": "Panel()"}

    module.Panel = Panel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gridllm_nb.notebook.panel", module)
    monkeypatch.setattr("IPython.core.interactiveshell.InteractiveShell.instance", lambda *a, **k: ip)
    ip.run_line_magic("gridllm", "panel")
    assert shown or any(m["data"].get("text/plain") == "Panel()" for m in ip.display_pub.messages)


def test_line_unknown_command(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice" in one_line_error(ip, "%gridllm frobnicate", capsys)


# -- integration: the real local service with real models ----------------------------------

REAL = "--option max_tokens=16 --option temperature=0 --option seed=1"


@pytest.mark.models
def test_real_models_side_by_side(ip: Any, local_service: Any) -> None:
    res = cell(ip, f"smollm2:135m gemma3:270m --url {local_service.url} {REAL}", "What is the capital of France?")
    assert res.ok, res
    assert all(r.text.strip() for r in res.values())
    final = check_cards_run(ip, res)
    assert final["text/plain"].startswith("smollm2:135m · completed") and "gemma3:270m · " in final["text/plain"]
    assert set(final) == {"text/html", "text/plain"}


@pytest.mark.models
def test_real_options_and_system_are_honoured(ip: Any, local_service: Any) -> None:
    short = cell(ip, f"smollm2:135m --url {local_service.url} --option max_tokens=3 --option temperature=0",
                 "Tell me a long story about a dragon.")
    longer = cell(ip, f"smollm2:135m --url {local_service.url} --option max_tokens=24 --option temperature=0",
                  "Tell me a long story about a dragon.")
    assert short.ok and longer.ok
    assert len(short["smollm2:135m"].text) < len(longer["smollm2:135m"].text)
    a = cell(ip, f"smollm2:135m --url {local_service.url} {REAL} --system 'Answer in French.'", "Say hello.")
    assert a.ok and a["smollm2:135m"].text.strip()

    from gridllm_nb.api.client import JobsClient

    async def echoed() -> str:
        async with JobsClient(local_service.url) as client:
            job_id = a["smollm2:135m"].job_id
            return (await client.status([job_id]))[job_id].command_line

    command = json.loads(asyncio.run(echoed()))
    assert command["system"] == "Answer in French."
    assert command["options"] == {"max_tokens": 16, "temperature": 0, "seed": 1}


@pytest.mark.models
def test_real_interrupt_cancels_the_job(ip: Any, local_service: Any) -> None:
    interrupt_once(comms_of(ip), "")  # once the first text reaches the card
    result = run_cell_text(ip, f"%%gridllm smollm2:135m --url {local_service.url} --option max_tokens=200 "
                               "--option temperature=0 --out partial\nWrite a long essay about rivers.")
    comms_of(ip).on_message = None
    assert isinstance(result.error_in_exec, Interrupted)
    r = ip.user_ns["partial"]["smollm2:135m"]
    assert r.state is JobState.CANCELLED and r.text

    from gridllm_nb.api.client import JobsClient

    async def status() -> Any:
        async with JobsClient(local_service.url) as client:
            return (await client.status([r.job_id]))[r.job_id]

    assert asyncio.run(status()).state is JobState.CANCELLED  # the service stopped generating
    again = cell(ip, f"smollm2:135m --url {local_service.url} {REAL}", "Say hi.")
    assert again.ok


def test_default_models_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.notebook.magic import GridLLM

    monkeypatch.setenv("GRIDLLM_DEFAULT_MODELS", "a:1, b:2")
    assert GridLLM().default_models == ["a:1", "b:2"]


def test_extension_loads_via_extension_manager(ip: Any) -> None:
    """What c.InteractiveShellApp.extensions = ["gridllm_nb"] does at startup."""
    ip.run_line_magic("unload_ext", "gridllm_nb")
    ip.extension_manager.load_extension("gridllm_nb")
    assert "gridllm" in ip.magics_manager.magics["cell"]
    magics_of(ip).settings.output = "cards"


@pytest.mark.models
def test_line_local_start_status_stop(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from gridllm_nb.service.launcher import free_port, is_running

    port = free_port()
    url = f"http://127.0.0.1:{port}/remotejobs/v2"
    magics_of(ip).settings.url = url
    ip.run_line_magic("gridllm", "local start")
    assert f"started the local service at {url} in the background" in capsys.readouterr().out and is_running(url)
    ip.run_line_magic("gridllm", "local status")
    out = capsys.readouterr().out
    assert "running" in out and "pid:" in out and "log:" in out
    ip.run_line_magic("gridllm", "local start")
    assert "already running" in capsys.readouterr().out
    ip.run_line_magic("gridllm", "local stop")
    assert "stopped" in capsys.readouterr().out and not is_running(url)


def test_the_magic_polls_with_the_runners_policy_and_the_users_overrides(ip: Any, fake: ServedFake,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real_arun = runner.arun

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["poll"])
        return await real_arun(*args, **kwargs)

    monkeypatch.setattr(runner, "arun", spy)
    m = magics_of(ip)
    m.settings.poll_interval = m.settings.poll_max_interval = None
    cell(ip, f"a:1 --url {fake.url}", "hi")  # loopback: brisk and nearly steady
    assert (seen[-1].fast, seen[-1].slow) == (0.1, 0.25)
    m.settings.poll_interval, m.settings.poll_max_interval = 0.2, 2.0
    cell(ip, f"a:1 --url {fake.url}", "hi")
    assert (seen[-1].fast, seen[-1].slow) == (0.2, 2.0)
    remote = runner.default_poll_settings(resolve_endpoint("https://api.gridrepublic.services/remotejobs/v2"))
    assert remote.fast == 0.3 and remote.slow == 5.0 and remote.factor > 1  # backs off while nothing changes


# -- the cards: delta-only text while live, the side-by-side picture at the end -----------------


def test_cards_send_only_deltas(ip: Any, fake: ServedFake) -> None:
    magics_of(ip).settings.byte_budget = None  # rate limit only: many small deltas
    res = cell(ip, f"slow:1 a:1 --url {fake.url} --timeout 2", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["a:1"].state is JobState.COMPLETED
    check_cards_run(ip, res)
    comms = comms_of(ip)
    for tag, cid in comms.cards().items():
        msgs = comms.of(cid)
        contents = [m["data"]["content"] for m in msgs]
        assert all(m["data"]["method"] == "custom" for m in msgs)  # never a state update resending the text
        assert not any("reset" in c for c in contents)  # deltas only
        assert comms.opened()[cid]["text"] == ""  # the comm_open did not carry text either
        assert comms.shown_text(cid) == res[tag].text or res[tag].state is JobState.TIMED_OUT
        # the state and the clock go out only when the state changes: the browser ticks the clock
        sets = [c["set"] for c in contents if "set" in c]
        states = [x["state"] for x in sets if "state" in x]
        assert len(states) == len(set(states)) <= 4
    slow = comms.of(comms.cards()["slow:1"])[:-1]  # the end shows at once
    assert len(slow) >= 5
    assert min(b["t"] - a["t"] for a, b in itertools.pairwise(slow)) >= 0.09  # at most ~10 a second


def test_cards_never_get_html_from_the_live_text(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    res = cell(ip, f"a:1 --url {fake.url}", "go")
    assert_safe_bundle(check_cards_run(ip, res))
    # live, the text only goes to the card (shown as a text node), never to an HTML widget
    assert [st for st in comms_of(ip).opened().values() if st.get("_model_name") == "HTMLModel"] == []


def test_output_mode_auto(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    m = magics_of(ip)
    m.settings.output = "auto"
    assert m._mode() == "stream"  # plain IPython: text on stdout
    monkeypatch.setattr(ip, "kernel", SimpleNamespace(comm_manager=object()), raising=False)
    assert m._mode() == "cards"  # a kernel: cards side by side
    m.settings.output = "stream"
    assert m._mode() == "stream"


def _feed_cards(chunk: int, every: float, duration: float, **kwargs: Any) -> tuple[Any, list[tuple[float, str]]]:
    from gridllm_nb.api.jobs import JobUpdate
    from gridllm_nb.notebook.cell_output import CardsView

    class Shell:
        display_pub = CapturePub()

    sent: list[tuple[float, str]] = []

    async def main() -> Any:
        view = CardsView(Shell(), "p", ["m"], "markdown", max_rate=10.0, **kwargs)
        view.on_update(JobUpdate("m", "j", JobState.RUNNING, ""))
        card = view.grid.cards["m"].widget
        original = card.send
        card.send = lambda content, buffers=None: (sent.append((time.monotonic(), content.get("append", ""))),
                                                   original(content, buffers))
        text = ""
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end:
            text += "x" * chunk
            view.on_update(JobUpdate("m", "j", JobState.RUNNING, text))
            await asyncio.sleep(every)
        view.on_update(JobUpdate("m", "j", JobState.COMPLETED, text))
        view.finish()
        return view

    view = asyncio.run(main())
    return view, sent


def test_card_updates_wait_until_worth_their_bytes() -> None:
    from gridllm_nb.widgets.card import APPEND_OVERHEAD

    view, sent = _feed_cards(chunk=5, every=0.05, duration=3.0, byte_budget=2.0, max_stale=1.0)  # 100 B/s
    first = sent[0][1]
    assert first and set(first) == {"x"} and len(first) <= 15  # the first words show within one interval
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(g >= 0.09 for g in gaps[:-1])  # (the end shows at once)
    # each flush keeps what the card sent within 2 bytes per byte of text, or the card was 1 s stale
    spent, shown = APPEND_OVERHEAD + len(first), len(first)
    for gap, (_, delta) in zip(gaps, sent[1:]):
        spent, shown = spent + APPEND_OVERHEAD + len(delta), shown + len(delta)
        assert spent <= 2 * shown or gap >= 0.95, (gap, spent, shown)
    assert len(sent) <= 3.0 / 0.95 + 3
    assert view.ended  # the picture took the cards' place


def test_card_updates_fast_growth_still_at_most_10_per_second() -> None:
    _view, sent = _feed_cards(chunk=400, every=0.02, duration=1.5)
    assert all(b[0] - a[0] >= 0.09 for a, b in itertools.pairwise(sent[:-1]))
    assert len(sent) >= 5


def test_the_prompt_is_what_the_user_wrote(ip: Any, fake: ServedFake) -> None:
    """IPython adds a newline after a cell body; the user's own whitespace stays."""
    cell(ip, f"a:1 --url {fake.url}", "  Two lines,\nthen a blank one.\n\n")
    assert prompts_sent(fake.fake)[0]["inputs"] == ["  Two lines,\nthen a blank one.\n"]


def test_results_repr_counts_in_words() -> None:
    from gridllm_nb.core.results import Result

    assert repr(Results("p", {"a:1": Result(tag="a:1")})).startswith("Results(1 model)\n")
    assert repr(Results("p", {t: Result(tag=t) for t in ("a:1", "b:1")})).startswith("Results(2 models)\n")


def test_line_leaderboard_returns_the_ranking_from_the_history_votes(ip: Any) -> None:
    from gridllm_nb.core.arena import Vote, record_vote

    record_vote(Vote(("m:1", "n:1"), "n:1"))  # into $GRIDLLM_HISTORY, set by the fixture
    board = ip.run_line_magic("gridllm", "leaderboard")
    assert [r["model"] for r in board.rows] == ["n:1", "m:1"]


# -- the history: run ids, retry and attach as line commands ---------------------------


def _fresh_output(ip: Any) -> None:
    """Forget the outputs and comms so far: the next command's are the only ones."""
    ip.display_pub.messages.clear()
    ip.display_pub.events.clear()
    comms_of(ip).messages.clear()


def test_history_lists_run_ids_and_retry_resubmits_only_the_failed_models(
        ip: Any, fake: ServedFake, capsys: pytest.CaptureFixture[str]) -> None:
    from gridllm_nb.core import history

    res = cell(ip, f"bad:1 a:1 --url {fake.url} --option max_tokens=5", "hi")
    assert res.retryable == ["bad:1"] and res.run_id
    capsys.readouterr()
    ip.run_line_magic("gridllm", "history 3")
    first, bad_line, a_line = capsys.readouterr().out.splitlines()[:3]
    assert first.startswith(history.short_id(res.run_id) + "  ") and first.endswith("  hi")
    assert bad_line.split()[:2] == ["bad:1", "failed"] and a_line.split()[:2] == ["a:1", "completed"]

    fake.fake.scripts["bad:1"] = words_script("fixed now")
    posts = len(fake.fake.posts())
    _fresh_output(ip)
    again = ip.run_line_magic("gridllm", f"retry {history.short_id(res.run_id)}")
    assert again.run_id == res.run_id and again.ok and again["bad:1"].text == "fixed now"
    assert again["a:1"].job_id == res["a:1"].job_id and again["a:1"].text == res["a:1"].text  # kept as stored
    assert [json.loads(r.content)["tag"] for r in fake.fake.posts()[posts:]] == ["bad:1"]
    assert prompts_sent(fake.fake)[-1] == {"inputs": ["hi"], "options": {"max_tokens": 5}}
    assert list(comms_of(ip).cards()) == ["bad:1", "a:1"]  # live cards, as a cell's
    assert ip.display_pub.cleared() == [True]  # ...which the value replaced
    assert {r["tag"]: r["state"] for r in history.recent(1)[0]["results"]} == {"bad:1": "completed",
                                                                              "a:1": "completed"}
    capsys.readouterr()
    assert ip.run_line_magic("gridllm", "retry").ok  # the newest run: nothing left to retry
    assert "nothing to retry in run " + history.short_id(res.run_id) in capsys.readouterr().out


# -- Retry buttons: under a blocking cell's value, on a --no-wait cell's cards ----------------

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


def test_a_blocking_cell_offers_retry_under_its_value_and_the_click_updates_the_same_results(
        ip: Any, fake: ServedFake) -> None:
    _fresh_output(ip)
    outcome = run_cell_text(ip, f"%%gridllm bad:1 a:1 --url {fake.url} --option max_tokens=5\nhi")
    res: Results = outcome.result
    assert res.retryable == ["bad:1"]
    pub: CapturePub = ip.display_pub
    _grid, offer_id = pub.by_id()  # the cell's live grid (its value replaced it), then the offer
    (offer,) = pub.by_id()[offer_id]
    assert offer["update"] is False and pub.events.index(("display", offer)) > pub.events.index(
        next(e for e in pub.events if e[0] == "clear"))  # after the value took the grid's place
    assert offer["data"]["text/plain"] == (f"gridllm: 1 model did not answer: bad:1 (failed); "
                                           f"Out[{outcome.execution_count}].retry() asks again")
    line, button = widget_of(offer["data"][WIDGET]["model_id"]).children
    assert line.value.startswith("1 model did not answer: bad:1") and button.description == "Retry"
    offer_widgets = {offer["data"][WIDGET]["model_id"], line.model_id, button.model_id}
    result, kept = res["bad:1"], res["a:1"].text
    fake.fake.scripts["bad:1"] = words_script("fixed now")
    posts = len(fake.fake.posts())

    async def click() -> None:
        button.click()  # in the kernel, a click is handled on its running loop
        button.click()  # a second click while it runs: nothing more
        await wait_for_background(ip)

    asyncio.run(click())
    assert res["bad:1"] is result and res.ok and result.text == "fixed now" and res["a:1"].text == kept
    assert [json.loads(r.content)["tag"] for r in fake.fake.posts()[posts:]] == ["bad:1"]
    assert prompts_sent(fake.fake)[-1] == {"inputs": ["hi"], "options": {"max_tokens": 5}}
    # In the offer's place: the retried model's live card, then its saved picture (no widget).
    _line, cards, final = pub.by_id()[offer_id]
    assert cards["update"] and WIDGET in cards["data"] and final["update"]
    saved = Results("hi", {"bad:1": result})._repr_mimebundle_()  # the retried model's, captioned
    assert final["data"] == {"text/html": f"<p><em>Retried: bad:1</em></p>{saved['text/html']}",
                             "text/plain": f"Retried: bad:1\n\n{saved['text/plain']}"}
    comms = comms_of(ip)
    assert comms.shown_text(comms.cards()["bad:1"]) == "fixed now"  # the newest card of bad:1: the retry's
    assert offer_widgets <= comms.closed()  # the offer's widgets went with it...
    closes = [i for i, (kind, m) in enumerate(pub.events)
              if kind == "comm" and m["type"] == "comm_close" and m["comm_id"] in offer_widgets]
    assert min(closes) > pub.events.index(("display", final))  # ...once the picture had taken the output


def test_no_offer_when_every_model_answered_or_when_the_cell_is_over(ip: Any, fake: ServedFake) -> None:
    _fresh_output(ip)
    assert run_cell_text(ip, f"%%gridllm a:1 --url {fake.url}\nhi").result.ok
    assert len(ip.display_pub.by_id()) == 1  # the grid only
    cell(ip, f"bad:1 --url {fake.url}", "hi")  # run from code: no moment under a value to offer it in
    _fresh_output(ip)
    run_cell_text(ip, "1 + 1")  # ...and the next cell does not get it
    assert ip.display_pub.messages == []


def test_a_no_wait_cells_failed_cards_offer_retry_and_stay_live_until_all_answered(
        ip: Any, fake: ServedFake) -> None:
    _fresh_output(ip)
    comms = comms_of(ip)

    async def run_then_retry() -> None:
        assert cell(ip, f"bad:1 a:1 --url {fake.url} --no-wait --out later", "hi") is None
        await wait_for_background(ip)
        later: Results = ip.user_ns["later"]
        assert later.retryable == ["bad:1"]
        (msgs,) = ip.display_pub.by_id().values()
        ended = msgs[-1]
        # The run is over, the cards stay (with the picture for front ends without widgets).
        assert ended["update"] and set(ended["data"]) == {WIDGET, "text/html", "text/plain"}
        assert ended["data"]["text/html"] == later._repr_mimebundle_()["text/html"]
        cards = comms.cards()
        bad, good = widget_of(cards["bad:1"]), widget_of(cards["a:1"])
        assert bad.retryable and not good.retryable
        assert {"set": {"can_retry": True}} in [m["data"]["content"] for m in comms.of(cards["bad:1"])]
        # A retry the service refuses (its token, say): the card says why in one line, and offers Retry again.
        fake.fake.inject(httpx.Response(401, json={"success": False, "error": "unauthorized"}))
        bad._handle_custom_msg({"event": "retry"}, [])
        await wait_for_background(ip)
        error = later["bad:1"].error or ""
        assert later["bad:1"].state is JobState.FAILED and "401" in error and "\n" not in error
        assert bad.live("error") == error and bad.retryable and later["bad:1"].text == ""
        fake.fake.scripts["bad:1"] = words_script("fixed now")
        good._handle_custom_msg({"event": "retry"}, [])  # answered: its (hidden) button does nothing
        assert not magics_of(ip).tasks
        bad._handle_custom_msg({"event": "retry"}, [])  # what the failed card's button sends
        assert magics_of(ip).tasks and not bad.live("can_retry")
        await wait_for_background(ip)

    asyncio.run(run_then_retry())
    later = ip.user_ns["later"]
    assert later.ok and later["bad:1"].text == "fixed now"
    (msgs,) = ip.display_pub.by_id().values()
    assert msgs[-1]["data"] == later._repr_mimebundle_()  # everything answered: the saved picture
    assert comms.shown_text(comms.cards()["bad:1"]) == "fixed now"


def test_a_no_wait_cell_offers_no_retry_while_its_run_goes(ip: Any, fake: ServedFake) -> None:
    async def main() -> None:
        cell(ip, f"bad:1 slow:1 --url {fake.url} --no-wait --out later", "hi")
        view, later = magics_of(ip).last_view, ip.user_ns["later"]
        for _ in range(200):
            if later["bad:1"].state.terminal:
                break
            await asyncio.sleep(0.05)
        assert later.retryable == ["bad:1"] and not later["slow:1"].state.terminal
        assert view.retry() is None and len(magics_of(ip).tasks) == 1  # the run alone: no retry started
        assert not widget_of(comms_of(ip).cards()["bad:1"]).retryable  # its button waits for the run's end
        magics_of(ip).cancel_background()
        await wait_for_background(ip)

    asyncio.run(main())


def test_attach_follows_a_runs_live_jobs_again_as_cards(ip: Any, fake: ServedFake) -> None:
    from gridllm_nb.core import history
    from gridllm_nb.api.client import JobsClient
    from gridllm_nb.core.results import Result

    async def submit() -> str:
        async with JobsClient(fake.url) as client:
            return await client.submit("hello again", "a:1")

    job_id = runner.run_sync(submit())  # a job a kernel submitted before it died
    ended = "e" * 32
    run_id = history.record(Results("hello again", {
        "a:1": Result(tag="a:1", job_id=job_id, state=JobState.RUNNING),
        "b:2": Result(tag="b:2", job_id=ended, state=JobState.COMPLETED, text="It is Paris", elapsed=1.0)}),
        fake.url)
    _fresh_output(ip)
    res = ip.run_line_magic("gridllm", "attach")  # the newest run
    assert res.run_id == run_id and res.ok and res.prompt == "hello again"
    assert res["a:1"].text == "Paris is the capital of France" and res["b:2"].text == "It is Paris"
    assert list(comms_of(ip).cards()) == ["a:1", "b:2"] and ip.display_pub.cleared() == [True]
    assert history.recent(1)[0]["results"][0]["state"] == "completed"
    assert not any(ended in r.url.path for r in fake.fake.gets())  # an ended job is shown, not polled


def test_attach_and_retry_of_an_unknown_run_are_one_line_errors(ip: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("attach 123abc", "retry 123abc"):
        assert "gridllm: no runs in the history yet" in one_line_error(ip, f"%gridllm {command}", capsys)
