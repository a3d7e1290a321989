"""How a ``%%gridllm`` cell shows its run, live and at the end.

``CardsView`` (a kernel): one output holding a grid of cards, one per model,
side by side and styled from the first update; each card is sent only what
changed (``card.Card``). When the run ends the cell's output is the
``Results`` itself, whose rich display is the saved side-by-side picture
(``sidebyside``): one output per cell, and ``Out[n]`` is both the picture and
the data. A run that ends in the background (``--no-wait``), with an error
or an interrupt instead puts that picture in place of the grid, so whatever
arrived stays on screen.

``StreamView`` (plain IPython in a terminal): text on stdout as it arrives.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import GridLLMError, Interrupted
from .jobs import JobUpdate
from .render import error_bundle, final_bundle
from .results import Result, Results
from .sidebyside import results_bundle

__all__ = ["CardsView", "StreamView", "View"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class View:
    """What every view holds: the live ``Results``, filled from the updates."""

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None) -> None:
        """``results``: the Results to show (a stored run, to follow or retry); new ones by default."""
        if results is None:
            results = Results(prompt, {tag: Result(tag=tag) for tag in tags})
        results.format = fmt
        self.results = results
        self.fmt = fmt

    def _record(self, u: JobUpdate) -> Result:
        """The update's result, brought up to date (a no-op when the core filled ``results`` itself,
        as ``arun(results=view.results)`` does: ``Result.apply`` of the same update is idempotent)."""
        r = self.results[u.tag]
        r.apply(u)
        return r

    def open(self) -> None:  # pragma: no cover - interface
        pass

    def on_update(self, u: JobUpdate) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, note: str | None = None, *, in_place: bool = True) -> None:  # pragma: no cover - interface
        pass

    def fail(self, message: str) -> None:  # pragma: no cover - interface
        pass

    def wait(self, coro: Any) -> Results:
        """Run a cell's run to the end; on Ctrl-C cancel cleanly, keep the partial outputs, leak nothing.

        ``run_sync`` runs the coroutine off the kernel's loop, so the kernel
        stays an ordinary busy kernel while the cell streams. (The core has
        written the history as the run went, the interrupt included.)
        """
        from .runner import run_sync

        try:
            return run_sync(coro)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.finish(note="interrupted")
            done = sum(1 for r in self.results.values() if r.ok)
            raise Interrupted(
                f"interrupted: {done} of {len(self.results)} models had finished; the partial outputs are kept"
            ) from None
        except GridLLMError as exc:
            self.finish(note=str(exc))
            raise

    def background_done(self, task: asyncio.Task[Any]) -> None:
        """A ``--no-wait`` run ended: say how, in place, if it did not end well."""
        if task.cancelled():
            self.finish(note="cancelled")
            return
        exc = task.exception()
        if exc is None:
            return
        message = str(exc) if isinstance(exc, GridLLMError) else f"{type(exc).__name__}: {exc}"
        if isinstance(self, CardsView) and any(r.job_id for r in self.results.values()):
            self.finish(note=message)
        else:
            self.fail(message)

    def _mark_unfinished(self, note: str | None) -> None:
        for r in self.results.values():
            if not r.state.terminal and note:
                r.error = r.error or note


class CardsView(View):
    """A cell's live output: one grid of cards, one per model, in one display."""

    def __init__(self, shell: Any, prompt: str, tags: Sequence[str], fmt: str, *, results: Results | None = None,
                 **card_options: Any) -> None:
        super().__init__(prompt, tags, fmt, results)
        self.shell = shell
        self.card_options = card_options
        self.display_id = f"gridllm-{uuid.uuid4().hex}"
        self.grid: Any = None
        self.opened = False
        self.ended = False
        self.messages = 0  # displays published (the cards' own messages go over their comms)

    def _publish(self, bundle: dict[str, Any], *, update: bool) -> None:
        self.messages += 1
        publish = self.shell.display_pub.publish
        kwargs = {"data": bundle, "metadata": {}, "transient": {"display_id": self.display_id}, "update": update}
        if update:
            # Outside the cell's context, ipykernel stamps the message with the
            # latest request: frontends (JupyterLab, nbclient) route updates by
            # display id, and only listen to the cell that is running now.
            contextvars.Context().run(lambda: publish(**kwargs))
        else:
            publish(**kwargs)

    def open(self) -> None:
        """Create the grid and its output now, so the output belongs to the running cell."""
        if self.opened:
            return
        from .card import CardGrid

        self.opened = True
        self.grid = CardGrid(list(self.results), **self.card_options)
        names = ", ".join(self.results)
        self._publish({"text/plain": f"gridllm: {names} (live)",
                       WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self.grid.model_id}},
                      update=False)

    def on_update(self, u: JobUpdate) -> None:
        self._record(u)
        if self.ended:
            return
        self.open()
        self.grid.push(u)

    def finish(self, note: str | None = None, *, in_place: bool = True) -> None:
        """The run is over. With ``in_place`` the cards show their last state and the
        output becomes the saved picture; without, the cell's value is about to take
        the cards' place, so they are sent nothing more."""
        if not self.opened or self.ended:
            return
        self._mark_unfinished(note)
        if not in_place:
            return
        for tag, card in self.grid.cards.items():
            r = self.results[tag]
            card.flush()
            if r.state.terminal or note:
                card.finish = r.finish_note
                card.apply(r.state, r.text, r.error, r.elapsed)
        self._publish(results_bundle(list(self.results.values()), self.fmt), update=True)
        # The cards stay open: a front end that applies no display update once
        # its cell has ended (Voila, for a --no-wait cell) keeps showing them.
        self.ended = True

    def close(self) -> None:
        """Close the widgets (after the output no longer shows them)."""
        self.ended = True
        if self.grid is not None:
            self.grid.close()
            self.grid = None

    def fail(self, message: str) -> None:
        """A run that failed before any job (``--no-wait``): the error, once, in place."""
        self._publish(error_bundle(message), update=self.opened)
        self.opened = True
        self.close()


class StreamView(View):
    """Plain IPython in a terminal: text on stdout as it arrives, one model at a time.

    The model being shown streams live; the others are kept and printed, whole,
    as soon as it ends (finished ones first), so answers never interleave.
    """

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str, out: TextIO | None = None, *,
                 results: Results | None = None) -> None:
        super().__init__(prompt, tags, fmt, results)
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

    def finish(self, note: str | None = None, *, in_place: bool = True) -> None:
        self._mark_unfinished(note)
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
