"""%%gridllm and %gridllm in a real IPython shell, against a fake jobs API over real HTTP.

Displays are captured by replacing the shell's display publisher, so what is
checked is exactly what a kernel would send on iopub (display_data and
update_display_data with their display ids).
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

import pytest
from IPython.core.displaypub import DisplayPublisher

from gridllm_nb import runner
from gridllm_nb.config import resolve_endpoint
from gridllm_nb.magic import CellError, GridLLMMagics, Interrupted
from gridllm_nb.models import JobState, Results

from .conftest import Wire
from .fakes import FakeJobsAPI, ServedFake, words_script


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

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for m in self.messages:
            if m["id"]:
                out.setdefault(m["id"], []).append(m)
        return out

    def finals(self) -> list[dict[str, Any]]:
        return [msgs[-1]["data"] for msgs in self.by_id().values()]


@pytest.fixture()
def ip(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Any]:
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.delenv("GRIDLLM_DEFAULT_MODELS", raising=False)
    shell = get_ipython()
    saved = shell.display_pub
    shell.display_pub = CapturePub()
    shell.run_line_magic("load_ext", "gridllm_nb")
    magics: GridLLMMagics = shell.magics_manager.registry["GridLLMMagics"]
    magics.settings.output = "display"
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


# -- registration and help --------------------------------------------------------


def test_load_ext_registers_both_magics(ip: Any) -> None:
    assert "gridllm" in ip.magics_manager.magics["cell"]
    assert "gridllm" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "gridllm_nb")
    assert "gridllm" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "gridllm_nb")
    magics_of(ip).settings.output = "display"


def test_extension_via_config() -> None:
    from traitlets.config import Config

    from gridllm_nb.magic import GridLLM

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
    pub: CapturePub = ip.display_pub
    by_id = pub.by_id()
    assert len(by_id) == 2  # one display per model
    for msgs in by_id.values():
        assert msgs[0]["update"] is False and all(m["update"] for m in msgs[1:])
        final = msgs[-1]["data"]
        assert set(final) == {"text/markdown", "text/plain"}
    finals = pub.finals()
    assert finals[0]["text/plain"].startswith("a:1 · completed")
    assert finals[0]["text/plain"].endswith("Paris is the capital of France")
    assert "**a:1**" in finals[0]["text/markdown"]
    assert not any("text/html" in m["data"] for m in pub.messages)


def test_jobs_run_in_parallel(ip: Any, fake: ServedFake) -> None:
    cell(ip, f"a:1 b:2 slow:1 --url {fake.url} --timeout 1", "go")
    posts = [i for i, r in enumerate(fake.fake.requests) if r.method == "POST"]
    assert len(posts) == 3 and max(posts) <= 5  # all submitted at once, not one after another
    ids_per_get = [r.url.path.rsplit("/", 1)[1].count(",") + 1 for r in fake.fake.gets()]
    assert max(ids_per_get) == 3  # polled together in one batched GET


def test_updates_are_coalesced(ip: Any, fake: ServedFake) -> None:
    magics_of(ip).settings.poll_interval = 0.01
    magics_of(ip).settings.poll_max_interval = 0.01
    magics_of(ip).settings.byte_budget = None  # rate limit only (the budget is tested below)
    res = cell(ip, f"slow:1 --url {fake.url} --timeout 2.5", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["slow:1"].text.startswith("word")
    (msgs,) = ip.display_pub.by_id().values()
    live = [m for m in msgs[1:-1]]
    assert len(live) >= 5
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(live)]
    assert min(gaps) >= 0.09  # at most ~10 updates per second
    assert len(live) <= 2.5 / 0.1 + 2
    assert set(msgs[-1]["data"]) == {"text/markdown", "text/plain"}  # and always a final one
    assert "timed out" in msgs[-1]["data"]["text/plain"]


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
    ("text", lambda md, pl: "```text\nParis is the capital of France\n```" in md),
    ("code", lambda md, pl: pl.endswith("\nParis is the capital of France")),
    ("markdown", lambda md, pl: md.endswith("Paris is the capital of France")),
])
def test_format_option(ip: Any, fake: ServedFake, fmt: str, check: Any) -> None:
    cell(ip, f"a:1 --url {fake.url} --format {fmt}", "hi")
    (final,) = ip.display_pub.finals()
    assert check(final["text/markdown"], final["text/plain"])


def test_json_format(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script('Here: {"city": "Paris", "n": [1, 2]}')
    cell(ip, f"a:1 --url {fake.url} --format json", "hi")
    (final,) = ip.display_pub.finals()
    assert final["application/json"] == {"city": "Paris", "n": [1, 2]}
    assert "```json" in final["text/markdown"]


def test_untrusted_text_is_escaped(ip: Any, fake: ServedFake) -> None:
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    cell(ip, f"a:1 --url {fake.url}", "hi")
    (final,) = ip.display_pub.finals()
    assert "<img" not in final["text/markdown"] and "javascript:" not in final["text/markdown"]
    assert "text/html" not in final


def test_timeout_option(ip: Any, fake: ServedFake) -> None:
    res = cell(ip, f"slow:1 a:1 --url {fake.url} --timeout 2", "hi")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["slow:1"].text
    assert res["a:1"].state is JobState.COMPLETED
    assert any(r.method == "DELETE" for r in fake.fake.requests)  # asked the service to stop it


def test_one_failed_job_keeps_partial_text(ip: Any, fake: ServedFake) -> None:
    res = cell(ip, f"bad:1 a:1 --url {fake.url}", "hi")
    assert res["bad:1"].state is JobState.FAILED and res["bad:1"].text == "half an" and res["bad:1"].error
    assert res["a:1"].state is JobState.COMPLETED
    finals = ip.display_pub.finals()
    assert "failed" in finals[0]["text/plain"] and "half an" in finals[0]["text/plain"]


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


def test_keyboard_interrupt_keeps_partial_outputs(ip: Any, fake: ServedFake,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pub: CapturePub = ip.display_pub
    fired = []

    def interrupt_on_text(msg: dict[str, Any]) -> None:
        if not fired and "word" in msg["data"].get("text/plain", ""):
            fired.append(True)
            # Like SIGINT landing while the loop waits: raised from a loop callback.
            def kbi() -> None:
                raise KeyboardInterrupt
            asyncio.get_running_loop().call_soon(kbi)

    pub.on_publish = interrupt_on_text
    capsys.readouterr()
    result = run_cell_text(ip, f"%%gridllm slow:1 a:1 --url {fake.url} --out partial\nhi")
    assert isinstance(result.error_in_exec, Interrupted)
    err = capsys.readouterr()
    assert "Traceback" not in err.out + err.err and "interrupted" in err.out + err.err
    res = ip.user_ns["partial"]
    assert res["slow:1"].state is JobState.CANCELLED and res["slow:1"].text.startswith("word")
    finals = pub.finals()
    assert "cancelled" in finals[0]["text/plain"] and "word" in finals[0]["text/plain"]
    assert set(finals[0]) == {"text/markdown", "text/plain"}
    assert any(r.method == "DELETE" for r in fake.fake.requests)
    pub.on_publish = None
    # and the next cell works
    again = cell(ip, f"a:1 --url {fake.url}", "again")
    assert again["a:1"].state is JobState.COMPLETED


def sigint_once_shown(pub: CapturePub, text: str, check: Any = None) -> None:
    """A real SIGINT to the main thread soon after ``text`` first shows (``check()`` runs then)."""
    main = threading.main_thread().ident

    def on_publish(msg: dict[str, Any]) -> None:
        if text in msg["data"].get("text/plain", "") and not getattr(on_publish, "done", False):
            on_publish.done = True  # type: ignore[attr-defined]
            if check is not None:
                check()
            threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()

    pub.on_publish = on_publish


def test_real_sigint_during_a_run(ip: Any, fake: ServedFake) -> None:
    pub: CapturePub = ip.display_pub
    sigint_once_shown(pub, "word word")
    result = run_cell_text(ip, f"%%gridllm slow:1 --url {fake.url} --out partial\nhi")
    assert isinstance(result.error_in_exec, Interrupted)
    assert ip.user_ns["partial"]["slow:1"].state is JobState.CANCELLED
    pub.on_publish = None


def test_interrupt_inside_a_running_loop_leaks_no_task(ip: Any, fake: ServedFake) -> None:
    """The kernel case: its loop is running, so the run goes to a worker thread; Ctrl-C hits the cell's thread."""
    pub: CapturePub = ip.display_pub
    threads: list[str] = []
    sigint_once_shown(pub, "word", check=lambda: threads.append(threading.current_thread().name))

    async def main() -> tuple[Any, list[Any]]:
        # as ipykernel does while a cell runs (asyncio.run's own handler would cancel main() instead)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            result = run_cell_text(ip, f"%%gridllm slow:1 --url {fake.url} --out partial\nhi")
        finally:
            signal.signal(signal.SIGINT, previous)
        await asyncio.sleep(0.05)
        return result, _no_stray_tasks(asyncio.get_running_loop())

    result, strays = asyncio.run(main())
    assert isinstance(result.error_in_exec, Interrupted) and strays == []
    assert ip.user_ns["partial"]["slow:1"].state is JobState.CANCELLED
    assert threads == ["gridllm-run"]  # the run was off the kernel's loop
    assert not any(t.name == "gridllm-run" for t in threading.enumerate())  # the worker is gone
    pub.on_publish = None


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
    assert value is None and opened >= 2 and took < 0.5
    later = ip.user_ns["later"]
    assert later.done and later["a:1"].text == "Paris is the capital of France"
    assert len(pub.by_id()) == 3


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
    module = types.ModuleType("gridllm_nb.panel")

    class Panel:
        def __init__(self, models: Any = None, **kwargs: Any) -> None:
            self.args = (models, kwargs)

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            shown.append(self)
            return {"text/plain": "Panel()"}

    module.Panel = Panel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gridllm_nb.panel", module)
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
    finals = ip.display_pub.finals()
    assert [f["text/plain"].split(" · ")[0] for f in finals] == ["smollm2:135m", "gemma3:270m"]
    assert all(set(f) == {"text/markdown", "text/plain"} for f in finals)


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

    from gridllm_nb.client import JobsClient

    async def echoed() -> str:
        async with JobsClient(local_service.url) as client:
            job_id = a["smollm2:135m"].job_id
            return (await client.status([job_id]))[job_id].command_line

    command = json.loads(asyncio.run(echoed()))
    assert command["system"] == "Answer in French."
    assert command["options"] == {"max_tokens": 16, "temperature": 0, "seed": 1}


