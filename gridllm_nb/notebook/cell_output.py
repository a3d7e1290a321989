"""How a ``%%gridllm`` cell shows its run, live and at the end.

``CardsView`` (a kernel): one output holding a grid of cards, one per model,
side by side and styled from the first update; each card is sent only what
changed (``card.Card``). When the run ends the cell's output is the
``Results`` itself, whose rich display is the saved side-by-side picture
(``sidebyside``): one output per cell, and ``Out[n]`` is both the picture and
the data. A run that ends in the background (``--no-wait``), with an error
or an interrupt instead puts that picture in place of the grid, so whatever
arrived stays on screen.

Models that ended without an answer can be asked again from the page
(``CardsView(retry=True)``): a ``--no-wait`` cell's cards stay live when
its run ends with such models, each showing a Retry button; a blocking
cell, whose cards its value has replaced, gets one line under that value
naming them, with a Retry button (``CardsView.offer``) whose click turns
the line into their live cards. Either way the retry runs in the
background on the kernel's loop, fills the same ``Results`` (the cell's
value, ``--out``), and once every model shown has answered the output
becomes the saved picture, as a run's does. While cards stay live the
output carries the picture too, so a front end without widgets (nbconvert,
GitHub) shows the table.

``StreamView`` (plain IPython in a terminal): text on stdout as it arrives.
"""

from __future__ import annotations

