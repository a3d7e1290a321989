"""Writing the history as a run goes: every row at its first submit, an update per submit and per end.

So a kernel that dies mid-run leaves every job behind: ``attach`` can follow
the ones it sent, ``retry`` send the others. The history costs one insert per
job and one update per submit and per end, never a write per poll, written in
order and batched on a worker thread, off the event loop. The schema and the
reading are ``history``'s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api.jobs import JobUpdate
from ..config import TOKEN_ENV, Secret
from .history import INSERT, UPDATE, clean_url, connect, history_path, kept_assessors
from .results import Result, Results, RunSpec

__all__ = ["RunRecorder", "new_run_id", "record"]


class _Scrubber:
    """Every stored string without the token: the environment's, and the run's own."""

    def __init__(self, token: Secret | None = None) -> None:
        secrets = [os.environ.get(TOKEN_ENV) or "", token.reveal() if token else ""]
        self.secrets = [s for s in secrets if s]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "********")
        return value

    def row(self, values: Iterable[Any]) -> tuple[Any, ...]:
        if not self.secrets:  # the usual case: a grid's thousands of rows pay nothing for it
            return tuple(values)
        return tuple(self(v) for v in values)


def _result_values(r: Result) -> tuple[Any, ...]:
    """``_RESULT_COLUMNS`` of one result, as they stand now."""
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(float(value), 3)

    return (r.job_id, r.state.value, rounded(r.elapsed), r.error, r.text, rounded(r.submitted_s),
            rounded(r.started_s), rounded(r.first_token_s), rounded(r.ended_s), r.finish_raw, r.service_tokens,
            json.dumps([v.to_dict() for v in r.checks], ensure_ascii=False) if r.checks else None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_values(run_id: str, created: str, url: str, prompt: str, system: str | None,
                options: Mapping[str, Any] | None, hours: float | None, assessors: str | None = None
                ) -> tuple[Any, ...]:
    """A run's ``history._RUN_COLUMNS`` (``assessors`` as ``kept_assessors`` wrote them), with no prompt's
    row (a grid prompt's: ``_prompt_head``)."""
    opts = json.dumps(dict(options), ensure_ascii=False) if options else None
    return (run_id, created, clean_url(url), prompt, system, opts, hours, assessors, None)


def _prompt_head(head: tuple[Any, ...], prompt: str, row: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """A grid prompt's ``_run_values``: its prompt, and its row (JSON) where one is kept."""
    kept = json.dumps(dict(row), ensure_ascii=False, default=str) if row is not None else None
    return head[:3] + (prompt,) + head[4:-1] + (kept,)


def _write(path: Path, ops: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    """Apply ``ops`` (``insert`` / ``update`` rows) in order, in one transaction, a batch per kind."""
    with closing(connect(path)) as conn, conn:
        for kind, group in itertools.groupby(ops, key=lambda op: op[0]):
            conn.executemany(INSERT if kind == "insert" else UPDATE, [values for _, values in group])


def record(
    results: Results,
    url: str,
    *,
    system: str | None = None,
    options: Mapping[str, Any] | None = None,
    hours: float | None = None,
    path: Path | str | None = None,
) -> str:
    """Store one finished run (a ``Results``) at once; returns its run id.

    Runs made by ``arun`` are stored as they go (``RunRecorder``); this is
    for Results made some other way.
    """
    run_id = uuid.uuid4().hex
    scrub = _Scrubber()
    head = _run_values(run_id, _now(), url, results.prompt, system, options, hours,
                       kept_assessors(results.spec.checks) if results.spec is not None else None)
    rows = [("insert", scrub.row(head + (None, r.tag) + _result_values(r))) for r in results.values()]
    _write(Path(path) if path else history_path(), rows)
    return run_id


class RunRecorder:
    """One run's rows, written as its jobs go: every row at the first submit, an update per submit and per end.

    ``observe`` takes every update of the run (``live.follow`` calls it before
    the front end's ``on_update``) and writes only when a job is submitted
    or ends: the first such write inserts every row of the run, in the order
    they were asked for (a row whose job is not sent yet has no job id), and
    each later one updates its row. So the history costs one insert per job
    and one update per submit and per end, never a write per poll. Writes run
    on a worker thread, in order, batched (``executemany``), off the event
    loop. ``close`` waits for them.

    The history is a convenience: a write that fails never fails the run;
    it is said once, in one line (``warn``, default stderr).

    ``results`` is one run's ``Results``, or a grid's list of them (one per
    prompt, ``run_id`` then given): a grid's rows hold their prompt and its
    index, and with checks or judges the prompt's row (``rows``, what their
    ``{column}`` fields read), so a retry from the history checks its new
    answers the same way. ``stored``: the run's rows exist already (a retry
    or a reattach), so every write updates them.
    """

    def __init__(self, results: Results | Sequence[Results], spec: RunSpec, url: str, *, stored: bool,
                 path: Path | str | None = None, warn: Callable[[str], None] | None = None,
                 run_id: str | None = None, rows: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.grid = not isinstance(results, Results)
        runs = [results] if isinstance(results, Results) else list(results)
        self.run_id: str = run_id or (runs[0].run_id if runs else None) or ""
        if not self.run_id:
            raise ValueError("a RunRecorder needs a run id")
        self.path = Path(path) if path else history_path()
        self._scrub = _Scrubber(spec.token)
        started = runs[0].started_at if runs and not self.grid else None
        created = (started or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        assessors = kept_assessors(spec.checks)
        head = _run_values(self.run_id, created, url, spec.prompt, spec.system, spec.options, spec.hours, assessors)
        rows = rows if assessors else None  # a prompt's row is kept for the checks that read it
        self._heads = [_prompt_head(head, run.prompt, rows[i] if rows is not None else None)
                       for i, run in enumerate(runs)] if self.grid else [head]
        self._warn = warn or (lambda m: print(f"gridllm: {m}", file=sys.stderr))
        self._all = [r for run in runs for r in run.values()]  # every row's result, in the order asked for
        self._key = {id(r): (i if self.grid else None, r.tag) for i, run in enumerate(runs) for r in run.values()}
        self._inserted = stored  # the run's rows are in the file
        self._job = {self._key[id(r)]: r.job_id for r in self._all}  # the job each row holds
        self._ended = {self._key[id(r)] for r in self._all if r.state.terminal}
        self._verdicts = {self._key[id(r)]: list(r.checks) for r in self._all}  # as last written
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # rows written so far (inserts and updates)
        self.failed: str | None = None  # why the history could not be written, once it could not

    def observe(self, result: Result, update: JobUpdate) -> None:
        """Called with every update; queues a write when a job was submitted or ended."""
        key = self._key[id(result)]
        terminal = update.state.terminal
        if not terminal and result.job_id == self._job.get(key) and not update.restarts:
            return  # the text growing: nothing the history keeps before the end
        if update.restarts:  # about to be submitted again: the row waits for the new job
            self._job[key] = None
            self._ended.discard(key)
            return
        if result.job_id and result.job_id != self._job.get(key):
            self._job[key] = result.job_id
            self._ended.discard(key)
            self._queue(result)
        if terminal and key not in self._ended:
            self._ended.add(key)
            self._verdicts[key] = list(result.checks)
            self._queue(result)
        elif terminal and result.checks != self._verdicts.get(key, result.checks):
            self._verdicts[key] = list(result.checks)  # a judge's verdict, after the end
            self._queue(result)

    def _queue(self, result: Result) -> None:
        if self._inserted:
            index, tag = self._key[id(result)]
            self._ops.append(("update", self._scrub.row(_result_values(result) + (self.run_id, tag, index))))
        else:
            self._inserted = True
            for r in self._all:
                index, tag = self._key[id(r)]
                self._ops.append(("insert", self._scrub.row(self._heads[index or 0] + (index, tag) + _result_values(r))))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="gridllm-history")

    async def _drain(self) -> None:
        while self._ops:
            ops, self._ops = self._ops, []
            if self.failed:
                continue
            try:
                await asyncio.to_thread(_write, self.path, ops)
                self.written += len(ops)
            except Exception as exc:  # noqa: BLE001 - any failure (disk full, locked file) is only reported
                self.failed = str(exc)
                self._warn(f"history not written ({self.path}): {exc}")

    async def close(self) -> None:
        """Wait until every queued write is done."""
        while self._task is not None and not self._task.done():
            await self._task


def new_run_id() -> str:
    return uuid.uuid4().hex