@pytest.mark.models
def test_real_interrupt_cancels_the_job(ip: Any, local_service: Any) -> None:
    pub: CapturePub = ip.display_pub

    def on_publish(msg: dict[str, Any]) -> None:
        text = msg["data"].get("text/plain", "")
        if "\n" in text and text.split("\n", 1)[1].strip() and not getattr(on_publish, "done", False):
            on_publish.done = True  # type: ignore[attr-defined]

            def kbi() -> None:
                raise KeyboardInterrupt
            asyncio.get_running_loop().call_soon(kbi)

    pub.on_publish = on_publish
    result = run_cell_text(ip, f"%%gridllm smollm2:135m --url {local_service.url} --option max_tokens=200 "
                               "--option temperature=0 --out partial\nWrite a long essay about rivers.")
    pub.on_publish = None
    assert isinstance(result.error_in_exec, Interrupted)
    r = ip.user_ns["partial"]["smollm2:135m"]
    assert r.state is JobState.CANCELLED and r.text

    from gridllm_nb.client import JobsClient

    async def status() -> Any:
        async with JobsClient(local_service.url) as client:
            return (await client.status([r.job_id]))[r.job_id]

    assert asyncio.run(status()).state is JobState.CANCELLED  # the service stopped generating
    again = cell(ip, f"smollm2:135m --url {local_service.url} {REAL}", "Say hi.")
    assert again.ok


