"""Prompt × model grids: every prompt to every model, a bounded number of jobs at a time.

``agrid`` / ``grid`` are ``arun`` / ``run`` for many prompts. Each job is an
ordinary run's job (``live.LiveJobs``: the same submit, the loop's one
poller, the same end on a timeout or a cancel), but at most ``max_live``
are submitted and unfinished at once: a 1000-prompt grid must not put 2000
jobs on a service in one go, nor make every poll tick carry them all. The
value is a ``GridResults``: one ordinary ``Results`` per prompt, and a
``to_pandas()`` with one row per prompt × model.
"""

from __future__ import annotations

import html
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api import arguments
from ..api.client import JobsClient
from ..api.jobs import JobState, JobUpdate
from ..api.poller import PollSettings
from ..config import Secret
from ..errors import ConfigError, GridLLMError
from .checks import evaluator, with_judges
from .judge import parse_all
from .live import LiveJobs, check_arguments, follow, normalise_models, ready
from .progress import Counts, PassCounts, make_progress
from .recorder import RunRecorder, new_run_id
from .results import RETRYABLE, Result, Results, RunSpec, save_report
from .scores import has_scores, score_rows, scores_html, scores_table
from .sync import run_sync

__all__ = ["GridResults", "GridUpdateCallback", "agrid", "grid", "recorder"]

Prompts = Sequence[str] | Mapping[str, str]
GridUpdateCallback = Callable[[int, JobUpdate], Any]  # (prompt index, update)
Judging = Callable[[Awaitable[None], LiveJobs, Result], Awaitable[None]]  # ``checks.with_judges``
Evaluate = Callable[[LiveJobs, Result], None]  # ``LiveJobs.evaluate``


