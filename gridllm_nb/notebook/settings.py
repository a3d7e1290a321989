"""The magic's settings: ``c.GridLLM.*`` in an IPython profile, ``%gridllm config KEY=VALUE`` for the session.

Traitlets live here, in the notebook layer, and nowhere below it: the
foundation (``config``) reads endpoints and ``KEY=VALUE`` text, and this
module turns that text into each setting's type (``trait_value``). What a
cell asks for (its models, its ``--url``, ``--hours``...) wins over the
session's setting, which wins over the default: ``GridLLM.models_for``,
``run_options`` and ``card_options`` say so once.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from traitlets import Bool, Dict, Enum, Float, Int, List, TraitType, Unicode, default
from traitlets.config import Configurable

from ..config import TOKEN_ENV, parse_assignments, resolve_endpoint
from ..display.render import FORMATS
from ..errors import ConfigError

__all__ = ["MODELS_ENV", "SETTABLE", "GridLLM", "configure", "trait_value"]

MODELS_ENV = "GRIDLLM_DEFAULT_MODELS"


class GridLLM(Configurable):
    """Settings of the ``%%gridllm`` magic: ``c.GridLLM.<name>`` in an IPython profile."""

    default_models = List(Unicode(), help="models used when the cell names none").tag(config=True)
    url = Unicode(None, allow_none=True,
                  help="API base URL (default: $GRIDLLM_API_URL, else the local service)").tag(config=True)
    default_format = Enum(FORMATS, default_value="markdown", help="final output format").tag(config=True)
    hours = Float(None, allow_none=True, help="default runtime limit per job, in hours").tag(config=True)
    timeout = Float(None, allow_none=True, help="default wait limit for a cell, in seconds").tag(config=True)
    system = Unicode(None, allow_none=True, help="default system prompt (local-service extension)").tag(config=True)
    options = Dict(help="default generation options, e.g. {'max_tokens': 128}").tag(config=True)
    poll_interval = Float(None, allow_none=True,
                          help="fastest poll interval, seconds (default: 0.1 for a service on this machine, "
                               "0.3 for a remote one)").tag(config=True)
    poll_max_interval = Float(None, allow_none=True,
                              help="slowest poll interval while nothing changes, seconds (default: 0.25 for "
                                   "a service on this machine, 5 for a remote one)").tag(config=True)
    update_interval = Float(0.1, help="minimum time between updates of one model's card, seconds").tag(config=True)
    byte_budget = Float(1.2, allow_none=True,
                        help="a card's text update waits while the card has sent more than byte_budget bytes "
                             "of message content per byte of text (None: no wait); the comm framing comes on "
                             "top, so 1.2 keeps a cell's live bytes near 2x its text...").tag(config=True)
    max_stale = Float(1.5, help="...but never longer than this many seconds").tag(config=True)
    max_models = Int(8, help="most models one cell may ask at once").tag(config=True)
    interpolate = Bool(True, help="replace {name} in the cell with the variable's value").tag(config=True)
    history = Bool(True, help="record runs in the local SQLite history").tag(config=True)
    output = Enum(("auto", "cards", "stream"), default_value="auto",
                  help="auto: cards side by side in a kernel, text on stdout in a terminal. cards: a grid "
                       "of live cards, which becomes the saved side-by-side picture at the end. stream: "
                       "text on stdout.").tag(config=True)

    @default("default_models")
    def _models_from_env(self) -> list[str]:
        return [m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip()]

    def endpoint(self, explicit: str | None = None) -> str | None:
        """The URL a command uses: ``explicit`` (``--url``), else ``url``; None is the default service."""
        return explicit or self.url or None

    def models_for(self, asked: Sequence[str]) -> list[str]:
        """The models a cell runs: the ones it names (each once), else ``default_models``; at most ``max_models``."""
        models = list(dict.fromkeys(asked or self.default_models))
        if not models:
            raise ConfigError("no model given: name at least one, e.g. %%gridllm smollm2:135m "
                              "(or set c.GridLLM.default_models / %gridllm config default_models=...)")
        if len(models) > self.max_models:
            raise ConfigError(f"{len(models)} models asked, at most {self.max_models} (c.GridLLM.max_models)")
        return models

    def poll_for(self, url: str | None) -> Any:
        """The poll pace for ``url``, with the session's ``poll_interval`` / ``poll_max_interval``."""
        from ..core.live import default_poll_settings

        return default_poll_settings(resolve_endpoint(url), fast=self.poll_interval, slow=self.poll_max_interval)

    def run_options(self, args: Any) -> dict[str, Any]:
        """``arun``'s keywords for a cell whose parsed line is ``args``: each of its options over the setting."""
        options = dict(self.options)
        options.update(parse_assignments(args.option, what="--option", json_values=True))
        url = self.endpoint(args.url)
        return {"url": url, "hours": args.hours if args.hours is not None else self.hours,
                "timeout": args.timeout if args.timeout is not None else self.timeout,
                "system": args.system if args.system is not None else self.system,
                "options": options or None, "poll": self.poll_for(url)}

    def card_options(self) -> dict[str, Any]:
        """How a cell's cards pace their updates (``widgets.card.Card``)."""
        rate = 1.0 / self.update_interval if self.update_interval > 0 else 0.0
        return {"max_rate": rate, "byte_budget": self.byte_budget, "max_stale": self.max_stale}


