"""gridllm_nb: one prompt, several LLMs, every answer streaming in side by side.

The public surface is small and imported lazily, so ``import gridllm_nb`` and
``%load_ext gridllm_nb`` stay fast: httpx, ipywidgets and the service load
only when first used.

This module is also where the layers meet (``_wire``): core draws nothing and
imports nothing above itself, so what it needs from the layers above is given
to it here. Nothing inside the package imports this module, so the layers'
import contract holds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .__version__ import __version__

__all__ = [
    "Diff",
    "GridLLMError",
    "GridResults",
    "Job",
    "JobState",
    "JobUpdate",
    "JobsClient",
    "Panel",
    "Result",
    "Results",
    "__version__",
    "aattach",
    "agrid",
    "arun",
    "attach",
    "estimate",
    "grid",
    "judge",
    "leaderboard",
    "load_ipython_extension",
    "run",
    "unload_ipython_extension",
]

_LAZY = {
    "JobsClient": "api.client",
    "Job": "api.jobs",
    "JobState": "api.jobs",
    "JobUpdate": "api.jobs",
    "run": "core.run",
    "arun": "core.run",
    "attach": "core.run",
    "aattach": "core.run",
    "Results": "core.results",
    "Result": "core.results",
    "grid": "core.grid",
    "agrid": "core.grid",
    "GridResults": "core.grid",
    "Diff": "core.diff",
    "judge": "core.judge",
    "estimate": "core.estimate",
    "leaderboard": "core.arena",
    "Panel": "notebook.panel",
    "GridLLMError": "errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api.client import JobsClient
    from .api.jobs import Job, JobState, JobUpdate
    from .core.arena import leaderboard
    from .core.diff import Diff
    from .core.estimate import estimate
    from .core.grid import GridResults, agrid, grid
    from .core.judge import judge
    from .core.results import Result, Results
    from .core.run import aattach, arun, attach, run
    from .errors import GridLLMError
    from .notebook.panel import Panel

def _results_picture(results: Any, fmt: str) -> dict[str, Any]:
    from .display.table import results_bundle

    return results_bundle(results, fmt)


def _diff_picture(diff: Any) -> str:
    from .display.diff import diff_html

    return diff_html(diff)


async def _retry(results: Any, *args: Any, **kwargs: Any) -> Any:
    from .core.run import aretry

    return await aretry(results, *args, **kwargs)


def _widget_progress(total: int, **kwargs: Any) -> Any:
    from .widgets.progress import WidgetProgress

    return WidgetProgress(total, **kwargs)


def _save_report(value: Any, path: Any) -> Any:
    from .display.report import save_html

    return save_html(value, path)


def _wire() -> None:
    """Tell core how the layers above serve it: core imports nothing above itself, so what it
    needs from them (the pictures of Results and diffs, the report file, the retry of a Results, the
    progress bar in a notebook) is given here, at import, as functions that load their layer on first use."""
    from .core import hooks

    hooks.picture = _results_picture
    hooks.diff_picture = _diff_picture
    hooks.reporter = _save_report
    hooks.retrier = _retry
    hooks.progress["widget"] = _widget_progress


_wire()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gridllm_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gridllm_nb``: register ``%%gridllm`` and ``%gridllm``."""
    importlib.import_module(".notebook.magic", __name__).load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext gridllm_nb``: cancel the background runs and remove the magics."""
    importlib.import_module(".notebook.magic", __name__).unload_ipython_extension(ipython)
