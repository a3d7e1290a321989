"""run / arun: one prompt to several models, live updates, one Results.

This is the only place that turns "prompt x models" into jobs and answers;
the CLI, the ``%%gridllm`` magic and the panel are views over it.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..api.client import JobsClient
from ..config import Endpoint, Secret
from ..errors import (
    ConfigError,
    GridLLMError,
    NotSupported,
    ServiceUnreachable,
    TransportError,
    UnknownModel,
)
from ..api.jobs import JobState, JobUpdate
from ..api.poller import Poller, PollSettings, Watch, get_poller
from .results import Result, Results

if TYPE_CHECKING:
    from .history import RunRecorder

__all__ = ["LiveJobs", "RunSpec", "UpdateCallback", "aattach", "aretry", "arun", "attach", "check_models", "run",
           "run_sync"]

T = TypeVar("T")

UpdateCallback = Callable[[JobUpdate], Any]


def _normalise_models(models: Sequence[str] | str) -> list[str]:
    tags = [models] if isinstance(models, str) else list(models)
    tags = [t.strip() for t in tags if t and t.strip()]
    if not tags:
        raise ConfigError("no model given: name at least one, e.g. smollm2:135m")
    return list(dict.fromkeys(tags))


def suggest(tag: str, available: Sequence[str]) -> str | None:
    """The nearest known tag, for 'did you mean' hints."""
    close = difflib.get_close_matches(tag, list(available), n=1, cutoff=0.4)
    if close:
        return close[0]
    same_family = [a for a in available if a.split(":")[0] == tag.split(":")[0]]
    return same_family[0] if same_family else None


async def check_models(client: JobsClient, tags: Sequence[str]) -> dict[str, UnknownModel]:
    """The tags the service does not serve, each with a message listing the ones it does.

    Only possible where the service lists its models (a local extension);
    elsewhere the submit itself reports the problem per model.
    """
    try:
        listed = await client.models()
    except NotSupported:
        return {}
    except ServiceUnreachable as exc:
        # The default service answered a moment ago (``_ensure_service``): it died since. Once, start it again.
        before = await client.revive()
        if before is None:
            raise TransportError(await _unreachable(client, exc)) from None
        try:
            listed = await client.models()
        except TransportError as again:
            raise TransportError(f"{before}; started it again, but: {again}") from None
    except TransportError as exc:
        raise TransportError(await _unreachable(client, exc)) from None
    available = [str(m.get("tag")) for m in listed if m.get("tag")]
    unknown: dict[str, UnknownModel] = {}
    for tag in tags:
        if tag not in available:
            hint = suggest(tag, available)
            did_you_mean = f" (did you mean {hint}?)" if hint else ""
            unknown[tag] = UnknownModel(
                f"unknown model {tag!r}{did_you_mean}; available: {', '.join(available) or 'none'}",
                tag=tag,
                available=available,
            )
    return unknown


def default_poll_settings(endpoint: Endpoint, *, fast: float | None = None,
                          slow: float | None = None) -> PollSettings:
    """How often to poll ``endpoint``; ``fast`` / ``slow`` replace either end of the range.

    A service on this machine is polled briskly and almost steadily (a GET
    costs ~5 ms there, and a first token after a long queue should still
    show within a quarter second); a remote grid gently, backing off while
    nothing changes.
    """
    base = PollSettings(fast=0.1, slow=0.25) if endpoint.is_local else PollSettings()
    fast = base.fast if fast is None else max(0.05, float(fast))
    slow = base.slow if slow is None else float(slow)
    return replace(base, fast=fast, slow=max(fast, slow))


async def _unreachable(client: JobsClient, exc: TransportError) -> str:
    """Why nothing answers, in words that fit the endpoint.

    A service this user started in the background (the default endpoint, or
    a loopback URL with a state file) is described by what happened to its
    process and its log; anywhere else it is "cannot reach X" with advice
    for a URL someone chose.
    """
    if client.endpoint.is_local:
        from ..service.launcher import diagnose

        what = await asyncio.to_thread(diagnose, client.base_url)
        if what:
            advice = "stop it with `gridllm-nb local stop`" if "does not answer" in what else "the next run starts it again"
            return f"{what}; {advice}"
        if client.endpoint.is_default:
            return f"{exc}; the local service is not running: `%gridllm local start` or `gridllm-nb serve` starts it"
    return f"{exc}; check the URL, the token and the network"


async def _ensure_service(client: JobsClient, announce: Callable[[str], None] | None) -> None:
    """The default endpoint is the embedded service: start it if nobody has."""
    if client.endpoint.is_default:
        from .commands import ensure_service

        await asyncio.to_thread(ensure_service, client.endpoint, announce)


@dataclass(frozen=True)
class RunSpec:
    """What made a run, kept on its ``Results`` so ``retry`` asks again exactly the same way.

    The prompt and what went with it (system prompt, options, hours) and the
    endpoint: the URL as given (None: the configured one) with its token, a
    ``Secret`` that no repr shows, or the ``client`` that made the run while
    that client is still open. ``poll`` keeps the run's polling pace.
    """

    prompt: str
    system: str | None = None
    options: Mapping[str, Any] | None = field(default=None, hash=False)
    hours: float | None = None
    url: str | None = None
    token: Secret | None = field(default=None, repr=False)
    poll: PollSettings | None = field(default=None, repr=False)
    client: JobsClient | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A copy nobody can change: the caller's dict may be edited after the run.
        if self.options is not None:
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def open_client(self) -> tuple[JobsClient, bool]:
        """The run's own client while it is open, else a new one for the same endpoint; True: close it after."""
        if self.client is not None and not self.client.closed:
            return self.client, False
        return JobsClient(self.url, self.token), True