# What ``%gridllm config`` may set, in the order it shows them.
SETTABLE = ("url", "default_models", "default_format", "hours", "timeout", "system", "options",
            "poll_interval", "poll_max_interval", "update_interval", "byte_budget",
            "max_stale", "max_models", "interpolate", "history", "output")


def trait_value(trait: TraitType[Any, Any], key: str, value: str) -> Any:
    """``value`` (text, from ``%gridllm config KEY=VALUE``) as the traitlet ``trait`` wants it;
    a one-line ConfigError when it cannot be."""
    if value in ("", "none", "None") and trait.allow_none:
        return None
    if isinstance(trait, List):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(trait, Dict):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ConfigError(f"{key} wants a JSON object, got {value!r}") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"{key} wants a JSON object, got {value!r}")
        return parsed
    if isinstance(trait, Bool):
        return value.lower() in ("1", "true", "yes", "on")
    try:
        if isinstance(trait, Float):
            return float(value)
        if isinstance(trait, Int):
            return int(value)
    except ValueError:
        raise ConfigError(f"{key} wants a number, got {value!r}") from None
    if isinstance(trait, Enum) and value not in trait.values:
        raise ConfigError(f"{key} must be one of {', '.join(map(str, trait.values))}, got {value!r}")
    if key == "url":
        resolve_endpoint(value)  # validates, raises a one-line ConfigError
    return value


def configure(settings: GridLLM, pairs: Sequence[str], out: TextIO | None = None,
              settable: Sequence[str] = SETTABLE) -> None:
    """``%gridllm config [KEY=VALUE...]``: set ``settings`` for the session, then show them all."""
    out = out or sys.stdout
    for key, value in parse_assignments(pairs, what="%gridllm config").items():
        key = {"models": "default_models", "format": "default_format"}.get(key, key)
        if key not in settable:
            raise ConfigError(f"unknown setting {key!r}; settable: {', '.join(settable)}")
        setattr(settings, key, trait_value(settings.traits()[key], key, value))
    try:
        endpoint = resolve_endpoint(settings.url or None)
        where = endpoint.display + ("  (the local service, started on demand)" if endpoint.is_default else "")
    except ConfigError as exc:
        where = f"invalid: {exc}"
    print(f"endpoint: {where}", file=out)
    print(f"token: ${TOKEN_ENV} is {'set' if os.environ.get(TOKEN_ENV) else 'not set'}", file=out)
    for key in settable:
        if key != "url":
            print(f"{key}: {getattr(settings, key)!r}", file=out)
