"""Batched poller vs a naive one-GET-per-job poller, side by side in one run.

A loopback server (benchmarks/streamserver.py, its own process) streams
deterministic text: word k of a job appears at created + k * 0.25 s. For
N = 1, 10, 100, 1000 jobs we follow every job to completion twice, with our
poller and with a naive loop, and report GETs per tick, total GETs, the
poller's CPU per tick and the update latency (server-side change to
client-side update).

It also runs today's poller (on a server with only GET, on one that offers
the local service's bulk status extension, and on one that also offers its
watch stream) next to the baseline (the hot path as of commit c63c32a, copied
below: stdlib ``json``, an httpx URL parse per GET, a Job built per changed
answer, the batches planned on every tick) on the same server code in the
same run, taking turns, and prints CPU per round (a poll tick, or one line of
the stream: reading, decoding and applying it; median over rounds, then the
median of ``--repeats`` runs), with the bare httpx requests of the same
batches at the same cadence as the floor of a poll.

    python benchmarks/poller.py [--sizes 1,10,100,1000] [--compare 10,100,1000] [--repeats 3]
    python benchmarks/poller.py --sizes '' --compare 10,100,1000     # only the old/new table
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from gridllm_nb.api.client import JobsClient
from gridllm_nb.api.jobs import Job, JobState, JobUpdate, state_from_raw
from gridllm_nb.api.poller import Feed, Poller, PollSettings
from gridllm_nb.api.retry import Retryable as _Retryable
from gridllm_nb.api.retry import retry_after as _retry_after
from gridllm_nb.api.wire import chunk_ids
from gridllm_nb.config import TOKEN_ENV
from gridllm_nb.errors import (
    APIError,
    AuthError,
    NotSupported,
    ProtocolError,
    RateLimited,
    ServiceUnreachable,
    TransportError,
)
from gridllm_nb.service.launcher import free_port

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from streamserver import STEP

INTERVAL = 0.3


class Server:
    def __init__(self, bulk: bool = False, watch: bool = False) -> None:
        self.bulk = bulk  # offer POST /jobs/status (the local service's extension) or only GETs
        self.watch = watch  # and POST /jobs/watch (its stream of changes)

    def __enter__(self) -> str:
        port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(HERE / "streamserver.py"), str(port)]
                                     + ([] if self.bulk else ["--no-bulk"]) + (["--watch"] if self.watch else []))
        url = f"http://127.0.0.1:{port}/remotejobs/v2"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/jobs/x", timeout=1)
                return url
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("stream server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def submit(client: JobsClient, n: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 100):
        ids += await client.submit_many(["p"] * min(100, n - start), "bench")
    return ids


def latency(job_extra: dict, text: str, received: float) -> float | None:
    k = len(text.split())
    created = job_extra.get("created_ts")
    return None if not k or created is None else received - (created + k * STEP)


class StreamTimedClient(JobsClient):
    """JobsClient whose watch stream records the CPU of each line: reading it, decoding it, and the
    poller applying it (what a tick is for a poll), not the readers woken by the line before."""

    cpu: list[float]

    async def watch(self, ids: Any, known: Any, *, every: float = 0.3) -> Any:
        inner = super().watch(ids, known, every=every)
        try:
            while True:
                for _ in range(3):
                    await asyncio.sleep(0)  # the readers of the last line run now, outside the count
                before = time.process_time()
                try:
                    line = await inner.__anext__()
                except StopAsyncIteration:
                    return
                yield line  # the poller applies it, then asks for the next one
                self.cpu.append(time.process_time() - before)
        finally:
            await inner.aclose()


# -- the baseline: the status path and the tick as of commit c63c32a, verbatim ----------------


class BaselineClient(JobsClient):
    """JobsClient with the status path of c63c32a (stdlib json, a URL parse per GET, tenacity per call)."""

    async def status_entries(self, ids: Iterable[str], *, retry: bool = True) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in chunk_ids(list(dict.fromkeys(ids)), base_len=len(self.base_url)):
            try:
                data = await self._call("GET", "jobs/" + ",".join(chunk), retry=retry)
            except APIError as exc:
                if exc.status_code == 404:
                    continue  # none of these ids is known
                raise
            jobs = data.get("jobs")
            if jobs is None:
                jobs = {}
            if not isinstance(jobs, dict):
                raise ProtocolError("the status answer has no 'jobs' object")
            wanted = set(chunk)
            found.update((jid, entry) for jid, entry in jobs.items() if jid in wanted)
        return found

    async def _call(self, method: str, path: str, *, json_body: dict[str, Any] | None = None,
                    retry: bool = True, feature: str | None = None, url: Any = None) -> dict[str, Any]:
        start = self.clock.monotonic()
        policy = self.retry
        is_post = method == "POST"

        def should_retry(exc: BaseException) -> bool:
            return retry and isinstance(exc, _Retryable) and (exc.safe_for_post or not is_post)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            remaining = max(0.0, policy.budget - (self.clock.monotonic() - start))
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                return min(exc.retry_after, remaining)
            return min(policy.backoff(state.attempt_number), remaining)

        def stop(state: RetryCallState) -> bool:
            elapsed = self.clock.monotonic() - start
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Retryable) and exc.connect:
                return elapsed >= min(policy.connect_budget, policy.budget)
            return elapsed >= policy.budget

        try:
            async for attempt in AsyncRetrying(retry=retry_if_exception(should_retry), wait=wait, stop=stop,
                                               sleep=self.clock.sleep, reraise=True):
                with attempt:
                    return await self._once(method, path, json_body, feature)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, json_body: dict[str, Any] | None, feature: str | None,
                    prepared: Any = None) -> dict[str, Any]:
        url = f"{self.base_url}/{path}"
        try:
            if isinstance(json_body, bytes):  # a submit's body, encoded by today's client (the baseline's path is GETs)
                response = await self._http.request(method, url, content=json_body,
                                                    headers={"Content-Type": "application/json"})
            else:
                response = await self._http.request(method, url, json=json_body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Retryable(ServiceUnreachable(self._scrub(f"cannot reach {self.base_url}: {exc}")),
                             safe_for_post=True, connect=True) from None
        except httpx.TimeoutException:
            raise _Retryable(TransportError(self._scrub(f"{method} {url} timed out")), safe_for_post=False) from None
        except httpx.HTTPError as exc:
            raise _Retryable(TransportError(self._scrub(f"{method} {url} failed: {exc or type(exc).__name__}")),
                             safe_for_post=False) from None
        self._revive_tried = False
        return self._parse(method, url, response, feature)

    def _parse(self, method: str, url: str, response: httpx.Response, feature: str | None) -> dict[str, Any]:
        code = response.status_code
        if code in (401, 403):
            hint = f"set {TOKEN_ENV}" if not self.endpoint.token else f"check the token in {TOKEN_ENV}"
            raise AuthError(f"the service refused the request ({code}): {hint}")
        if code == 429:
            after = _retry_after(response)
            raise _Retryable(RateLimited(f"rate limited by {self.base_url} (429)", retry_after=after),
                             safe_for_post=True, retry_after=after)
        if feature and code in (404, 405, 501):
            try:
                body = response.json()
            except ValueError:
                body = None
            if not (isinstance(body, dict) and "success" in body and code == 404 and feature == "cancel"):
                self._features[feature] = False
                raise NotSupported(f"{self.base_url} does not offer '{feature}'")
        try:
            data = response.json()
        except ValueError:
            error = ProtocolError(f"{method} {url} answered {code} with non-JSON text")
            if code >= 500:
                raise _Retryable(APIError(f"server error {code} from {url}", status_code=code),
                                 safe_for_post=code == 503) from None
            raise _Retryable(error, safe_for_post=False) from None
        if not isinstance(data, dict):
            raise _Retryable(ProtocolError(f"{method} {url} answered JSON that is not an object"),
                             safe_for_post=False)
        if code >= 500:
            message = data.get("error") or f"server error {code}"
            raise _Retryable(APIError(f"{self._scrub(message)} ({code})", status_code=code),
                             safe_for_post=code == 503, retry_after=_retry_after(response))
        if data.get("success") is False or code >= 400:
            message = data.get("error") or data.get("message") or f"request failed ({code})"
            error = APIError(self._scrub(str(message)), status_code=code)
            if code == 200:
                raise _Retryable(error, safe_for_post=False)
            raise error
        if feature:
            self._features[feature] = True
        return data


class BaselineFeed(Feed):
    """Feed with c63c32a's emit/compare/apply: a Job built for every changed answer."""

    job = None  # a plain attribute again (shadows the lazy property)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: asyncio.Queue[JobUpdate | None] = asyncio.Queue()  # c63c32a's queue per watch

    def _put(self, update: JobUpdate | None) -> None:
        self._queue.put_nowait(update)

    async def __anext__(self) -> JobUpdate:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        update = await self._queue.get()
        if update is None:
            raise StopAsyncIteration
        return update

    def _emit(self, now: float, *, delta: str = "", reset: bool = False) -> None:
        self._put(
            JobUpdate(
                tag=self.tag, job_id=self.job_id, state=self.state, text=self.text, delta=delta, reset=reset,
                error=self.error or (None if self.state.terminal else self.notice),
                elapsed=now - self.started, raw_status=self.raw_status,
                finish=self.job.finish if self.job is not None and self.state.terminal else None,
                tokens=self.job.tokens if self.job is not None and self.state.terminal else None,
            )
        )
        if self.state.terminal:
            self.close()

    def _unchanged(self, entry: Any) -> bool:
        try:
            inner = entry["states"]["default"]
            status = inner.get("status") or entry.get("vmStatus") or ""
            return inner.get("log") == self.text and status == self.raw_status and self.job is not None
        except (KeyError, TypeError, AttributeError):
            return False

    def _apply(self, job: Job, now: float) -> bool:
        self.job = job
        self.missing = 0
        state = state_from_raw(job.raw_status, self.state)
        log = job.log
        reset = False
        if log == self.text:
            delta = ""
        elif log.startswith(self.text):
            delta = log[len(self.text):]
        else:
            delta, reset = log, True
        changed = bool(delta) or reset
        if not changed and state is self.state and job.raw_status == self.raw_status:
            return False
        self.text = log
        self.raw_status = job.raw_status
        if state is JobState.FAILED and not self.error:
            self.error = job.message or f"the job ended with status '{job.raw_status}'"
            if self.outage:
                self.error += f" ({self.outage})"
        if state is JobState.CANCELLED and not self.error:
            self.error = job.message or "cancelled"
        self.state = state
        self._emit(now, delta=delta, reset=reset)
        return changed


