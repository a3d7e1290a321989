"""``%%gridllm --arena``: one blind round in a cell, the vote under its answers.

The cell runs as a blocking cell does, into the round's own ``Results``
(``ArenaRound.results``, by tag: the history gets the real run, each update
applied once, by the core). Its cards read that run, titled by the round's
letters, masking the names in their errors (``CardsView(blind=...)``);
whatever else the cell prints is masked too. Its value is the lettered
picture with the vote under it (``widgets.votebar.ArenaOutput``).

The vote is a widget under the finished answers, so the cell must be a
blocking one in a kernel: not ``--no-wait`` (its answers end after the
cell), not ``--over`` (a grid is many rounds), not a terminal.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from ..core.arena import ArenaRound
from ..core.results import Results
from ..errors import ConfigError
from .cell_output import CardsView

__all__ = ["deal", "run"]


def deal(args: Any, prompt: str, models: list[str], mode: str) -> ArenaRound:
    """The round's deal, once the cell (its parsed ``args``, its output ``mode``) is one that can be voted on."""
    if args.over or args.no_wait:
        raise ConfigError("--arena cannot be used with --over or --no-wait: the vote needs the finished answers")
    if mode != "cards":
        raise ConfigError("--arena needs a notebook: the vote is a widget under the answers")
    return ArenaRound(models, prompt)


def run(arena: ArenaRound, view: CardsView, **kwargs: Any) -> Coroutine[Any, Any, Results]:
    """The round's run (``arun`` with ``kwargs``), shown on ``view``: its updates reach the view with
    their errors masked, and its announcements the cell the same way."""
    from ..core.run import arun

    return arun(arena.prompt, list(arena.tags), results=arena.results,
                on_update=lambda u: view.on_update(arena.hide(u)), announce=lambda m: print(arena.mask(m)),
                **kwargs)
