"""%%gridllm and %gridllm in a real IPython shell, against a fake jobs API over real HTTP (``notebook.magic``).

The shell, the fake and the capture of what a kernel sends are in ``conftest``.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from typing import Any

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.config import resolve_endpoint
from gridllm_nb.core import run as runner
from gridllm_nb.core.grid import GridResults
from gridllm_nb.core.live import default_poll_settings
from gridllm_nb.core.results import Results
from gridllm_nb.notebook.magic import CellError, Interrupted

from ..fakes import FakeJobsAPI, ServedFake, words_script
from .conftest import (
    CapturePub,
    Comms,
    cell,
    check_cards_run,
    comms_of,
    fresh_output,
    magics_of,
    one_line_error,
    picture,
    prompts_sent,
    run_cell_text,
)


def test_load_ext_registers_both_magics(ip: Any) -> None:
    assert "gridllm" in ip.magics_manager.magics["cell"]
    assert "gridllm" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "gridllm_nb")
    assert "gridllm" not in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "gridllm_nb")
    magics_of(ip).settings.output = "cards"


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
    ("code", lambda html, pl: re.search(r"<code[^>]*>Paris is the capital of France</code>", html)),
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
    remote = default_poll_settings(resolve_endpoint("https://api.gridrepublic.services/remotejobs/v2"))
    assert remote.fast == 0.3 and remote.slow == 5.0 and remote.factor > 1  # backs off while nothing changes


def test_output_mode_auto(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    m = magics_of(ip)
    m.settings.output = "auto"
    assert m._mode() == "stream"  # plain IPython: text on stdout
    monkeypatch.setattr(ip, "kernel", SimpleNamespace(comm_manager=object()), raising=False)
    assert m._mode() == "cards"  # a kernel: cards side by side
    m.settings.output = "stream"
    assert m._mode() == "stream"


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


def test_line_leaderboard_mine_counts_only_this_users_votes(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.core.arena import Vote, record_vote

    for name in ("LOGNAME", "USER"):
        monkeypatch.setenv(name, "ada")
    record_vote(Vote(("m:1", "n:1"), "n:1"))                      # ada's: n:1 wins
    for _ in range(3):
        record_vote(Vote(("m:1", "n:1"), "m:1", owner="grace"))   # grace's: m:1 wins
    every = ip.run_line_magic("gridllm", "leaderboard")
    mine = ip.run_line_magic("gridllm", "leaderboard --mine")
    assert [(r["model"], r["votes"]) for r in every.rows] == [("m:1", 4), ("n:1", 4)]
    assert [(r["model"], r["votes"]) for r in mine.rows] == [("n:1", 1), ("m:1", 1)]
    assert "your votes only" in mine._repr_html_() and "your votes only" not in every._repr_html_()


def test_line_leaderboard_method_elo_rates_vote_by_vote(ip: Any) -> None:
    from gridllm_nb.core.arena import TIE, Vote, record_vote

    for _ in range(6):
        record_vote(Vote(("good", "bad"), "good"))
    record_vote(Vote(("good", "bad", "mid"), "mid"))
    record_vote(Vote(("good", "mid"), TIE))
    bt = ip.run_line_magic("gridllm", "leaderboard")
    elo = ip.run_line_magic("gridllm", "leaderboard --method elo")
    # head to head mid leads good 1.5-0.5: Bradley–Terry ranks it first; Elo, in vote order, keeps good first
    assert [r["model"] for r in bt.rows] == ["mid", "good", "bad"]
    assert [r["model"] for r in elo.rows] == ["good", "mid", "bad"]
    assert "Elo ratings" in elo._repr_html_() and "Bradley–Terry ratings" in bt._repr_html_()


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
    fresh_output(ip)
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


def test_attach_follows_a_runs_live_jobs_again_as_cards(ip: Any, fake: ServedFake) -> None:
    from gridllm_nb.api.client import JobsClient
    from gridllm_nb.core import history, recorder
    from gridllm_nb.core.results import Result

    async def submit() -> str:
        async with JobsClient(fake.url) as client:
            return await client.submit("hello again", "a:1")

    job_id = runner.run_sync(submit())  # a job a kernel submitted before it died
    ended = "e" * 32
    run_id = recorder.record(Results("hello again", {
        "a:1": Result(tag="a:1", job_id=job_id, state=JobState.RUNNING),
        "b:2": Result(tag="b:2", job_id=ended, state=JobState.COMPLETED, text="It is Paris", elapsed=1.0)}),
        fake.url)
    fresh_output(ip)
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


# -- --over: a prompt × model grid from a cell ------------------------------------------


def test_the_magic_over_a_list_runs_the_grid_with_a_progress_bar(ip, fake) -> None:
    ip.user_ns.update(cities=["Paris", "{secret}", "Rome"], secret="XYZ", style="briefly")
    g = cell(ip, f"a:1 b:2 --url {fake.url} --over cities --max-live 2 --out g", "Say {style}: capital {item}?")
    assert isinstance(g, GridResults) and ip.user_ns["g"] is g and g.ok and len(g) == 3
    assert g[0]["a:1"].text == "Paris is the capital of France"
    sent = sorted(p["inputs"][0] for p in prompts_sent(fake.fake))
    assert sent == sorted(["Say briefly: capital Paris?", "Say briefly: capital {secret}?",
                           "Say briefly: capital Rome?"] * 2)  # each element interpolated once, never twice
    # the bar: a widget while it runs, then its output becomes the final line as plain text
    pub, comms = ip.display_pub, comms_of(ip)
    (shown,) = pub.by_id().values()
    assert "application/vnd.jupyter.widget-view+json" in shown[0]["data"]
    assert shown[-1]["update"] and shown[-1]["data"]["text/plain"].startswith("6/6 done · 0 failed · ")
    assert set(comms.opened()) <= comms.closed()
    assert "3 prompts × 2 models: 6 completed, 0 failed" in g._repr_html_()


def test_an_over_cell_is_one_run_of_the_history_that_retry_and_attach_take(ip, fake, capsys) -> None:
    # issue 22, case 10: %%gridllm --over cells were not recorded, though every %%gridllm cell is
    from gridllm_nb.core import history

    ip.user_ns["cities"] = ["Paris", "Rome"]
    g = cell(ip, f"a:1 bad:1 --url {fake.url} --over cities", "capital {item}?")
    assert isinstance(g, GridResults) and g.run_id and g.counts.failed == 2
    [run] = history.recent(5)
    assert run["run_id"] == g.run_id and sorted((r["prompt"], r["tag"], r["state"]) for r in run["results"]) == [
        ("capital Paris?", "a:1", "completed"), ("capital Paris?", "bad:1", "failed"),
        ("capital Rome?", "a:1", "completed"), ("capital Rome?", "bad:1", "failed")]
    capsys.readouterr()
    ip.run_line_magic("gridllm", "history")
    assert capsys.readouterr().out.splitlines()[0].endswith("grid: 2 prompts × 2 models  2 completed, 2 failed")
    fake.fake.scripts["bad:1"] = words_script("fixed")
    again = ip.run_line_magic("gridllm", f"retry {history.short_id(g.run_id)}")
    assert isinstance(again, GridResults) and again.ok and again.run_id == g.run_id
    assert [job.tag for job in fake.fake.jobs.values()].count("bad:1") == 4  # the two failed, sent again
    attached = ip.run_line_magic("gridllm", "attach")
    assert attached.ok and [run["bad:1"].text for run in attached] == ["fixed", "fixed"]
    ip.run_line_magic("gridllm", "config history=False")
    cell(ip, f"a:1 --url {fake.url} --over cities", "again {item}?")
    assert [r["run_id"] for r in history.recent(5)] == [g.run_id]  # history off: not recorded


def test_the_magic_over_dict_elements_and_its_errors(ip, fake, capsys) -> None:
    ip.user_ns["books"] = [{"title": "Dune", "author": "Herbert"}]
    g = cell(ip, f"a:1 --url {fake.url} --over books", "Who wrote {title}? ({author})")
    assert [p["inputs"][0] for p in prompts_sent(fake.fake)] == ["Who wrote Dune? (Herbert)"] and g.ok
    for line, needle in ((f"a:1 --url {fake.url} --over nothing", "no variable named 'nothing'"),
                         (f"a:1 --url {fake.url} --over books --no-wait", "--no-wait cannot be used with --over"),
                         ("a:1 --over books --max-live 0", "--max-live must be ≥ 1")):
        with pytest.raises(CellError, match=needle):
            cell(ip, line, "{title}")


def test_ctrl_c_in_the_magic_cancels_the_grid_and_keeps_what_arrived(ip, fake) -> None:
    ip.user_ns["xs"] = list(range(6))
    main = threading.main_thread().ident
    api = fake.fake
    answer_status = api._status
    sent = threading.Event()

    def status_then_ctrl_c(ids: list[str], **kwargs: Any) -> Any:
        """A real Ctrl-C, sent by the service once the client has polled again after text for two jobs:
        what the user saw is then known whatever the machine's load."""
        response = answer_status(ids, **kwargs)
        if not sent.is_set() and sum(1 for job in api.jobs.values() if job.position >= 3) >= 2:
            sent.set()
            signal.pthread_kill(main, signal.SIGINT)
        return response

    api._status = status_then_ctrl_c  # type: ignore[method-assign]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = ip.run_cell(f"%%gridllm slow:1 --url {fake.url} --over xs --max-live 2 --out g\n{{item}}",
                             store_history=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert isinstance(result.error_in_exec, Interrupted)
    assert "0 of 6 jobs had completed; the partial results are kept in g" in str(result.error_in_exec)
    g = ip.user_ns["g"]
    assert g.done and [run["slow:1"].state for run in g] == [JobState.CANCELLED] * 6
    assert g[0]["slow:1"].text.startswith("word") and g[5]["slow:1"].text == ""
    assert len(fake.fake.jobs) == 2 and any(r.method == "DELETE" for r in fake.fake.requests)  # max-live 2
    assert not any(t.name == "gridllm-run" for t in threading.enumerate())
