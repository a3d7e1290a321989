"""A grid as one run of the history: read back, and its jobs followed or submitted again.

``agrid`` writes a grid's rows as its jobs go (``grid.recorder``); here a
stored grid comes back as ``GridResults`` (``from_history``), and ``again``
follows its unended jobs (``attach``) or submits the ones that ended
without an answer (``retry``), ``max_live`` at a time, on the one follow
loop, its rows updated as they go. ``run.aattach`` and ``run.aretry`` take
a grid here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api.client import JobsClient
from ..api.jobs import JobState, JobUpdate
from ..errors import ConfigError, GridLLMError
from .grid import GridResults, GridUpdateCallback, recorder
from .history import created_at, is_grid, results_from_run, stored_run
from .live import LiveJobs, check_arguments, follow, ready
from .local import ensure_service
from .results import RETRYABLE, Result, Results

__all__ = ["again", "from_history"]


def from_history(run: str | None = None, *, path: Path | str | None = None) -> Results | GridResults:
    """The history run ``run`` names (default: the newest): a grid's as ``GridResults`` (one ``Results``
    per prompt, with the grid's run id and spec), any other as ``history.load_run`` gives it."""
    stored = stored_run(run, path=path)
    if not is_grid(stored):
        return results_from_run(stored, with_spec=True)
    rows = sorted(stored["results"], key=lambda r: r["prompt_index"] or 0)
    by_prompt: dict[int, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_prompt.setdefault(int(r["prompt_index"] or 0), []).append(r)
    runs = [results_from_run({**stored, "prompt": group[0]["prompt"], "results": group})
            for _, group in sorted(by_prompt.items())]
    grid = GridResults(runs, list(dict.fromkeys(r["tag"] for r in rows)))
    grid.run_id, grid.started_at = stored["run_id"], created_at(stored)
    grid.spec = results_from_run({**stored, "prompt": "", "results": []}, with_spec=True).spec
    return grid


async def again(grid: GridResults, *, resubmit: bool, max_live: int = 32, timeout: float | None = None,
                on_update: GridUpdateCallback | None = None,
                announce: Callable[[str], None] | None = print) -> GridResults:
    """A history grid's jobs once more, on the one follow loop: with ``resubmit`` the ones that ended
    without an answer are submitted again, ``max_live`` at a time (``retry``); otherwise the unended
    ones are followed from their whole log so far (``attach``), one without a job id ending LOST.
    Its rows are updated as the jobs go."""
    check_arguments(max_live=max_live, timeout=timeout, on_update=on_update, announce=announce)
    spec = grid.spec
    if spec is None:
        raise ConfigError("this grid does not say how it was made (no spec): attach or retry a history run id")
    where = {id(r): i for i, run in enumerate(grid) for r in run.values()}
    chosen = [r for run in grid for r in run.values()
              if (r.state in RETRYABLE if resubmit else not r.state.terminal)]
    if not chosen:
        return grid
    since = 0.0
    if not resubmit and grid.started_at is not None:  # the jobs' times go on from the grid's start
        since = max(0.0, (datetime.now(timezone.utc) - grid.started_at).total_seconds())
    queue = deque(chosen)

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
            if resubmit:
                await jobs.follow(grid[where[id(r)]].prompt, r, own_clock=True)
            elif r.job_id:
                await jobs.track(r)
            else:
                jobs.end(r, JobState.LOST, "it has no job id: its submit never returned")

    def on_change(r: Result, update: JobUpdate) -> None:
        if on_update is not None:
            on_update(where[id(r)], update)

    try:
        await follow(chosen, replace(spec, client=None), check=check, on_change=on_change, timeout=timeout,
                     restart=resubmit, since=since, queued=resubmit,
                     work=lambda jobs: [worker(jobs) for _ in range(min(max_live, len(queue)))],
                     record=recorder(grid, [], stored=True, announce=announce))
    finally:
        grid._recount()
    return grid