class GridResults:
    """The answers of a prompt × model grid: ``grid[i]`` is prompt ``i``'s ``Results``.

    With prompts given as a mapping, ``grid[name]`` works too and the names
    are a column of ``to_pandas()``.
    """

    def __init__(self, runs: Sequence[Results], models: Sequence[str],
                 names: Sequence[str] | None = None) -> None:
        self.runs = list(runs)
        self.models = list(models)
        self.names = list(names) if names is not None else None
        self._index = {name: i for i, name in enumerate(self.names or ())}
        # Kept up to date as jobs end (``_changed``), so a progress callback
        # can read ``counts`` on each of a thousand job ends cheaply.
        self._recount()
        self.rows_given: list[Mapping[str, Any]] | None = None  # the prompts' rows, where they came as rows
        self.spec: RunSpec | None = None  # what made the grid (``agrid`` sets it): the report's header
        self.started_at: datetime | None = None
        self.run_id: str | None = None  # the grid's run in the history, where it is written

    def __getitem__(self, key: int | str) -> Results:
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(key)
            return self.runs[self._index[key]]
        return self.runs[key]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[Results]:
        return iter(self.runs)

    def _recount(self) -> None:
        """``counts`` from the results as they stand (a retry's restarts uncount what ended before)."""
        results = [r for run in self.runs for r in run.values()]
        self._counted = {id(r) for r in results if r.state.terminal}  # the ends counted, once each
        self._done = sum(1 for r in results if r.ok)
        self._failed = len(self._counted) - self._done
        self._passing = PassCounts(self.models)  # the running pass rate per model, as verdicts arrive
        for r in results:
            self._passing.saw(r)
        self._counts: Counts | None = None  # made again on the next read

    def _changed(self, r: Result, update: JobUpdate) -> bool:
        """Keep ``counts`` up to date with one update of ``r``: its end counted once (a judge's verdict
        comes as the same end again), its verdicts in place of those before. True when ``r`` ended."""
        if not update.state.terminal:
            return False
        if id(r) not in self._counted:
            self._counted.add(id(r))
            if update.state is JobState.COMPLETED:
                self._done += 1
            else:
                self._failed += 1
        self._passing.saw(r)
        self._counts = None
        return True

    @property
    def counts(self) -> Counts:
        """``Counts(done, failed, total)``: completed jobs, jobs that ended otherwise, all jobs (and,
        with checks, the running pass rate per model). Read on every update of a grid: made only after an end."""
        if self._counts is None:
            self._counts = Counts(self._done, self._failed, len(self.runs) * len(self.models), self._passing.line())
        return self._counts

    def scores(self) -> list[dict[str, Any]]:
        """One row per model: answers, passed, pass rate and its 95% Wilson interval, mean score and
        its interval, median TTFT and tokens/s, and which models it cannot be told apart from (``core.scores``)."""
        return score_rows({tag: [run[tag] for run in self.runs if tag in run] for tag in self.models})

    @property
    def unsent(self) -> list[tuple[int, str]]:
        """The jobs not sent, as (prompt index, model): waiting for a slot, or never to be sent by a grid
        whose kernel died before their turn (read back from the history); ``retry`` sends them."""
        return [(i, tag) for i, run in enumerate(self.runs) for tag, r in run.items() if r.unsent]

    @property
    def retryable(self) -> list[tuple[int, str]]:
        """What ``retry`` sends, as (prompt index, model): the jobs that ended without an answer (failed,
        lost, cancelled or timed out), and those never sent."""
        return [(i, tag) for i, run in enumerate(self.runs) for tag, r in run.items()
                if r.state in RETRYABLE or r.unsent]

    @property
    def done(self) -> bool:
        """True when every job has ended, one way or another."""
        return all(run.done for run in self.runs)

    @property
    def ok(self) -> bool:
        """True when every job completed."""
        return bool(self.runs) and all(run.ok for run in self.runs)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per prompt × model: ``prompt_index``, (``name``), ``prompt``, then ``Result.to_dict()``."""
        rows = []
        for i, run in enumerate(self.runs):
            head: dict[str, Any] = {"prompt_index": i}
            if self.names is not None:
                head["name"] = self.names[i]
            head["prompt"] = run.prompt
            rows.extend({**head, **result.to_dict()} for result in run.values())
        return rows

    def to_pandas(self) -> Any:
        """A DataFrame with one row per prompt × model (pandas is imported only here)."""
        import pandas as pd

        from .results import verdict_columns

        columns = verdict_columns(r for run in self.runs for r in run.values())
        return pd.DataFrame(self.rows()).drop(columns=["checks"] if columns else []).assign(**columns)

    def summary(self) -> list[dict[str, Any]]:
        """Per model: jobs completed and failed, the success rate, the mean time of a completed job."""
        out = []
        for tag in self.models:
            results = [run[tag] for run in self.runs if tag in run]
            ok = [r for r in results if r.ok]
            out.append({
                "model": tag,
                "completed": len(ok),
                "failed": sum(1 for r in results if r.state.terminal and not r.ok),
                "total": len(results),
                "success_rate": len(ok) / len(results) if results else 0.0,
                "mean_s": sum(r.elapsed for r in ok) / len(ok) if ok else None,
            })
        return out

    def _headline(self) -> str:
        c = self.counts
        unsent = len(self.unsent)
        prompts = f"{len(self)} prompt{'' if len(self) == 1 else 's'}"
        models = f"{len(self.models)} model{'' if len(self.models) == 1 else 's'}"
        live = f", {c.live - unsent} live" if c.live > unsent else ""
        return f"{prompts} × {models}: {c.done} completed, {c.failed} failed{live}" + (
            f", {unsent} not sent" if unsent else "")

    def __repr__(self) -> str:
        lines = [f"GridResults({self._headline()})"]
        for s in self.summary():
            mean = f"{s['mean_s']:.1f}s" if s["mean_s"] is not None else "-"
            lines.append(f"  {s['model']}  {s['completed']}/{s['total']} completed  mean {mean}")
        scores = self.scores()
        if has_scores(scores):
            lines.append(scores_table(scores))
        return "\n".join(lines)

    def save_html(self, path: Path | str) -> Path:
        """Write the grid as one self-contained HTML report to ``path`` (``display.report``): the score
        table, then each prompt with its answers side by side and their checks. Returns the path."""
        return save_report(self, path)

    def _repr_html_(self) -> str:
        """A summary, whatever the grid's size: counts and, per model, its success rate and
        mean time (each prompt's answers are ``grid[i]``, all of them ``to_pandas()``)."""
        cell = 'style="text-align:left"'
        rows = "".join(
            f"<tr><td {cell}>{html.escape(s['model'])}</td><td>{s['completed']}</td><td>{s['failed']}</td>"
            f"<td>{s['total']}</td><td>{s['success_rate']:.0%}</td>"
            f"<td>{'-' if s['mean_s'] is None else format(s['mean_s'], '.1f') + ' s'}</td></tr>"
            for s in self.summary()
        )
        return (
            f"<div><p><strong>GridResults</strong>: {html.escape(self._headline())}</p>"
            f"<table><thead><tr><th {cell}>model</th><th>completed</th><th>failed</th><th>total</th>"
            f"<th>success</th><th>mean time</th></tr></thead><tbody>{rows}</tbody></table>"
            f"{scores_html(scores) if has_scores(scores := self.scores()) else ''}"
            "<p><code>grid[i]</code>: prompt <em>i</em>'s answers side by side; "
            "<code>.to_pandas()</code>: one row per prompt × model.</p></div>"
        )


def _prompt_rows(prompts: Any) -> tuple[Any, list[Mapping[str, Any]] | None]:
    """Prompts given as rows (a DataFrame, or a list of dicts, each with a ``prompt``): the prompts,
    and the rows whose other columns a check's ``{column}`` fields read."""
    if hasattr(prompts, "to_dict") and hasattr(prompts, "columns"):
        prompts = prompts.to_dict("records")
    if (isinstance(prompts, Sequence) and not isinstance(prompts, (str, bytes, bytearray)) and prompts
            and all(isinstance(p, Mapping) for p in prompts)):
        rows = [dict(p) for p in prompts]
        for i, row in enumerate(rows):
            if "prompt" not in row:
                raise ConfigError(f"prompt row {i} has no 'prompt' column (it has: {', '.join(map(str, row))})")
        return [row["prompt"] for row in rows], rows
    return prompts, None


def _prompt_list(prompts: Prompts) -> tuple[list[str], list[str] | None]:
    if isinstance(prompts, str):
        raise ConfigError("a grid takes a list of prompts (or a mapping name → prompt), not one string; "
                          "run() sends one prompt")
    if isinstance(prompts, Mapping):
        names: list[str] | None = [str(k) for k in prompts]
        texts = list(prompts.values())
    elif isinstance(prompts, Sequence) and not isinstance(prompts, (bytes, bytearray)):
        names, texts = None, list(prompts)
    else:
        raise ConfigError(f"prompts must be a list of prompts (or a mapping name → prompt), "
                          f"not {type(prompts).__name__}")
    if not texts:
        raise ConfigError("no prompts: give at least one")
    for i, text in enumerate(texts):
        which = repr(names[i]) if names is not None else str(i)
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"prompt {which} is {'empty' if isinstance(text, str) else 'not text'}")
        arguments.unicode(text, f"prompt {which}")
    return texts, names


