"""When the service goes away mid-run: "reconnecting…" while it is away, resume when it is back,
LOST with the text kept when it never comes back, and the default service started again once."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from gridllm_nb import config
from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import RECONNECTING, Poller, PollSettings
from gridllm_nb.core.local import revivable
from gridllm_nb.errors import ConfigError

from ..fakes import FakeClock, FakeJobsAPI, ServedFake, words_script

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"


def _down(fake: FakeJobsAPI, n: int = 1000) -> None:
    fake.inject(*[httpx.ConnectError("Connection refused") for _ in range(n)])


def _notices(updates: list[JobUpdate]) -> list[str | None]:
    return [u.error for u in updates if not u.state.terminal]


async def test_reconnecting_while_the_service_is_away_then_the_answer_resumes() -> None:
    clock = FakeClock()
    fake = FakeJobsAPI(default_script=words_script("alpha beta gamma delta"))
    client = JobsClient(BASE, transport=fake.transport(), clock=clock)
    watch = Poller(PollSettings(), clock=clock).follow(client, await client.submit("p", "m"), tag="m")
    seen = [await watch.__anext__(), await watch.__anext__()]
    _down(fake, 6)
    seen += [u async for u in watch]
    notices = _notices(seen)
    away = [n for n in notices if n and n.startswith(RECONNECTING)]
    assert len(away) == 1  # said once, not on every failed poll
    back = notices.index(away[0]) + 1
    assert notices[back] is None  # cleared by the first answer after the outage
    assert seen[-1].state is JobState.COMPLETED and seen[-1].text == "alpha beta gamma delta" and seen[-1].error is None
    assert "".join(u.delta for u in seen) == "alpha beta gamma delta"
    await client.aclose()


async def test_a_service_that_never_comes_back_ends_lost_with_the_text_kept() -> None:
    clock = FakeClock()
    fake = FakeJobsAPI(default_script=[("running", "kept text")] * 50)
    client = JobsClient(BASE, transport=fake.transport(), clock=clock)
    watch = Poller(PollSettings(give_up_after=60), clock=clock).follow(client, await client.submit("p", "m"), tag="m")
    assert (await watch.__anext__()).text == "kept text"
    _down(fake)
    rest = [u async for u in watch]
    assert rest[0].state is JobState.RUNNING and rest[0].error.startswith(RECONNECTING)
    assert rest[-1].state is JobState.LOST and rest[-1].text == "kept text"
    assert "gave up" in rest[-1].error and "cannot reach" in rest[-1].error
    await client.aclose()


# -- the default endpoint: the embedded service is started again, once ------------------------


@pytest.fixture
def default_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:
    """Make a mocked URL the default endpoint (nobody chose it), as the embedded service is."""
    url = "http://127.0.0.1:9/remotejobs/v2"
    monkeypatch.setattr(config, "DEFAULT_LOCAL_URL", url)
    monkeypatch.setenv("GRIDLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("GRIDLLM_API_URL", raising=False)
    return url


def _fake_launcher(monkeypatch: pytest.MonkeyPatch, on_start, what: str | None) -> list[str]:
    from gridllm_nb.service import launcher

    calls: list[str] = []

    def ensure(url: str, **kwargs) -> object:
        calls.append(url)
        return on_start()

    monkeypatch.setattr(launcher, "ensure_local_service", ensure)
    monkeypatch.setattr(launcher, "diagnose", lambda url: what)
    return calls


async def test_the_default_service_is_started_again_once_and_the_run_resumes(
        default_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    fake = FakeJobsAPI(default_script=words_script("one two three four"))
    died = f'the local service at {default_endpoint} (pid 42) exited with SIGSEGV (log /x/service.log: "boom")'

    def start() -> object:
        fake.faults.clear()  # the new service answers
        return object()

    calls = _fake_launcher(monkeypatch, start, died)
    client = revivable(JobsClient(transport=fake.transport(), clock=clock))
    assert client.endpoint.is_default
    watch = Poller(PollSettings(), clock=clock).follow(client, await client.submit("p", "m"), tag="m")
    seen = [await watch.__anext__()]
    _down(fake)
    seen += [u async for u in watch]
    assert calls == [default_endpoint]
    notices = [n for n in _notices(seen) if n]
    assert notices[0].startswith(RECONNECTING) and any("started the local service again" in n and "SIGSEGV" in n
                                                       for n in notices)
    assert seen[-1].state is JobState.COMPLETED and seen[-1].text == "one two three four"
    await client.aclose()


async def test_when_the_default_service_cannot_start_again_the_job_ends_lost_saying_why(
        default_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    fake = FakeJobsAPI(default_script=[("running", "half an answer")] * 50)
    died = f"the local service at {default_endpoint} (pid 42) exited with SIGKILL (log /x/service.log: empty)"

    def start() -> object:
        raise ConfigError('the local service exited with code 1 before it answered (log /x/service.log: "no port")')

    calls = _fake_launcher(monkeypatch, start, died)
    client = revivable(JobsClient(transport=fake.transport(), clock=clock))
    watch = Poller(PollSettings(), clock=clock).follow(client, await client.submit("p", "m"), tag="m")
    assert (await watch.__anext__()).text == "half an answer"
    _down(fake)
    rest = [u async for u in watch]
    assert len(calls) == 1
    last = rest[-1]
    assert last.state is JobState.LOST and last.text == "half an answer"
    assert "exited with SIGKILL" in last.error and "starting it again failed" in last.error
    assert "exited with code 1" in last.error and '"no port"' in last.error
    await client.aclose()


async def test_jobs_the_new_service_does_not_know_end_lost_with_their_text(
        default_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    fake = FakeJobsAPI(default_script=[("running", "before the crash")] * 50)
    job_ids: list[str] = []

    def start() -> object:
        fake.faults.clear()
        fake.forget.update(job_ids)  # a service with a fresh database
        return object()

    _fake_launcher(monkeypatch, start, "the local service at X (pid 1) exited with SIGSEGV (log /x: empty)")
    client = revivable(JobsClient(transport=fake.transport(), clock=clock))
    job_ids.append(await client.submit("p", "m"))
    watch = Poller(PollSettings(lost_after=3), clock=clock).follow(client, job_ids[0], tag="m")
    assert (await watch.__anext__()).text == "before the crash"
    _down(fake)
    rest = [u async for u in watch]
    assert rest[-1].state is JobState.LOST and rest[-1].text == "before the crash"
    assert "no longer knows" in rest[-1].error
    await client.aclose()


async def test_other_endpoints_are_never_started() -> None:
    client = JobsClient("http://127.0.0.1:9/remotejobs/v2", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert await client.revive() is None
    await client.aclose()


# -- over real HTTP: a service that goes away and comes back on the same port --------------------


def _serve_on(fake: FakeJobsAPI, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(fake.asgi_app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off", interface="asgi3"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    return server, thread


async def test_a_run_over_http_says_reconnecting_and_resumes_when_the_service_is_back() -> None:
    from gridllm_nb.core.run import arun

    fake = FakeJobsAPI(default_script=words_script("the service came back and finished", per_step=1) * 1)
    served = ServedFake(fake)
    served.__enter__()
    updates: list[JobUpdate] = []
    restarted = asyncio.Event()
    state: dict[str, object] = {}

    def on_update(u: JobUpdate) -> None:
        updates.append(u)
        if u.text == "the service" and "down" not in state:
            state["down"] = True
            served.server.should_exit = True  # the service goes away mid-answer

        if u.error and u.error.startswith(RECONNECTING) and "back" not in state:
            state["back"] = True
            restarted.set()

    async def bring_back() -> None:
        await restarted.wait()
        await asyncio.to_thread(served.thread.join, 5)
        await asyncio.sleep(0.5)
        state["server"] = await asyncio.to_thread(_serve_on, fake, served.port)

    helper = asyncio.ensure_future(bring_back())
    try:
        results = await asyncio.wait_for(
            arun("p", ["m"], url=served.url, on_update=on_update, announce=None,
                 poll=PollSettings(fast=0.05, slow=0.1)), 60)
    finally:
        helper.cancel()
        if "server" in state:
            server, thread = state["server"]
            server.should_exit = True
            thread.join(5)
        else:
            served.__exit__(None, None, None)
    assert results["m"].state is JobState.COMPLETED and results["m"].text == "the service came back and finished"
    live_errors = [u.error for u in updates if not u.state.terminal and u.error]
    assert live_errors and all(e.startswith(RECONNECTING) for e in live_errors)
    assert results["m"].error is None


# -- the words of the error: what happened locally, or advice for a URL someone chose ----------------


async def test_an_unreachable_custom_url_gets_advice_for_a_url() -> None:
    from gridllm_nb.api.retry import RetryPolicy
    from gridllm_nb.core.run import arun
    from gridllm_nb.errors import TransportError
    from gridllm_nb.service.launcher import free_port

    url = f"http://127.0.0.1:{free_port()}/remotejobs/v2"
    async with JobsClient(url, retry=RetryPolicy(budget=0.3)) as client:
        with pytest.raises(TransportError) as info:
            await arun("p", ["m"], client=client, announce=None)
    message = str(info.value)
    assert message.startswith(f"cannot reach {url}") and "check the URL, the token and the network" in message
    assert "start the local service" not in message and "gridllm-nb serve" not in message


async def test_a_default_service_that_died_is_named_by_what_happened(
        default_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb.api.retry import RetryPolicy
    from gridllm_nb.core.run import arun

    started = iter([None])  # the first ensure finds it "running"; the second (the restart) fails

    def start() -> object:
        if next(started, "again") is None:
            return None
        raise ConfigError('the local service exited with code 1 before it answered (log /s/service.log: "in use")')

    died = f'the local service at {default_endpoint} (pid 7) exited with SIGSEGV (log /s/service.log: "Fatal")'
    calls = _fake_launcher(monkeypatch, start, died)
    transport = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    async with JobsClient(transport=transport, retry=RetryPolicy(budget=0.2)) as client:
        with pytest.raises(ConfigError) as info:
            await arun("p", ["m"], client=client, announce=None)
    message = str(info.value)
    assert len(calls) == 2 and "cannot reach" not in message
    assert "exited with SIGSEGV" in message and "/s/service.log" in message and "exited with code 1" in message
