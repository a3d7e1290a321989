"""``%%gridllm`` and ``%gridllm``: thin IPython front ends over ``core.run``.

The magic holds no polling or job state of its own: it parses arguments
(``args``), interpolates the prompt, starts ``arun`` and hands its
``JobUpdate`` stream to the cell's output (``cell_output``): in a kernel,
one grid of cards side by side, which becomes the saved side-by-side
picture when the run ends; on a terminal, labelled text. Models that ended
without an answer get a Retry button in a kernel: on a ``--no-wait`` cell's
cards, or under a blocking cell's value.

A blocking cell runs to its end in the cell (``core.sync.run_sync``); a
``--no-wait`` run, and every retry, on the process's background loop
(``core.sync.submit``), so it keeps streaming while later cells run. The
two cells that are more than one run have their own module: ``--arena``
(``arena_cell``) and ``--over`` (``grid_cell``).

Configuration: ``settings`` (``c.GridLLM.*``, ``%gridllm config KEY=VALUE``)
and the environment (``GRIDLLM_API_URL``, ``GRIDLLM_API_TOKEN``,
``GRIDLLM_DEFAULT_MODELS``, ``GRIDLLM_HISTORY``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from ..core.interpolate import interpolate
from ..core.results import Results
from ..core.sync import run_sync
from ..errors import CellError, ConfigError, GridLLMError, Interrupted
from .args import HelpShown, parse_cell_line, parse_line
from .cell_output import CardsView, StreamView, View, offer_retry
from .settings import GridLLM

if TYPE_CHECKING:
    from ..core.grid import GridResults

__all__ = ["CellError", "GridLLMMagics", "Interrupted", "load_ipython_extension", "unload_ipython_extension"]


# -- the magics ------------------------------------------------------------------


@magics_class
class GridLLMMagics(Magics):
    """``%%gridllm MODEL... [options]`` and ``%gridllm COMMAND``; see ``%%gridllm --help``."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = GridLLM(parent=shell)
        if shell is not None:
            shell.configurables.append(self.settings)  # so ``%config GridLLM.history = False`` reaches it
        self.tasks: set[concurrent.futures.Future[Any]] = set()  # --no-wait runs and retries still going
        self.last_view: View | None = None

    # ---------------------------------------------------------------- helpers

    def _mode(self) -> str:
        """``cards`` in a kernel (or when asked for), else ``stream``."""
        mode = self.settings.output
        if mode == "auto":
            return "stream" if getattr(self.shell, "kernel", None) is None else "cards"
        return mode

    def _view(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None, *,
              retry: bool = False, blind: Any = None) -> View:
        """A run's live output: cards side by side in a kernel, text on a terminal (``_mode``).

        ``retry``: the cards offer Retry once the run is over (they stay live: a ``--no-wait`` cell's).
        ``blind``: an arena round, whose cards show letters (``CardsView``).
        """
        if self._mode() == "stream":
            view: View = StreamView(prompt, tags, fmt, results=results)
        else:
            view = self._cards(prompt, tags, fmt, results, retry=retry, blind=blind)
        self.last_view = view
        return view

    def _cards(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None, *,
               retry: bool = False, blind: Any = None) -> CardsView:
        return CardsView(self.shell, prompt, tags, fmt, results=results, retry=retry, on_task=self._keep,
                         blind=blind, **self.settings.card_options())

    def _keep(self, run: concurrent.futures.Future[Any]) -> None:
        """A background run of this kernel's (``--no-wait``, a retry): cancelled with the extension."""
        self.tasks.add(run)
        run.add_done_callback(self.tasks.discard)

    async def _live(self, view: View, work: Awaitable[Any]) -> Results:
        """Await a run, a retry or a reattach that fills ``view.results``; the cell's value takes the view's place."""
        await work
        view.finish(in_place=False)
        return view.results

    def _show(self, view: View, coro: Coroutine[Any, Any, Results], name: str | None = None) -> Results:
        """Run ``coro`` (a ``_live``) to the end in this cell; its value replaces the live cards.

        Models left without an answer get a Retry button under that value
        (``cell_output.offer_retry``), but for an arena round's, whose offer would name them;
        ``name`` is the variable that holds the value, if any.
        """
        results = view.wait(coro)
        if isinstance(view, CardsView) and view.opened and not view.ended:
            # The value replaces the live grid: one output, the picture and the data.
            self.shell.display_pub.clear_output(wait=True)
            view.close()
            results = view.results
            if results.retryable and results.spec is not None and view.blind is None:
                offer_retry(self.shell.events, name,
                            lambda: self._cards(results.prompt, results.retryable, view.fmt, results, retry=True))
        return results

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
        from ..core.run import arun

        args = parse_cell_line(line)
        s = self.settings
        models = s.models_for(args.models)
        # IPython ends a cell body with the newline the user did not type
        # before the cell's end; the prompt is what they wrote.
        prompt = cell.removesuffix("\n")
        if s.interpolate and not args.no_interpolate and not args.over:  # --over: once per element, later
            prompt = interpolate(prompt, self.shell.user_ns)
        if not prompt.strip():
            raise ConfigError("empty prompt: write the prompt in the cell body")
        kwargs = s.run_options(args)
        fmt = args.format or s.default_format
        mode = self._mode()
        if args.arena:
            from ..widgets.votebar import ArenaOutput
            from . import arena_cell

            arena = arena_cell.deal(args, prompt, models, mode)
            view = self._view(prompt, list(arena.tags), fmt, arena.results, blind=arena)
            self._show(view, self._live(view, arena_cell.run(arena, view, history=s.history, **kwargs)))
            return self._value(args.out, ArenaOutput(arena, fmt))  # the lettered picture, the vote under it
        kwargs.update(checks=args.check or None, judge=args.judge or None)
        if args.estimate and not args.over:
            raise ConfigError("--estimate goes with --over: it estimates a grid")
        if args.over:
            from .grid_cell import over

            return over(self.shell.user_ns, args, prompt, models, fmt, mode,
                        substitute=s.interpolate and not args.no_interpolate, history=s.history, **kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        # A --no-wait cell's cards stay live after its run: they offer Retry themselves.
        view = self._view(prompt, models, fmt, retry=args.no_wait and loop is not None)
        self._value(args.out, view.results)
        # The view's own Results are the run's: they carry its spec (so they can be retried) and
        # its history run id from the start; the core writes the history as the jobs go.
        run = arun(prompt, models, on_update=view.on_update, announce=print, results=view.results,
                   history=s.history, **kwargs)
        if args.no_wait and loop is not None:  # a kernel: the run goes on after the cell
            from ..core.sync import submit

            view.open()  # the output must belong to this cell, not to a later one
            self._keep(submit(view.keep_live(run), name="gridllm-cell"))
            return None
        return self._show(view, self._live(view, run), args.out)

    def _value(self, name: str | None, value: Any) -> Any:
        """``--out NAME``: the notebook's ``NAME`` holds ``value`` (a run's Results from its start)."""
        if name:
            self.shell.user_ns[name] = value
        return value

    def cancel_background(self, wait: float = 5.0) -> int:
        """Cancel every background run of this kernel (``--no-wait``, retries), and give them up
        to ``wait`` seconds to end their jobs CANCELLED; returns how many were live."""
        live = [t for t in list(self.tasks) if not t.done()]
        for t in live:
            t.cancel()
        concurrent.futures.wait(live, timeout=wait)
        return len(live)

    # ------------------------------------------------------------- line magic

    @line_magic("gridllm")
    def gridllm_line(self, line: str) -> Any:
        """``%gridllm models|status|cancel|config|local|history|attach|retry|panel|arena|leaderboard|help``;
        ``%gridllm COMMAND --help`` for a command's options (``leaderboard [--method bt|elo] [--mine]``)."""
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
        commands.with_client(self.settings.endpoint(args.url), lambda client: action(client, *ids, sys.stdout))

    _cmd_status = _cmd_cancel = _cmd_models

    def _cmd_config(self, args: Any) -> None:
        from .settings import configure

        configure(self.settings, args.settings, sys.stdout)

    def _cmd_local(self, args: Any) -> None:
        """``%gridllm local start|stop|status``: the per-user background service, shared by every kernel."""
        from ..config import resolve_endpoint
        from ..core.local import local, local_url

        token = resolve_endpoint(self.settings.endpoint()).token
        local(args.action, local_url(self.settings.endpoint(), args.port), sys.stdout, token.reveal() if token else None)

    def _cmd_history(self, args: Any) -> None:
        """``%gridllm history [N]``: the last runs, each with the id that attach and retry take."""
        from ..core import commands

        commands.history(args.n, sys.stdout)

    def _stored(self, args: Any) -> Results | GridResults:
        """The history run ``args.run`` names (default: the newest), polled at the session's pace."""
        from dataclasses import replace

        from ..core.commands import stored

        results = stored(args.run, url=args.url)
        assert results.spec is not None  # a history run says where it ran
        results.spec = replace(results.spec, poll=self.settings.poll_for(results.spec.url))
        return results

    def _cmd_attach(self, args: Any) -> Results | GridResults:
        """``%gridllm attach [RUN]``: a run's jobs followed again (after a kernel restart), as live cards.

        Models that had ended are shown as stored; the others resume from
        their whole log so far. The value is the run's Results, as a cell's.
        """
        from ..core.run import aattach

        results = self._stored(args)
        if not isinstance(results, Results):  # a grid: its value is the GridResults, as its cell's was
            return run_sync(aattach(results, timeout=args.timeout))
        view = self._view(results.prompt, list(results), self.settings.default_format, results)
        return self._show(view, self._live(view, aattach(results, on_update=view.on_update,
                                                          timeout=args.timeout)))

    def _cmd_retry(self, args: Any) -> Results | GridResults:
        """``%gridllm retry [RUN]``: a history run's failed, lost, cancelled or timed-out models, submitted
        again as that run was (prompt, system prompt, options, URL), as live cards; its rows are updated."""
        from ..core.history import short_id
        from ..core.run import aretry

        results = self._stored(args)
        if not isinstance(results, Results):  # a grid: every job that ended without an answer
            return run_sync(aretry(results, timeout=args.timeout))
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
        """``%gridllm leaderboard [--method bt|elo] [--mine]``: the arena's ranking, as ``gridllm-nb leaderboard``
        ranks it (``commands.leaderboard``); its value renders as a table and a plot."""
        from ..core import commands

        return commands.leaderboard(args)

    def _cmd_panel(self, args: Any) -> Any:
        """``%gridllm panel``, and ``%gridllm arena``: the same panel, blind."""
        from IPython.display import display

        try:
            from .panel import Panel
        except ImportError as exc:
            raise ConfigError(f"the panel is not available: {exc}") from None
        s = self.settings
        display(Panel(s.default_models or None, url=self.settings.endpoint(), options=dict(s.options) or None,
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
        if magics.settings in ipython.configurables:
            ipython.configurables.remove(magics.settings)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("gridllm", None)
    ipython.magics_manager.registry.pop("GridLLMMagics", None)
