"""LiveJobs and the one follow loop under every run, retry, reattach and grid.

A run, a retry, a reattach and a prompt × model grid differ only in which
results they follow and how each job starts (submitted now, submitted when a
slot frees up, or already running). Everything else is ``follow``: the
service made ready, tags checked, one ``LiveJobs`` on the loop's one poller,
a timeout that ends what is still live TIMED_OUT, a cancel that ends it
CANCELLED (text kept, the service asked to cancel), the history written as
the jobs go.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..api import arguments
from ..api.client import JobsClient
from ..api.jobs import JobState, JobUpdate
from ..api.poller import Feed, Poller, PollSettings, get_poller
from ..config import Endpoint, Secret
from ..errors import (
    GridLLMError,
    NotSupported,
    ServiceUnreachable,
    TransportError,
    UnknownModel,
)
from .local import ensure_service, unreachable
from .results import Result, RunSpec

if TYPE_CHECKING:
    from .recorder import RunRecorder

__all__ = ["LiveJobs", "UpdateCallback", "check_arguments", "check_models", "default_poll_settings", "follow",
           "normalise_models", "ready", "suggest", "wait_or_cancel"]

UpdateCallback = Callable[[JobUpdate], Any]
Check = Callable[[JobsClient], Awaitable[Mapping[str, GridLLMError]]]


def normalise_models(models: Sequence[str] | str) -> list[str]:
    """The tags asked for: stripped, each once, at least one (a ``ConfigError`` otherwise)."""
    return arguments.models(models)


_ARGUMENTS: dict[str, Callable[[Any], Any]] = {
    "url": lambda v: arguments.optional_text(v, "url"),
    "token": lambda v: arguments.instance(v, "token", (str, Secret), "text or a Secret"),
    "client": lambda v: arguments.instance(v, "client", JobsClient, "a JobsClient"),
    "hours": lambda v: arguments.number(v, "hours"),
    "timeout": lambda v: arguments.number(v, "timeout", positive=False),
    "system": lambda v: arguments.optional_text(v, "system"),
    "options": arguments.options,
    "poll": lambda v: arguments.instance(v, "poll", PollSettings, "PollSettings"),
    "validate": lambda v: arguments.flag(v, "validate"),
    "history": lambda v: arguments.flag(v, "history"),
    "unknown": lambda v: arguments.choice(v, "unknown", ("raise", "fail")),
    "max_live": lambda v: arguments.whole(v, "max_live"),
    "progress": lambda v: v if v is None or isinstance(v, bool) else arguments.choice(
        v, "progress", ("auto", "widget", "text", "none")),
}


def check_arguments(**given: Any) -> None:
    """The public entry points' keyword arguments, each checked once (``api.arguments``); a callback
    (any name starting ``on_``, and ``announce``) must be callable or None."""
    for name, value in given.items():
        if name.startswith("on_") or name == "announce":
            arguments.callback(value, name)
        else:
            _ARGUMENTS[name](value)


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
        # The default service answered a moment ago (``ensure_service``): it died since. Once, start it again.
        before = await client.revive()
        if before is None:
            raise TransportError(await unreachable(client, exc)) from None
        try:
            listed = await client.models()
        except TransportError as again:
            raise TransportError(f"{before}; started it again, but: {again}") from None
    except TransportError as exc:
        raise TransportError(await unreachable(client, exc)) from None
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
    over loopback is cheap, and a first token after a long queue should still
    show within a quarter second); a remote grid gently, backing off while
    nothing changes.
    """
    base = PollSettings(fast=0.1, slow=0.25) if endpoint.is_local else PollSettings()
    fast = base.fast if fast is None else max(0.05, float(fast))
    slow = base.slow if slow is None else float(slow)
    return replace(base, fast=fast, slow=max(fast, slow))


async def ready(client: JobsClient, tags: Sequence[str], *, announce: Callable[[str], None] | None,
                validate: bool, unknown: str) -> dict[str, UnknownModel]:
    """Before anything is submitted: the default service started, the tags checked.

    Returns the tags the service does not serve (to fail on their own), or
    raises the first of them when ``unknown == "raise"``.
    """
    await ensure_service(client, announce)
    bad = await check_models(client, tags) if validate else {}
    if bad and unknown == "raise":
        raise next(iter(bad.values()))
    return bad


