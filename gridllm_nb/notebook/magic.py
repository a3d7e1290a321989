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
(``core.sync.submit``), so it keeps streaming while later cells run.

Configuration: ``settings`` (``c.GridLLM.*``, ``%gridllm config KEY=VALUE``)
and the environment (``GRIDLLM_API_URL``, ``GRIDLLM_API_TOKEN``,
``GRIDLLM_DEFAULT_MODELS``, ``GRIDLLM_HISTORY``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from ..core.arena import ArenaRound
from ..core.interpolate import interpolate
from ..core.results import Results
from ..errors import CellError, ConfigError, GridLLMError, Interrupted
from .args import HelpShown, parse_cell_line, parse_line
from .cell_output import CardsView, StreamView, View, offer_retry
from .settings import GridLLM

__all__ = ["CellError", "GridLLMMagics", "Interrupted", "load_ipython_extension", "unload_ipython_extension"]


# -- the magics ------------------------------------------------------------------


@magics_class
class GridLLMMagics(Magics):
    """``%%gridllm MODEL... [options]`` and ``%gridllm COMMAND``; see ``%%gridllm --help``."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = GridLLM(parent=shell)
        self.tasks: set[concurrent.futures.Future[Any]] = set()  # --no-wait runs and retries still going
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
        (``cell_output.offer_retry``); ``name`` is the variable that holds the value, if any.
        """
        results = view.wait(coro)
        if isinstance(view, CardsView) and view.opened and not view.ended:
            # The value replaces the live grid: one output, the picture and the data.
            self.shell.display_pub.clear_output(wait=True)
            view.close()
            results = view.results
            if results.retryable and results.spec is not None:
                offer_retry(self.shell.events, name,
                            lambda: self._cards(results.prompt, results.retryable, view.fmt, results, retry=True))
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
            run = arun(prompt, models, on_update=lambda u: view.record(arena.take(u)),
                       announce=lambda m: print(arena.mask(m)), results=arena.results, history=s.history, **kwargs)
        if args.no_wait and loop is not None:  # a kernel: the run goes on after the cell
            from ..core.sync import submit

            view.open()  # the output must belong to this cell, not to a later one
            self._keep(submit(view.keep_live(run), name="gridllm-cell"))
            return None
        coro = self._live(view, run)
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

    def _cmd_config(self, args: Any) -> None:
        from .settings import configure

        configure(self.settings, args.settings, sys.stdout)

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

        from ..core.commands import stored

        results = stored(args.run, url=args.url)
        assert results.spec is not None  # a history run says where it ran
        results.spec = replace(results.spec, poll=self._poll(results.spec.url))
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
