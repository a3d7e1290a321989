"""run / arun, retry and attach: one prompt to several models, live updates, one Results.

This is the only place that turns "prompt x models" into jobs and answers;
the CLI, the ``%%gridllm`` magic and the panel are views over it. All three
go through the one follow loop (``live.follow``), as grids do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Literal

from ..api import arguments
from ..api.client import JobsClient
from ..api.jobs import JobState
from ..api.poller import PollSettings
from ..api.wire import decode_command_line
from ..config import Secret
from ..errors import ConfigError, GridLLMError, TransportError
from .checks import evaluator, with_judges
from .grid import GridResults
from .grid_history import again, from_history
from .history import unkept_line
from .judge import parse_all
from .live import LiveJobs, UpdateCallback, check_arguments, follow, normalise_models, ready
from .local import ensure_service, unreachable
from .recorder import RunRecorder, new_run_id
from .results import Result, Results, RunSpec
from .sync import run_sync

__all__ = ["aattach", "aretry", "arun", "attach", "run"]


async def _follow(results: Results, tags: Sequence[str], spec: RunSpec, *, client: JobsClient | None,
                  on_update: UpdateCallback | None, timeout: float | None, check: Any, job: Any,
                  restart: bool = False, since: float = 0.0, record: Literal["new", "stored"] | None = None,
                  announce: Callable[[str], None] | None = None) -> Results:
    """``live.follow`` of ``tags``, one ``job(jobs, result)`` each, the history written as ``record`` says:
    ``"new"`` rows for a new run, ``"stored"`` updates of a stored run's rows. A new run that could
    write nothing ends with ``run_id`` None. The checks and judges of ``spec`` give each answer that
    ends its verdicts; those a run read from the history lacks are named in one line."""
    chosen = [results[tag] for tag in tags]
    if spec.unkept_checks and announce is not None:
        announce(unkept_line(spec.unkept_checks))
    recorders: list[RunRecorder] = []
    then = with_judges(spec.checks, lambda _result: spec.prompt, group_of=lambda _result: list(results.values()))

    def make_recorder(live: JobsClient) -> RunRecorder:
        recorders.append(RunRecorder(results, spec, live.endpoint.url, stored=record == "stored", warn=announce))
        return recorders[-1]

    try:
        await follow(chosen, spec, client=client, check=check, timeout=timeout, restart=restart, since=since,
                     on_change=None if on_update is None else lambda _result, update: on_update(update),
                     work=lambda jobs: [then(job(jobs, r), jobs, r) for r in chosen if not r.state.terminal],
                     record=make_recorder if record is not None else None, evaluate=evaluator(spec.checks))
    finally:
        if record == "new" and recorders and not recorders[0].written:
            results.run_id = None  # nothing of it reached the history
    return results


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
    checks: Any = None,
    judge: Any = None,
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

    ``checks`` (specs such as ``contains:Paris``, callables, ``core.checks``) and ``judge``
    (``judge(model, rubric)``, ``core.judge``) give each answer its verdicts the moment it ends
    (``Result.checks``); a retry keeps them.
    """
    assessors = parse_all(checks, judge)
    prompt = arguments.text(prompt, "prompt", what="write the prompt in the cell body or pass it as text")
    tags = normalise_models(models)
    check_arguments(url=url, token=token, client=client, hours=hours, timeout=timeout, system=system,
                    options=options, on_update=on_update, poll=poll, validate=validate, unknown=unknown,
                    announce=announce, history=history)
    arguments.instance(results, "results", Results, "Results")
    if client is not None:  # its endpoint is the run's, for a retry once it is closed
        url, token = (None if client.endpoint.is_default else client.endpoint.url), client.endpoint.token
    spec = RunSpec(prompt, system=system, options=options, hours=hours, url=url,
                   token=Secret.of(token),
                   poll=poll, client=client, checks=assessors)
    results = results if results is not None else Results(prompt)
    for tag in tags:
        if tag not in results:
            results._set(Result(tag=tag))
    results.prompt, results.spec = prompt, spec
    results.started_at = datetime.now(timezone.utc)
    if history:
        results.run_id = new_run_id()

    async def check(live: JobsClient) -> Mapping[str, GridLLMError]:
        return await ready(live, tags, announce=announce, validate=validate, unknown=unknown)

    return await _follow(results, tags, spec, client=client, on_update=on_update, timeout=timeout, check=check,
                         job=lambda jobs, result: jobs.follow(prompt, result), announce=announce,
                         record="new" if history else None)