def _feed(chunk: int, every: float, duration: float, **kwargs: Any) -> list[dict[str, Any]]:
    from gridllm_nb.magic import DisplayView
    from gridllm_nb.models import JobUpdate

    class Shell:
        display_pub = CapturePub()

    async def main() -> list[dict[str, Any]]:
        view = DisplayView(Shell(), "p", ["m"], "markdown", interval=0.1, **kwargs)
        view.on_update(JobUpdate("m", "j", JobState.RUNNING, ""))
        text = ""
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end:
            text += "x" * chunk
            view.on_update(JobUpdate("m", "j", JobState.RUNNING, text))
            await asyncio.sleep(every)
        view.on_update(JobUpdate("m", "j", JobState.COMPLETED, text))
        return Shell.display_pub.messages

    return asyncio.run(main())


def _body(msg: dict[str, Any]) -> str:
    parts = msg["data"]["text/plain"].split("\n", 1)
    return parts[1] if len(parts) == 2 else ""


def test_live_updates_wait_until_worth_their_bytes() -> None:
    """A live update resends the whole text: it waits for enough new text, or max_stale."""
    msgs = _feed(chunk=5, every=0.05, duration=3.0)  # slow growth: 100 B/s
    live = [m for m in msgs[1:-1] if _body(m)]
    assert _body(live[0]) == "xxxxx"  # the first text shows at once
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(live)]
    assert all(g >= 0.09 for g in gaps)
    for gap, a, b in zip(gaps, live, live[1:]):
        size, new = len(_body(b)), len(_body(b)) - len(_body(a))
        assert new * 2 >= 160 + size or gap >= 0.95, (gap, new, size)
    assert len(live) <= 3.0 / 0.95 + 3  # about once a second, not 10 times
    assert msgs[-1]["data"]["text/plain"].startswith("m · completed")


