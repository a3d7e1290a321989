"""gridllm_nb: one prompt, several LLMs, every answer streaming in side by side.

The public surface is small and imported lazily, so ``import gridllm_nb`` and
``%load_ext gridllm_nb`` stay fast: httpx, ipywidgets and the service load
only when first used.

This module is also where the layers meet: core draws nothing itself, so the
first public name asked for brings in the display layer, which tells core
how its values look in a notebook (``_compose``). Nothing inside the package
imports this module, so the layers' import contract holds.
"""

from __future__ import annotations

import importlib
import sys
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
    "grid",
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
    "leaderboard": "core.arena",
    "Panel": "notebook.panel",
    "GridLLMError": "errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api.client import JobsClient
    from .api.jobs import Job, JobState, JobUpdate
    from .core.arena import leaderboard
    from .core.diff import Diff
    from .core.grid import GridResults, agrid, grid
    from .core.results import Result, Results
    from .core.run import aattach, arun, attach, run
    from .errors import GridLLMError
    from .notebook.panel import Panel

_composed = False


def _compose() -> None:
    """Wire what the layers above give core (injected, never imported by core): the display
    layer's pictures of Results, grids and diffs, and the widget progress bar."""
    global _composed
    if not _composed:
        _composed = True
        importlib.import_module(".display", __name__)
        importlib.import_module(".core.run", __name__)  # Results.retry's runner
        if "ipykernel" in sys.modules:  # a notebook: progress="widget", and "auto" picks it
            importlib.import_module(".widgets.progress", __name__)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gridllm_nb' has no attribute {name!r}")
    _compose()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gridllm_nb``: register ``%%gridllm`` and ``%gridllm``."""
    _compose()
    importlib.import_module(".notebook.magic", __name__).load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext gridllm_nb``: cancel the background runs and remove the magics."""
    importlib.import_module(".notebook.magic", __name__).unload_ipython_extension(ipython)
