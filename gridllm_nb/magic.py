"""``%%gridllm`` and ``%gridllm``: thin IPython front ends over ``runner.arun``.

The magic holds no polling or job state of its own: it parses arguments,
interpolates the prompt, starts ``arun`` and turns its ``JobUpdate`` stream
into one display per model (``display_id`` handles, updated in place and
coalesced), or into labelled text on a terminal.

In a kernel each display is updated in place, resending the text each time:
cheap while an answer is short, and shown by every front end. Once those
updates have cost about what a card widget's set-up does (``widget_after``,
4000 bytes), the display switches to a ``CardWidget`` (the panel's card),
which is sent only the new characters, so a long or slow answer costs bytes
in proportion to its text rather than text x updates. ``output = "display"``
never switches, ``"widget"`` starts with the card. Whatever happened live,
each output ends as the ordinary ``text/markdown`` + ``text/plain`` bundle.

Configuration: ``c.GridLLM.*`` (traitlets), ``%gridllm config KEY=VALUE``
for the session, and the environment (``GRIDLLM_API_URL``,
``GRIDLLM_API_TOKEN``, ``GRIDLLM_DEFAULT_MODELS``, ``GRIDLLM_HISTORY``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from .errors import ConfigError, GridLLMError, NotSupported
from .interpolate import interpolate
from .magic_args import HelpShown, parse_cell_line, parse_line
from .models import JobState, JobUpdate, Result, Results
from .pacing import schedule_flush, update_delay
from .render import FORMATS, error_bundle, final_bundle, live_bundle

__all__ = ["CellError", "DisplayView", "GridLLM", "GridLLMMagics", "StreamView",
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
    update_interval = Float(0.1, help="minimum time between display updates of one model, seconds").tag(config=True)
    byte_budget = Float(2.0, allow_none=True,
                        help="a live update waits until the new text is worth 1/byte_budget of what it "
                             "sends (an append message in widget mode, the whole text in display mode; "
                             "None: no wait)...").tag(config=True)
    max_stale = Float(1.0, help="...but never longer than this many seconds").tag(config=True)
    max_models = Int(8, help="most models one cell may ask at once").tag(config=True)
    interpolate = Bool(True, help="replace {name} in the cell with the variable's value").tag(config=True)
    history = Bool(True, help="record runs in the local SQLite history").tag(config=True)
    output = Enum(("auto", "widget", "display", "stream"), default_value="auto",
                  help="auto: in a kernel, outputs updated in place that switch to a live card (the "
                       "panel's, sent only new characters) once their updates pass widget_after bytes; in a "
                       "terminal, stream. display: always updated in place, resending the text. widget: "
                       "a live card from the start. stream: text on stdout. Every output ends as the "
                       "final text/markdown bundle.").tag(config=True)
    widget_after = Int(4000, help="bytes of live display updates after which an auto output switches to "
                                  "a live card (about what the card's set-up costs; 0: from the "
                                  "start)").tag(config=True)

    @default("default_models")
    def _models_from_env(self) -> list[str]:
        return [m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip()]


class CellError(Exception):
    """An expected failure, shown as one line (``_render_traceback_``), never a traceback.

    Raising it (rather than printing) marks the cell as failed, so "Run all"
    stops there, as it does for any failing cell.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mgridllm: {self}\x1b[0m"]


class Interrupted(CellError):
    """The run was interrupted; the partial outputs are kept."""


# -- views: how updates reach the user ------------------------------------------


@dataclass
class _Slot:
    display_id: str
    last_sent: float = -1e9
    dirty: bool = False
    final: bool = False
    timer: asyncio.TimerHandle | None = None
    updates: int = 0
    shown_text: str = ""
    shown_state: JobState | None = None
    shown_error: str | None = None
    sent: int = 0  # bytes of the live updates sent so far


class _View:
    """Common part: the live Results, filled from the updates."""

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str) -> None:
        self.results = Results(prompt, {tag: Result(tag=tag) for tag in tags})
        self.fmt = fmt
        self.run_kwargs: dict[str, Any] = {}

    def _record(self, u: JobUpdate) -> Result:
        r = self.results[u.tag]
        r.job_id, r.state, r.text, r.error, r.elapsed, r.raw_status = (
            u.job_id, u.state, u.text, u.error, u.elapsed, u.raw_status,
        )
        return r

    def adopt(self, results: Results) -> None:
        for tag, res in results.items():
            if tag in self.results:
                self.results._set(res)

    def open(self) -> None:  # pragma: no cover - interface
        pass

    def on_update(self, u: JobUpdate) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, note: str | None = None) -> None:  # pragma: no cover - interface
        pass

    def fail(self, message: str) -> None:  # pragma: no cover - interface
        pass