def test_live_updates_fast_growth_still_at_most_10_per_second() -> None:
    msgs = _feed(chunk=400, every=0.02, duration=1.5)
    live = msgs[1:-1]
    assert all(b["t"] - a["t"] >= 0.09 for a, b in itertools.pairwise(live))
    assert len(live) >= 5


def test_live_updates_without_budget_are_rate_limited_only() -> None:
    msgs = _feed(chunk=5, every=0.05, duration=1.5, byte_budget=None)
    assert len(msgs[1:-1]) >= 10


def test_default_models_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.magic import GridLLM

    monkeypatch.setenv("GRIDLLM_DEFAULT_MODELS", "a:1, b:2")
    assert GridLLM().default_models == ["a:1", "b:2"]


def test_extension_loads_via_extension_manager(ip: Any) -> None:
    """What c.InteractiveShellApp.extensions = ["gridllm_nb"] does at startup."""
    ip.run_line_magic("unload_ext", "gridllm_nb")
    ip.extension_manager.load_extension("gridllm_nb")
    assert "gridllm" in ip.magics_manager.magics["cell"]
    magics_of(ip).settings.output = "display"


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


# -- widget mode: a header and delta-only text while live, the plain bundle at the end ----------


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


@pytest.fixture()
def comms(ip: Any, monkeypatch: pytest.MonkeyPatch) -> Comms:
    import comm
    from comm.base_comm import BaseComm

    record = Comms(ip.display_pub)

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                        **keys: Any) -> None:
            msg = {"type": msg_type, "comm_id": self.comm_id, "data": data or {}, "t": time.monotonic()}
            record.messages.append(msg)
            record.pub.events.append(("comm", msg))
            if record.on_message is not None:
                record.on_message(msg)

    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    magics_of(ip).settings.output = "widget"
    return record


def _stream_ids(comms: Comms) -> list[str]:
    return [cid for cid, state in comms.opened().items() if state.get("_model_name") == "AnyModel"]