class LiveJobs:
    """Submit-then-follow for any number of (prompt, Result) pairs: the per-job half of arun and agrid.

    One client, the loop's one poller; every change goes through ``publish``
    (``Result.apply``, then ``on_change``), so a grid's job behaves exactly
    as a run's: the same SUBMITTED update, the same watch, the same end on a
    timeout or a cancel (``end_live``, text kept, then ``cancel`` on the service).
    """

    def __init__(self, client: JobsClient, poller: Poller, *, hours: float | None = None,
                 system: str | None = None, options: dict[str, Any] | None = None,
                 on_change: Callable[[Result, JobUpdate], Any] | None = None) -> None:
        self.client, self.poller = client, poller
        self.hours, self.system, self.options = hours, system, options
        self.on_change = on_change
        self.started = poller.clock.monotonic()
        self._since: dict[int, float] = {}  # id(result) -> when its job was submitted, if not at ``started``
        self._watches: set[Watch] = set()

    def publish(self, result: Result, update: JobUpdate) -> None:
        result.apply(update)
        if self.on_change is not None:
            self.on_change(result, update)

    def end(self, result: Result, state: JobState, error: str) -> None:
        """End a result that is still live (and only then): its text stays."""
        if result.state.terminal:
            return
        started = self._since.get(id(result), self.started)
        self.publish(result, JobUpdate(
            tag=result.tag, job_id=result.job_id, state=state, text=result.text, error=error,
            elapsed=self.poller.clock.monotonic() - started, raw_status=result.raw_status,
        ))

    async def follow(self, prompt: str, result: Result, *, own_clock: bool = False) -> None:
        """Submit one job and publish its updates until it ends; a refused submit fails only this result.

        ``elapsed`` counts from ``started`` (a run's models start together),
        or with ``own_clock`` from this job's submit (a grid's jobs start
        whenever a slot frees up).
        """
        clock = self.poller.clock
        started = self.started
        if own_clock:
            started = self._since[id(result)] = clock.monotonic()
        try:
            job_id = await self.client.submit(prompt, result.tag, hours=self.hours, system=self.system,
                                              options=self.options)
        except GridLLMError as exc:
            self.end(result, JobState.FAILED, str(exc))
            return
        self.publish(result, JobUpdate(tag=result.tag, job_id=job_id, state=JobState.SUBMITTED, text="",
                                       elapsed=clock.monotonic() - started))
        await self.track(result, started=started)

    async def track(self, result: Result, *, started: float | None = None) -> None:
        """Publish the updates of ``result``'s job (submitted already) until it ends.

        The first poll brings the job's whole log so far, so a job followed
        again after a kernel restart (``attach``) shows everything it said.
        """
        assert result.job_id, "track follows a submitted job"
        watch = self.poller.watch(self.client, result.job_id, tag=result.tag, hours=self.hours,
                                  started=self.started if started is None else started)
        self._watches.add(watch)
        try:
            async for update in watch:
                self.publish(result, update)
        finally:
            watch.close()
            self._watches.discard(watch)

    def end_live(self, results: Iterable[Result], state: JobState, error: str) -> list[str]:
        """End every result still live as ``state``, text kept; returns their job ids, for ``cancel``."""
        live = [r for r in results if not r.state.terminal]
        for r in live:
            self.end(r, state, error)
        return [r.job_id for r in live if r.job_id]

    async def cancel(self, job_ids: Sequence[str]) -> None:
        """Ask the service to cancel ``job_ids`` (best effort: the real grid has no cancel)."""
        await _cancel_quietly(self.client, job_ids)

    def close(self) -> None:
        """Stop following every job still watched (the run is over, or was cut short)."""
        for w in list(self._watches):
            w.close()
        self._watches.clear()


