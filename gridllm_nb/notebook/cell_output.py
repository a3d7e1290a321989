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
background, fills the same ``Results`` (the cell's value, ``--out``), and
once every model shown has answered the output becomes the saved picture,
as a run's does. While cards stay live the output carries the picture too,
so a front end without widgets (nbconvert, GitHub) shows the table.

A run that outlives its cell (``--no-wait``, a Retry) runs on the process's
background loop (``core.sync.submit``), not on the kernel's: the next cell,
blocking or sleeping, holds the kernel's loop, and the cards would stop
until it ended. Everything such a run does to its view happens on that
loop's thread, its cards' pacing timers included (``keep_live``).

``StreamView`` (plain IPython in a terminal): labelled text on stdout as it
arrives (``display.textstream``), one model at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import html
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..api.jobs import JobState, JobUpdate
from ..core.results import RETRYABLE, Result, Results
from ..display.render import error_bundle
from ..display.table import results_bundle
from ..display.textstream import TextStream
from ..errors import GridLLMError, Interrupted

if TYPE_CHECKING:
    from ..core.arena import ArenaRound

__all__ = ["CardsView", "StreamView", "View", "offer_retry"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class View:
    """What every view holds: the live ``Results``, which the core fills (``arun(results=...)``).

    ``on_update(u)`` shows ``u``, whose Result is already up to date;
    ``record(u)`` is for an update nobody applied yet (an error of the
    view's own).
    """

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str, results: Results | None = None) -> None:
        """``results``: the Results to show (a stored run, to follow or retry); new ones by default."""
        if results is None:
            results = Results(prompt, {tag: Result(tag=tag) for tag in tags})
        results.format = fmt
        self.results = results
        self.tags = list(tags)  # the models this view shows (a retry's: only those asked again)
        self.fmt = fmt

    def record(self, u: JobUpdate) -> None:
        """Apply ``u`` to its Result, then show it."""
        self.results[u.tag].apply(u)
        self.on_update(u)

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

    async def keep_live(self, work: Awaitable[Any]) -> Results:
        """A run that outlives its cell (``--no-wait``): await ``work``, then end the view in place,
        however the run ended (an error or a cancel says so in place, and is raised again)."""
        try:
            await work
        except asyncio.CancelledError:
            self.finish(note="cancelled")
            raise
        except Exception as exc:
            self._failed(str(exc) if isinstance(exc, GridLLMError) else f"{type(exc).__name__}: {exc}")
            raise
        self.finish()
        return self.results

    def _failed(self, message: str) -> None:
        self.fail(message)

    def _mark_unfinished(self, note: str | None) -> None:
        for r in self.results.values():
            if not r.state.terminal and note:
                r.error = r.error or note


class CardsView(View):
    """A cell's live output: one grid of cards, one per model, in one display.

    ``blind`` (``%%gridllm --arena``) is the round the run belongs to: the
    cards are titled by its letters and mask the names in their errors, and
    whatever else the view sends (its text line, a picture after an
    interrupt) is lettered, until the vote.

    With ``retry`` a model that ended without an answer can be asked again
    from its card once the run is over (``retry``); ``on_task`` is told of
    each retry's background run (the magic keeps them, to cancel them with
    the extension).
    """

    def __init__(self, shell: Any, prompt: str, tags: Sequence[str], fmt: str, *, results: Results | None = None,
                 retry: bool = False, on_task: Callable[[concurrent.futures.Future[Any]], Any] | None = None,
                 blind: ArenaRound | None = None, **card_options: Any) -> None:
        super().__init__(prompt, tags, fmt, results)
        self.shell = shell
        self.blind = blind
        self.card_options = card_options
        self.display_id = f"gridllm-{uuid.uuid4().hex}"
        self.grid: Any = None
        self.opened = False
        self.ended = False
        self.messages = 0  # displays published (the cards' own messages go over their comms)
        self.retry_enabled = retry
        self.on_task = on_task
        self.retrying: concurrent.futures.Future[None] | None = None
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
        from ..widgets.card import CardRow

        blind = self.blind
        self.grid = CardRow(self.results, self.tags, on_retry=self._retry_card if self.retry_enabled else None,
                            title=blind.title if blind is not None else None,
                            mask=blind.mask if blind is not None else None, **self.card_options)
        titles = [blind.title(tag) for tag in self.tags] if blind is not None else self.tags
        self._publish({"text/plain": f"gridllm: {', '.join(titles)} (live)", WIDGET_MIME: _view_of(self.grid)},
                      update=self.opened)
        self.opened = True

    def on_update(self, u: JobUpdate) -> None:
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
                card.show()
        shown = self._shown()
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

    def _shown(self) -> list[Result]:
        """The Results this view shows, as the browser may see them: an arena round's lettered until the vote."""
        if self.blind is not None:
            return list(self.blind.shown(self.results).values())
        return [self.results[tag] for tag in self.tags]

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

    def retry(self, tags: Sequence[str] | None = None) -> concurrent.futures.Future[None] | None:
        """What a Retry button does: ask ``tags`` (default: every model shown that ended without an
        answer) again, as the run did, on the background loop (``core.sync.submit``).

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
        from ..core.sync import submit

        self.accepting = False
        self.open()  # the offer's line gives way to the cards
        self.grid.offer_retry(False)
        self.retrying = submit(self._retry(wanted), name="gridllm-retry")
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
                    self.record(JobUpdate(tag=tag, job_id=r.job_id, state=JobState.FAILED, text=r.text,
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

    def _failed(self, message: str) -> None:
        """A ``--no-wait`` run failed: its cards say why, or the error takes their place if no job started."""
        if any(r.job_id for r in self.results.values()):
            self.finish(note=message)
        else:
            self.fail(message)

    def fail(self, message: str) -> None:
        """A run that failed before any job (``--no-wait``): the error, once, in place."""
        self._publish(error_bundle(self.blind.mask(message) if self.blind is not None else message),
                      update=self.opened)
        self.opened = True
        self.close()


def offer_retry(events: Any, name: str | None, cards: Callable[[], CardsView]) -> None:
    """Once a blocking cell's value is shown, under it: the models that did not answer, and a Retry button
    (``cards()``, then its ``offer``); ``name`` is the variable that holds the value, if any.

    The cell's value (the table) is displayed after the cell's code has
    returned, so the offer waits for IPython's ``post_run_cell`` (``events``),
    still within this cell (as inline plots do); a cell run some other way
    (``run_cell_magic`` from code) has no such moment, and the next cell's
    start drops the offer. The click runs the retry on the background loop,
    into the same Results.
    """
    def done() -> None:
        events.unregister("post_run_cell", show)
        events.unregister("pre_run_cell", drop)

    def show(cell: Any) -> None:  # IPython's ExecutionResult of this cell
        done()
        cards().offer(f"{name}.retry()" if name else f"Out[{cell.execution_count}].retry()")

    def drop(_info: Any) -> None:
        done()

    events.register("post_run_cell", show)
    events.register("pre_run_cell", drop)


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
    """Plain IPython in a terminal: labelled text on stdout as it arrives, one model at a time
    (``display.textstream``), so answers never interleave."""

    def __init__(self, prompt: str, tags: Sequence[str], fmt: str, out: TextIO | None = None, *,
                 results: Results | None = None) -> None:
        super().__init__(prompt, tags, fmt, results)
        self.stream = TextStream(out, tags, fmt=fmt, one_at_a_time=True)

    def on_update(self, u: JobUpdate) -> None:
        self.stream(u)

    def finish(self, note: str | None = None, *, in_place: bool = True) -> None:
        self._mark_unfinished(note)
        for tag in self.tags:  # a model the stream never heard of (a stored answer) is shown as it stands
            if tag not in self.stream.latest:
                self.stream(self.results[tag].as_update())
        self.stream.finish(note)

    def fail(self, message: str) -> None:
        print(f"gridllm: {message}", file=sys.stderr)