class BaselinePoller(Poller):
    """Poller with c63c32a's tick: groups and chunks every live job on every tick."""

    def follow(self, client: JobsClient, job_id: str, *, tag: str = "", hours: float | None = None,
              started: float | None = None) -> Feed:
        now = self.clock.monotonic()
        started = now if started is None else started
        limit = 1.0 if hours is None else hours
        deadline = started + limit * 3600 + self.settings.grace
        key = (id(client), job_id)
        existing = self._watches.get(key)
        if existing is not None and not existing.done:
            existing.close()
        w = BaselineFeed(self._forget, client, job_id, tag=tag, started=started, deadline=deadline)
        self._watches[key] = w
        self.interval = self.settings.fast
        self._wake()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="gridllm-poller")
        return w

    async def tick(self) -> float:
        self.ticks += 1
        groups: dict[int, list[Feed]] = defaultdict(list)
        clients: dict[int, JobsClient] = {}
        for w in list(self._watches.values()):
            groups[id(w.client)].append(w)
            clients[id(w.client)] = w.client
        batches: list[tuple[JobsClient, list[Feed]]] = []
        for key, watches in groups.items():
            client = clients[key]
            by_id = {w.job_id: w for w in watches}
            for chunk in chunk_ids(list(by_id), base_len=len(client.base_url)):
                batches.append((client, [by_id[i] for i in chunk]))
        self.gets += len(batches)
        answers = await asyncio.gather(
            *(client.status_entries([w.job_id for w in ws], retry=False) for client, ws in batches),
            return_exceptions=True,
        )
        now = self.clock.monotonic()
        changed = False
        wait_at_least = 0.0
        failed = False
        for (client, watches), answer in zip(batches, answers):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                failed = True
                if isinstance(answer, RateLimited) and answer.retry_after:
                    wait_at_least = max(wait_at_least, answer.retry_after)
                self._on_failure(watches, answer, now)
                continue
            for w in watches:
                if w.done:
                    continue
                w.failing_since = None
                if w.notice is not None:
                    w.notice = None
                    w._emit(now)
                entry = answer.get(w.job_id)
                if entry is None:
                    w.missing += 1
                    if w.missing >= self.settings.lost_after:
                        w._end(JobState.LOST, f"the service no longer knows job {w.job_id}", now)
                        changed = True
                    continue
                if w.missing == 0 and w._unchanged(entry):
                    continue
                changed |= w._apply(Job.from_api(w.job_id, entry, w.state), now)
        for w in list(self._watches.values()):
            if not w.done and w.deadline is not None and now > w.deadline:
                w._end(JobState.TIMED_OUT, "no result within the job's hours limit", now)
        if failed:
            self._failures += 1
            delay = max(wait_at_least, self.settings.backoff.backoff(self._failures))
            self.interval = self.settings.fast
            return delay
        self._failures = 0
        if changed:
            self.interval = self.settings.fast
        else:
            self.interval = min(self.settings.slow, self.interval * self.settings.factor)
        return self.interval


