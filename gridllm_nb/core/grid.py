"""Prompt × model grids: every prompt to every model, a bounded number of jobs at a time.

``agrid`` / ``grid`` are ``arun`` / ``run`` for many prompts. Each job is an
ordinary run's job (``runner.LiveJobs``: the same submit, the loop's one
poller, the same end on a timeout or a cancel), but at most ``max_live``
are submitted and unfinished at once: a 1000-prompt grid must not put 2000
jobs on a service in one go, nor make every poll tick carry them all. The
value is a ``GridResults``: one ordinary ``Results`` per prompt, and a
``to_pandas()`` with one row per prompt × model.

``%%gridllm --over NAME`` is ``over``: the cell is a template, interpolated
once per element of the list ``NAME``.
"""

from __future__ import annotations

import asyncio
import html
from collections import ChainMap, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from ..api.client import JobsClient
from ..api.jobs import JobState, JobUpdate
from ..api.poller import PollSettings
from ..config import Secret
from ..errors import ConfigError, GridLLMError
from .interpolate import interpolate
from ..api import checks
from .live import LiveJobs, check_arguments, follow, normalise_models, ready
from .progress import Counts, make_progress
from .results import Result, Results, RunSpec
from .sync import run_sync

__all__ = ["GridResults", "GridUpdateCallback", "agrid", "grid", "over", "over_prompts"]

