"""``%%gridllm --over NAME``: the cell is a template, one prompt per element of the list ``NAME``.

Each prompt is interpolated exactly once, from the element's names and the
notebook's; the prompts then go out as one grid (``grid.grid``), and a dict
element's keys fill the checks' ``{column}`` fields as a row would.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from ..errors import ConfigError
from .grid import GridResults, grid
from .interpolate import interpolate

__all__ = ["over", "over_prompts"]


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


def _over_rows(items: Any) -> list[Mapping[str, Any]] | None:
    """The elements of an ``--over`` list as rows for the checks' ``{column}`` fields (dict elements
    and a DataFrame's rows; other elements are ``{item}``)."""
    if hasattr(items, "to_dict") and hasattr(items, "columns"):
        items = items.to_dict("records")
    if isinstance(items, Mapping):
        values = list(items.values())
    elif isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        values = list(items)
    else:
        return None  # an iterator, read once already by ``over_prompts``
    return [{**(dict(v) if isinstance(v, Mapping) else {}), "item": v} for v in values]


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
    kwargs.setdefault("rows", _over_rows(namespace[name]))
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
