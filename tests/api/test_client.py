"""JobsClient against a fake grid: encoding, parsing, errors, retries, secrecy."""

from __future__ import annotations

import json

import httpx
import pytest

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.retry import RetryPolicy
from gridllm_nb.errors import (
    APIError,
    AuthError,
    GridLLMError,
    NotSupported,
    ProtocolError,
    RateLimited,
    TransportError,
)

from ..fakes import FakeClock, FakeJobsAPI

pytestmark = pytest.mark.anyio

BASE = "https://grid.invalid/remotejobs/v2"
SECRET = "tok-3f9a-super-secret"


def make_client(fake: FakeJobsAPI, clock: FakeClock | None = None, **kw) -> JobsClient:
    return JobsClient(BASE, token=kw.pop("token", SECRET), transport=fake.transport(),
                      clock=clock or FakeClock(), **kw)


# -- commandLine encoding ---------------------------------------------------


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





# -- batching ---------------------------------------------------------------


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


# -- the status path at scale: URLs prepared once per batch shape ---------------



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
