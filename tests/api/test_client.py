"""JobsClient against a fake grid: encoding, parsing, errors, retries, secrecy."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridllm_nb.api.client import JobsClient, RetryPolicy, chunk_ids, encode_command_line
from gridllm_nb.errors import (
    APIError,
    AuthError,
    GridLLMError,
    NotSupported,
    ProtocolError,
    RateLimited,
    TransportError,
)
from gridllm_nb.api.jobs import Job, JobState, state_from_raw

from .fakes import FakeClock, FakeJobsAPI

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
SECRET = "tok-3f9a-super-secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_client(fake: FakeJobsAPI, clock: FakeClock | None = None, **kw) -> JobsClient:
    return JobsClient(BASE, token=kw.pop("token", SECRET), transport=fake.transport(),
                      clock=clock or FakeClock(), **kw)


# -- commandLine encoding ---------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_prompt_round_trips_through_command_line(prompt: str) -> None:
    outer = json.dumps({"commandLine": encode_command_line(prompt)})
    assert json.loads(json.loads(outer)["commandLine"])["inputs"] == [prompt]


@pytest.mark.parametrize("prompt", ['say "hi"', "back\\slash", "line\nbreak", "{braces} {{x}}",
                                    "naïve café ünïcode", "emoji 🧪🚀", "'single' quotes", ""])
async def test_prompt_reaches_the_server_byte_for_byte(prompt: str) -> None:
    fake = FakeJobsAPI()
    async with make_client(fake) as client:
        await client.submit(prompt, "gemma3:270m")
    body = json.loads(fake.posts()[0].content)
    assert body["app"] == "gridrepublic:text-inference"
    assert body["tag"] == "gemma3:270m"
    assert "hours" not in body
    assert json.loads(body["commandLine"]) == {"inputs": [prompt]}


async def test_input_key_hours_system_and_options_are_sent() -> None:
    fake = FakeJobsAPI()
    async with make_client(fake, input_key="input") as client:
        await client.submit("p", "m", hours=2, system="be brief", options={"max_tokens": 5})
    body = json.loads(fake.posts()[0].content)
    assert body["hours"] == 2
    assert json.loads(body["commandLine"]) == {"input": ["p"], "system": "be brief", "options": {"max_tokens": 5}}


async def test_submit_many_makes_one_job_per_prompt_in_one_post() -> None:
    fake = FakeJobsAPI()
    async with make_client(fake) as client:
        ids = await client.submit_many(["a", "b", "c"], "m")
    assert len(ids) == 3 and len(set(ids)) == 3
    assert len(fake.posts()) == 1


# -- state table and tolerant parsing ---------------------------------------

STATE_TABLE = {
    JobState.QUEUED: "created init pending queued unsent waiting assigned",
    JobState.RUNNING: "running in_progress started downloading uploading",
    JobState.COMPLETED: "completed complete done finished success succeeded",
    JobState.FAILED: "error failed failure aborted too_many_error_results no_canonical_result",
    JobState.CANCELLED: "cancelled canceled",
}


@pytest.mark.parametrize(
    "raw,expected",
    [(raw, state) for state, names in STATE_TABLE.items() for raw in names.split()]
    + [("RUNNING", JobState.RUNNING), ("In Progress", JobState.RUNNING), (" Done ", JobState.COMPLETED)],
)
def test_every_row_of_the_state_table(raw: str, expected: JobState) -> None:
    assert state_from_raw(raw) is expected


def test_unknown_status_keeps_previous_state_and_terminal_states_stick() -> None:
    assert state_from_raw("teleporting", JobState.RUNNING) is JobState.RUNNING
    assert state_from_raw("", JobState.QUEUED) is JobState.QUEUED
    assert state_from_raw("running", JobState.COMPLETED) is JobState.COMPLETED
    assert state_from_raw("running", JobState.LOST) is JobState.LOST


SEED_JOB = {
    "vmStatus": "running",
    "states": {"default": {"status": "running", "outputFiles": [],
                           "log": "1+1=2. When you add numbers, the result",
                           "commandLine": "{\"inputs\":[\"How can 1+1=10?\"]}",
                           "app": "gridrepublic:text-inference"}},
    "created": "2024-05-06T21:26:00+00:00", "copy": 0, "tag": "llama2-uncensored", "runtime": 23,
}


def test_job_parses_the_seed_example() -> None:
    job = Job.from_api("9f22472031ef57c3fd517061d116ad68", SEED_JOB)
    assert job.state is JobState.RUNNING and job.raw_status == "running" and job.vm_status == "running"
    assert job.log == "1+1=2. When you add numbers, the result"
    assert job.tag == "llama2-uncensored" and job.runtime == 23 and job.copy == 0
    assert job.created is not None and job.created.year == 2024 and job.created.utcoffset().total_seconds() == 0
    assert json.loads(job.command_line) == {"inputs": ["How can 1+1=10?"]}
    assert job.app == "gridrepublic:text-inference" and job.output_files == []


@pytest.mark.parametrize("entry", [
    None, [], "running", {}, {"states": "x"}, {"states": {"default": None}},
    {"states": {"other": {"status": "done", "log": "x"}}, "created": "yesterday", "runtime": "n/a", "copy": True},
    {"vmStatus": "queued", "states": {}, "surprise": {"nested": [1]}},
    {"states": {"default": {"status": 7, "log": ["not", "text"], "outputFiles": "nope"}}},
])
def test_odd_shapes_never_crash_the_parser(entry: object) -> None:
    job = Job.from_api("x", entry)
    assert isinstance(job.log, str) and isinstance(job.state, JobState)


def test_other_state_keys_and_vm_status_fallback() -> None:
    assert Job.from_api("x", {"states": {"other": {"status": "done"}}}).state is JobState.COMPLETED
    assert Job.from_api("x", {"vmStatus": "queued", "states": {}}).state is JobState.QUEUED
    assert Job.from_api("x", {"vmStatus": "queued", "extra": 1}).extra == {"extra": 1}


# -- batching ---------------------------------------------------------------

def test_ids_are_chunked_by_count_and_url_length() -> None:
    ids = [f"{i:032x}" for i in range(250)]
    assert [len(c) for c in chunk_ids(ids)] == [100, 100, 50]
    long_ids = ["x" * 200 for _ in range(50)]
    for chunk in chunk_ids(long_ids, base_len=len(BASE)):
        assert len(BASE) + len("/jobs/") + len(",".join(chunk)) < 4096
    assert sum(len(c) for c in chunk_ids(long_ids)) == 50


async def test_status_of_250_ids_takes_three_gets_and_skips_unknown_ids() -> None:
    fake = FakeJobsAPI()
    async with make_client(fake) as client:
        ids = await client.submit_many(["p"] * 250, "m")
        jobs = await client.status(ids + ["0" * 32])
    assert len(fake.gets()) == 3
    assert set(jobs) == set(ids)


async def test_status_of_only_unknown_ids_is_empty_not_an_error() -> None:
    fake = FakeJobsAPI()
    async with make_client(fake) as client:
        assert await client.status(["f" * 32]) == {}


# -- errors -----------------------------------------------------------------

async def test_success_false_carries_the_server_message() -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.Response(400, json={"success": False, "error": "Invalid input format"}))
    async with make_client(fake) as client:
        with pytest.raises(APIError, match="Invalid input format"):
            await client.submit("p", "m")


@pytest.mark.parametrize("code", [401, 403])
async def test_auth_errors_name_the_env_var_and_never_the_token(code: int) -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.Response(code, json={"success": False, "error": f"bad token {SECRET}"}))
    async with make_client(fake) as client:
        with pytest.raises(AuthError) as info:
            await client.submit("p", "m")
    assert "GRIDLLM_API_TOKEN" in str(info.value) and SECRET not in str(info.value)
    assert "\n" not in str(info.value)


async def test_token_never_shows_in_repr_errors_or_tracebacks() -> None:
    fake = FakeJobsAPI()
    fake.inject(
        httpx.Response(400, json={"success": False, "error": f"token {SECRET} is not allowed"}),
        httpx.ConnectError(f"refused while sending {SECRET}"),
    )
    client = make_client(fake, retry=RetryPolicy(budget=0))
    assert fake.token is None
    assert SECRET not in repr(client) and SECRET not in repr(client.endpoint) and SECRET not in str(client.endpoint)
    messages = []
    for _ in range(2):
        with pytest.raises(GridLLMError) as info:
            await client.submit("p", "m")
        messages.append(str(info.value) + repr(info.value) + "".join(map(str, info.value.args)))
    assert all(SECRET not in m for m in messages)
    assert fake.posts()[0].headers["Authorization"] == f"Bearer {SECRET}"
    await client.aclose()


async def test_non_json_answer_is_a_protocol_error() -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.Response(200, text="<html>maintenance</html>"))
    async with make_client(fake, retry=RetryPolicy(budget=0)) as client:
        with pytest.raises(ProtocolError, match="non-JSON"):
            await client.submit("p", "m")


async def test_accepted_without_ids_is_a_protocol_error() -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.Response(200, json={"success": True}))
    async with make_client(fake) as client:
        with pytest.raises(ProtocolError):
            await client.submit("p", "m")


async def test_cancel_and_models_are_feature_detected() -> None:
    fake = FakeJobsAPI()  # like the real grid: neither endpoint
    async with make_client(fake) as client:
        with pytest.raises(NotSupported):
            await client.models()
        with pytest.raises(NotSupported):
            await client.cancel(["a" * 32])
        assert await client.supports("models") is False
    fake = FakeJobsAPI(models=["smollm2:135m"], cancel_supported=True)
    async with make_client(fake) as client:
        assert [m["tag"] for m in await client.models()] == ["smollm2:135m"]
        job_id = await client.submit("p", "smollm2:135m")
        assert await client.cancel([job_id]) == [job_id]
        assert await client.supports("models") is True


# -- retries: what may repeat, and how long we wait ------------------------

async def test_post_is_not_repeated_when_the_request_may_have_arrived() -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.ReadTimeout("no answer"))
    async with make_client(fake) as client:
        with pytest.raises(TransportError, match="timed out"):
            await client.submit("p", "m")
    assert len(fake.posts()) == 1 and fake.jobs == {}


@pytest.mark.parametrize("code", [500, 502])
async def test_post_is_not_repeated_after_a_server_error(code: int) -> None:
    fake = FakeJobsAPI()
    fake.inject(httpx.Response(code, json={"success": False, "error": "boom"}))
    async with make_client(fake) as client:
        with pytest.raises(APIError):
            await client.submit("p", "m")
    assert len(fake.posts()) == 1


async def test_post_is_retried_when_nothing_was_sent_or_the_server_said_later() -> None:
    fake, clock = FakeJobsAPI(), FakeClock()
    fake.inject(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"success": False, "error": "busy"}),
        httpx.Response(429, headers={"Retry-After": "7"}, json={"success": False, "error": "slow down"}),
    )
    async with make_client(fake, clock) as client:
        job_id = await client.submit("p", "m")
    assert len(fake.posts()) == 4 and list(fake.jobs) == [job_id]
    assert clock.sleeps[-1] == 7.0  # Retry-After honoured exactly


async def test_backoff_is_exponential_with_jitter_and_bounded_by_the_budget() -> None:
    fake, clock = FakeJobsAPI(), FakeClock()
    fake.inject(*[httpx.Response(502, text="bad gateway") for _ in range(100)])
    policy = RetryPolicy(budget=60, initial=0.5, maximum=8)
    async with make_client(fake, clock, retry=policy) as client:
        with pytest.raises(APIError, match="502"):
            await client.status(["a" * 32])
    sleeps = clock.sleeps
    for n, delay in enumerate(sleeps[:5], start=1):
        ceiling = min(8, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(sleeps) <= 8
    assert sum(sleeps) == pytest.approx(60)  # stopped when the budget ran out, not before


async def test_rate_limit_outliving_the_budget_raises_rate_limited() -> None:
    fake, clock = FakeJobsAPI(), FakeClock()
    fake.inject(*[httpx.Response(429, headers={"Retry-After": "5"}) for _ in range(20)])
    async with make_client(fake, clock, retry=RetryPolicy(budget=12)) as client:
        with pytest.raises(RateLimited) as info:
            await client.submit("p", "m")
    assert info.value.retry_after == 5
    assert clock.sleeps == [5.0, 5.0, 2.0]


async def test_reads_survive_transient_faults() -> None:
    fake, clock = FakeJobsAPI(), FakeClock()
    async with make_client(fake, clock) as client:
        job_id = await client.submit("p", "m")
        fake.inject(
            httpx.ReadError("reset by peer"),
            httpx.Response(200, content=b'{"success": true, "jobs": {'),  # truncated
            httpx.Response(200, json={"success": False, "error": "try again"}),
            httpx.Response(500, text="oops"),
        )
        jobs = await client.status([job_id])
    assert job_id in jobs and len(clock.sleeps) == 4


def test_a_password_in_the_url_is_masked_in_every_message() -> None:
    import asyncio

    import httpx

    from gridllm_nb.api.client import JobsClient
    from gridllm_nb.errors import TransportError

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"connection refused for {request.url}", request=request)

    async def go() -> str:
        client = JobsClient("https://bob:hunter2@grid.example/api", transport=httpx.MockTransport(refuse))
        assert "hunter2" not in repr(client)
        try:
            await client.status(["a" * 32])
        except TransportError as exc:
            return str(exc)
        finally:
            await client.aclose()
        return ""

    message = asyncio.run(go())
    assert message and "hunter2" not in message and "bob:***@grid.example" in message


# -- the status path at scale: orjson where installed, URLs prepared once per batch shape ---------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON, st.booleans())
@settings(max_examples=150, deadline=None)
def test_orjson_and_the_stdlib_decode_every_answer_alike(value: object, ascii_only: bool) -> None:
    pytest.importorskip("orjson")
    from gridllm_nb import client as client_module

    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert client_module._orjson is not None
    assert repr(client_module.loads_json(body)) == repr(json.loads(body))  # repr: 2**64 and 2.0**64 differ


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 123456789012345678901234567890}',  # past 64 bits: orjson would make a float
        b'[18446744073709551616, -9223372036854775809]',
        b'{"id": "x12345678901234567890123", "n":\n -99999999999999999999}',
        b'{"x": NaN, "y": Infinity}',
        b'{"s": "\\ud800 lone surrogate"}',
        '\ufeff{"bom": 1}'.encode(),
        '{"utf16": "é"}'.encode("utf-16"),
        b'{"dup": 1, "dup": 2}',
        b'{"f": 0.1, "e": 1e400}',
    ],
)
def test_answers_orjson_refuses_decode_as_the_stdlib_decodes_them(body: bytes) -> None:
    from gridllm_nb.api.client import loads_json

    assert repr(loads_json(body)) == repr(json.loads(body))


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a": ', b"\xff\xfe\x00"])
def test_bodies_neither_decoder_takes_raise_value_error(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridllm_nb import client as client_module

    with pytest.raises(ValueError):
        client_module.loads_json(body)
    monkeypatch.setattr(client_module, "_orjson", None)
    with pytest.raises(ValueError):
        client_module.loads_json(body)


async def test_status_urls_are_built_once_per_batch_shape_and_rebuilt_when_the_ids_change() -> None:
    fake = FakeJobsAPI()
    client = make_client(fake)
    ids = await client.submit_many(["p"] * 150, "m")
    await client.status(ids, retry=False)
    await client.status(ids, retry=False)
    assert client.urls_built == 2  # 100 + 50 ids, parsed once, asked twice
    await client.status(ids[:100], retry=False)
    assert client.urls_built == 2  # the same first batch
    await client.status(ids[:120], retry=False)
    assert client.urls_built == 3  # a new second batch: ids 100..119
    gets = [r for r in fake.requests if r.method == "GET"]
    assert [len(r.url.path.rsplit("/", 1)[1].split(",")) for r in gets] == [100, 50, 100, 50, 100, 100, 20]
    assert all(r.url == httpx.URL(f"{BASE}/jobs/" + r.url.path.rsplit("/", 1)[1]) for r in gets)
    await client.aclose()


async def test_a_prepared_url_is_the_url_httpx_makes_of_the_same_text() -> None:
    """Odd ids (from a service) go through the same httpx parser as before, once per shape."""
    fake = FakeJobsAPI()
    client = make_client(fake)
    odd = ["a b", "ü", "x%41", "semi;colon"]
    text, url = client._jobs_url(tuple(odd))
    assert text == f"{BASE}/jobs/" + ",".join(odd)
    assert url == httpx.URL(text)
    assert client._jobs_url(tuple(odd))[1] is url
    await client.status(odd, retry=False)
    assert fake.requests[-1].url == httpx.URL(text)
    await client.aclose()


async def test_the_url_cache_stays_bounded() -> None:
    from gridllm_nb.api.client import _URL_CACHE_SIZE

    client = make_client(FakeJobsAPI())
    for i in range(3 * _URL_CACHE_SIZE):
        client._jobs_url((f"{i:032x}",))
    assert len(client._urls) == _URL_CACHE_SIZE
    await client.aclose()


async def test_a_thousand_submits_at_once_keep_at_most_max_in_flight_requests_on_the_wire() -> None:
    """A grid submits every job of a wave at once; the client sends them a few at a time, in order
    of asking (httpcore's own queue would cost O(waiting x connections) per event)."""
    import asyncio

    from gridllm_nb.api.client import MAX_IN_FLIGHT

    api = FakeJobsAPI()
    on_wire, most = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal on_wire, most
        on_wire += 1
        most = max(most, on_wire)
        await asyncio.sleep(0)  # let every other submit try to get on the wire meanwhile
        await asyncio.sleep(0)
        on_wire -= 1
        return api.handle(request)

    async with JobsClient(BASE, transport=httpx.MockTransport(handler)) as client:
        ids = await asyncio.gather(*(client.submit(f"p{i}", "m") for i in range(200)))
    assert len(set(ids)) == 200 and len(api.posts()) == 200
    assert 1 < most <= MAX_IN_FLIGHT