IMPLEMENTATIONS = {"old": (BaselineClient, BaselinePoller), "new": (StreamTimedClient, Poller)}


async def ours(url: str, n: int, impl: str = "new") -> dict:
    client_class, poller_class = IMPLEMENTATIONS[impl]
    async with client_class(url, timeout=60) as client:
        poller = poller_class(PollSettings(fast=INTERVAL, slow=5.0))
        ids = await submit(client, n)
        async with JobsClient(url, timeout=60) as plain:  # each job's start, for the latency (not timed)
            created = {i: e["created_ts"] for i, e in (await plain.status_entries(ids)).items()}
        cpu: list[float] = []
        client.cpu = streamed = []
        real_tick = poller.tick

        async def timed_tick() -> float:
            before = time.process_time()
            delay = await real_tick()
            cpu.append(time.process_time() - before)
            return delay

        poller.tick = timed_tick  # type: ignore[method-assign]
        lat: list[float] = []
        start = time.perf_counter()

        async def follow(job_id: str) -> None:
            watch = poller.follow(client, job_id, tag="bench")
            extra = {"created_ts": created[job_id]}
            async for update in watch:
                if update.delta:
                    value = latency(extra, update.text, time.time())
                    if value is not None:
                        lat.append(value)
            assert watch.state is JobState.COMPLETED

        await asyncio.gather(*(follow(i) for i in ids))
        rounds = streamed or cpu  # a stream's lines, or the poll ticks
        return {"gets": poller.gets, "ticks": poller.ticks, "wall": time.perf_counter() - start,
                "lines": len(streamed), "rounds": len(rounds),
                "cpu_tick_ms": 1000 * statistics.median(rounds), "lat": lat}