async def arun(
    prompt: str,
    models: Sequence[str] | str,
    *,
    url: str | None = None,
    token: str | Secret | None = None,
    client: JobsClient | None = None,
    hours: float | None = None,
    timeout: float | None = None,
    system: str | None = None,
    options: dict[str, Any] | None = None,
    on_update: UpdateCallback | None = None,
    poll: PollSettings | None = None,
    validate: bool = True,
    unknown: str = "raise",
    announce: Callable[[str], None] | None = print,
    history: bool = True,
    results: Results | None = None,
) -> Results:
    """Send ``prompt`` to every model at once and follow the jobs to the end.

    ``on_update`` receives every JobUpdate (delta, full text, state, reset).
    With ``validate``, tags the service does not list raise ``UnknownModel``
    before anything is submitted (``unknown="raise"``), or fail only their own
    result while the others run (``unknown="fail"``, as the panel wants).
    ``timeout`` bounds the whole run: jobs still going then end TIMED_OUT
    with their text kept. Cancelling the task (a kernel interrupt, the
    panel's Cancel) ends the live jobs CANCELLED, asks the service to cancel
    them where it can, and re-raises.

    With ``history`` the run goes into the local history as it goes (a row
    per model when its job is submitted, updated when it ends), so a kernel
    restart loses nothing the service still has (``attach``); its id is
    ``results.run_id``. ``results`` is the ``Results`` to fill (a front
    end's, on screen before the run starts); by default a new one. Either
    way it is returned, with ``spec`` set, so ``Results.retry`` can ask again.
    """
    tags = _normalise_models(models)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("empty prompt: write the prompt in the cell body or pass it as text")
    if client is not None:  # its endpoint is the run's, for a retry once it is closed
        url, token = (None if client.endpoint.is_default else client.endpoint.url), client.endpoint.token
    spec = RunSpec(prompt, system=system, options=options, hours=hours, url=url,
                   token=Secret.of(token),
                   poll=poll, client=client)
    results = results if results is not None else Results(prompt)
    for tag in tags:
        if tag not in results:
            results._set(Result(tag=tag))
    results.prompt, results.spec = prompt, spec
    results.started_at = datetime.now(timezone.utc)
    if history:
        from .history import new_run_id

        results.run_id = new_run_id()

    async def check(live: JobsClient) -> Mapping[str, GridLLMError]:
        return await ready(live, tags, announce=announce, validate=validate, unknown=unknown)

    return await _follow(results, tags, spec, client=client, on_update=on_update, timeout=timeout, check=check,
                         job=lambda jobs, result: jobs.follow(prompt, result), announce=announce,
                         record="new" if history else None)


async def aretry(results: Results, tags: Sequence[str] | None = None, *,
                 on_update: UpdateCallback | None = None, timeout: float | None = None,
                 announce: Callable[[str], None] | None = print) -> Results:
    """``Results.aretry``: submit ``tags`` again (default: every retryable one) as ``results.spec`` says.

    Only a model that ended without an answer is retried: asking for another
    one (completed, or still running) is a ``ConfigError``, as is retrying
    Results that carry no spec (made by hand, or read from the history
    without an endpoint). Every retried result first gets
    ``JobUpdate.restart`` (its card clears), then the updates of its new job.
    A run in the history (``results.run_id``) has its rows updated.
    """
    spec = results.spec
    if spec is None:
        raise ConfigError("these Results do not say how they were made (no spec): retry a run returned by "
                          "run/arun, or a history run with `gridllm-nb retry RUN` / `%gridllm retry RUN`")
    retryable = results.retryable
    chosen = list(dict.fromkeys(retryable if tags is None else ([tags] if isinstance(tags, str) else tags)))
    for tag in chosen:
        if tag not in results:
            raise ConfigError(f"no model {tag!r} in this run; its models: {', '.join(results)}")
        if tag not in retryable:
            raise ConfigError(f"{tag} {results[tag].state.label}: only a model that failed, was lost, "
                              f"cancelled or timed out is retried")
    if not chosen:
        return results

    async def check(live: JobsClient) -> Mapping[str, GridLLMError]:
        # The models were checked when the run started; one the service dropped since fails alone.
        return await ready(live, chosen, announce=announce, validate=True, unknown="fail")

    return await _follow(results, chosen, spec, client=None, on_update=on_update, timeout=timeout,
                         check=check, job=lambda jobs, result: jobs.follow(spec.prompt, result), restart=True,
                         announce=announce, record="stored" if results.run_id else None)