def _check_widget_run(ip: Any, comms: Comms, res: Results) -> None:
    """One display per model: a widget view first, the final bundle last; every widget closed after."""
    pub: CapturePub = ip.display_pub
    by_id = pub.by_id()
    assert len(by_id) == len(res)
    opened = comms.opened()
    for msgs, (tag, r) in zip(by_id.values(), res.items()):
        first, final = msgs[0], msgs[-1]
        assert first["update"] is False and final["update"] is True
        view = first["data"]["application/vnd.jupyter.widget-view+json"]
        assert view["model_id"] in opened and first["data"]["text/plain"].startswith(f"{tag} · submitting")
        assert len(msgs) == 2  # nothing in between: the text travels over the widget comm
        assert set(final["data"]) - {"application/json"} == {"text/markdown", "text/plain"}  # json: + the value
        assert final["data"]["text/plain"].startswith(f"{tag} · {r.state.label}")
    assert not any("text/html" in m["data"] for m in pub.messages)
    # every widget (boxes, headers, texts, the shared layout and style) is closed, after the final bundles
    assert opened and comms.closed() == set(opened)
    # a model's widgets close only once its display shows the final bundle (no "model not found" flash)
    events = pub.events
    for msgs in by_id.values():
        box = msgs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        final_at = next(i for i, (k, m) in enumerate(events) if k == "display" and m is msgs[-1])
        close_at = next(i for i, (k, m) in enumerate(events)
                        if k == "comm" and m["type"] == "comm_close" and m["comm_id"] == box)
        assert final_at < close_at


def test_widget_view_sends_only_deltas(ip: Any, fake: ServedFake, comms: Comms) -> None:
    magics_of(ip).settings.byte_budget = None  # rate limit only: many small deltas
    res = cell(ip, f"slow:1 a:1 --url {fake.url} --timeout 2", "go")
    assert res["slow:1"].state is JobState.TIMED_OUT and res["a:1"].state is JobState.COMPLETED
    _check_widget_run(ip, comms, res)
    streams = _stream_ids(comms)
    assert len(streams) == 2
    for sid, (tag, r) in zip(streams, res.items()):
        msgs = comms.of(sid)
        contents = [m["data"]["content"] for m in msgs]
        assert all(m["data"]["method"] == "custom" for m in msgs)  # never a state update resending the text
        assert not any("reset" in c for c in contents)  # deltas only
        shown = ""
        for c in filter(lambda c: "append" in c, contents):
            assert c["at"] == len(shown)  # each delta continues exactly where the last ended
            shown += c["append"]
        assert shown and r.text.startswith(shown)  # every character went out once
        assert comms.opened()[sid]["text"] == ""  # the comm_open did not carry text either
    slow = comms.of(streams[0])
    assert len(slow) >= 5
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(slow)]
    assert min(gaps) >= 0.09  # still coalesced: at most ~10 updates per second
    # the state and the clock go out only when the state changes: the browser ticks the clock
    for sid in streams:
        sets = [m["data"]["content"]["set"] for m in comms.of(sid) if "set" in m["data"]["content"]]
        states = [s["state"] for s in sets if "state" in s]
        assert len(states) == len(set(states)) <= 4
        assert all("state" in s or "error" in s for s in sets if "elapsed" in s)


def test_widget_view_final_formats_and_escaping(ip: Any, fake: ServedFake, comms: Comms) -> None:
    fake.fake.scripts["a:1"] = words_script('Here: {"city": "Paris", "n": [1, 2]}')
    res = cell(ip, f"a:1 --url {fake.url} --format json", "go")
    _check_widget_run(ip, comms, res)
    (final,) = ip.display_pub.finals()
    assert final["application/json"] == {"city": "Paris", "n": [1, 2]} and "```json" in final["text/markdown"]

    ip.display_pub.messages.clear()
    comms.messages.clear()
    fake.fake.scripts["a:1"] = words_script("<img src=x onerror=alert(1)> [x](javascript:alert(1))")
    res = cell(ip, f"a:1 --url {fake.url}", "go")
    _check_widget_run(ip, comms, res)
    (final,) = ip.display_pub.finals()
    assert "<img" not in final["text/markdown"] and "javascript:" not in final["text/markdown"]
    # live, the text only goes to the card (shown as a text node), never to an HTML widget
    html = [st for st in comms.opened().values() if st.get("_model_name") == "HTMLModel"]
    assert html == []