async def naive(url: str, n: int) -> dict:
    async with JobsClient(url, timeout=60) as client:
        ids = await submit(client, n)
        gets = 0
        lat: list[float] = []
        start = time.perf_counter()

        async def follow(job_id: str) -> None:
            nonlocal gets
            text = ""
            while True:
                gets += 1
                job = (await client.status([job_id], retry=False))[job_id]
                if job.log != text:
                    value = latency(job.extra, job.log, time.time())
                    if value is not None:
                        lat.append(value)
                    text = job.log
                if job.state.terminal:
                    return
                await asyncio.sleep(INTERVAL)

        await asyncio.gather(*(follow(i) for i in ids))
        return {"gets": gets, "wall": time.perf_counter() - start, "lat": lat}


async def floor(url: str, n: int, ticks: int = 15) -> float:
    """CPU per tick of only the GETs: bare httpx, the same batches and cadence, no decoding (median, ms)."""
    async with JobsClient(url, timeout=60) as client, httpx.AsyncClient(timeout=60) as http:
        ids = await submit(client, n)
        urls = [httpx.URL(f"{url}/jobs/" + ",".join(chunk)) for chunk in chunk_ids(ids, base_len=len(url))]
        cpu: list[float] = []
        for _ in range(ticks):
            before = time.process_time()
            await asyncio.gather(*(http.get(u) for u in urls))
            cpu.append(time.process_time() - before)
            await asyncio.sleep(INTERVAL)
        return 1000 * statistics.median(cpu)


async def floor_bulk(url: str, n: int, ticks: int = 15) -> float:
    """CPU per tick of only the bulk requests: bare httpx POSTs of the same body, no decoding (median, ms)."""
    async with JobsClient(url, timeout=60) as client, httpx.AsyncClient(timeout=60) as http:
        ids = await submit(client, n)
        cpu: list[float] = []
        for _ in range(ticks):
            body = {"ids": ids, "logFrom": {i: 40 for i in ids}}
            before = time.process_time()
            await http.post(f"{url}/jobs/status", json=body)
            cpu.append(time.process_time() - before)
            await asyncio.sleep(INTERVAL)
        return 1000 * statistics.median(cpu)