class DisplayView(_View):
    """One display per model, updated in place at most every ``interval`` seconds.

    At first a model's display is simply replaced on each flush (the text
    resent: cheap while the text is short, and shown by every front end).
    Once those updates would have cost more than ``widget_after`` bytes
    (0: from the start; ``None``: never) the display switches to a
    ``CardWidget``, the panel's card, which is sent only the new characters:
    a long or slow answer then costs bytes in proportion to its text, not to
    text x updates. As when renting until the rent reaches the price, with
    ``widget_after`` about the card's set-up no answer costs more than about
    twice what the better choice in hindsight would have. At the end every
    display becomes the final bundle, and only then is its card closed.
    """

    DISPLAY_OVERHEAD = 160  # JSON framing of one update_display_data content, with the header line
    CARD_OVERHEAD = 60  # JSON of one card message besides its new text
    WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

    def __init__(self, shell: Any, prompt: str, tags: Sequence[str], fmt: str, interval: float,
                 byte_budget: float | None = 2.0, max_stale: float = 1.0,
                 widget_after: int | None = None) -> None:
        super().__init__(prompt, tags, fmt)
        self.shell = shell
        self.interval = interval
        self.byte_budget = byte_budget
        self.max_stale = max(interval, float(max_stale))
        self.widget_after = widget_after
        self.slots = {tag: _Slot(display_id=f"gridllm-{uuid.uuid4().hex}") for tag in tags}
        self.cards: dict[str, Any] = {}  # tag -> CardWidget, for the outputs that switched
        self.layout: Any = None  # the one Layout every card uses
        self.opened = False
        self.messages = 0

    def _publish(self, slot: _Slot, bundle: dict[str, Any], *, update: bool) -> None:
        self.messages += 1
        publish = self.shell.display_pub.publish
        kwargs = {"data": bundle, "metadata": {}, "transient": {"display_id": slot.display_id}, "update": update}
        if update:
            # Outside the cell's context, ipykernel stamps the message with the
            # latest request: frontends (JupyterLab, nbclient) route updates by
            # display id, and only listen to the cell that is running now.
            contextvars.Context().run(lambda: publish(**kwargs))
        else:
            publish(**kwargs)

    def open(self) -> None:
        """Create the outputs now, so they belong to the running cell."""
        if self.opened:
            return
        self.opened = True
        for tag, slot in self.slots.items():
            r = self.results[tag]
            if self.widget_after == 0:
                bundle = self._card_bundle(r, "submitting")
            else:
                bundle = live_bundle(tag, "submitting", r.elapsed, r.text)
            self._publish(slot, bundle, update=False)
            slot.last_sent = time.monotonic()

    def _card_bundle(self, r: Result, label: str) -> dict[str, Any]:
        """A new card showing ``r`` as it is now, as a display bundle (its comm_open carries the text)."""
        import ipywidgets as widgets

        from .cardwidget import CardWidget

        if self.layout is None:
            self.layout = widgets.Layout()
        card = CardWidget(r.tag, r.text, state=r.state.value, elapsed=round(r.elapsed, 1), layout=self.layout)
        self.cards[r.tag] = card
        return {"text/plain": f"{r.tag} · {label}",
                self.WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": card.model_id}}

    def on_update(self, u: JobUpdate) -> None:
        self._record(u)
        self.open()
        slot = self.slots[u.tag]
        if slot.final:
            return
        if u.state.terminal:
            self._final(u.tag)
            return
        slot.dirty = True
        wait = self._wait_for(slot, u, time.monotonic())
        slot.timer = schedule_flush(slot.timer, wait, lambda: self._flush(u.tag))

    def _wait_for(self, slot: _Slot, u: JobUpdate, now: float) -> float:
        """Seconds until ``u`` may be shown: the first text at once, then ``update_delay``."""
        if u.text and not slot.shown_text:
            return 0.0
        return update_delay(u, shown_text=slot.shown_text, shown_state=slot.shown_state,
                            shown_error=slot.shown_error, last_sent=slot.last_sent, sent=slot.sent, now=now,
                            interval=self.interval, byte_budget=self.byte_budget, max_stale=self.max_stale,
                            cost=lambda size, new: self._flush_cost(u.tag, size, new))

    def _flush_cost(self, tag: str, size: int, new: int) -> int:
        """Bytes one flush sends for a text of ``size`` bytes, ``new`` of them new.

        A display update resends the whole text; a card only the new part.
        """
        if tag in self.cards:
            return self.CARD_OVERHEAD + new
        return self.DISPLAY_OVERHEAD + size

    def _flush(self, tag: str) -> None:
        slot = self.slots[tag]
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        if not slot.dirty or slot.final:
            return
        r = self.results[tag]
        size = len(r.text.encode())
        continued = r.text.startswith(slot.shown_text)
        cost = self._flush_cost(tag, size, size - len(slot.shown_text.encode()) if continued else size)
        self._show(slot, r)
        slot.sent += cost
        slot.shown_text, slot.shown_state, slot.shown_error = r.text, r.state, r.error
        slot.dirty = False
        slot.updates += 1
        slot.last_sent = time.monotonic()

    def _show(self, slot: _Slot, r: Result) -> None:
        """Put the live state of one model on screen: a new display, a card message, or the switch."""
        card = self.cards.get(r.tag)
        if card is not None:
            card.show_answer(r.state, r.text, r.error, r.elapsed)
            self.messages += 1
        elif self.widget_after is not None and slot.sent + self._flush_cost(r.tag, len(r.text.encode()), 0) \
                > self.widget_after:
            self._publish(slot, self._card_bundle(r, r.state.label), update=True)
            slot.sent = 0  # the card's own budget starts here
        else:
            self._publish(slot, live_bundle(r.tag, r.state.label, r.elapsed, r.text, r.error), update=True)

    def _final(self, tag: str) -> None:
        slot = self.slots[tag]
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        r = self.results[tag]
        self._publish(
            slot, final_bundle(tag, r.state.label, r.elapsed, r.text, r.error, self.fmt), update=True
        )
        slot.final = True
        slot.dirty = False
        slot.updates += 1
        self._close(tag)  # after the display shows the final bundle: no "model not found" flash

    def _close(self, tag: str) -> None:
        card = self.cards.pop(tag, None)
        if card is not None:
            card.close()
        if not self.cards and self.layout is not None:
            self.layout.close()
            self.layout = None

    def finish(self, note: str | None = None) -> None:
        """Every model's output becomes its final bundle (partial text kept)."""
        if not self.opened:
            return
        for tag, slot in self.slots.items():
            if not slot.final:
                r = self.results[tag]
                if not r.state.terminal and note:
                    r.error = r.error or note
                self._final(tag)

    def fail(self, message: str) -> None:
        """A run that failed before any job (``--no-wait``): the error, once, in place."""
        for i, (tag, slot) in enumerate(self.slots.items()):
            if slot.final:
                continue
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
            bundle = error_bundle(message) if i == 0 else {"text/plain": ""}
            self._publish(slot, bundle, update=self.opened)
            slot.final = True
            self._close(tag)
        self.opened = True


class StreamView(_View):
    """Plain IPython in a terminal: text on stdout as it arrives, one model at a time.

    The model being shown streams live; the others are kept and printed, whole,
    as soon as it ends (finished ones first), so answers never interleave.
    """

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str, out: TextIO | None = None) -> None:
        super().__init__(prompt, tags, fmt)
        self._out = out
        self.order = list(tags)
        self.current: str | None = None
        self.printed: dict[str, str] = {}
        self.closed: set[str] = set()
        self.notices: dict[str, str | None] = {}

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    def on_update(self, u: JobUpdate) -> None:
        self._record(u)
        self._pump()
        self._notice(u)

    def _notice(self, u: JobUpdate) -> None:
        """A live job's notice (``reconnecting…``), once, inline where its text streams."""
        if u.state.terminal or u.error == self.notices.get(u.tag):
            return
        self.notices[u.tag] = u.error
        if u.error and u.tag == self.current:
            self.out.write(f" ({u.error}) ")
            self.out.flush()

    def _next(self) -> str | None:
        open_ = [t for t in self.order if t not in self.closed]
        for wanted in (lambda r: r.state.terminal, lambda r: bool(r.text)):
            for t in open_:
                if wanted(self.results[t]):
                    return t
        return None

    def _pump(self) -> None:
        while True:
            tag = self.current or self._next()
            if tag is None:
                break
            self.current = tag
            r = self.results[tag]
            shown = self.printed.get(tag)
            if shown is None:
                self.out.write(f"[{tag}] ")
                shown = ""
            if r.text.startswith(shown):
                self.out.write(r.text[len(shown):])
            else:  # the job restarted elsewhere: its new text replaces the old
                self.out.write("\n(restarted) " + r.text)
            self.printed[tag] = r.text
            if not r.state.terminal:
                break
            self._end(r)
        self.out.flush()

    def _end(self, r: Result) -> None:
        if self.fmt in ("code", "json") and r.text:
            body = final_bundle(r.tag, r.state.label, r.elapsed, r.text, r.error, self.fmt)["text/plain"]
            self.out.write(f"\n{body}")
        note = f" — {r.error}" if r.error else ""
        self.out.write(f"\n[{r.tag}: {r.state.label} in {r.elapsed:.1f}s{note}]\n")
        self.closed.add(r.tag)
        self.current = None

    def finish(self, note: str | None = None) -> None:
        for r in self.results.values():
            if not r.state.terminal and note:
                r.error = r.error or note
        for tag in self.order:
            if tag in self.closed:
                continue
            self.current = tag
            r = self.results[tag]
            if r.state.terminal:
                self._pump()
            else:
                shown = self.printed.get(tag)
                if shown is None:
                    self.out.write(f"[{tag}] " + r.text)
                elif r.text.startswith(shown):
                    self.out.write(r.text[len(shown):])
                self.printed[tag] = r.text
                self._end(r)
        self.out.flush()

    def fail(self, message: str) -> None:
        print(f"gridllm: {message}", file=sys.stderr)


