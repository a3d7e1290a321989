"""What ``gridllm-nb models|status|cancel|local`` and ``%gridllm models|status|cancel|local`` say.

The CLI and the line magic are two doors to the same commands: both call
these functions, so they print the same lines and agree on the exit status.
Each writes a short report to ``out`` and returns 0 (all well) or 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from ..api.client import JobsClient
from ..api.jobs import Job, JobState
from ..api.poller import PollSettings
from ..config import resolve_endpoint
from ..errors import NotSupported
from ..text import one_line, shorten
from . import arena
from .grid_history import from_history
from .history import history_path, is_grid, local_time, recent, short_id
from .local import open_client
from .results import Results
from .sync import run_sync

if TYPE_CHECKING:
    from .grid import GridResults

__all__ = ["cancel", "history", "job_dict", "leaderboard", "models", "status", "stored",
           "with_client"]

T = TypeVar("T")


def with_client(url: str | None, action: Callable[[JobsClient], Coroutine[Any, Any, T]], *,
                announce: Callable[[str], None] | None = print) -> T:
    """Run ``action(client)`` to the end from sync code (a terminal or a notebook cell)."""
    client = open_client(url, announce=announce)

    async def go() -> T:
        async with client:
            return await action(client)

    return run_sync(go())


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id, "tag": job.tag, "state": job.state.value, "status": job.raw_status,
        "runtime": job.runtime, "created": job.created.isoformat() if job.created else None,
        "text": job.log,
    }


async def models(client: JobsClient, out: TextIO) -> int:
    try:
        listed = await client.models()
    except NotSupported:
        out.write("this service does not list its models; name a tag you know (e.g. gemma3:270m)\n")
        return 0
    for m in listed:
        mark = "  (local)" if m.get("local") else ""
        desc = f"  {m['description']}" if m.get("description") else ""
        out.write(f"{m.get('tag')}{mark}{desc}\n")
    return 0


async def status(client: JobsClient, ids: Sequence[str], out: TextIO, *, as_json: bool = False) -> int:
    jobs = await client.status(list(ids))
    if as_json:
        json.dump([job_dict(jobs[i]) for i in ids if i in jobs], out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        for job_id in ids:
            job = jobs.get(job_id)
            if job is None:
                out.write(f"{job_id}  unknown to the service\n")
                continue
            raw = f" ({job.raw_status})" if job.raw_status and job.raw_status != job.state.value else ""
            out.write(f"{job_id}  {job.tag}  {job.state.label}{raw}  {len(job.log)} chars\n")
    return 0 if all(i in jobs for i in ids) else 1


async def cancel(client: JobsClient, ids: Sequence[str], out: TextIO) -> int:
    try:
        done = await client.cancel(list(ids))
    except NotSupported:
        out.write("this service offers no cancel (the public grid does not); the jobs run to their hours limit\n")
        return 1
    out.write("cancelled: " + (", ".join(done) or "none") + "\n")
    return 0


def history(n: int, out: TextIO) -> int:
    """The last ``n`` runs of the history, newest first: a line with the run's short id (what
    ``attach`` and ``retry`` take), when it started and its prompt, then one line per model;
    a grid is one line, its size and how its jobs ended."""
    runs = recent(n)
    if not runs:
        out.write(f"no runs recorded yet ({history_path()})\n")
        return 0
    for run in runs:
        if is_grid(run):
            out.write(f"{short_id(run['run_id'])}  {local_time(run['created'])}  {_grid_line(run['results'])}\n")
            continue
        prompt = shorten(one_line(run["prompt"]), 60)
        out.write(f"{short_id(run['run_id'])}  {local_time(run['created'])}  {prompt}\n")
        for r in run["results"]:
            first = (r["text"] or r["error"] or "").strip().splitlines()
            snippet = first[0][:60] if first else ""
            out.write(f"    {r['tag']}  {r['state'].replace('_', ' ')}  {r['elapsed'] or 0:.1f}s  {snippet}\n")
    return 0


_ENDS = {state.value for state in JobState if state.terminal}


def _grid_line(rows: Sequence[dict[str, Any]]) -> str:
    """``grid: 20 prompts × 2 models  18 completed, 2 failed`` (and how many are still live, how many
    were never sent: not yet, or never to be by a grid whose kernel died; ``retry`` sends them)."""
    prompts = len({r["prompt_index"] for r in rows})
    models = len({r["tag"] for r in rows})
    states = [r["state"] for r in rows]
    done = states.count(JobState.COMPLETED.value)
    unended = [r for r in rows if r["state"] not in _ENDS]
    unsent = sum(1 for r in unended if not r["job_id"] and r["state"] == JobState.SUBMITTED.value)
    live = len(unended) - unsent
    plural = lambda k, word: f"{k} {word}{'' if k == 1 else 's'}"
    tail = (f", {live} live" if live else "") + (f", {unsent} not sent" if unsent else "")
    return (f"grid: {plural(prompts, 'prompt')} × {plural(models, 'model')}  "
            f"{done} completed, {len(states) - done - len(unended)} failed{tail}")


def stored(run: str | None, *, url: str | None = None, poll: PollSettings | None = None) -> Results | GridResults:
    """The history run ``run`` names (default: the newest), ready to attach or retry.

    ``url`` replaces the URL stored with the run (``--url``); ``poll`` sets
    the pace its jobs are followed at. The CLI and ``%gridllm attach|retry``
    both start here.
    """
    if url:
        resolve_endpoint(url)  # a URL that cannot be used is said now, even for a run with nothing left to follow
    results = from_history(run)
    assert results.spec is not None  # from_history gives every run its spec
    changes: dict[str, Any] = {"poll": poll} if poll is not None else {}
    if url:
        changes["url"] = url
    if changes:
        results.spec = replace(results.spec, **changes)
    return results


def leaderboard(args: argparse.Namespace) -> arena.Leaderboard:
    """The ranking ``ratings.add_leaderboard_arguments``'s options ask for: the CLI prints it as text, the
    magic returns it (a table and a plot)."""
    return arena.leaderboard(method=args.method, mine=args.mine)