# poller, what the server offers: GETs only, the bulk status request, or that and the watch stream
MODES = {"old": ("old", "GETs"), "GETs": ("new", "GETs"), "bulk": ("new", "bulk"), "stream": ("new", "watch")}


def compare(sizes: list[int], repeats: int) -> None:
    """The c63c32a poller, today's with GETs only, and today's with the bulk extension, in this one run.

    Two servers per size, the same but for the bulk route; the three take turns.
    """
    rows = []
    for n in sizes:
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        with Server() as get_url, Server(bulk=True) as bulk_url, Server(bulk=True, watch=True) as watch_url:
            urls = {"GETs": get_url, "bulk": bulk_url, "watch": watch_url}
            for r in range(repeats):
                order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
                for mode in order:
                    impl, offer = MODES[mode]
                    result = asyncio.run(ours(urls[offer], n, impl))
                    assert (result["lines"] > 0) == (mode == "stream"), (mode, result["lines"])
                    runs[mode].append(result)
            bare = asyncio.run(floor(get_url, n))
            bare_bulk = asyncio.run(floor_bulk(bulk_url, n))
        cpu = {mode: statistics.median(a["cpu_tick_ms"] for a in v) for mode, v in runs.items()}
        lat = {mode: statistics.median(pct(a["lat"], .5) for a in v) for mode, v in runs.items()}
        rows.append((n, cpu, bare, bare_bulk, lat))
        print(f"N={n}: " + ", ".join(f"{mode} {[round(a['cpu_tick_ms'], 2) for a in v]}" for mode, v in runs.items())
              + f" ms/tick; bare GETs {bare:.2f}, bare bulk POST {bare_bulk:.2f}", file=sys.stderr)
    print(f"\nCPU per round (process time, median over rounds, then median of {repeats} runs); a round is "
          "a poll tick, or a line of the watch stream (reading it, decoding it, applying it). old = c63c32a; "
          "GETs = today's poller where the service has only GET; bulk = where it offers POST /jobs/status; "
          "stream = where it also offers POST /jobs/watch:\n")
    print("| jobs N | old | today, GETs | today, bulk | today, stream | old / stream | bare httpx GETs "
          "| bare bulk POST | latency p50 old / GETs / bulk / stream |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, cpu, bare, bare_bulk, lat in rows:
        print(f"| {n} | {cpu['old']:.2f} ms | {cpu['GETs']:.2f} ms | {cpu['bulk']:.2f} ms "
              f"| **{cpu['stream']:.2f} ms** | {cpu['old'] / cpu['stream']:.1f}x | {bare:.2f} ms "
              f"| {bare_bulk:.2f} ms | " + " / ".join(f"{1000 * lat[m]:.0f}" for m in MODES) + " ms |")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="ours vs naive ('' to skip)")
    parser.add_argument("--compare", default="10,100,1000", help="old vs new poller ('' to skip)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.compare:
        compare([int(x) for x in args.compare.split(",")], args.repeats)
    if not args.sizes:
        return
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        with Server() as url:
            a = asyncio.run(ours(url, n))
        with Server() as url:
            b = asyncio.run(naive(url, n))
        rows.append((n, a, b))
        print(f"N={n}: ours {a['gets']} GETs in {a['wall']:.1f}s, naive {b['gets']} GETs in {b['wall']:.1f}s",
              file=sys.stderr)
    print(f"\nPoll interval {INTERVAL}s while logs change; server adds a word every {STEP}s, 24 words per job.\n")
    print("| jobs N | GETs/tick (ours) | target ceil(N/100) | total GETs ours | total GETs naive | naive/ours "
          "| CPU/tick ours (ms) | latency ours p50 / p95 (ms) | latency naive p50 / p95 (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, a, b in rows:
        print(f"| {n} | {a['gets'] / a['ticks']:.2f} | {math.ceil(n / 100)} | {a['gets']} | {b['gets']} "
              f"| {b['gets'] / a['gets']:.0f}x | {a['cpu_tick_ms']:.1f} "
              f"| {1000 * pct(a['lat'], .5):.0f} / {1000 * pct(a['lat'], .95):.0f} "
              f"| {1000 * pct(b['lat'], .5):.0f} / {1000 * pct(b['lat'], .95):.0f} |")
    print(f"\nTargets: >= 50x fewer GETs than naive at N=100; <= 10 ms CPU per tick at N=1000; "
          f"median latency <= {1000 * (INTERVAL / 2 + 0.05):.0f} ms (half the interval + 50 ms).")


if __name__ == "__main__":
    main()