def test_widget_view_interrupt_keeps_partial_outputs(ip: Any, fake: ServedFake, comms: Comms) -> None:
    fired = []

    def interrupt_on_text(msg: dict[str, Any]) -> None:
        if not fired and "word" in json.dumps(msg["data"]):
            fired.append(True)

            def kbi() -> None:
                raise KeyboardInterrupt
            asyncio.get_running_loop().call_soon(kbi)

    comms.on_message = interrupt_on_text
    result = run_cell_text(ip, f"%%gridllm slow:1 a:1 --url {fake.url} --out partial\nhi")
    comms.on_message = None
    assert fired and isinstance(result.error_in_exec, Interrupted)
    res = ip.user_ns["partial"]
    assert res["slow:1"].state is JobState.CANCELLED and res["slow:1"].text.startswith("word")
    _check_widget_run(ip, comms, res)
    finals = ip.display_pub.finals()
    assert "cancelled" in finals[0]["text/plain"] and "word" in finals[0]["text/plain"]


def test_widget_view_no_wait(ip: Any, fake: ServedFake, comms: Comms) -> None:
    async def main() -> tuple[Any, int]:
        value = cell(ip, f"a:1 b:2 --url {fake.url} --no-wait --out later", "hi")
        opened = len(ip.display_pub.messages)
        for _ in range(200):
            if not magics_of(ip).tasks:
                break
            await asyncio.sleep(0.05)
        return value, opened

    value, opened = asyncio.run(main())
    assert value is None and opened == 2
    later = ip.user_ns["later"]
    assert later.done and later["a:1"].text == "Paris is the capital of France"
    _check_widget_run(ip, comms, later)


def test_widget_view_no_wait_error_shows_in_place(ip: Any, fake: ServedFake, comms: Comms) -> None:
    no_wait_unknown_model(ip, fake)
    (final,) = ip.display_pub.finals()
    assert final["text/plain"].startswith("gridllm: unknown model 'a:9'")
    assert comms.opened() and comms.closed() == set(comms.opened())


