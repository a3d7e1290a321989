"""What ``gridllm-nb models|status|cancel|local`` and ``%gridllm models|status|cancel|local`` say.

The CLI and the line magic are two doors to the same commands: both call
these functions, so they print the same lines and agree on the exit status.
Each writes a short report to ``out`` and returns 0 (all well) or 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, TextIO, TypeVar

from ..api.client import JobsClient
from ..api.jobs import Job
from ..api.poller import PollSettings
from ..config import resolve_endpoint
from ..errors import NotSupported
from .history import history_path, load_run, local_time, recent, short_id
from .local import open_client
from .results import Results
from .sync import run_sync

__all__ = ["cancel", "history", "job_dict", "models", "status", "stored", "with_client"]

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
    ``attach`` and ``retry`` take), when it started and its prompt, then one line per model."""
    runs = recent(n)
    if not runs:
        out.write(f"no runs recorded yet ({history_path()})\n")
        return 0
    for run in runs:
        prompt = " ".join(run["prompt"].split())
        prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
        out.write(f"{short_id(run['run_id'])}  {local_time(run['created'])}  {prompt}\n")
        for r in run["results"]:
            first = (r["text"] or r["error"] or "").strip().splitlines()
            snippet = first[0][:60] if first else ""
            out.write(f"    {r['tag']}  {r['state'].replace('_', ' ')}  {r['elapsed'] or 0:.1f}s  {snippet}\n")
    return 0


def stored(run: str | None, *, url: str | None = None, poll: PollSettings | None = None) -> Results:
    """The history run ``run`` names (default: the newest), ready to attach or retry.

    ``url`` replaces the URL stored with the run (``--url``); ``poll`` sets
    the pace its jobs are followed at. The CLI and ``%gridllm attach|retry``
    both start here.
    """
    if url:
        resolve_endpoint(url)  # a URL that cannot be used is said now, even for a run with nothing left to follow
    results = load_run(run)
    assert results.spec is not None  # load_run gives every run its spec
    changes: dict[str, Any] = {"poll": poll} if poll is not None else {}
    if url:
        changes["url"] = url
    if changes:
        results.spec = replace(results.spec, **changes)
    return results