async def aattach(
    run: str | Sequence[str] | Results | None = None,
    *,
    url: str | None = None,
    token: str | Secret | None = None,
    on_update: UpdateCallback | None = None,
    timeout: float | None = None,
    poll: PollSettings | None = None,
    announce: Callable[[str], None] | None = print,
) -> Results:
    """Follow a run's jobs again, as they are now (after a kernel restart, say): live ``Results``.

    ``run`` is a history run id (or a unique start of one; None: the newest
    run), a list of job ids, or ``Results`` read from the history
    (``history.load_run``). Jobs already ended in the history are shown as
    stored; every other one is followed from its whole log so far, and its
    row updated when it ends. A job the service no longer knows ends LOST.
    ``url`` replaces the URL stored with the run, ``token`` the configured
    token. ``on_update`` first gets every model as it stands, then the live
    updates; the Results can be retried like a run's.
    """
    from .history import load_run

    secret = Secret.of(token)
    if isinstance(run, Results):
        results = run
    elif run is None or isinstance(run, str):
        results = load_run(run)
    else:
        return await _attach_jobs(list(run), url=url, token=secret, on_update=on_update, timeout=timeout,
                                  poll=poll, announce=announce)
    if results.spec is None:
        raise ConfigError("these Results say nowhere where their jobs run (no spec): attach a history run id")
    changes = {k: v for k, v in (("url", url), ("token", secret), ("poll", poll)) if v is not None}
    results.spec = replace(results.spec, client=None, **changes)
    return await _follow_again(results, on_update=on_update, timeout=timeout, announce=announce)


async def _attach_jobs(ids: Sequence[str], *, url: str | None, token: Secret | None, on_update: UpdateCallback | None,
                       timeout: float | None, poll: PollSettings | None,
                       announce: Callable[[str], None] | None) -> Results:
    """``aattach`` of bare job ids: their tags and prompt come from the service (none of it is in the history)."""
    ids = list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))
    if not ids:
        raise ConfigError("no job id given: name a history run or at least one job id")
    client, own = RunSpec("", url=url, token=token).open_client()
    try:
        await _ensure_service(client, announce)
        try:
            jobs = await client.status(ids)
        except TransportError as exc:
            raise TransportError(await _unreachable(client, exc)) from None
        results = Results()
        asked: set[tuple[str, str | None, str | None]] = set()
        for job_id in ids:
            job = jobs.get(job_id)
            tag = (job.tag if job is not None and job.tag else "") or f"job {job_id[:8]}"
            if tag in results:
                tag = f"{tag} ({job_id[:8]})"
            results._set(Result(tag=tag, job_id=job_id))
            if job is not None:
                asked.add(_decode_command_line(job.command_line))
        # One prompt for all (as a run has): the Results can be retried; several: there is no one spec.
        prompt, system, options = next(iter(asked)) if len(asked) == 1 else ("", None, None)
        results.prompt = prompt or ""
        spec = RunSpec(results.prompt, system=system, options=json.loads(options) if options else None,
                       url=url, token=token, poll=poll, client=client)
        results.spec = spec
        await _follow_again(results, on_update=on_update, timeout=timeout, announce=announce)
        if not prompt:
            results.spec = None
        return results
    finally:
        if own:
            await client.aclose()


def _decode_command_line(command_line: str) -> tuple[str, str | None, str | None]:
    """(prompt, system, options as JSON text) of a job's ``commandLine``; ("", None, None) if unreadable."""
    try:
        payload = json.loads(command_line)
        inputs = payload.get("inputs", payload.get("input"))
        prompt = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else ""
        system = payload.get("system") if isinstance(payload.get("system"), str) else None
        options = payload.get("options")
        return prompt, system, json.dumps(options, sort_keys=True) if isinstance(options, dict) else None
    except (ValueError, AttributeError, TypeError):
        return "", None, None


