"""``%%gridllm`` and ``%gridllm``: thin IPython front ends over ``runner.arun``.

The magic holds no polling or job state of its own: it parses arguments,
interpolates the prompt, starts ``arun`` and hands its ``JobUpdate`` stream
to a view (``views``): in a kernel, one grid of cards side by side (the
panel's card, sent only what changed), which becomes the saved side-by-side
picture when the run ends; on a terminal, labelled text. Models that ended
without an answer get a Retry button in a kernel (``views.CardsView``): on
a ``--no-wait`` cell's cards, or under a blocking cell's value.

Configuration: ``c.GridLLM.*`` (traitlets), ``%gridllm config KEY=VALUE``
for the session, and the environment (``GRIDLLM_API_URL``,
``GRIDLLM_API_TOKEN``, ``GRIDLLM_DEFAULT_MODELS``, ``GRIDLLM_HISTORY``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from ..core.arena import ArenaRound
from ..errors import CellError, ConfigError, GridLLMError, Interrupted
from ..core.interpolate import interpolate
from .args import HelpShown, parse_cell_line, parse_line
from ..display.render import FORMATS
from ..core.results import Results
from .cell_output import CardsView, StreamView, View

__all__ = ["CellError", "GridLLM", "GridLLMMagics",
           "load_ipython_extension", "unload_ipython_extension"]

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


# -- the magics ------------------------------------------------------------------


@magics_class
class GridLLMMagics(Magics):
    """``%%gridllm MODEL... [options]`` and ``%gridllm COMMAND``; see ``%%gridllm --help``."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = GridLLM(parent=shell)
        self.tasks: set[asyncio.Task[Any]] = set()  # --no-wait runs still streaming
        self.last_view: View | None = None

    # ---------------------------------------------------------------- helpers

    def _url(self, explicit: str | None = None) -> str | None:
        return explicit or self.settings.url or None

    def _mode(self) -> str:
        """``cards`` in a kernel (or when asked for), else ``stream``."""
        mode = self.settings.output
        if mode == "auto":
            return "stream" if getattr(self.shell, "kernel", None) is None else "cards"
        return mode

    def _poll(self, url: str | None) -> Any:
        """The poll pace for ``url``, with the session's ``poll_interval`` / ``poll_max_interval``."""
        from ..config import resolve_endpoint
        from ..core.live import default_poll_settings

        s = self.settings
        return default_poll_settings(resolve_endpoint(url), fast=s.poll_interval, slow=s.poll_max_interval)

    def _view(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None, *,
              retry: bool = False) -> View:
        """A run's live output: cards side by side in a kernel, text on a terminal (``_mode``).

        ``retry``: the cards offer Retry once the run is over (they stay live: a ``--no-wait`` cell's).
        """
        if self._mode() == "stream":
            view: View = StreamView(prompt, tags, fmt, results=results)
        else:
            view = self._cards(prompt, tags, fmt, results, retry=retry)
        self.last_view = view
        return view

    def _cards(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None, *,
               retry: bool = False) -> CardsView:
        s = self.settings
        rate = 1.0 / s.update_interval if s.update_interval > 0 else 0.0
        return CardsView(self.shell, prompt, tags, fmt, results=results, retry=retry, on_task=self._keep,
                         max_rate=rate, byte_budget=s.byte_budget, max_stale=s.max_stale)

    def _keep(self, task: asyncio.Task[Any]) -> None:
        """A background task of this kernel's (a retry from a card): cancelled with the extension."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _live(self, view: View, work: Awaitable[Any], background: bool = False) -> Results:
        """Await a run, a retry or a reattach that fills ``view.results``, then end the view."""
        await work
        view.finish(in_place=background)  # a blocking cell's value takes the grid's place instead
        return view.results

    def _show(self, view: View, coro: Coroutine[Any, Any, Results], name: str | None = None) -> Results:
        """Run ``coro`` (a ``_live``) to the end in this cell; its value replaces the live cards.

        Models left without an answer get a Retry button under that value
        (``_offer_retry``); ``name`` is the variable that holds the value, if any.
        """
        results = view.wait(coro)
        if isinstance(view, CardsView) and view.opened and not view.ended:
            # The value replaces the live grid: one output, the picture and the data.
            self.shell.display_pub.clear_output(wait=True)
            view.close()
            self._offer_retry(view, name)
        return results

    def _arena_round(self, args: Any, prompt: str, models: list[str], mode: str) -> ArenaRound:
        """``--arena``: the round's deal, once the cell is known to be one that can be voted on.

        The vote is a widget under the finished answers, so the cell must be
        a blocking one in a kernel: not ``--no-wait`` (its answers end after
        the cell), not ``--over`` (a grid is many rounds), not a terminal.
        """
        if args.over or args.no_wait:
            raise ConfigError("--arena cannot be used with --over or --no-wait: the vote needs the finished answers")
        if mode != "cards":
            raise ConfigError("--arena needs a notebook: the vote is a widget under the answers")
        return ArenaRound(models, prompt)

    def _offer_retry(self, view: CardsView, name: str | None) -> None:
        """Once this cell's value is shown, under it: the models that did not answer, and a Retry button.

        The cell's value (the table) is displayed after the cell's code has
        returned, so the offer waits for IPython's ``post_run_cell``, still
        within this cell (as inline plots do); a cell run some other way
        (``run_cell_magic`` from code) has no such moment, and the next
        cell's start drops the offer. The click runs the retry in the
        background, on the kernel's loop, into the same Results.
        """
        results = view.results
        if not results.retryable or results.spec is None:
            return
        offer = self._cards(results.prompt, results.retryable, view.fmt, results, retry=True)
        events = self.shell.events

        def done() -> None:
            events.unregister("post_run_cell", show)
            events.unregister("pre_run_cell", drop)

        def show(cell: Any) -> None:  # IPython's ExecutionResult of this cell
            done()
            offer.offer(f"{name}.retry()" if name else f"Out[{cell.execution_count}].retry()")

        def drop(_info: Any) -> None:
            done()

        events.register("post_run_cell", show)
        events.register("pre_run_cell", drop)

    # ------------------------------------------------------------- cell magic

    @cell_magic("gridllm")
    def gridllm_cell(self, line: str, cell: str) -> Any:
        """Send the cell to several models at once. Run ``%%gridllm --help`` for the options."""
        try:
            return self._cell(line, cell)
        except HelpShown:
            return None
        except GridLLMError as exc:
            raise CellError(str(exc)) from None

    def _cell(self, line: str, cell: str) -> Any:
        from ..config import parse_assignments
        from ..core.run import arun

        args = parse_cell_line(line)
        s = self.settings
        models = list(dict.fromkeys(args.models or s.default_models))
        if not models:
            raise ConfigError(
                "no model given: name at least one, e.g. %%gridllm smollm2:135m "
                "(or set c.GridLLM.default_models / %gridllm config default_models=...)"
            )
        if len(models) > s.max_models:
            raise ConfigError(f"{len(models)} models asked, at most {s.max_models} (c.GridLLM.max_models)")
        # IPython ends a cell body with the newline the user did not type
        # before the cell's end; the prompt is what they wrote.
        prompt = cell.removesuffix("\n")
        if s.interpolate and not args.no_interpolate and not args.over:  # --over: once per element, later
            prompt = interpolate(prompt, self.shell.user_ns)
        if not prompt.strip():
            raise ConfigError("empty prompt: write the prompt in the cell body")
        options = dict(s.options)
        options.update(parse_assignments(args.option, what="--option", json_values=True))
        kwargs = {
            "url": self._url(args.url),
            "hours": args.hours if args.hours is not None else s.hours,
            "timeout": args.timeout if args.timeout is not None else s.timeout,
            "system": args.system if args.system is not None else s.system,
            "options": options or None,
            "poll": self._poll(self._url(args.url)),
        }
        fmt = args.format or s.default_format
        mode = self._mode()
        arena = self._arena_round(args, prompt, models, mode) if args.arena else None
        if args.over:
            return self._over(args, prompt, models, fmt, mode, kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        # A --no-wait cell's cards stay live after its run: they offer Retry themselves.
        view = self._view(prompt, list(arena.letters) if arena is not None else models, fmt,
                          retry=args.no_wait and loop is not None)
        if args.out:
            self.shell.user_ns[args.out] = view.results

        # The view's own Results are the run's: they carry its spec (so they can be retried) and
        # its history run id from the start; the core writes the history as the jobs go.
        if arena is None:
            run = arun(prompt, models, on_update=view.on_update, announce=print, results=view.results,
                       history=s.history, **kwargs)
        else:  # --arena: the view is dealt the letters, never the tags; the history gets the real run
            run = arun(prompt, models, on_update=lambda u: view.on_update(arena.take(u)),
                       announce=lambda m: print(arena.mask(m)), results=arena.results, history=s.history, **kwargs)
        coro = self._live(view, run, background=args.no_wait)
        if args.no_wait and loop is not None:
            view.open()  # the output must belong to this cell, not to a later one
            task = loop.create_task(coro, name="gridllm-cell")
            self.tasks.add(task)
            task.add_done_callback(lambda t: self._background_done(t, view))
            return None
        if arena is None:
            return self._show(view, coro, args.out)
        from ..widgets.votebar import ArenaOutput

        self._show(view, coro)  # lettered Results without a spec: no Retry offer that would name a model
        arena.run_id = arena.results.run_id  # the vote points to the run
        value = ArenaOutput(arena, fmt)  # the lettered picture with the vote under it
        if args.out:
            self.shell.user_ns[args.out] = value
        return value

    def _over(self, args: Any, template: str, models: list[str], fmt: str, mode: str,
              kwargs: dict[str, Any]) -> Any:
        """``--over NAME``: a prompt × model grid (``grid.over``), a progress bar, a ``GridResults``."""
        from ..core.grid import over

        if args.no_wait:
            raise ConfigError("--no-wait cannot be used with --over")
        try:
            return over(self.shell.user_ns, args.over, template, models, out=args.out, fmt=fmt,
                        substitute=self.settings.interpolate and not args.no_interpolate, max_live=args.max_live,
                        progress="widget" if mode == "cards" else "auto", **kwargs)
        except KeyboardInterrupt as stop:
            raise Interrupted(str(stop) or "interrupted") from None

    def _background_done(self, task: asyncio.Task[Any], view: View) -> None:
        self.tasks.discard(task)
        view.background_done(task)

    def cancel_background(self) -> int:
        """Cancel every ``--no-wait`` run of this kernel; returns how many were live."""
        live = [t for t in self.tasks if not t.done()]
        for t in live:
            t.cancel()
        return len(live)

    # ------------------------------------------------------------- line magic

    @line_magic("gridllm")
    def gridllm_line(self, line: str) -> Any:
        """``%gridllm models|status|cancel|config|local|history|attach|retry|panel|arena|leaderboard|help``."""
        try:
            args = parse_line(line)
            handler = getattr(self, f"_cmd_{args.command}")
            return handler(args)
        except HelpShown:
            return None
        except GridLLMError as exc:
            raise CellError(str(exc)) from None

    def _cmd_models(self, args: Any) -> None:
        """``%gridllm models | status ID... | cancel ID...``: ``commands``, as the CLI runs them."""
        from ..core import commands

        action = getattr(commands, args.command)
        ids = () if args.command == "models" else (args.ids,)
        commands.with_client(self._url(args.url), lambda client: action(client, *ids, sys.stdout))

    _cmd_status = _cmd_cancel = _cmd_models

    _SETTABLE = ("url", "default_models", "default_format", "hours", "timeout", "system", "options",
                 "poll_interval", "poll_max_interval", "update_interval", "byte_budget",
                 "max_stale", "max_models", "interpolate",
                 "history", "output")

    def _cmd_config(self, args: Any) -> None:
        from ..core.commands import configure

        configure(self.settings, self._SETTABLE, args.settings, sys.stdout)

    def _cmd_local(self, args: Any) -> None:
        """``%gridllm local start|stop|status``: the per-user background service, shared by every kernel."""
        from ..config import resolve_endpoint
        from ..core.local import local, local_url

        token = resolve_endpoint(self._url()).token
        local(args.action, local_url(self._url(), args.port), sys.stdout, token.reveal() if token else None)

    def _cmd_history(self, args: Any) -> None:
        """``%gridllm history [N]``: the last runs, each with the id that attach and retry take."""
        from ..core import commands

        commands.history(args.n, sys.stdout)

    def _stored(self, args: Any) -> Results:
        """The history run ``args.run`` names (default: the newest), polled at the session's pace."""
        from dataclasses import replace

        from ..core.history import load_run

        results = load_run(args.run)
        assert results.spec is not None
        url = args.url or results.spec.url
        results.spec = replace(results.spec, url=url, poll=self._poll(url))
        return results

    def _cmd_attach(self, args: Any) -> Results:
        """``%gridllm attach [RUN]``: a run's jobs followed again (after a kernel restart), as live cards.

        Models that had ended are shown as stored; the others resume from
        their whole log so far. The value is the run's Results, as a cell's.
        """
        from ..core.run import aattach

        results = self._stored(args)
        view = self._view(results.prompt, list(results), self.settings.default_format, results)
        return self._show(view, self._live(view, aattach(results, on_update=view.on_update,
                                                          timeout=args.timeout)))

    def _cmd_retry(self, args: Any) -> Results:
        """``%gridllm retry [RUN]``: a history run's failed, lost, cancelled or timed-out models, submitted
        again as that run was (prompt, system prompt, options, URL), as live cards; its rows are updated."""
        from ..core.history import short_id
        from ..core.run import aretry

        results = self._stored(args)
        retry = results.retryable
        if not retry:
            print(f"gridllm: nothing to retry in run {short_id(results.run_id or '')}: "
                  "no model failed, was lost, cancelled or timed out")
            return results
        view = self._view(results.prompt, list(results), self.settings.default_format, results)
        for tag, r in results.items():  # the answers kept, shown as stored
            if tag not in retry:
                view.on_update(r.as_update())
        return self._show(view, self._live(view, aretry(results, retry, on_update=view.on_update,
                                                         timeout=args.timeout)))

    def _cmd_leaderboard(self, args: Any) -> Any:
        """``%gridllm leaderboard``: the arena's ranking (its value renders as table and plot)."""
        from ..core.arena import leaderboard

        return leaderboard()

    def _cmd_panel(self, args: Any) -> Any:
        """``%gridllm panel``, and ``%gridllm arena``: the same panel, blind."""
        from IPython.display import display

        try:
            from .panel import Panel
        except ImportError as exc:
            raise ConfigError(f"the panel is not available: {exc}") from None
        s = self.settings
        display(Panel(s.default_models or None, url=self._url(), options=dict(s.options) or None,
                      hours=s.hours, arena=args.command == "arena"))
        return None

    _cmd_arena = _cmd_panel


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gridllm_nb``: register ``%%gridllm`` and ``%gridllm``."""
    ipython.register_magics(GridLLMMagics)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("GridLLMMagics")
    if magics is not None:
        magics.cancel_background()
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("gridllm", None)
    ipython.magics_manager.registry.pop("GridLLMMagics", None)