Prompts = Sequence[str] | Mapping[str, str]
GridUpdateCallback = Callable[[int, JobUpdate], Any]  # (prompt index, update)


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
        # Kept up to date by ``agrid`` as jobs end (``_ended``), so a progress
        # callback can read ``counts`` on each of a thousand job ends cheaply.
        results = [r for run in self.runs for r in run.values()]
        self._done = sum(1 for r in results if r.ok)
        self._failed = sum(1 for r in results if r.state.terminal and not r.ok)

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

    def _ended(self, state: JobState) -> None:
        if state is JobState.COMPLETED:
            self._done += 1
        else:
            self._failed += 1

    @property
    def counts(self) -> Counts:
        """``Counts(done, failed, total)``: completed jobs, jobs that ended otherwise, all jobs."""
        return Counts(self._done, self._failed, len(self.runs) * len(self.models))

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

        return pd.DataFrame(self.rows())

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
        prompts = f"{len(self)} prompt{'' if len(self) == 1 else 's'}"
        models = f"{len(self.models)} model{'' if len(self.models) == 1 else 's'}"
        live = f", {c.live} live" if c.live else ""
        return f"{prompts} × {models}: {c.done} completed, {c.failed} failed{live}"

    def __repr__(self) -> str:
        lines = [f"GridResults({self._headline()})"]
        for s in self.summary():
            mean = f"{s['mean_s']:.1f}s" if s["mean_s"] is not None else "-"
            lines.append(f"  {s['model']}  {s['completed']}/{s['total']} completed  mean {mean}")
        return "\n".join(lines)

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
            "<p><code>grid[i]</code>: prompt <em>i</em>'s answers side by side; "
            "<code>.to_pandas()</code>: one row per prompt × model.</p></div>"
        )


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
        checks.unicode(text, f"prompt {which}")
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
    """
    texts, names = _prompt_list(prompts)
    tags = normalise_models(models)
    check_arguments(max_live=max_live, url=url, token=token, client=client, system=system, options=options,
                    hours=hours, timeout=timeout, on_update=on_update, on_progress=on_progress, poll=poll,
                    progress=progress, validate=validate, unknown=unknown, announce=announce)
    if client is not None:  # its endpoint is the grid's
        url, token = (None if client.endpoint.is_default else client.endpoint.url), client.endpoint.token
    spec = RunSpec("", system=system, options=options, hours=hours, url=url, token=Secret.of(token), poll=poll,
                   client=client)
    result = GridResults([Results(text, {tag: Result(tag=tag) for tag in tags}) for text in texts], tags, names)
    where = {id(r): i for i, run in enumerate(result) for r in run.values()}
    bar = make_progress(None, 0)

    def on_change(r: Result, update: JobUpdate) -> None:
        if on_update is not None:
            on_update(where[id(r)], update)
        if update.state.terminal:
            result._ended(update.state)
            if on_progress is not None:
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
                    await jobs.follow(prompt, r, own_clock=True)

        return [worker() for _ in range(min(max_live, len(queue)))]

    try:
        await follow([r for run in result for r in run.values()], spec, client=client, check=check, work=work,
                     on_change=on_change, timeout=timeout, queued=True)
    finally:
        bar.close(result.counts)
    return result


def grid(prompts: Prompts, models: Sequence[str] | str, **kwargs: Any) -> GridResults:
    """Blocking ``agrid`` for scripts and notebooks (works inside Jupyter's running loop)."""
    return run_sync(agrid(prompts, models, **kwargs))


# -- %%gridllm --over NAME ------------------------------------------------------------------


def over_prompts(template: str, items: Any, namespace: Mapping[str, Any], *,
                 substitute: bool = True) -> list[str] | dict[str, str]:
    """One prompt per element of ``items``: ``template`` with ``{item}`` the element.

    A dict element's keys are names too (``{title}`` for ``{"title": ...}``);
    both shadow the notebook's names, which are still there. Each prompt is
    interpolated exactly once, from the merged names: an element whose text
    contains ``{item}`` or ``{x}`` is sent as written, never expanded again.
    ``items`` may be a list (or any iterable), a mapping (its keys name the
    prompts, its values are the items) or a DataFrame (one item per row, a
    dict of its columns). Without ``substitute`` the template is sent as is.
    """
    if isinstance(items, (str, bytes)):
        raise ConfigError("--over needs a list (or a dict, or a DataFrame) to go over, not a string")
    if hasattr(items, "to_dict") and hasattr(items, "columns"):  # a DataFrame: its rows
        items = items.to_dict("records")
    names: list[str] | None = None
    if isinstance(items, Mapping):
        names, items = [str(k) for k in items], list(items.values())
    else:
        try:
            items = list(items)
        except TypeError:
            raise ConfigError(f"--over needs a list, not {type(items).__name__}") from None
    prompts = []
    for item in items:
        own = {k: v for k, v in item.items() if isinstance(k, str)} if isinstance(item, Mapping) else {}
        own["item"] = item
        prompts.append(interpolate(template, ChainMap(own, namespace)) if substitute else template)
    return dict(zip(names, prompts)) if names is not None else prompts


def over(namespace: MutableMapping[str, Any], name: str, template: str, models: Sequence[str], *,
         substitute: bool = True, out: str | None = None, fmt: str = "markdown",
         **kwargs: Any) -> GridResults:
    """``%%gridllm --over NAME``: the grid of ``template`` over the list ``NAME``, blocking.

    ``out`` names a variable of ``namespace`` that holds the ``GridResults``
    from the first job on, so an interrupted grid keeps what arrived there.
    Ctrl-C raises ``KeyboardInterrupt`` with a one-line account of it.
    """
    if name not in namespace:
        raise ConfigError(f"--over {name}: no variable named {name!r} in the notebook")
    prompts = over_prompts(template, namespace[name], namespace, substitute=substitute)
    seen: list[GridResults] = []

    def keep(partial: GridResults) -> None:
        if not seen:
            seen.append(partial)
            for run in partial:
                run.format = fmt
            if out:
                namespace[out] = partial

    try:
        return grid(prompts, models, on_progress=keep, **kwargs)
    except KeyboardInterrupt:
        if not seen:
            raise KeyboardInterrupt("interrupted before any job was sent") from None
        c = seen[0].counts
        kept = f" in {out}" if out else ""
        raise KeyboardInterrupt(f"interrupted: {c.done} of {c.total} jobs had completed; "
                                f"the partial results are kept{kept}") from None
