"""Random argument types for every public Python entry point, against the fake grid over 127.0.0.1.

``gridllm_nb.run/arun/grid/agrid/attach/aattach/leaderboard``, ``Results.retry``,
``JobsClient(...)`` and its public methods, ``Panel(...)``: whatever they are given, they
return or raise a ``GridLLMError`` (one line), and nothing they say or
raise holds the password of a URL or the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gridllm_nb
from gridllm_nb.api.client import JobsClient
from gridllm_nb.errors import GridLLMError
from gridllm_nb.notebook.panel import Panel

from .fakes import FakeJobsAPI, ServedFake, words_script

SECRET = "Zq7sekretPASSWORDx9"
TOKEN = "Tk4tokenVALUEnever8"
_served: list[ServedFake] = []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFake]:
    """The only endpoint an example can reach; its own history; no default local service."""
    fake = FakeJobsAPI(scripts={"good": words_script("fine"), "flaky": words_script("half", final="error")},
                       models=["good", "flaky"], cancel_supported=True)
    patch = pytest.MonkeyPatch()
    with ServedFake(fake) as server:
        patch.setenv("GRIDLLM_API_URL", server.url)
        patch.setenv("GRIDLLM_API_TOKEN", TOKEN)
        patch.setenv("GRIDLLM_HISTORY", str(tmp_path_factory.mktemp("fuzz") / "history.sqlite3"))
        _served.append(server)
        try:
            yield server
        finally:
            _served.clear()
            patch.undo()


anything_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=20)
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), anything_text, st.binary(max_size=8),
                 st.lists(st.one_of(st.integers(), anything_text), max_size=3),
                 st.dictionaries(anything_text, st.one_of(st.floats(), anything_text, st.integers()), max_size=3),
                 st.just(object()), st.just(math.nan), st.just(print))
urls = st.one_of(st.none(), st.just("served"), st.just("secret"),
                 st.sampled_from(["http://127.0.0.1:99999/x", "http://[::1/x", f"ftp://u:{SECRET}@h/x",
                                  f"http://u:{SECRET}@127.0.0.1:0/x", "", "\udcff"]), st.integers())
models = st.one_of(st.just("good"), st.just(["good", "flaky"]), st.just("gooood"), junk)
prompts = st.one_of(st.just("hello"), anything_text, junk)
timeouts = st.one_of(st.just(10), st.just(10.0), junk)


def _url(value: Any) -> Any:
    base = _served[0].url
    return {"served": base, "secret": base.replace("http://", f"http://user:{SECRET}@")}.get(value, value) \
        if isinstance(value, str) else value


@st.composite
def keywords(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    """A random subset of ``names``, each with a random value (``url`` from ``urls``, ``timeout`` mostly 10)."""
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
    out: dict[str, Any] = {"timeout": draw(timeouts)} if "timeout" in names else {}
    for name in chosen:
        out[name] = draw(urls) if name == "url" else draw(st.one_of(st.just(TOKEN), junk)) if name == "token" \
            else draw(junk)
    return out


RUN_KEYWORDS = ("url", "token", "hours", "timeout", "system", "options", "on_update", "poll", "validate", "unknown",
                "announce", "history", "results", "client")


def _check(call: Any) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            value = call()
            said = repr(value)
        except GridLLMError as exc:
            said = str(exc)
            assert "\n" not in said
    said += out.getvalue()
    assert SECRET not in said and TOKEN not in said, said


def _fix(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: (_url(v) if k == "url" else v) for k, v in kw.items()}


_SETTINGS = settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_SETTINGS
@given(prompt=prompts, models=models, kw=keywords(RUN_KEYWORDS))
def test_run_and_arun(served: ServedFake, prompt: Any, models: Any, kw: dict[str, Any]) -> None:
    kw = _fix(kw)
    _check(lambda: gridllm_nb.run(prompt, models, **kw))
    _check(lambda: asyncio.run(gridllm_nb.arun(prompt, models, **kw)))


@_SETTINGS
@given(prompts=st.one_of(st.lists(prompts, max_size=3), st.dictionaries(anything_text, prompts, max_size=2), junk),
       models=models, kw=keywords(("max_live", "progress", "on_progress", *RUN_KEYWORDS[:-3])))
def test_grid_and_agrid(served: ServedFake, prompts: Any, models: Any, kw: dict[str, Any]) -> None:
    kw = _fix(kw)
    kw.setdefault("progress", None)
    _check(lambda: gridllm_nb.grid(prompts, models, **kw))
    _check(lambda: asyncio.run(gridllm_nb.agrid(prompts, models, **kw)))


@_SETTINGS
@given(run=st.one_of(st.just(None), st.just("0"), st.lists(st.sampled_from(["f" * 32, "nonexistent"]), max_size=2),
                     junk),
       kw=keywords(("url", "token", "on_update", "timeout", "poll", "announce")))
def test_attach_and_aattach(served: ServedFake, run: Any, kw: dict[str, Any]) -> None:
    kw = _fix(kw)
    _check(lambda: gridllm_nb.attach(run, **kw))
    _check(lambda: asyncio.run(gridllm_nb.aattach(run, **kw)))


@_SETTINGS
@given(path=st.one_of(st.none(), junk), rounds=st.one_of(st.just(10), junk), seed=st.one_of(st.just(0), junk))
def test_leaderboard(served: ServedFake, path: Any, rounds: Any, seed: Any) -> None:
    if isinstance(path, str) and path.strip():
        path = None  # a random text path could name a real file of this machine
    _check(lambda: gridllm_nb.leaderboard(path, rounds=rounds, seed=seed))


@_SETTINGS
@given(tags=st.one_of(st.none(), st.just("flaky"), st.just(["flaky"]), st.just("good"), junk),
       kw=keywords(("on_update", "timeout")))
def test_results_retry(served: ServedFake, tags: Any, kw: dict[str, Any]) -> None:
    results = gridllm_nb.run("hello", ["good", "flaky"], timeout=10, announce=None)
    _check(lambda: results.retry(tags, **kw))


@_SETTINGS
@given(url=urls, token=st.one_of(st.just(TOKEN), junk), kw=keywords(("app", "input_key", "timeout", "retry", "clock",
                                                                  "transport")),
       prompt=prompts, tag=models, ids=st.one_of(st.lists(anything_text, max_size=2), junk),
       hours=junk, options=junk, system=junk)
def test_jobs_client_and_its_methods(served: ServedFake, url: Any, token: Any, kw: dict[str, Any], prompt: Any,
                                     tag: Any, ids: Any, hours: Any, options: Any, system: Any) -> None:
    async def use() -> None:
        async with JobsClient(_url(url), token, **kw) as client:
            repr(client)
            for call in (lambda: client.submit(prompt, tag, hours=hours, system=system, options=options),
                         lambda: client.submit_many([prompt], tag, hours=hours),
                         lambda: client.status(ids), lambda: client.status_entries(ids, known={}),
                         lambda: client.cancel(ids), client.models, lambda: client.supports(prompt)):
                try:
                    await call()
                except GridLLMError as exc:
                    assert SECRET not in str(exc) and TOKEN not in str(exc)

    _check(lambda: asyncio.run(use()))


PANEL_KEYWORDS = ("url", "token", "client", "options", "hours", "timeout", "system", "poll", "markdown", "max_models",
                  "max_rate", "byte_budget", "max_stale", "retry", "prompt", "history", "history_runs", "arena", "rng")


def _panel_says(models: Any, kw: dict[str, Any]) -> str:
    """What a new panel shows in words: its status line, its hint, its models."""
    panel = Panel(models, **kw)
    return f"{panel.status.value} {panel.picker.hint.value} {list(panel.checkboxes)}"


@_SETTINGS
@given(models=st.one_of(st.none(), models), kw=keywords(PANEL_KEYWORDS))
def test_panel(served: ServedFake, models: Any, kw: dict[str, Any]) -> None:
    kw = _fix(kw)
    _check(lambda: _panel_says(models, kw))