async def _follow_again(results: Results, *, on_update: UpdateCallback | None, timeout: float | None,
                        announce: Callable[[str], None] | None) -> Results:
    """The live half of ``aattach``: every model shown as it stands, then the unended ones followed."""
    assert results.spec is not None
    if on_update is not None:
        for result in results.values():
            on_update(result.as_update())
    live = [tag for tag, r in results.items() if not r.state.terminal]
    if not live:
        return results  # every job had ended: nothing to ask the service
    since = 0.0
    if results.started_at is not None:  # the jobs' times count from the run's start, as they did
        since = max(0.0, (datetime.now(timezone.utc) - results.started_at).total_seconds())

    async def check(client: JobsClient) -> Mapping[str, GridLLMError]:
        await _ensure_service(client, announce)
        return {}

    async def follow(jobs: LiveJobs, result: Result) -> None:
        if result.job_id:
            await jobs.track(result)
        else:
            jobs.end(result, JobState.LOST, "it has no job id: its submit never returned")

    return await _follow(results, live, results.spec, client=results.spec.client, on_update=on_update,
                         timeout=timeout, check=check, job=follow, since=since, announce=announce,
                         record="stored" if results.run_id else None)


async def _follow(
    results: Results,
    tags: Sequence[str],
    spec: RunSpec,
    *,
    client: JobsClient | None,
    on_update: UpdateCallback | None,
    timeout: float | None,
    check: Callable[[JobsClient], Awaitable[Mapping[str, GridLLMError]]],
    job: Callable[[LiveJobs, Result], Awaitable[None]],
    restart: bool = False,
    since: float = 0.0,
    record: Literal["new", "stored"] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Results:
    """Follow ``tags`` of ``results`` to their end: the one body of a run, a retry and a reattach.

    ``check`` runs first (service started, tags checked: those it returns fail
    alone); then ``job`` follows each other result on one ``LiveJobs``, all at
    once. ``timeout`` ends what is still live TIMED_OUT, a cancel CANCELLED
    (text kept, the service asked to cancel, the cancel re-raised); models
    outside ``tags`` are never touched. With ``restart`` each result starts
    over first (``JobUpdate.restart``). ``since``: the run started that many
    seconds ago (a reattached run's times go on from there).

    ``record`` writes the history as the jobs go (``history.RunRecorder``):
    ``"new"`` rows for a new run, ``"stored"`` updates of a stored run's rows.
    A new run that could write nothing ends with ``run_id`` None.
    """
    client, own_client = spec.open_client() if client is None else (client, False)
    poller = get_poller(spec.poll or default_poll_settings(client.endpoint))
    recorder: RunRecorder | None = None
    if record is not None:
        from .history import RunRecorder

        recorder = RunRecorder(results, spec, client.endpoint.url, stored=record == "stored", warn=announce)

    def on_change(result: Result, update: JobUpdate) -> None:
        if recorder is not None:
            recorder.observe(result, update)
        if on_update is not None:
            on_update(update)

    jobs = LiveJobs(client, poller, hours=spec.hours, system=spec.system,
                    options=None if spec.options is None else dict(spec.options), on_change=on_change)
    jobs.started -= since
    chosen = [results[tag] for tag in tags]
    if restart:
        for result in chosen:
            jobs.publish(result, JobUpdate.restart(result.tag))
    tasks: list[asyncio.Task[None]] = []
    try:
        bad = await check(client)
        for tag, error in bad.items():
            jobs.end(results[tag], JobState.FAILED, str(error))
        tasks = [asyncio.ensure_future(job(jobs, r)) for r in chosen if r.tag not in bad]
        if tasks and await wait_or_cancel(tasks, timeout):
            await jobs.cancel(jobs.end_live(chosen, JobState.TIMED_OUT, f"no result within the timeout of {timeout:g} s"))
        return results
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.shield(jobs.cancel(jobs.end_live(chosen, JobState.CANCELLED, "interrupted")))
        raise
    except GridLLMError as exc:
        # ``check`` failed (the service unreachable, a refused token): nothing was submitted. A
        # new run's models stay as they were, unwritten (the error is the answer); restarted ones
        # end FAILED with the reason, so they say it and can be retried once it is fixed.
        if restart:
            jobs.end_live(chosen, JobState.FAILED, str(exc))
        raise
    finally:
        jobs.close()
        if recorder is not None:
            await asyncio.shield(recorder.close())
            if record == "new" and not recorder.written:
                results.run_id = None  # nothing of it reached the history
        if own_client:
            await client.aclose()


async def ready(client: JobsClient, tags: Sequence[str], *, announce: Callable[[str], None] | None,
                validate: bool, unknown: str) -> dict[str, UnknownModel]:
    """Before anything is submitted: the default service started, the tags checked.

    Returns the tags the service does not serve (to fail on their own), or
    raises the first of them when ``unknown == "raise"``.
    """
    await _ensure_service(client, announce)
    bad = await check_models(client, tags) if validate else {}
    if bad and unknown == "raise":
        raise next(iter(bad.values()))
    return bad


async def wait_or_cancel(tasks: Sequence[asyncio.Task[Any]], timeout: float | None) -> bool:
    """Wait for every task (a bug in one is raised, never swallowed); past ``timeout``
    cancel the rest and let them unwind. True when it came to that."""
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in done:
        task.result()
    if not pending:
        return False
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return True


async def _cancel_quietly(client: JobsClient, ids: Sequence[str | None]) -> None:
    """Best effort: free the service's workers; the real grid has no cancel."""
    wanted = [i for i in ids if i]
    if not wanted or client.closed:
        return
    try:
        await asyncio.wait_for(client.cancel(wanted), timeout=3.0)
    except (GridLLMError, asyncio.TimeoutError):
        pass


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from synchronous code, with or without a running loop.

    The coroutine runs on a fresh loop in a worker thread, closed after.
    Inside Jupyter the kernel's own loop is running, and blocked by the very
    cell that called this; in a terminal nothing runs a loop, but Ctrl-C
    must still land on a thread that waits, not inside a task. So it runs
    in a worker thread, in a copy of this context (so what it prints and
    displays still belongs to the cell), while this thread waits. The kernel
    stays an ordinary busy kernel: requests that arrive meanwhile (a widget's
    message, the next cell) wait their turn, rather than running inside this
    cell as they would on a re-entered loop.

    Ctrl-C (``KeyboardInterrupt`` here) cancels the coroutine, lets it unwind
    (``arun`` ends live jobs CANCELLED, text kept), then propagates.
    """
    # Always a worker thread, even where no loop runs (a terminal): Ctrl-C then lands
    # on this thread's wait, never inside the loop's callbacks, where it would
    # escape as a traceback from whichever task it hit.
    loop = asyncio.new_event_loop()
    task: asyncio.Task[T] = loop.create_task(coro)
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = _run_on_new_loop(task, loop)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, raised there
            outcome["error"] = exc
        finally:
            finished.set()

    def cancel() -> None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # it had just finished and closed its loop
            pass

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="gridllm-run", daemon=True)
    worker.start()
    interrupted = _wait_interruptibly(finished, cancel)
    try:
        worker.join(5.0)  # its work is done: this only lets the thread end
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _wait_interruptibly(finished: threading.Event, on_interrupt: Callable[[], None]) -> bool:
    """Wait until ``finished``, calling ``on_interrupt`` on each Ctrl-C; True if there was one.

    An Event rather than ``Thread.join()``: before Python 3.13 a join cut
    short by Ctrl-C can leave the thread looking finished while it runs on.
    """
    interrupted = False
    while not finished.is_set():
        try:  # Ctrl-C may land on any line here
            while not finished.wait(0.1):
                pass
        except KeyboardInterrupt:
            interrupted = True
            on_interrupt()
    return interrupted


def _run_on_new_loop(coro: Coroutine[Any, Any, T] | asyncio.Task[T],
                     loop: asyncio.AbstractEventLoop | None = None) -> T:
    """Run ``coro`` on ``loop`` (a fresh one by default), then cancel what is left and close it."""
    loop = loop or asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for leftover in pending:  # the poller's idle task; a run cut short by Ctrl-C
            leftover.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run(prompt: str, models: Sequence[str] | str, **kwargs: Any) -> Results:
    """Blocking ``arun`` for scripts and notebooks (works inside Jupyter's running loop)."""
    return run_sync(arun(prompt, models, **kwargs))


def attach(run: str | Sequence[str] | Results | None = None, **kwargs: Any) -> Results:
    """Blocking ``aattach``: follow a history run's (or job ids') jobs again, to their end."""
    return run_sync(aattach(run, **kwargs))