def test_widget_view_error_before_run_opens_nothing(ip: Any, fake: ServedFake, comms: Comms,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown model 'a:9'" in one_line_error(ip, f"%%gridllm a:9 --url {fake.url}\nhi", capsys)
    assert ip.display_pub.messages == [] and comms.messages == []


def test_widget_view_one_failed_job(ip: Any, fake: ServedFake, comms: Comms) -> None:
    res = cell(ip, f"bad:1 a:1 --url {fake.url}", "go")
    _check_widget_run(ip, comms, res)
    finals = ip.display_pub.finals()
    assert "failed" in finals[0]["text/plain"] and "half an" in finals[0]["text/plain"]


def test_output_mode_auto(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    m = magics_of(ip)
    m.settings.output = "auto"
    assert m._mode() == "stream"  # plain IPython: text on stdout
    monkeypatch.setattr(ip, "kernel", SimpleNamespace(comm_manager=object()), raising=False)
    assert m._mode() == "switch"  # a kernel: display updates, a card once an answer is long
    m.settings.output = "widget"
    assert m._mode() == "widget"
    monkeypatch.setattr("gridllm_nb.magic._widgets_available", lambda: False)
    assert m._mode() == "display"
    m.settings.output = "auto"
    assert m._mode() == "display"  # no widgets installed: never switch
    m.settings.output = "display"
    monkeypatch.setattr(ip, "kernel", SimpleNamespace(comm_manager=object()), raising=False)
    assert m._mode() == "display"


def _feed_widgets(chunk: int, every: float, duration: float, **kwargs: Any) -> tuple[Any, list[float]]:
    from gridllm_nb.magic import DisplayView
    from gridllm_nb.models import JobUpdate

    class Shell:
        display_pub = CapturePub()

    sent: list[tuple[float, str]] = []

    async def main() -> Any:
        view = DisplayView(Shell(), "p", ["m"], "markdown", interval=0.1, widget_after=0, **kwargs)
        view.on_update(JobUpdate("m", "j", JobState.RUNNING, ""))
        card = view.cards["m"]
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
        return view

    view = asyncio.run(main())
    return view, sent


def test_widget_live_updates_wait_until_worth_their_bytes() -> None:
    view, sent = _feed_widgets(chunk=5, every=0.05, duration=3.0)  # slow growth: 100 B/s
    assert sent[0][1] == "xxxxx"  # the first text shows at once
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(g >= 0.09 for g in gaps)
    # each flush keeps what the card sent within 2 bytes per byte of text, or the card was 1 s stale
    spent, shown = view.CARD_OVERHEAD + 5, 5
    for gap, (_, delta) in zip(gaps, sent[1:]):
        spent, shown = spent + view.CARD_OVERHEAD + len(delta), shown + len(delta)
        assert spent <= 2 * shown or gap >= 0.95, (gap, spent, shown)
    assert len(sent) <= 3.0 / 0.95 + 3
    assert not view.cards and view.layout is None  # closed at the end


def test_widget_live_updates_fast_growth_still_at_most_10_per_second() -> None:
    _view, sent = _feed_widgets(chunk=400, every=0.02, duration=1.5)
    assert all(b[0] - a[0] >= 0.09 for a, b in itertools.pairwise(sent))
    assert len(sent) >= 5


def test_a_long_answer_switches_from_display_updates_to_a_card(wire: Wire) -> None:
    from gridllm_nb.magic import DisplayView
    from gridllm_nb.models import JobUpdate

    pub = CapturePub()
    shell = type("Shell", (), {"display_pub": pub})()
    steps = [f"word{i} " * 4 for i in range(1, 40)]  # ~1.2 KB in 39 steps

    async def main() -> DisplayView:
        view = DisplayView(shell, "p", ["m"], "markdown", interval=0.0, byte_budget=None, widget_after=300)
        text = ""
        for step in steps:
            text += step
            view.on_update(JobUpdate("m", "j", JobState.RUNNING, text))
            await asyncio.sleep(0)
        view.on_update(JobUpdate("m", "j", JobState.COMPLETED, text))
        return view

    view = asyncio.run(main())
    text = "".join(steps)
    msgs = pub.messages
    switch = next(i for i, m in enumerate(msgs) if DisplayView.WIDGET_MIME in m["data"])
    # first the display itself, its text resent; once that has cost 300 B: one update to the card
    assert switch > 1 and all(set(m["data"]) == {"text/plain"} for m in msgs[:switch])
    resent = sum(len(m["data"]["text/plain"].encode()) for m in msgs[1:switch])
    assert resent <= 300 < resent + len(msgs[switch - 1]["data"]["text/plain"].encode()) + 2 * view.DISPLAY_OVERHEAD
    assert msgs[-1]["update"] and set(msgs[-1]["data"]) == {"text/markdown", "text/plain"}
    assert len(msgs) == switch + 2  # nothing else went through displays after the switch
    (card_id,) = {cid for cid, kind, _ in wire.sent if kind == "comm_open" and cid == msgs[switch]["data"][
        DisplayView.WIDGET_MIME]["model_id"]}
    opened = next(d for cid, kind, d in wire.sent if cid == card_id and kind == "comm_open")
    shown = opened["state"]["text"]
    assert shown and text.startswith(shown) and shown != text  # the card opened with the text so far
    assert opened["state"]["state"] == "running"
    for d in (d for cid, kind, d in wire.sent if cid == card_id and kind == "comm_msg"):
        if "append" in d["content"]:
            assert d["content"]["at"] == len(shown)
            shown += d["content"]["append"]
    assert shown == text  # the card got the rest as deltas, every character once
    assert any(cid == card_id and kind == "comm_close" for cid, kind, _ in wire.sent)
    assert not view.cards and view.layout is None


def test_display_mode_never_switches(wire: Wire) -> None:
    from gridllm_nb.magic import DisplayView
    from gridllm_nb.models import JobUpdate

    pub = CapturePub()
    shell = type("Shell", (), {"display_pub": pub})()

    async def main() -> None:
        view = DisplayView(shell, "p", ["m"], "markdown", interval=0.0, byte_budget=None)
        view.on_update(JobUpdate("m", "j", JobState.RUNNING, "x" * 5000))
        view.on_update(JobUpdate("m", "j", JobState.COMPLETED, "x" * 5001))

    asyncio.run(main())
    assert wire.sent == [] and all(DisplayView.WIDGET_MIME not in m["data"] for m in pub.messages)
