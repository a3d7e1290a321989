"""Overlapping submits of one kind go out as one POST, on the local service only."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gridllm_nb.api.client import (
    MAX_CHARS_PER_SUBMIT,
    MAX_INPUTS_PER_SUBMIT,
    JobsClient,
)
from gridllm_nb.errors import APIError

from .. import fakes
from ..fakes import FakeClock, FakeJobsAPI

pytestmark = pytest.mark.anyio

LOCAL = "http://127.0.0.1:9/remotejobs/v2"  # loopback: our own service, which makes one job per input
REMOTE = "https://grid.invalid/remotejobs/v2"


def client_for(fake: FakeJobsAPI, url: str = LOCAL) -> JobsClient:
    return fakes.client_for(fake, url)


def prompt_of(fake: FakeJobsAPI, job_id: str) -> str:
    (prompt,) = json.loads(fake.jobs[job_id].command_line)["inputs"]
    return prompt


async def test_a_waves_submits_are_one_post_per_hundred_and_each_caller_gets_its_own_job() -> None:
    fake = FakeJobsAPI()
    async with client_for(fake) as client:
        prompts = [f"question {i}" for i in range(250)]
        ids = await asyncio.gather(*(client.submit(p, "m", options={"max_tokens": 8}) for p in prompts))
    posts = fake.posts()
    # All asked on one turn of the loop: they leave together, a hundred at a time, in order.
    assert [len(json.loads(json.loads(r.content)["commandLine"])["inputs"]) for r in posts] == [
        MAX_INPUTS_PER_SUBMIT, MAX_INPUTS_PER_SUBMIT, 50]
    assert len(set(ids)) == 250
    assert [prompt_of(fake, job_id) for job_id in ids] == prompts


async def test_long_prompts_are_split_so_no_body_grows_past_what_the_service_takes() -> None:
    fake = FakeJobsAPI()
    third = MAX_CHARS_PER_SUBMIT // 3
    prompts = ['"' * third] * 5 + ["x" * (MAX_CHARS_PER_SUBMIT + 1), "short"]  # quotes: 4x as JSON in JSON
    async with client_for(fake) as client:
        ids = await asyncio.gather(*(client.submit(p, "m") for p in prompts))
    bodies = [r.content for r in fake.posts()]
    assert [len(json.loads(json.loads(b)["commandLine"])["inputs"]) for b in bodies] == [3, 2, 1, 1]
    assert max(len(b) for b in bodies[:2]) < 1024 * 1024  # the local service's body limit
    assert [prompt_of(fake, job_id) for job_id in ids] == prompts


async def test_different_models_or_options_never_share_a_post() -> None:
    fake = FakeJobsAPI()
    async with client_for(fake) as client:
        await asyncio.gather(client.submit("a", "m1"), client.submit("b", "m2"),
                             client.submit("c", "m1", options={"temperature": 0}),
                             client.submit("d", "m1", hours=2), client.submit("e", "m1", system="be brief"))
    bodies = [json.loads(r.content) for r in fake.posts()]
    kinds = {(b["tag"], b.get("hours"), b["commandLine"]) for b in bodies}
    assert len(bodies) == 5 and len(kinds) == 5


async def test_a_remote_grid_gets_one_post_per_job_as_its_pages_show() -> None:
    fake = FakeJobsAPI()
    async with client_for(fake, REMOTE) as client:
        await asyncio.gather(*(client.submit(f"p{i}", "m") for i in range(5)))
    assert len(fake.posts()) == 5


async def test_a_refused_post_fails_every_submit_in_it_and_the_next_post_goes_out() -> None:
    fake = FakeJobsAPI(models=["m"])
    async with client_for(fake) as client:
        answers = await asyncio.gather(*(client.submit(f"p{i}", "nope") for i in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(a, APIError) and "unknown model tag" in str(a) for a in answers)
        assert len(await asyncio.gather(client.submit("q", "m"), client.submit("r", "m"))) == 2


async def test_a_cancelled_submit_is_never_sent_or_its_job_is_cancelled() -> None:
    fake = FakeJobsAPI(cancel_supported=True)
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            await release.wait()
        return fake.handle(request)

    async with JobsClient(LOCAL, transport=httpx.MockTransport(slow), clock=FakeClock()) as client:
        first = asyncio.ensure_future(client.submit("on the wire", "m"))
        await asyncio.sleep(0.01)  # its POST is out
        queued = asyncio.ensure_future(client.submit("queued", "m"))
        kept = asyncio.ensure_future(client.submit("kept", "m"))
        await asyncio.sleep(0.01)
        first.cancel()
        queued.cancel()
        release.set()
        kept_id = await kept
        for _ in range(50):
            if any(r.method == "DELETE" for r in fake.requests):
                break
            await asyncio.sleep(0.01)
    assert [prompt_of(fake, job_id) for job_id in fake.jobs] == ["on the wire", "kept"]  # "queued" never left
    (orphan,) = [job_id for job_id in fake.jobs if job_id != kept_id]
    assert fake.jobs[orphan].cancelled and not fake.jobs[kept_id].cancelled


async def test_submits_arriving_while_a_post_is_out_go_together_in_the_next() -> None:
    fake = FakeJobsAPI()
    release = asyncio.Event()

    out: list[httpx.Request] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        out.append(request)
        if request.method == "POST" and not release.is_set():
            await release.wait()
        return fake.handle(request)

    async with JobsClient(LOCAL, transport=httpx.MockTransport(slow), clock=FakeClock()) as client:
        first = asyncio.ensure_future(client.submit("first", "m"))
        await asyncio.sleep(0.01)  # out alone, at once: a lone submit waits for nothing
        assert len(out) == 1 and not first.done()
        later = [asyncio.ensure_future(client.submit(f"later {i}", "m")) for i in range(3)]
        for i in range(3):
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *later)
    assert [len(json.loads(json.loads(r.content)["commandLine"])["inputs"]) for r in fake.posts()] == [1, 3]


async def test_a_prompt_the_service_refuses_fails_only_itself_not_its_batch(tmp_path) -> None:
    """Against the real local service, whose inputs may hold at most 32 KB each."""
    from gridllm_nb.service.commandline import MAX_INPUT_BYTES
    from gridllm_nb.service.launcher import start_service

    prompts = ["Name a colour.", "x" * (MAX_INPUT_BYTES + 1), "Name a fruit."]
    with start_service(db=tmp_path / "jobs.sqlite3", timeout=60) as service:
        async with JobsClient(service.url) as client:
            answers = await asyncio.gather(*(client.submit(p, "smollm2:135m", options={"max_tokens": 1})
                                             for p in prompts), return_exceptions=True)
            good = [a for a in answers if isinstance(a, str)]
            await client.cancel(good)
    assert isinstance(answers[1], APIError) and answers[1].status_code == 413, answers[1]
    assert len(good) == 2 and isinstance(answers[0], str) and isinstance(answers[2], str)
