"""``%%gridllm --over NAME``: the cell's prompt once per element of ``NAME``, on every model, blocking.

The grid itself is ``core.over.over`` (the prompts, the runs at most
``--max-live`` at a time, the ``GridResults``); the cell adds its progress
(a widget in a kernel, text elsewhere) and says an interrupt in one line.
A grid is many runs, so it cannot outlive its cell: no ``--no-wait``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ..errors import ConfigError, Interrupted

__all__ = ["over"]


def over(namespace: MutableMapping[str, Any], args: Any, template: str, models: list[str], fmt: str, mode: str, *,
         substitute: bool, **kwargs: Any) -> Any:
    """Run the grid of ``template`` over ``namespace[args.over]``; its value is the ``GridResults``.

    ``substitute``: the notebook's ``{names}`` are filled in, once per element.
    """
    from ..core.over import over as grid_over

    if args.no_wait:
        raise ConfigError("--no-wait cannot be used with --over")
    try:
        value = grid_over(namespace, args.over, template, models, out=args.out, fmt=fmt, substitute=substitute,
                         max_live=args.max_live, progress="widget" if mode == "cards" else "auto",
                         estimate=args.estimate, **kwargs)
        return None if args.estimate else value  # the estimate is printed; no grid was made
    except KeyboardInterrupt as stop:
        raise Interrupted(str(stop) or "interrupted") from None