async def aretry(results: Results | GridResults, tags: Sequence[str] | None = None, *,
                 on_update: UpdateCallback | None = None, timeout: float | None = None,
                 announce: Callable[[str], None] | None = print) -> Results | GridResults:
    """``Results.aretry``: submit ``tags`` again (default: every retryable one) as ``results.spec`` says.

    Only a model that ended without an answer is retried: asking for another
    one (completed, or still running) is a ``ConfigError``, as is retrying
    Results that carry no spec (made by hand, or read from the history
    without an endpoint). Every retried result first gets
    ``JobUpdate.restart`` (its card clears), then the updates of its new job.
    A run in the history (``results.run_id``) has its rows updated. The
    run's checks and judges give the new answers their verdicts in place of
    the old ones (read from the history, a Python callable cannot be: a line
    says so). A grid (``GridResults``) has every job that ended without an
    answer submitted again, and every job it never sent (its kernel died
    first) submitted (``tags`` then must be None).
    """
    if isinstance(results, GridResults):
        if tags is not None:
            raise ConfigError("a grid is retried whole: every job that ended without an answer or was never sent "
                              "(no tags)")
        return await again(results, resubmit=True, timeout=timeout, announce=announce,
                           on_update=None if on_update is None else lambda _i, update: on_update(update))
    arguments.instance(results, "results", Results, "Results")
    check_arguments(on_update=on_update, timeout=timeout, announce=announce)
    if tags is not None and not (isinstance(tags, (list, tuple)) and not tags):  # an empty list retries nothing
        tags = arguments.models(tags)
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
    run: str | Sequence[str] | Results | GridResults | None = None,
    *,
    url: str | None = None,
    token: str | Secret | None = None,
    on_update: UpdateCallback | None = None,
    timeout: float | None = None,
    poll: PollSettings | None = None,
    announce: Callable[[str], None] | None = print,
) -> Results | GridResults:
    """Follow a run's jobs again, as they are now (after a kernel restart, say): live ``Results``.

    ``run`` is a history run id (or a unique start of one; None: the newest
    run), a list of job ids, or ``Results`` read from the history
    (``grid_history.from_history``). Jobs already ended in the history are shown as
    stored; every other one is followed from its whole log so far, and its
    row updated when it ends. A job the service no longer knows ends LOST.
    ``url`` replaces the URL stored with the run, ``token`` the configured
    token. ``on_update`` first gets every model as it stands, then the live
    updates; the Results can be retried like a run's. A grid run comes
    back as its ``GridResults``, its unended jobs followed the same way, and
    those it never sent (its kernel died first) named in one line, for ``retry``.
    """
    check_arguments(url=url, token=token, on_update=on_update, timeout=timeout, poll=poll, announce=announce)
    secret = Secret.of(token)
    if isinstance(run, (Results, GridResults)):
        results = run
    elif run is None or isinstance(run, str):
        results = from_history(None if run is None else arguments.unicode(run, "run"))
    elif isinstance(run, Sequence) and not isinstance(run, (bytes, bytearray)):
        return await _attach_jobs(arguments.job_ids(run), url=url, token=secret, on_update=on_update, timeout=timeout,
                                  poll=poll, announce=announce)
    else:
        raise ConfigError(f"run must be a history run id (str), a list of job ids, Results or None, "
                          f"not {type(run).__name__}")
    if results.spec is None:
        raise ConfigError("these Results say nowhere where their jobs run (no spec): attach a history run id")
    changes = {k: v for k, v in (("url", url), ("token", secret), ("poll", poll)) if v is not None}
    results.spec = replace(results.spec, client=None, **changes)
    if isinstance(results, GridResults):
        return await again(results, resubmit=False, timeout=timeout, announce=announce,
                           on_update=None if on_update is None else lambda _i, update: on_update(update))
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
        await ensure_service(client, announce)
        try:
            jobs = await client.status(ids)
        except TransportError as exc:
            raise TransportError(await unreachable(client, exc)) from None
        results = Results()
        asked: set[tuple[str, str | None, str | None]] = set()
        for job_id in ids:
            job = jobs.get(job_id)
            tag = (job.tag if job is not None and job.tag else "") or f"job {job_id[:8]}"
            if tag in results:
                tag = f"{tag} ({job_id[:8]})"
            results._set(Result(tag=tag, job_id=job_id))
            if job is not None:
                asked.add(decode_command_line(job.command_line))
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
        await ensure_service(client, announce)
        return {}

    async def follow(jobs: LiveJobs, result: Result) -> None:
        if result.job_id:
            await jobs.track(result)
        else:
            jobs.end(result, JobState.LOST, "it has no job id: its submit never returned")

    return await _follow(results, live, results.spec, client=results.spec.client, on_update=on_update,
                         timeout=timeout, check=check, job=follow, since=since, announce=announce,
                         record="stored" if results.run_id else None)


def run(prompt: str, models: Sequence[str] | str, **kwargs: Any) -> Results:
    """Blocking ``arun`` for scripts and notebooks (works inside Jupyter's running loop)."""
    return run_sync(arun(prompt, models, **kwargs))


def attach(run: str | Sequence[str] | Results | GridResults | None = None,
           **kwargs: Any) -> Results | GridResults:
    """Blocking ``aattach``: follow a history run's (or job ids') jobs again, to their end."""
    return run_sync(aattach(run, **kwargs))

