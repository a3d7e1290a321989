"""A grid as one run of the history: read back, and its jobs followed or submitted again.

``agrid`` writes a grid's rows as its jobs go (``grid.recorder``): every row
from the first submit, so a grid whose kernel died leaves behind the jobs it
never sent as well as those it did. Here a stored grid comes back as
``GridResults`` (``from_history``), and ``again`` follows its unended jobs
(``attach``: those never sent are named, and left for ``retry``) or submits
the ones that ended without an answer and the ones never sent (``retry``),
``max_live`` at a time, on the one follow loop, its checks and judges run on
every answer that ends, its rows updated as they go. ``run.aattach`` and
``run.aretry`` take a grid here.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api.client import JobsClient
from ..api.jobs import JobUpdate
from ..errors import ConfigError, GridLLMError
from .grid import GridResults, GridUpdateCallback, assessing, recorder
from .history import created_at, is_grid, results_from_run, short_id, spec_of_run, stored_run, unkept_line
from .live import LiveJobs, check_arguments, follow, ready
from .local import ensure_service
from .results import Result, Results

__all__ = ["NOT_SENT", "again", "from_history"]

# What a job never sent says (its ``error``, while it has no other end): in the report, a card, ``--json``.
NOT_SENT = "not sent: the grid stopped before its turn; retry sends it"


def from_history(run: str | None = None, *, path: Path | str | None = None) -> Results | GridResults:
    """The history run ``run`` names (default: the newest): a grid's as ``GridResults`` (one ``Results``
    per prompt, with the grid's run id and spec, its checks and judges made again, and the prompts'
    rows they read), any other as ``history.load_run`` gives it. A job the grid never sent stays
    unended, with no job id (``GridResults.unsent``), its ``error`` saying so."""
    stored = stored_run(run, path=path)
    if not is_grid(stored):
        return results_from_run(stored, with_spec=True)
    rows = sorted(stored["results"], key=lambda r: r["prompt_index"] or 0)
    by_prompt: dict[int, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_prompt.setdefault(int(r["prompt_index"] or 0), []).append(r)
    groups = [group for _, group in sorted(by_prompt.items())]
    runs = [results_from_run({**stored, "prompt": group[0]["prompt"], "results": group}) for group in groups]
    grid = GridResults(runs, list(dict.fromkeys(r["tag"] for r in rows)))
    grid.run_id, grid.started_at = stored["run_id"], created_at(stored)
    grid.spec = spec_of_run({**stored, "prompt": ""})
    kept = [group[0].get("prompt_row") for group in groups]
    if any(kept):
        grid.rows_given = [_row(text) for text in kept]
    for run_results in grid:
        for r in run_results.values():
            if r.unsent:
                r.error = NOT_SENT
    return grid


def _row(stored: str | None) -> Mapping[str, Any]:
    """A prompt's row as ``recorder`` kept it (an empty one where it is missing or unreadable)."""
    try:
        row = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    return row if isinstance(row, dict) else {}


def unsent_line(grid: GridResults, unsent: Sequence[tuple[int, str]]) -> str:
    """``4 jobs of grid 3f2a9c1d never sent (grid[2]: b; grid[3]–grid[4]: every model): retry sends them …``."""
    by_prompt: dict[int, list[str]] = {}
    for i, tag in unsent:
        by_prompt.setdefault(i, []).append(tag)
    spans: list[tuple[int, int, list[str]]] = []  # runs of consecutive prompts missing the same models
    for i, tags in by_prompt.items():
        if spans and spans[-1][1] == i - 1 and spans[-1][2] == tags:
            spans[-1] = (spans[-1][0], i, tags)
        else:
            spans.append((i, i, tags))
    parts = [(f"grid[{a}]" if a == b else f"grid[{a}]–grid[{b}]") + ": "
             + ("every model" if len(tags) == len(grid.models) else ", ".join(tags)) for a, b, tags in spans]
    shown = "; ".join(parts[:4]) + ("; …" if len(parts) > 4 else "")
    run = short_id(grid.run_id or "")
    return (f"{len(unsent)} job{'' if len(unsent) == 1 else 's'} of grid {run} never sent ({shown}): "
            f"retry sends {'it' if len(unsent) == 1 else 'them'} (gridllm-nb retry {run}, %gridllm retry {run})")


async def again(grid: GridResults, *, resubmit: bool, max_live: int = 32, timeout: float | None = None,
                on_update: GridUpdateCallback | None = None,
                announce: Callable[[str], None] | None = print) -> GridResults:
    """A history grid's jobs once more, on the one follow loop: with ``resubmit`` the ones that ended
    without an answer and the ones never sent are submitted, ``max_live`` at a time (``retry``);
    otherwise the unended ones are followed from their whole log so far (``attach``), and those never
    sent are named in one line (``announce``) and left as they are. The grid's checks and judges give
    every answer that ends its verdicts again; one the history could not keep (a Python callable) is
    named in one line. Its rows are updated as the jobs go."""
    check_arguments(max_live=max_live, timeout=timeout, on_update=on_update, announce=announce)
    spec = grid.spec
    if spec is None:
        raise ConfigError("this grid does not say how it was made (no spec): attach or retry a history run id")
    where = {id(r): i for i, run in enumerate(grid) for r in run.values()}
    chosen = ([grid[i][tag] for i, tag in grid.retryable] if resubmit
              else [r for run in grid for r in run.values() if not r.state.terminal and not r.unsent])
    unsent = grid.unsent
    if unsent and not resubmit and announce is not None:
        announce(unsent_line(grid, unsent))
    if not chosen:
        return grid
    if spec.unkept_checks and announce is not None:
        announce(unkept_line(spec.unkept_checks))
    since = 0.0
    if not resubmit and grid.started_at is not None:  # the jobs' times go on from the grid's start
        since = max(0.0, (datetime.now(timezone.utc) - grid.started_at).total_seconds())
    queue = deque(chosen)
    then, evaluate = assessing(grid, where)

    async def check(live: JobsClient) -> Mapping[str, GridLLMError]:
        if not resubmit:
            await ensure_service(live, announce)
            return {}
        return await ready(live, grid.models, announce=announce, validate=True, unknown="fail")

    async def worker(jobs: LiveJobs) -> None:
        while queue:
            r = queue.popleft()
            if r.state.terminal and not resubmit:
                continue
            step = jobs.follow(grid[where[id(r)]].prompt, r, own_clock=True) if resubmit else jobs.track(r)
            await then(step, jobs, r)

    def work(jobs: LiveJobs) -> list[Any]:
        grid._recount()  # the restarted jobs no longer count as ended
        return [worker(jobs) for _ in range(min(max_live, len(queue)))]

    def on_change(r: Result, update: JobUpdate) -> None:
        grid._changed(r, update)
        if on_update is not None:
            on_update(where[id(r)], update)

    try:
        await follow(chosen, replace(spec, client=None), check=check, on_change=on_change, timeout=timeout,
                     restart=resubmit, since=since, queued=resubmit, work=work, evaluate=evaluate,
                     record=recorder(grid, [], stored=True, announce=announce))
    finally:
        grid._recount()
    return grid