class LiveJobs:
    """Submit-then-follow for any number of (prompt, Result) pairs: the per-job half of arun and agrid.

    One client, the loop's one poller; every change goes through ``publish``
    (``Result.apply``, then ``on_change``), so a grid's job behaves exactly
    as a run's: the same SUBMITTED update, the same watch, the same end on a
    timeout or a cancel (``end_live``, text kept, then ``cancel`` on the service).
    """

    def __init__(self, client: JobsClient, poller: Poller, *, hours: float | None = None,
                 system: str | None = None, options: dict[str, Any] | None = None,
                 on_change: Callable[[Result, JobUpdate], Any] | None = None,
                 evaluate: Callable[[LiveJobs, Result], Any] | None = None) -> None:
        self.client, self.poller = client, poller
        self.hours, self.system, self.options = hours, system, options
        self.on_change = on_change
        self.evaluate = evaluate  # a result's checks, run as its job ends, before anyone sees the end
        self.started = poller.clock.monotonic()
        self._since: dict[int, float] = {}  # id(result) -> when its job was submitted, if not at ``started``
        self._watches: set[Feed] = set()
        self.cut: JobState | None = None  # how ``follow`` cuts the jobs short, once it does: a judge's job ends so too

    def publish(self, result: Result, update: JobUpdate) -> None:
        if self.evaluate is None:
            result.apply(update)
        else:
            ended = result.state.terminal
            result.apply(update)
            if update.state.terminal and not ended:
                self.evaluate(self, result)
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
        watch = self.poller.follow(self.client, result.job_id, tag=result.tag, hours=self.hours,
                                  started=self.started if started is None else started)
        self._watches.add(watch)
        try:
            async for update in watch:
                self.publish(result, update)
        finally:
            watch.close()
            self._watches.discard(watch)

    def stop(self, results: Iterable[Result], state: JobState, error: str, unsent: str | None) -> list[str]:
        """``end_live``; with ``unsent``, that is the error of the results that have no job yet (a grid's queue)."""
        results = list(results)
        if unsent is not None:
            self.end_live((r for r in results if r.job_id is None), state, unsent)
        return self.end_live(results, state, error)

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


async def wait_or_cancel(tasks: Sequence[asyncio.Task[Any]], timeout: float | None,
                         on_timeout: Callable[[], Any] | None = None) -> bool:
    """Wait for every task (a bug in one is raised, never swallowed); past ``timeout``
    call ``on_timeout``, then cancel the rest and let them unwind. True when it came to that."""
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in done:
        task.result()
    if not pending:
        return False
    if on_timeout is not None:
        on_timeout()
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


async def follow(
    chosen: Sequence[Result],
    spec: RunSpec,
    *,
    work: Callable[[LiveJobs], Sequence[Awaitable[None]]],
    check: Check,
    client: JobsClient | None = None,
    on_change: Callable[[Result, JobUpdate], Any] | None = None,
    timeout: float | None = None,
    restart: bool = False,
    since: float = 0.0,
    queued: bool = False,
    record: Callable[[JobsClient], RunRecorder] | None = None,
    evaluate: Callable[[LiveJobs, Result], Any] | None = None,
) -> None:
    """Follow ``chosen`` to their end: the one body of a run, a retry, a reattach and a grid.

    ``check`` runs first (service started, tags checked: the tags it returns
    fail alone); then ``work(jobs)`` gives the coroutines that submit and
    follow the others on one ``LiveJobs`` (one per result for a run,
    ``max_live`` workers for a grid). ``timeout`` ends what is still live
    TIMED_OUT, a cancel CANCELLED (text kept, the service asked to cancel,
    the cancel re-raised); results outside ``chosen`` are never touched.
    With ``restart`` each result starts over first (``JobUpdate.restart``).
    ``since``: the run started that many seconds ago (a reattached run's
    times go on from there). ``queued``: results may wait for a slot (a grid);
    those never sent say so when the timeout or a cancel ends them. ``record(client)`` makes the history's
    ``RunRecorder``, which sees every change before ``on_change`` and is
    closed (its writes awaited) at the end. ``evaluate(jobs, result)`` runs as each job ends, before the
    history and ``on_change`` see the end (``LiveJobs.evaluate``: a run's checks).
    """
    client, own_client = spec.open_client() if client is None else (client, False)
    recorder = record(client) if record is not None else None
    poller = get_poller(spec.poll or default_poll_settings(client.endpoint))

    changed = on_change  # without a history, nothing between the updates and ``on_change``
    if recorder is not None:
        observe = recorder.observe

        def changed(result: Result, update: JobUpdate) -> None:
            observe(result, update)
            if on_change is not None:
                on_change(result, update)

    jobs = LiveJobs(client, poller, hours=spec.hours, system=spec.system,
                    options=None if spec.options is None else dict(spec.options), on_change=changed,
                    evaluate=evaluate)
    jobs.started -= since
    if restart:
        for result in chosen:
            jobs.publish(result, JobUpdate.restart(result.tag))
    tasks: list[asyncio.Future[None]] = []
    try:
        bad = await check(client)
        for result in chosen:
            if result.tag in bad:
                jobs.end(result, JobState.FAILED, str(bad[result.tag]))
        tasks = [asyncio.ensure_future(c) for c in work(jobs)]
        if tasks and await wait_or_cancel(tasks, timeout, lambda: setattr(jobs, "cut", JobState.TIMED_OUT)):
            await jobs.cancel(jobs.stop(chosen, JobState.TIMED_OUT, f"no result within the timeout of {timeout:g} s",
                                        f"not sent within the timeout of {timeout:g} s" if queued else None))
    except asyncio.CancelledError:
        jobs.cut = JobState.CANCELLED
        for task in tasks:
            task.cancel()
        await asyncio.shield(jobs.cancel(jobs.stop(chosen, JobState.CANCELLED, "interrupted",
                                                   "interrupted before it was sent" if queued else None)))
        await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))  # unwound, as past the timeout
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
        if own_client:
            await client.aclose()