# -- the magics ------------------------------------------------------------------


def _widgets_available() -> bool:
    try:
        import anywidget  # noqa: F401
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


@magics_class
class GridLLMMagics(Magics):
    """``%%gridllm MODEL... [options]`` and ``%gridllm COMMAND``; see ``%%gridllm --help``."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.settings = GridLLM(parent=shell)
        self.tasks: set[asyncio.Task[Any]] = set()  # --no-wait runs still streaming
        self.service: Any = None  # the local service this kernel started, if any
        self.last_view: _View | None = None

    # ---------------------------------------------------------------- helpers

    def _url(self, explicit: str | None = None) -> str | None:
        return explicit or self.settings.url or None

    def _mode(self) -> str:
        """``stream``, ``display``, ``widget`` or ``switch`` (display, then a card once the text is long)."""
        mode = self.settings.output
        if mode == "auto":
            if getattr(self.shell, "kernel", None) is None:
                return "stream"
            mode = "switch"
        if mode in ("widget", "switch") and not _widgets_available():
            return "display"
        return mode

    def _record_history(self, results: Results, url: str | None, system: str | None,
                        options: dict[str, Any] | None) -> None:
        if not self.settings.history:
            return
        try:
            from .config import resolve_endpoint
            from .history import record

            record(results, resolve_endpoint(url).url, system=system, options=options)
        except Exception as exc:  # noqa: BLE001 - the history is a convenience: never fail a run for it
            print(f"gridllm: history not written: {exc}", file=sys.stderr)

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
        from .config import parse_assignments, resolve_endpoint
        from .runner import default_poll_settings

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
        prompt = cell[:-1] if cell.endswith("\n") else cell
        if s.interpolate and not args.no_interpolate:
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
            "poll": default_poll_settings(resolve_endpoint(self._url(args.url)), fast=s.poll_interval,
                                          slow=s.poll_max_interval),
        }
        fmt = args.format or s.default_format
        mode = self._mode()
        view: _View
        if mode == "stream":
            view = StreamView(prompt, models, fmt)
        else:
            widget_after = {"display": None, "widget": 0, "switch": max(0, int(s.widget_after))}[mode]
            view = DisplayView(self.shell, prompt, models, fmt, float(s.update_interval),
                               s.byte_budget, s.max_stale, widget_after)
        view.run_kwargs = kwargs
        self.last_view = view
        if args.out:
            self.shell.user_ns[args.out] = view.results

        def announce(text: str) -> None:
            print(text)  # information (the service started), not an error: no red box

        coro = self._run(prompt, models, view, kwargs, announce)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if args.no_wait and loop is not None:
            if isinstance(view, DisplayView):
                view.open()  # the outputs must belong to this cell, not to a later one
            task = loop.create_task(coro, name="gridllm-cell")
            self.tasks.add(task)
            task.add_done_callback(lambda t: self._background_done(t, view))
            return None
        results = self._wait(coro, view)
        if args.out:
            self.shell.user_ns[args.out] = results
        return results

    async def _run(self, prompt: str, models: list[str], view: _View, kwargs: dict[str, Any],
                   announce: Callable[[str], None]) -> Results:
        from .runner import arun

        results = await arun(prompt, models, on_update=view.on_update, announce=announce, **kwargs)
        view.adopt(results)
        view.finish()
        self._record_history(view.results, kwargs.get("url"), kwargs.get("system"), kwargs.get("options"))
        return view.results

    def _wait(self, coro: Any, view: _View) -> Results:
        """Run to the end; on Ctrl-C cancel cleanly, keep the partial outputs, leak nothing.

        ``run_sync`` runs the coroutine off the kernel's loop, so the kernel
        stays an ordinary busy kernel while the cell streams.
        """
        from .runner import run_sync

        try:
            return run_sync(coro)
        except (KeyboardInterrupt, asyncio.CancelledError):
            view.finish(note="interrupted")
            rk = getattr(view, "run_kwargs", {})
            self._record_history(view.results, rk.get("url"), rk.get("system"), rk.get("options"))
            done = sum(1 for r in view.results.values() if r.ok)
            raise Interrupted(
                f"interrupted: {done} of {len(view.results)} models had finished; the partial outputs are kept"
            ) from None
        except GridLLMError as exc:
            view.finish(note=str(exc))
            raise

    def _background_done(self, task: asyncio.Task[Any], view: _View) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            view.finish(note="cancelled")
            return
        exc = task.exception()
        if exc is None:
            return
        message = str(exc) if isinstance(exc, GridLLMError) else f"{type(exc).__name__}: {exc}"
        if isinstance(view, DisplayView) and any(s.updates for s in view.slots.values()):
            view.finish(note=message)
        else:
            view.fail(message)

    def cancel_background(self) -> int:
        """Cancel every ``--no-wait`` run of this kernel; returns how many were live."""
        live = [t for t in self.tasks if not t.done()]
        for t in live:
            t.cancel()
        return len(live)

    # ------------------------------------------------------------- line magic

    @line_magic("gridllm")
    def gridllm_line(self, line: str) -> Any:
        """``%gridllm models|status|cancel|config|local|history|panel|help``."""
        try:
            args = parse_line(line)
            handler = getattr(self, f"_cmd_{args.command}")
            return handler(args)
        except HelpShown:
            return None
        except GridLLMError as exc:
            raise CellError(str(exc)) from None

    def _client_call(self, url: str | None, action: Callable[[Any], Any]) -> Any:
        from .client import JobsClient
        from .config import resolve_endpoint

        endpoint = resolve_endpoint(self._url(url))
        if endpoint.is_default:
            from .service.launcher import ensure_local_service

            ensure_local_service(endpoint.url, announce=print)

        async def go() -> Any:
            async with JobsClient(endpoint.url) as client:
                return await action(client)

        from .runner import run_sync

        return run_sync(go())

    def _cmd_models(self, args: Any) -> None:
        async def action(client: Any) -> list[dict[str, Any]]:
            return await client.models()

        try:
            models = self._client_call(args.url, action)
        except NotSupported:
            print("this service does not list its models; name a tag you know (e.g. gemma3:270m)")
            return
        for m in models:
            mark = "  (local)" if m.get("local") else ""
            desc = f"  {m['description']}" if m.get("description") else ""
            print(f"{m.get('tag')}{mark}{desc}")

    def _cmd_status(self, args: Any) -> None:
        async def action(client: Any) -> Any:
            return await client.status(args.ids)

        jobs = self._client_call(args.url, action)
        for job_id in args.ids:
            job = jobs.get(job_id)
            if job is None:
                print(f"{job_id}  unknown to the service")
            else:
                raw = f" ({job.raw_status})" if job.raw_status and job.raw_status != job.state.value else ""
                print(f"{job_id}  {job.tag}  {job.state.label}{raw}  {len(job.log)} chars")

    def _cmd_cancel(self, args: Any) -> None:
        async def action(client: Any) -> Any:
            return await client.cancel(args.ids)

        try:
            done = self._client_call(args.url, action)
        except NotSupported:
            print("this service offers no cancel (the public grid does not); the jobs run to their hours limit")
            return
        print("cancelled: " + (", ".join(done) or "none"))

    _SETTABLE = ("url", "default_models", "default_format", "hours", "timeout", "system", "options",
                 "poll_interval", "poll_max_interval", "update_interval", "byte_budget",
                 "max_stale", "widget_after", "max_models", "interpolate",
                 "history", "output")

    def _cmd_config(self, args: Any) -> None:
        from .config import TOKEN_ENV, parse_assignments, resolve_endpoint

        s = self.settings
        for key, value in parse_assignments(args.settings, what="%gridllm config").items():
            key = {"models": "default_models", "format": "default_format"}.get(key, key)
            if key not in self._SETTABLE:
                raise ConfigError(f"unknown setting {key!r}; settable: {', '.join(self._SETTABLE)}")
            setattr(s, key, self._convert(key, value))
        try:
            endpoint = resolve_endpoint(self._url())
            where = endpoint.display + ("  (the local service, started on demand)" if endpoint.is_default else "")
        except ConfigError as exc:
            where = f"invalid: {exc}"
        token = "set" if os.environ.get(TOKEN_ENV) else "not set"
        print(f"endpoint: {where}")
        print(f"token: ${TOKEN_ENV} is {token}")
        for key in self._SETTABLE[1:]:
            print(f"{key}: {getattr(s, key)!r}")

    def _convert(self, key: str, value: str) -> Any:
        trait = self.settings.traits()[key]
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
            from .config import resolve_endpoint

            resolve_endpoint(value)  # validates, raises a one-line ConfigError
        return value

    def _local_url(self) -> str:
        from .config import DEFAULT_LOCAL_URL, resolve_endpoint

        endpoint = resolve_endpoint(self._url())
        return endpoint.url if endpoint.is_local else DEFAULT_LOCAL_URL

    def _cmd_local(self, args: Any) -> None:
        """``%gridllm local start|stop|status``: the per-user background service, shared by every kernel."""
        from urllib.parse import urlsplit, urlunsplit

        from .cli import local_command
        from .config import resolve_endpoint

        url = self._local_url()
        if args.port:
            p = urlsplit(url)
            url = urlunsplit((p.scheme, f"{p.hostname}:{args.port}", p.path, "", ""))
        token = resolve_endpoint(self._url()).token
        local_command(args.action, url, sys.stdout, token.reveal() if token else None)

    def _cmd_history(self, args: Any) -> None:
        from .history import history_path, recent

        runs = recent(args.n)
        if not runs:
            print(f"no runs recorded yet ({history_path()})")
            return
        for run in runs:
            prompt = " ".join(run["prompt"].split())
            prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
            print(f"{run['created']}  {run['url']}\n  prompt: {prompt}")
            for r in run["results"]:
                first = (r["text"] or r["error"] or "").strip().splitlines()
                snippet = first[0][:60] if first else ""
                print(f"  {r['tag']}  {r['state']}  {r['elapsed'] or 0:.1f}s  {snippet}")

    def _cmd_panel(self, args: Any) -> Any:
        from IPython.display import display

        try:
            from .panel import Panel
        except ImportError as exc:
            raise ConfigError(f"the panel is not available: {exc}") from None
        s = self.settings
        display(Panel(s.default_models or None, url=self._url(), options=dict(s.options) or None,
                      hours=s.hours))
        return None


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
