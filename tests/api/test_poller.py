"""The batched poller: deltas, resets, LOST, TIMED_OUT, faults and backoff, no leaks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import httpx
import pytest

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.feed import RESTART_MARK
from gridllm_nb.api.jobs import JobState, JobUpdate
from gridllm_nb.api.poller import Poller, PollSettings, get_poller

from ..fakes import FakeClock, FakeJobsAPI, words_script

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def setup(fake: FakeJobsAPI, clock: FakeClock, **settings) -> tuple[JobsClient, Poller]:
    client = JobsClient(BASE, transport=fake.transport(), clock=clock)
    return client, Poller(PollSettings(**settings), clock=clock)


async def collect(poller: Poller, client: JobsClient, job_id: str, **kw) -> list[JobUpdate]:
    return [u async for u in poller.follow(client, job_id, **kw)]


async def test_deltas_add_up_to_the_final_log(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("one two three four five"))
    client, poller = setup(fake, clock)
    job_id = await client.submit("p", "m")
    updates = await collect(poller, client, job_id, tag="m")
    assert "".join(u.delta for u in updates) == "one two three four five"
    assert [u.state for u in updates][0] is JobState.QUEUED
    assert updates[-1].state is JobState.COMPLETED and updates[-1].text == "one two three four five"
    assert not any(u.reset for u in updates)
    assert not poller.running
    await client.aclose()


async def test_gets_per_tick_are_ceil_n_over_100(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("a b c"))
    client, poller = setup(fake, clock)
    ids = await client.submit_many(["p"] * 250, "m")
    watches = [poller.follow(client, i, tag=i) for i in ids]
    finals = await asyncio.gather(*(_last(w) for w in watches))
    assert all(u.state is JobState.COMPLETED for u in finals)
    assert poller.gets == 3 * poller.ticks
    assert all(len(r.url.path.split("/")[-1].split(",")) <= 100 for r in fake.gets())
    await client.aclose()


async def _last(watch) -> JobUpdate:
    last = None
    async for u in watch:
        last = u
    return last


async def test_a_log_that_says_something_else_follows_what_was_shown_after_a_mark(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=[("running", "old host says"), ("running", "old host says hi"),
                                       ("running", "new"), ("completed", "new host answer")])
    client, poller = setup(fake, clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert not any(u.reset for u in updates)  # nothing shown is ever taken back
    assert "".join(u.delta for u in updates) == updates[-1].text
    assert updates[-1].text == "old host says hi" + RESTART_MARK + "new host answer"
    assert updates[-1].restarted and not updates[0].restarted
    await client.aclose()


async def test_a_log_that_goes_back_keeps_what_was_shown_and_goes_on_seamlessly(clock: FakeClock) -> None:
    # A restarted service replays less than was shown, then generates on from there.
    fake = FakeJobsAPI(default_script=[("running", "plants absorb carbon dioxide"), ("running", "plants absorb carbon"),
                                       ("running", "plants absorb carbon dioxide and"),
                                       ("completed", "plants absorb carbon dioxide and water")])
    client, poller = setup(fake, clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert [u.text for u in updates if u.delta] == ["plants absorb carbon dioxide", "plants absorb carbon dioxide and",
                                                    "plants absorb carbon dioxide and water"]
    assert "".join(u.delta for u in updates) == updates[-1].text and updates[-1].restarted
    await client.aclose()


async def test_a_job_that_ends_on_a_shorter_log_keeps_all_that_was_shown(clock: FakeClock) -> None:
    # What the issue saw: "…absorb carbon dioxide (reconnecting…)", then the restarted service ended
    # the job "interrupted" with the shorter log it had journaled.
    fake = FakeJobsAPI(default_script=[("running", "plants absorb carbon dioxide"),
                                       ("error", "plants absorb carbon")])
    client, poller = setup(fake, clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert updates[-1].state is JobState.FAILED and updates[-1].restarted
    assert updates[-1].text == "plants absorb carbon dioxide"
    await client.aclose()


async def test_missing_for_several_polls_means_lost_with_text_kept(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=[("running", "partial")] * 3 + [("running", "partial answer")] * 99)
    client, poller = setup(fake, clock, lost_after=3)
    job_id = await client.submit("p", "m")
    watch = poller.follow(client, job_id, tag="m")
    first = await watch.__anext__()
    assert first.text == "partial"
    fake.forget.add(job_id)
    rest = [u async for u in watch]
    assert rest[-1].state is JobState.LOST and rest[-1].text == "partial"
    assert "no longer knows" in rest[-1].error
    await client.aclose()


async def test_timed_out_after_hours_plus_grace(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=[("running", "still thinking")])
    client, poller = setup(fake, clock, grace=30, slow=60)
    job_id = await client.submit("p", "m")
    start = clock.now
    updates = await collect(poller, client, job_id, tag="m", hours=0.01)
    assert updates[-1].state is JobState.TIMED_OUT and updates[-1].text == "still thinking"
    assert 36 + 30 < clock.now - start <= 36 + 30 + 60
    await client.aclose()


async def test_every_fault_is_survived_without_losing_a_byte(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("alpha beta gamma delta"))
    client, poller = setup(fake, clock)
    job_id = await client.submit("p", "m")
    watch = poller.follow(client, job_id, tag="m")
    seen = [await watch.__anext__(), await watch.__anext__()]
    fake.inject(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(503, json={"success": False, "error": "busy"}),
        httpx.Response(429, headers={"Retry-After": "9"}, json={"success": False}),
        httpx.Response(200, content=b'{"success": true, "jobs": {"'),
        httpx.Response(200, text="not json at all"),
        httpx.Response(200, json={"success": False, "error": "transient"}),
        httpx.Response(200, json={"success": True, "jobs": {}}),  # id missing once
    )
    seen += [u async for u in watch]
    assert "".join(u.delta for u in seen) == "alpha beta gamma delta"
    assert seen[-1].state is JobState.COMPLETED
    assert 9.0 in clock.sleeps  # Retry-After honoured
    await client.aclose()


async def test_backoff_grows_with_jitter_then_gives_up_as_lost(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=[("running", "kept text")] * 50)
    client, poller = setup(fake, clock, give_up_after=100)
    job_id = await client.submit("p", "m")
    watch = poller.follow(client, job_id, tag="m")
    assert (await watch.__anext__()).text == "kept text"
    fake.inject(*[httpx.ConnectError("down") for _ in range(1000)])
    clock.sleeps.clear()
    rest = [u async for u in watch]
    assert rest[-1].state is JobState.LOST and rest[-1].text == "kept text"
    assert "gave up" in rest[-1].error and "cannot reach" in rest[-1].error
    backoffs = clock.sleeps
    assert backoffs[0] <= 0.5 and max(backoffs) <= 10
    assert backoffs[4] > backoffs[0]
    assert 100 <= sum(backoffs) <= 100 + 10
    await client.aclose()


async def test_interval_backs_off_while_quiet_and_snaps_back_on_change(clock: FakeClock) -> None:
    quiet = [("running", "x")] * 12
    fake = FakeJobsAPI(default_script=quiet + [("running", "x y")] + [("completed", "x y")])
    client, poller = setup(fake, clock, fast=0.3, slow=5.0, factor=1.5)
    await collect(poller, client, await client.submit("p", "m"), tag="m")
    sleeps = clock.sleeps
    assert sleeps[0] == pytest.approx(0.3)
    assert sleeps[1] == pytest.approx(0.45)
    assert max(sleeps) == pytest.approx(5.0)
    assert sleeps[-1] == pytest.approx(0.3)  # fast again after the change
    await client.aclose()


async def test_closing_a_watch_stops_polling_and_leaves_no_task(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=[("running", "forever")])
    client, poller = setup(fake, clock)
    watch = poller.follow(client, await client.submit("p", "m"), tag="m")
    await watch.__anext__()

    async def consume():
        async for _ in watch:
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    task.cancel()
    watch.close()
    for _ in range(5):
        await asyncio.sleep(0)
    gets = len(fake.gets())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not poller.running and poller.active == 0
    assert len(fake.gets()) == gets
    await client.aclose()


async def test_one_poller_per_loop() -> None:
    assert get_poller() is get_poller()
    first = get_poller()

    def in_a_new_loop() -> Poller:
        async def inner() -> Poller:
            return get_poller()
        return asyncio.run(inner())

    other = await asyncio.to_thread(in_a_new_loop)
    assert other is not first


async def test_a_failed_job_carries_the_service_reason_when_given(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("cut short", final="error"),
                       failure_message="exceeded its hours limit (0.001 h)")
    client, poller = setup(fake, clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert updates[-1].state is JobState.FAILED and updates[-1].text == "cut short"
    assert updates[-1].error == "exceeded its hours limit (0.001 h)"
    fake.failure_message = None
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert updates[-1].error == "the job ended with status 'error'"
    await client.aclose()


async def test_why_an_answer_ended_reaches_the_result(clock: FakeClock) -> None:
    """The local service says a completed answer hit the token limit: the update, the result and its note say so."""
    from gridllm_nb.core.results import Result

    fake = FakeJobsAPI(default_script=words_script("Once upon a"), completion={"finish": "length", "tokens": 3})
    client, poller = setup(fake, clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert [(u.finish, u.tokens) for u in updates][-1] == ("length", 3)
    assert all(u.finish is None for u in updates[:-1])  # said once the answer is over
    result = Result(tag="m")
    for u in updates:
        result.apply(u)
    assert (result.finish, result.tokens, result.finish_note) == ("length", 3, "stopped at 3 tokens")
    fake.completion = None  # a grid that does not say: no note
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert updates[-1].finish is None
    await client.aclose()


# -- the tick at scale: nothing built for an answer that did not grow, batches planned once ----------------

_SCRIPT = [("queued", "")] + [("running", "Grüße — ✓ \\u00e9 \"quoted\"")] * 2 + [
    ("running", "Grüße — ✓ \\u00e9 \"quoted\" and more")] + [("restarted", "fresh start")] + [("completed", "fresh start!")]


async def _run_mixed(clock: FakeClock) -> list[list[JobUpdate]]:
    fake = FakeJobsAPI(
        default_script=words_script("one two three four five six"),
        scripts={"m2": _SCRIPT, "m3": words_script("it broke", final="error")},
        failure_message="engine crashed",
        completion={"finish": "stop", "tokens": 6},
    )
    client, poller = setup(fake, clock)
    ids = [(await client.submit("p", tag), tag) for tag in ("m1", "m2", "m3")]
    ids += [(i, "m1") for i in await client.submit_many(["p"] * 120, "m1")]
    runs = await asyncio.gather(*(collect(poller, client, i, tag=tag) for i, tag in ids))
    await client.aclose()
    # Ids are random per run: number them.
    return [[replace(u, job_id=str(n)) for u in run] for n, run in enumerate(runs)]


async def test_orjson_and_the_stdlib_give_identical_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orjson")
    from gridllm_nb.api import wire as client_module

    with_orjson = await _run_mixed(FakeClock())
    monkeypatch.setattr(client_module, "_orjson", None)
    with_stdlib = await _run_mixed(FakeClock())
    assert with_orjson == with_stdlib
    assert sum(len(u) for u in with_orjson) > 123 * 3


async def test_a_job_whose_log_did_not_grow_yields_no_update_and_builds_no_job(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gridllm_nb.api.feed as poller_module
    from gridllm_nb.api.jobs import Job

    built: list[str] = []
    real_from_api = Job.from_api.__func__

    def counting_from_api(cls, job_id, *args, **kw):
        built.append(job_id)
        return real_from_api(cls, job_id, *args, **kw)

    updates_made: list[int] = []

    class CountingUpdate(JobUpdate):
        def __init__(self, *args, **kw) -> None:
            updates_made.append(1)
            super().__init__(*args, **kw)

    monkeypatch.setattr(Job, "from_api", classmethod(counting_from_api))
    monkeypatch.setattr(poller_module, "JobUpdate", CountingUpdate)
    script = [("queued", ""), ("running", "same")] + [("running", "same")] * 30 + [("completed", "same")]
    fake = FakeJobsAPI(default_script=script)
    client, poller = setup(fake, clock, slow=0.3)
    job_id = await client.submit("p", "m")
    watch = poller.follow(client, job_id, tag="m")
    first, second = await watch.__anext__(), await watch.__anext__()
    assert (first.state, second.text) == (JobState.QUEUED, "same")
    assert built == [] and len(updates_made) == 2  # live updates build no Job
    last = [u async for u in watch]
    assert [u.state for u in last] == [JobState.COMPLETED]
    assert len(fake.gets()) >= 33
    assert len(updates_made) == 3  # 30 answers that did not grow: no update object at all
    assert built == [job_id]  # once, for the final update's finish/tokens
    job = watch.job  # read: built from the last answer
    assert (job.state, job.raw_status, job.log, job.runtime) == (
        JobState.COMPLETED, "completed", "same", float(fake.jobs[job_id].position))
    await client.aclose()


async def test_batches_are_planned_once_and_rebuilt_when_the_set_of_jobs_changes(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("a b c d e f g h"), scripts={"short": words_script("a b")})
    client, poller = setup(fake, clock)
    short = await client.submit_many(["p"] * 60, "short")
    long = await client.submit_many(["p"] * 90, "long")
    watches = [poller.follow(client, i, tag="x") for i in short + long]
    finals = await asyncio.gather(*(_last(w) for w in watches))
    assert all(u.state is JobState.COMPLETED for u in finals)
    assert poller.ticks >= 10
    assert poller.plans == 2  # 150 jobs, then the 90 left once the short ones ended
    assert client.urls_built == 3  # 100 + 50 ids, then 90: parsed once each, not once per tick
    gets = [len(r.url.path.rsplit("/", 1)[1].split(",")) for r in fake.gets()]
    assert gets[:2] == [100, 50] and gets[-1] == 90
    await client.aclose()


LOCAL = "http://127.0.0.1:9/remotejobs/v2"


async def test_where_the_service_takes_bulk_requests_1000_jobs_cost_one_request_of_only_their_growth(
        clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("alpha beta gamma delta epsilon"), bulk_supported=True)
    client = JobsClient(LOCAL, transport=fake.transport(), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    ids = await client.submit_many(["p"] * 1000, "m")
    finals = await asyncio.gather(*(_last(poller.follow(client, i, tag="m")) for i in ids))
    assert all(u.state is JobState.COMPLETED and u.text == "alpha beta gamma delta epsilon" for u in finals)
    bulk = fake.bulk_requests()
    assert not fake.gets() and client.ids_per_request == 1000
    # the first tick was planned GET-sized (10 requests); every later one is one request
    assert len(bulk) == 10 + (poller.ticks - 1)
    last = json.loads(bulk[-1].content)
    assert len(last["ids"]) == 1000 and set(last["logFrom"].values()) == {len("alpha beta gamma delta epsilon")}
    await client.aclose()


async def test_a_service_without_the_bulk_extension_is_asked_once_then_polled_with_gets(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("one two three"))  # POST /jobs/status: a JSON 404
    client = JobsClient(LOCAL, transport=fake.transport(), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    ids = await client.submit_many(["p"] * 3, "m")
    finals = await asyncio.gather(*(_last(poller.follow(client, i, tag="m")) for i in ids))
    assert all(u.state is JobState.COMPLETED and u.text == "one two three" for u in finals)
    assert len(fake.bulk_requests()) == 1 and len(fake.gets()) == poller.ticks
    await client.aclose()


async def test_a_remote_grid_is_never_sent_a_bulk_request(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("one two"))
    client, poller = setup(fake, clock)
    await _last(poller.follow(client, await client.submit("p", "m"), tag="m"))
    assert not fake.bulk_requests() and fake.gets()
    await client.aclose()


async def test_a_bulk_answer_continuing_past_the_known_log_is_a_protocol_error(clock: FakeClock) -> None:
    from gridllm_nb.errors import ProtocolError

    fake = FakeJobsAPI(bulk_supported=True)
    client = JobsClient(LOCAL, transport=fake.transport(), clock=clock)
    job_id = await client.submit("p", "m")
    fake.inject(httpx.Response(200, json={"success": True, "jobs": {job_id: {
        "vmStatus": "running", "states": {"default": {"status": "running", "log": "x", "logFrom": 50}}}}}))
    with pytest.raises(ProtocolError, match="past what was asked"):
        await client.status_entries([job_id], known={job_id: "short"})
    await client.aclose()


# -- the watch stream: our own service pushes what changed ----------------------------------


def _watch_requests(fake: FakeJobsAPI) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == "POST" and r.url.path.endswith("/jobs/watch")]


class _Lines(httpx.AsyncByteStream):
    """A watch response body: these lines, then (optionally) the connection breaking."""

    def __init__(self, lines: list[bytes], error: Exception | None = None) -> None:
        self.lines = lines
        self.error = error

    async def __aiter__(self):
        for line in self.lines:
            yield line
        if self.error is not None:
            raise self.error


async def test_on_our_own_service_every_job_streams_over_one_response_and_nothing_is_polled(service_url) -> None:
    async with JobsClient(service_url) as client:
        poller = Poller(PollSettings(fast=0.1))
        ids = await client.submit_many(["Name a colour.", "Name a fruit.", "Say hello."], "smollm2:135m",
                                       options={"max_tokens": 12})
        runs = await asyncio.gather(*(collect(poller, client, i, tag="smollm2:135m") for i in ids))
        whole = await client.status(ids)
    for job_id, updates in zip(ids, runs):
        last = updates[-1]
        assert last.state is JobState.COMPLETED and last.text == whole[job_id].log != ""
        assert "".join(u.delta for u in updates) == last.text and not any(u.reset for u in updates)
        assert last.finish in ("stop", "length") and last.tokens  # the ended job came whole
    assert poller.streams == 1 and poller.gets == 0


async def test_a_job_the_service_does_not_know_leaves_the_stream_and_the_polls_end_it_lost(service_url) -> None:
    async with JobsClient(service_url) as client:
        poller = Poller(PollSettings(fast=0.05, lost_after=2))
        updates = await collect(poller, client, "0" * 32, tag="smollm2:135m")
    assert updates[-1].state is JobState.LOST and "no longer knows" in (updates[-1].error or "")
    assert poller.streams == 1 and poller.gets == 1  # the stream's "unknown" was the first of the two misses


async def test_closing_every_watch_of_a_stream_ends_the_stream(service_url) -> None:
    async with JobsClient(service_url) as client:
        poller = Poller(PollSettings(fast=0.1))
        job_id = await client.submit("Count to a hundred.", "smollm2:135m", options={"max_tokens": 400})
        watch = poller.follow(client, job_id, tag="smollm2:135m")
        async for update in watch:
            if update.text:
                break
        watch.close()
        for _ in range(100):
            if not [t for t in asyncio.all_tasks() if t.get_name() == "gridllm-watch"]:
                break
            await asyncio.sleep(0.02)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "gridllm-watch"]
        await client.cancel([job_id])


def _breaking(fake: FakeJobsAPI, how: str):
    """A transport whose first watch stream fails ``how``, after the job's first two steps where it streams."""

    def handle(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/jobs/watch") or _watch_requests(fake):
            return fake.handle(request)
        fake.requests.append(request)
        if how == "refused":
            return httpx.Response(429, json={"success": False, "error": "too many watch streams"})
        (job_id,) = json.loads(request.content)["ids"]
        lines = [json.dumps({"live": [[job_id, *step_row(fake.jobs[job_id].advance())]]}).encode() + b"\n"
                 for _ in range(2)]
        if how == "breaks off":
            return httpx.Response(200, stream=_Lines(lines, httpx.ReadError("connection reset by peer")))
        bad = {"malformed row": b'{"live": [["x"]]}\n', "not JSON": b"<html>oops</html>\n"}[how]
        return httpx.Response(200, stream=_Lines([*lines, bad]))

    return httpx.MockTransport(handle)


def step_row(step: tuple[str, str]) -> list:
    status, log = step
    return [status, 0, log]


@pytest.mark.parametrize("how", ["breaks off", "malformed row", "not JSON", "refused"])
async def test_a_stream_that_fails_hands_its_job_to_the_polls_with_nothing_lost_or_repeated(
        clock: FakeClock, how: str) -> None:
    fake = FakeJobsAPI(default_script=words_script("one two three four"))
    client = JobsClient(LOCAL, transport=_breaking(fake, how), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    updates = await collect(poller, client, await client.submit("p", "m"), tag="m")
    assert updates[-1].state is JobState.COMPLETED and updates[-1].text == "one two three four"
    assert "".join(u.delta for u in updates) == "one two three four" and not any(u.reset for u in updates)
    if how != "refused":
        assert updates[1].text == "one"  # what the stream brought before it failed is kept
    assert len(_watch_requests(fake)) == 1 and fake.gets()  # the polls finished the job
    assert client.may_watch()  # a failure is not "this service has no streams": it is tried again later
    await client.aclose()


async def test_after_a_failed_stream_the_client_polls_for_a_while_then_streams_again(clock: FakeClock) -> None:
    from gridllm_nb.api.poller import STREAM_PAUSE

    fake = FakeJobsAPI(default_script=words_script("one two"))
    client = JobsClient(LOCAL, transport=_breaking(fake, "refused"), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    await _last(poller.follow(client, await client.submit("p", "m"), tag="m"))
    await _last(poller.follow(client, await client.submit("p", "m"), tag="m"))
    assert len(_watch_requests(fake)) == 1  # within the pause: polled
    clock.now += STREAM_PAUSE
    await _last(poller.follow(client, await client.submit("p", "m"), tag="m"))
    assert len(_watch_requests(fake)) == 2  # (this fake has no streams: 404, and the client remembers)
    assert not client.may_watch()
    await client.aclose()


async def test_a_service_without_the_watch_extension_is_asked_once(clock: FakeClock) -> None:
    fake = FakeJobsAPI(default_script=words_script("one two"), bulk_supported=True)  # POST /jobs/watch: 404
    client = JobsClient(LOCAL, transport=fake.transport(), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    for _ in range(3):
        ids = await client.submit_many(["p"] * 2, "m")
        await asyncio.gather(*(_last(poller.follow(client, i, tag="m")) for i in ids))
    assert len(_watch_requests(fake)) == 1 and fake.bulk_requests()
    await client.aclose()


async def test_when_the_service_dies_mid_stream_the_polls_say_so_and_the_text_is_kept(tmp_path) -> None:
    """A real service, killed while its stream carries a job: what came is kept, and the job ends lost."""
    import os
    import signal

    from gridllm_nb.api.poller import RECONNECTING
    from gridllm_nb.api.retry import RetryPolicy
    from gridllm_nb.service.launcher import start_service

    with start_service(db=tmp_path / "jobs.sqlite3", timeout=60) as service:
        async with JobsClient(service.url) as client:
            poller = Poller(PollSettings(fast=0.1, give_up_after=1.0,
                                         backoff=RetryPolicy(initial=0.1, maximum=0.2)))
            job_id = await client.submit("Write a long story about a dragon and a lighthouse.", "smollm2:135m",
                                         options={"max_tokens": 400})
            updates: list[JobUpdate] = []
            async for update in poller.follow(client, job_id, tag="smollm2:135m"):
                updates.append(update)
                if update.text and update.state is JobState.RUNNING and service.process.poll() is None:
                    os.killpg(service.process.pid, signal.SIGKILL)
                    service.process.wait(10)
    assert poller.streams == 1 and poller.gets > 0  # streamed, then polled
    before = max(len(u.text) for u in updates if u.error is None)
    last = updates[-1]
    assert last.state is JobState.LOST and "gave up polling" in (last.error or "")
    assert len(last.text) == before and last.text == "".join(u.delta for u in updates)
    assert any(RECONNECTING in (u.error or "") for u in updates[:-1])


async def test_stream_rows_grow_restart_and_end_a_job_as_polls_would(clock: FakeClock) -> None:
    """Rows append, a row from character 0 with other text restarts the answer, and the ended entry's
    ``logFrom`` continues what the stream sent before (not what the client knew when it opened)."""
    fake = FakeJobsAPI(default_script=words_script("never polled"))
    job_id = ""

    def handle(request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/jobs/watch"):
            return fake.handle(request)
        fake.requests.append(request)
        rows = [["queued", 0, ""], ["running", 0, "one"], ["running", 3, " two"], ["running", 0, "uno"]]
        lines = [{"live": [[job_id, *row]]} for row in rows]
        lines.append({"jobs": {job_id: {"vmStatus": "completed", "states": {"default": {
            "status": "completed", "log": " dos", "logFrom": 3, "finish": "stop", "tokens": 2}}}}})
        return httpx.Response(200, stream=_Lines([json.dumps(line).encode() + b"\n" for line in lines]))

    client = JobsClient(LOCAL, transport=httpx.MockTransport(handle), clock=clock)
    poller = Poller(PollSettings(), clock=clock)
    job_id = await client.submit("p", "m")
    updates = await collect(poller, client, job_id, tag="m")
    assert [(u.state, u.delta, u.restarted) for u in updates] == [
        (JobState.QUEUED, "", False), (JobState.RUNNING, "one", False), (JobState.RUNNING, " two", False),
        (JobState.RUNNING, RESTART_MARK + "uno", True), (JobState.COMPLETED, " dos", True)]
    assert updates[-1].text == "one two" + RESTART_MARK + "uno dos" and updates[-1].finish == "stop" and updates[-1].tokens == 2
    assert not fake.gets() and poller.streams == 1
    await client.aclose()