async def agrid(
    prompts: Prompts,
    models: Sequence[str] | str,
    *,
    max_live: int = 32,
    url: str | None = None,
    token: str | Secret | None = None,
    client: JobsClient | None = None,
    system: str | None = None,
    options: dict[str, Any] | None = None,
    hours: float | None = None,
    timeout: float | None = None,
    on_update: GridUpdateCallback | None = None,
    on_progress: Callable[[GridResults], Any] | None = None,
    poll: PollSettings | None = None,
    progress: str | bool | None = "auto",
    validate: bool = True,
    unknown: str = "raise",
    announce: Callable[[str], None] | None = print,
    checks: Any = None,
    judge: Any = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    estimate: bool = False,
    history: bool = True,
) -> GridResults:
    """Send every prompt to every model, ``max_live`` jobs at a time, and follow them to the end.

    Jobs go out prompt by prompt (every model of prompt 0, then prompt 1...),
    each as soon as a slot frees up, so rows fill in order. ``on_update``
    receives ``(prompt index, JobUpdate)`` for every change; ``on_progress``
    the ``GridResults`` itself, once before the first job and again each
    time a job ends (``.counts``, and whatever has arrived: the way to keep
    a grid's partial results when it is interrupted). ``progress``: a bar in
    a kernel, a line on a terminal (``"auto"``), or ``"widget"``, ``"text"``,
    ``None``. ``validate`` / ``unknown`` as for ``arun``; an unknown model
    with ``unknown="fail"`` fails its whole column. ``timeout`` bounds the
    whole grid: jobs still going end TIMED_OUT with their text kept, jobs
    not sent yet end TIMED_OUT with nothing. Cancelling (Ctrl-C) ends them
    CANCELLED the same way, asks the service to cancel the live ones, and
    re-raises.

    ``checks`` and ``judge`` as for ``arun``; prompts given as rows (a
    DataFrame or a list of dicts with a ``prompt`` column, or ``rows``
    alongside the prompts) fill a check's ``{column}`` fields per prompt
    (``contains:{expected}``). The progress shows each model's running pass
    rate. ``estimate`` submits nothing: it prints what the grid would cost,
    from the history (``core.estimate``), and returns an empty GridResults;
    a grid of more than 200 jobs prints that estimate's one line first.

    With ``history`` the grid is one run of the history, written as it goes
    (a row per prompt × model from the first submit, updated when its job is
    submitted and when it ends; with checks or judges, they and each prompt's
    row too, so a retry checks its new answers the same way); its id is
    ``run_id``, which ``attach`` and ``retry`` take: a grid whose kernel died
    leaves its unsent jobs behind too, and ``retry`` sends them.
    """
    prompts, given_rows = _prompt_rows(prompts)
    rows = given_rows if rows is None else list(rows)
    texts, names = _prompt_list(prompts)
    if rows is not None and len(rows) != len(texts):
        raise ConfigError(f"{len(rows)} rows for {len(texts)} prompts: give one row per prompt")
    assessors = parse_all(checks, judge)
    tags = normalise_models(models)
    check_arguments(max_live=max_live, url=url, token=token, client=client, system=system, options=options,
                    hours=hours, timeout=timeout, on_update=on_update, on_progress=on_progress, poll=poll,
                    progress=progress, validate=validate, unknown=unknown, announce=announce, history=history)
    if client is not None:  # its endpoint is the grid's
        url, token = (None if client.endpoint.is_default else client.endpoint.url), client.endpoint.token
    spec = RunSpec("", system=system, options=options, hours=hours, url=url, token=Secret.of(token), poll=poll,
                   client=client)
    if estimate or len(texts) * len(tags) > 200:
        from .estimate import estimate_grid

        guess = estimate_grid(texts, tags, max_live=max_live, options=options)
        if estimate:
            if announce is not None:
                announce(str(guess))
            return GridResults([], tags, [] if names is not None else None)
        if announce is not None:
            announce(guess.line())
    spec = replace(spec, checks=assessors)
    result = GridResults([Results(text, {tag: Result(tag=tag) for tag in tags}) for text in texts], tags, names)
    result.spec, result.started_at = spec, datetime.now(timezone.utc)
    result.rows_given = rows
    result.run_id = new_run_id() if history else None
    where = {id(r): i for i, run in enumerate(result) for r in run.values()}
    bar = make_progress(None, 0)
    then, evaluate = assessing(result, where)

    def on_change(r: Result, update: JobUpdate) -> None:
        if on_update is not None:
            on_update(where[id(r)], update)
        if result._changed(r, update) and on_progress is not None:
            on_progress(result)
        bar.update(result.counts)

    queue = deque((run.prompt, run[tag]) for run in result for tag in tags)

    async def check(live: JobsClient) -> Mapping[str, GridLLMError]:
        return await ready(live, tags, announce=announce, validate=validate, unknown=unknown)

    def work(jobs: LiveJobs) -> list[Awaitable[None]]:
        nonlocal bar
        bar = make_progress(progress, result.counts.total, jobs.poller.clock)  # after the checks: an error shows no bar
        if on_progress is not None:
            on_progress(result)

        async def worker() -> None:
            while queue:
                prompt, r = queue.popleft()
                if not r.state.terminal:  # an unknown model's column has already failed
                    await then(jobs.follow(prompt, r, own_clock=True), jobs, r)

        return [worker() for _ in range(min(max_live, len(queue)))]

    recorders: list[RunRecorder] = []
    try:
        await follow([r for run in result for r in run.values()], spec, client=client, check=check, work=work,
                     on_change=on_change, timeout=timeout, queued=True, evaluate=evaluate,
                     record=recorder(result, recorders, stored=False, announce=announce))
    finally:
        bar.close(result.counts)
        if not any(r.written for r in recorders):
            result.run_id = None  # nothing of it reached the history
    return result


