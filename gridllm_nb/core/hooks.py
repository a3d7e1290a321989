"""What core asks of the layers above it, filled in once by the package root (``gridllm_nb._wire``).

Core imports nothing above itself (the import contract), yet a ``Results`` in
a notebook shows as the saved side-by-side picture and a ``Diff`` as its HTML
(``display``), a report file is drawn by ``display.report``, ``Results.retry``
goes through ``core.run.aretry`` (which sits above ``results``), and a grid's
progress may be a widget (``widgets``). Each is a function here, None until
the root gives it. They live in this module, which imports nothing, so the
root can fill them without loading the classes that call them; the root's
functions load their layer on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["diff_picture", "picture", "progress", "reporter", "retrier"]

picture: Callable[..., dict[str, Any]] | None = None  # (results, format) -> the saved side-by-side bundle
diff_picture: Callable[..., str] | None = None  # a Diff -> its HTML
reporter: Callable[..., Any] | None = None  # (Results or GridResults, path) -> the report file's path
retrier: Callable[..., Awaitable[Any]] | None = None  # what ``Results.retry`` awaits: ``core.run.aretry``
progress: dict[str, Callable[..., Any]] = {}  # progress kinds drawn above core, by name ("widget")