import asyncio
import contextvars
import html
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ..errors import GridLLMError, Interrupted
from ..api.jobs import JobState, JobUpdate
from ..display.render import error_bundle, final_bundle
from ..core.results import RETRYABLE, Result, Results
from ..display.table import results_bundle

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
        self.tags = list(tags)  # the models this view shows (a retry's: only those asked again)
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
        from ..core.sync import run_sync

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
    """A cell's live output: one grid of cards, one per model, in one display.

    With ``retry`` a model that ended without an answer can be asked again
    from its card once the run is over (``retry``); ``on_task`` is told of
    each retry's background task (the magic keeps them, to cancel them with
    the extension).
    """

    def __init__(self, shell: Any, prompt: str, tags: Sequence[str], fmt: str, *, results: Results | None = None,
                 retry: bool = False, on_task: Callable[[asyncio.Task[Any]], Any] | None = None,
                 **card_options: Any) -> None:
        super().__init__(prompt, tags, fmt, results)
        self.shell = shell
        self.card_options = card_options
        self.display_id = f"gridllm-{uuid.uuid4().hex}"
        self.grid: Any = None
        self.opened = False
        self.ended = False
        self.messages = 0  # displays published (the cards' own messages go over their comms)
        self.retry_enabled = retry
        self.on_task = on_task
        self.retrying: asyncio.Task[None] | None = None
        self.accepting = False  # a retry may start: the run (or the last retry) is over, with models to ask again
        self.offer_box: Any = None  # ``offer``'s line and button, until the cards take their place
        self.caption = ""  # a line above the picture, saying what it shows (``offer``'s: "Retried: m:2")

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
        """Create the grid and its output now, so the output belongs to the running cell
        (or, after ``offer``, in the offer's place)."""
        if self.grid is not None or self.ended:
            return
        from ..widgets.card import CardGrid

        self.grid = CardGrid(self.tags, on_retry=self._retry_card if self.retry_enabled else None,
                             **self.card_options)
        self._publish({"text/plain": f"gridllm: {', '.join(self.tags)} (live)", WIDGET_MIME: _view_of(self.grid)},
                      update=self.opened)
        self.opened = True

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
        if not self.opened or self.ended or self.grid is None:
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
        shown = [self.results[tag] for tag in self.tags]
        bundle = _captioned(results_bundle(shown, self.fmt), self.caption)
        if self.retry_enabled and note is None and any(r.state in RETRYABLE for r in shown):
            # Models to ask again: the cards stay live, offering Retry; the picture rides along
            # for the front ends that show no widget (nbconvert, GitHub).
            self.grid.offer_retry(True)
            self.accepting = True
            self._publish({WIDGET_MIME: _view_of(self.grid), **bundle}, update=True)
            return
        self._publish(bundle, update=True)
        # The cards stay open: a front end that applies no display update once
        # its cell has ended (Voila, for a --no-wait cell) keeps showing them.
        self.ended = True
        if self.retry_enabled:
            self.grid.offer_retry(False)  # ...without a Retry that would do nothing now
        self._close_offer()

    def _close_offer(self) -> None:
        """Close ``offer``'s widgets once the picture has taken the output: not before, as JupyterLab
        shows the cards in the offer's output element, which it hides when a view it held is closed."""
        if self.offer_box is not None:
            for w in (*self.offer_box.children, self.offer_box):
                w.close()
            self.offer_box = None

    def offer(self, how: str) -> None:
        """A new output of the running cell (under a blocking cell's value): one line naming the
        models shown, which ended without an answer, and a Retry button that asks them all again.

        ``how`` is the code that does the same (``Out[3].retry()``): what a
        front end without widgets shows, in the line.
        """
        import ipywidgets as widgets

        shown = [self.results[tag] for tag in self.tags]
        line = (f"{len(shown)} model{'' if len(shown) == 1 else 's'} did not answer: "
                + ", ".join(f"{r.tag} ({r.state.label})" for r in shown))
        button = widgets.Button(description="Retry", icon="redo",
                                tooltip="Ask again, with the same prompt and options")
        button.add_class("gridllm-retry-all")
        button.on_click(lambda _button: self.retry())
        self.offer_box = widgets.HBox([widgets.Label(line), button])
        self.offer_box.add_class("gridllm-retry-offer")
        # Under the cell's value, which still shows the first answers: say what the picture here is.
        self.caption = f"Retried: {', '.join(self.tags)}"
        self._publish({"text/plain": f"gridllm: {line}; {how} asks again", WIDGET_MIME: _view_of(self.offer_box)},
                      update=False)
        self.opened = self.accepting = True

    def _retry_card(self, tag: str) -> None:
        self.retry([tag])

    def retry(self, tags: Sequence[str] | None = None) -> asyncio.Task[None] | None:
        """What a Retry button does: ask ``tags`` (default: every model shown that ended without an
        answer) again, as the run did, in the background on the running loop (the kernel's).

        Only once the run is over, and one retry at a time: meanwhile the
        cards offer no Retry and this returns None, as it does when there
        is nothing to retry.
        """
        if not self.accepting:
            return None
        wanted = [t for t in (self.tags if tags is None else tags)
                  if t in self.tags and self.results[t].state in RETRYABLE]
        if not wanted:
            return None
        loop = asyncio.get_running_loop()
        self.accepting = False
        self.open()  # the offer's line gives way to the cards
        self.grid.offer_retry(False)
        self.retrying = loop.create_task(self._retry(wanted), name="gridllm-retry")
        if self.on_task is not None:
            self.on_task(self.retrying)
        return self.retrying

    async def _retry(self, tags: list[str]) -> None:
        """The retry itself: into the same Results and cards; an error ends its models FAILED, in one line."""
        from ..core.run import aretry

        note: str | None = None
        try:
            # Nothing to announce to: the cell that ran is over, and a print would land in another.
            await aretry(self.results, tags, on_update=self.on_update, announce=None)
        except GridLLMError as exc:
            # The core has ended the models it restarted FAILED with the reason; one refused before
            # that (no card has a status line to say it) gets the reason too. Each offers Retry again.
            for tag in tags:
                r = self.results[tag]
                if r.error != str(exc):
                    self.on_update(JobUpdate(tag=tag, job_id=r.job_id, state=JobState.FAILED, text=r.text,
                                             error=str(exc), elapsed=r.elapsed))
        except asyncio.CancelledError:  # the extension is unloading: the picture, and no more offers
            note = "cancelled"
            raise
        finally:
            self.finish(note=note)

    def close(self) -> None:
        """Close the widgets (after the output no longer shows them)."""
        self.ended = True
        self._close_offer()
        if self.grid is not None:
            self.grid.close()
            self.grid = None

    def fail(self, message: str) -> None:
        """A run that failed before any job (``--no-wait``): the error, once, in place."""
        self._publish(error_bundle(message), update=self.opened)
        self.opened = True
        self.close()


def _captioned(bundle: dict[str, Any], caption: str) -> dict[str, Any]:
    """``bundle`` (a picture) with ``caption`` on a line of its own above it, as HTML and as text."""
    if not caption:
        return bundle
    return {**bundle, "text/html": f"<p><em>{html.escape(caption)}</em></p>{bundle['text/html']}",
            "text/plain": f"{caption}\n\n{bundle['text/plain']}"}


def _view_of(widget: Any) -> dict[str, Any]:
    """The widget-view part of a display bundle: where a front end with widgets shows ``widget``."""
    return {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}


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
