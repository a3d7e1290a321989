"""gridllm_nb: one prompt, several LLMs, every answer streaming in side by side.

The public surface is small and imported lazily, so ``import gridllm_nb`` and
``%load_ext gridllm_nb`` stay fast: httpx, ipywidgets and the service load
only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__version__ import __version__

__all__ = [
    "Diff",
    "GridResults",
    "GridLLMError",
    "Job",
    "JobState",
    "JobUpdate",
    "JobsClient",
    "Panel",
    "Result",
    "Results",
    "aattach",
    "arun",
    "agrid",
    "attach",
    "grid",
    "leaderboard",
    "load_ipython_extension",
    "run",
    "unload_ipython_extension",
]

_LAZY = {
    "JobsClient": "client",
    "run": "runner",
    "arun": "runner",
    "attach": "runner",
    "aattach": "runner",
    "Results": "results",
    "Result": "results",
    "Job": "jobs",
    "JobState": "jobs",
    "JobUpdate": "jobs",
    "Panel": "panel",
    "GridLLMError": "errors",
    "Diff": "diff",
    "grid": "grid",
    "agrid": "grid",
    "GridResults": "grid",
    "leaderboard": "arena",
}

if TYPE_CHECKING:  # pragma: no cover
    from .core.arena import leaderboard
    from .api.client import JobsClient
    from .core.diff import Diff
    from .core.grid import GridResults, agrid, grid
    from .errors import GridLLMError
    from .api.jobs import Job, JobState, JobUpdate
    from .notebook.panel import Panel
    from .core.results import Result, Results
    from .core.run import aattach, arun, attach, run


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gridllm_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gridllm_nb``: register ``%%gridllm`` and ``%gridllm``."""
    from .notebook.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook.magic import unload_ipython_extension as unload

    unload(ipython)
