"""What ``gridllm-nb models|status|cancel|local`` and ``%gridllm models|status|cancel|local`` say.

The CLI and the line magic are two doors to the same commands: both call
these functions, so they print the same lines and agree on the exit status.
Each writes a short report to ``out`` and returns 0 (all well) or 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO, TypeVar

from ..api.client import JobsClient
from ..api.jobs import Job
from ..config import resolve_endpoint
from ..errors import ConfigError, NotSupported
from .local import open_client
from .sync import run_sync

__all__ = ["cancel", "configure", "history", "job_dict", "models", "status", "with_client"]

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


def configure(settings: Any, settable: Sequence[str], pairs: Sequence[str], out: TextIO) -> None:
    """``%gridllm config [KEY=VALUE...]``: set magic settings for the session, then show them all."""
    from ..config import TOKEN_ENV, parse_assignments, trait_value

    for key, value in parse_assignments(pairs, what="%gridllm config").items():
        key = {"models": "default_models", "format": "default_format"}.get(key, key)
        if key not in settable:
            raise ConfigError(f"unknown setting {key!r}; settable: {', '.join(settable)}")
        setattr(settings, key, trait_value(settings.traits()[key], key, value))
    try:
        endpoint = resolve_endpoint(settings.url or None)
        where = endpoint.display + ("  (the local service, started on demand)" if endpoint.is_default else "")
    except ConfigError as exc:
        where = f"invalid: {exc}"
    print(f"endpoint: {where}", file=out)
    print(f"token: ${TOKEN_ENV} is {'set' if os.environ.get(TOKEN_ENV) else 'not set'}", file=out)
    for key in settable:
        if key != "url":
            print(f"{key}: {getattr(settings, key)!r}", file=out)


def history(n: int, out: TextIO) -> int:
    """The last ``n`` runs of the history, newest first: a line with the run's short id (what
    ``attach`` and ``retry`` take), when it started and its prompt, then one line per model."""
    from .history import history_path, local_time, recent, short_id

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