def assessing(grid: GridResults, where: Mapping[int, int]) -> tuple[Judging, Evaluate | None]:
    """``grid``'s checks and judges (``grid.spec.checks``) as ``follow`` runs them, each prompt's
    ``{column}`` fields read from its row (``rows_given``): ``evaluate`` as a job ends, and ``then``,
    which wraps a job's coroutine so its judging follows in the same slot. ``where``: each result's
    prompt index, by ``id``. A new grid's, a retried one's and a reattached one's alike."""
    items = grid.spec.checks if grid.spec is not None else ()
    rows = grid.rows_given

    def row_of(r: Result) -> Mapping[str, Any] | None:
        return rows[where[id(r)]] if rows is not None else None

    then = with_judges(items, lambda r: grid[where[id(r)]].prompt, row_of, lambda r: list(grid[where[id(r)]].values()))
    return then, evaluator(items, row_of)


def recorder(grid: GridResults, made: list[RunRecorder], *, stored: bool,
             announce: Callable[[str], None] | None) -> Callable[[JobsClient], RunRecorder] | None:
    """What ``follow`` makes to write ``grid``'s rows (each one made is appended to ``made``);
    None for a grid kept out of the history. ``stored``: its rows exist (a retry, a reattach)."""
    if grid.run_id is None:
        return None

    def make(live: JobsClient) -> RunRecorder:
        made.append(RunRecorder(grid.runs, grid.spec or RunSpec(""), live.endpoint.url, stored=stored,
                                warn=announce, run_id=grid.run_id, rows=grid.rows_given))
        return made[-1]

    return make


def grid(prompts: Prompts, models: Sequence[str] | str, **kwargs: Any) -> GridResults:
    """Blocking ``agrid`` for scripts and notebooks (works inside Jupyter's running loop)."""
    return run_sync(agrid(prompts, models, **kwargs))
