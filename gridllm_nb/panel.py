"""The ipywidgets panel: the service's WebUI inside the notebook.

``Panel()`` shows model checkboxes (at most three ticked), a plain-text
prompt, a Process / Cancel pair and one card per chosen model, side by side,
with the answer streaming in. Everything runs on ``arun``, the same core as
the magic and the CLI; the panel only turns ``JobUpdate``s into widget state.

Three rules shape the code:

* model text never becomes live HTML: plain mode escapes it, markdown mode
  shows ``render.answer_html`` (a real parser, then nh3);
* updates are coalesced: at most ``max_rate`` flushes per second per card,
  and a flush of mere new text waits until the card's bytes stay within
  ``byte_budget`` per byte of text (never longer than ``max_stale``);
* each card is one ``CardWidget`` (anywidget) and a flush is one message of
  only what changed: the new characters, the state or error when they
  changed; the clock ticks in the browser. So the bytes sent grow with the
  text, not with text x updates.

The panel is driven from Python just as well as from a browser: set
``Checkbox.value`` / ``Textarea.value`` and call ``Button.click()`` inside a
running asyncio loop, then ``await panel.wait()``.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from .card import BYTE_BUDGET, DEFAULT_RATE, MAX_STALE, Card, one_line, slug
from .client import JobsClient, RetryPolicy
from .errors import GridLLMError, NotSupported
from .models import JobState, JobUpdate, Result, Results
from .render import render_text  # re-exported; model text -> HTML lives in render.py

__all__ = ["MAX_MODELS", "Card", "Panel", "render_text", "slug"]

MAX_MODELS = 3

_CSS = """
<style>
.gridllm-panel { gap: 6px; }
.gridllm-history-entry pre { white-space: pre-wrap; overflow-wrap: break-word;
  font-family: var(--jp-code-font-family, monospace); font-size: 0.9em; background: none; border: 0; }
.gridllm-status { min-height: 1.2em; }
.gridllm-hint { color: #666; font-style: italic; }
</style>
"""  # the cards and their grid style themselves: static/card.css


# -- one card per model ---------------------------------------------------------


class Panel(widgets.VBox):
    """The WebUI of the service as a notebook widget.

    ``Panel()`` lists the service's models (``GET /models``); ``Panel(models=[...])``
    names them. ``url``, ``token``, ``hours``, ``timeout``, ``system``,
    ``options`` and ``poll`` are passed through to ``arun``; ``client`` (a
    ``JobsClient``) replaces the one the panel would make. ``max_rate``,
    ``byte_budget`` and ``max_stale`` tune how card updates are coalesced
    (see ``Card``); ``retry`` bounds how long an unreachable service is
    retried before the panel says so.
    """

    def __init__(
        self,
        models: Sequence[str] | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        client: JobsClient | None = None,
        options: dict[str, Any] | None = None,
        hours: float | None = None,
        timeout: float | None = None,
        system: str | None = None,
        poll: Any = None,
        markdown: bool = False,
        max_models: int = MAX_MODELS,
        max_rate: float = DEFAULT_RATE,
        byte_budget: float | None = BYTE_BUDGET,
        max_stale: float = MAX_STALE,
        retry: RetryPolicy | None = None,
        prompt: str = "",
    ) -> None:
        self._url = url
        self._token = token
        self._client = client
        self._run_kwargs: dict[str, Any] = {
            "options": options, "hours": hours, "timeout": timeout, "system": system, "poll": poll,
        }
        self.max_models = max_models
        self.max_rate = max_rate
        self.byte_budget = byte_budget
        self.max_stale = max_stale
        self.retry = retry or RetryPolicy(budget=8.0, initial=0.3, maximum=2.0)
        self.results: Results | None = None
        self.history: list[Results] = []
        self.available: list[str] | None = None  # what GET /models said, if it answered
        self.cards: dict[str, Card] = {}
        self.task: asyncio.Task[Any] | None = None
        self._load_task: asyncio.Future[Any] | None = None
        self._card_layout = widgets.Layout()  # one for every card: opened once, not per card

        style = widgets.HTML(_CSS)
        style.add_class("gridllm-style")
        self.model_box = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        self.model_box.add_class("gridllm-models")
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self.hint = widgets.Label("", layout=widgets.Layout(display="none"))
        self.hint.add_class("gridllm-hint")
        self.prompt = widgets.Textarea(
            value=prompt, placeholder="Enter your prompt (plain text)",
            layout=widgets.Layout(width="100%", height="6em"), continuous_update=True,
        )
        self.prompt.add_class("gridllm-prompt")
        self.process_button = widgets.Button(description="Process", button_style="primary",
                                             icon="play", disabled=True)
        self.process_button.add_class("gridllm-process")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop",
                                            layout=widgets.Layout(display="none"))
        self.cancel_button.add_class("gridllm-cancel")
        self.markdown_toggle = widgets.ToggleButton(value=markdown, description="Markdown",
                                                    tooltip="Render answers as (sanitized) markdown")
        self.markdown_toggle.add_class("gridllm-markdown")
        buttons = widgets.HBox([self.process_button, self.cancel_button, self.markdown_toggle])
        self.status = widgets.Label("")
        self.status.add_class("gridllm-status")
        self.card_box = widgets.Box([], layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                              width="100%"))
        self.card_box.add_class("gridllm-cards")
        self.history_box = widgets.VBox([])
        self.history_box.add_class("gridllm-history-list")
        self.history_accordion = widgets.Accordion([self.history_box], selected_index=None)
        self.history_accordion.set_title(0, "History (0 earlier runs)")
        self.history_accordion.add_class("gridllm-history")

        super().__init__([style, widgets.HTML("<b>Models</b> (up to 3)"), self.model_box, self.hint,
                          self.prompt, buttons, self.status, self.card_box, self.history_accordion])
        self.add_class("gridllm-panel")

        self.prompt.observe(self._refresh_buttons, names="value")
        self.process_button.on_click(self._guard(self.process))
        self.cancel_button.on_click(self._guard(self.cancel))
        self.markdown_toggle.observe(self._on_markdown, names="value")

        if models is not None:
            self.set_models(list(models))
        else:
            self._start_loading()

    def _guard(self, action: Any) -> Any:
        """A click handler that puts an unexpected error on the status line (ipywidgets hides it)."""

        def handler(_button: Any) -> None:
            try:
                action()
            except Exception as exc:
                self._say(f"{type(exc).__name__}: {exc}")
                raise

        return handler

    @property
    def widget(self) -> Panel:
        return self

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    # -- models ---------------------------------------------------------------

    def set_models(self, tags: Sequence[str]) -> None:
        """(Re)build the checkboxes, keeping the ticks of tags that stay."""
        ticked = {t for t, cb in self.checkboxes.items() if cb.value}
        boxes: dict[str, widgets.Checkbox] = {}
        for tag in dict.fromkeys(t for t in tags if t):
            cb = self.checkboxes.get(tag) or widgets.Checkbox(
                value=tag in ticked, description=tag, indent=False,
                layout=widgets.Layout(width="auto", margin="0 12px 0 0"),
            )
            if tag not in self.checkboxes:
                cb.add_class("gridllm-model")
                cb.add_class(f"gridllm-model-{slug(tag)}")
                cb.observe(self._on_tick, names="value")
            boxes[tag] = cb
        self.checkboxes = boxes
        self.model_box.children = tuple(boxes.values())
        self._apply_cap()
        self._refresh_buttons()

    def _make_client(self) -> tuple[JobsClient, bool]:
        if self._client is not None:
            return self._client, False
        return JobsClient(self._url, self._token, retry=self.retry), True

    def _start_loading(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from .runner import run_sync

            run_sync(self.load_models())
            return
        self.status.value = "loading the model list…"
        self._load_task = loop.create_task(self.load_models())

    async def load_models(self) -> list[str] | None:
        """Ask the service which models it serves; the answer fills the checkboxes."""
        client, own = self._make_client()
        try:
            from .runner import _ensure_service

            await _ensure_service(client, self._say)
            listed = await client.models()
        except NotSupported:
            self._say("this service does not list its models: pass Panel(models=[...])")
            return None
        except GridLLMError as exc:
            self._say(str(exc))
            return None
        finally:
            if own:
                await client.aclose()
        self.available = [str(m["tag"]) for m in listed if m.get("tag")]
        self.set_models(self.available)
        self._say("" if self.available else "the service lists no models")
        return self.available

    async def loaded(self) -> None:
        """Wait until the model list has arrived (or failed)."""
        if self._load_task is not None:
            await asyncio.shield(self._load_task)

    def _say(self, message: str) -> None:
        self.status.value = one_line(message)

    @property
    def chosen(self) -> list[str]:
        return [t for t, cb in self.checkboxes.items() if cb.value]

    def _on_tick(self, change: dict[str, Any]) -> None:
        self._apply_cap()
        self._refresh_buttons()

    def _apply_cap(self) -> None:
        full = len(self.chosen) >= self.max_models
        for cb in self.checkboxes.values():
            want = self.running or (full and not cb.value)
            if cb.disabled != want:
                cb.disabled = want
        if full:
            self.hint.value = (f"At most {self.max_models} models at once: "
                               "untick one to choose another.")
        self.hint.layout.display = None if full else "none"

    def _refresh_buttons(self, _change: Any = None) -> None:
        busy = self.running
        can = bool(self.chosen) and bool(self.prompt.value.strip()) and not busy
        self.process_button.disabled = not can
        self.cancel_button.layout.display = None if busy else "none"
        self.prompt.disabled = busy

    def _on_markdown(self, change: dict[str, Any]) -> None:
        for card in self.cards.values():
            card.set_markdown(bool(change["new"]))

    # -- runs -----------------------------------------------------------------

    def process(self) -> asyncio.Task[Any] | None:
        """What the Process button does: start a run of the prompt on the ticked models."""
        if self.running:
            return self.task
        tags, prompt = self.chosen, self.prompt.value
        if not tags or not prompt.strip():
            self._say("choose at least one model and write a prompt")
            return None
        self._prepare(prompt, tags)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from .runner import run_sync

            try:
                run_sync(self._run(prompt, tags))
            finally:
                self._after_run()
            return None
        self.task = loop.create_task(self._run(prompt, tags))
        self._refresh_buttons()
        self._apply_cap()
        return self.task

    def cancel(self) -> None:
        """What the Cancel button does: cancel the run (live jobs end CANCELLED, text kept)."""
        if self.running:
            self._say("cancelling…")
            self.task.cancel()

    async def wait(self) -> Results | None:
        """Wait for the current run to end; returns ``panel.results``."""
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        return self.results

    def _archive(self, results: Results) -> None:
        rows = []
        for r in results.values():
            body = r.text if r.text else (r.error or "")
            rows.append(
                f"<div><b>{html.escape(r.tag)}</b> <i>{html.escape(r.state.label)}</i>, "
                f"{r.elapsed:.1f} s{render_text(body)}</div>"
            )
        entry = widgets.HTML(
            f"<div><b>Prompt:</b> {html.escape(one_line(results.prompt)[:200])}</div>" + "".join(rows)
        )
        entry.add_class("gridllm-history-entry")
        self.history.append(results)
        self.history_box.children = (entry, *self.history_box.children)
        n = len(self.history)
        self.history_accordion.set_title(0, f"History ({n} earlier run{'' if n == 1 else 's'})")

    def _prepare(self, prompt: str, tags: list[str]) -> None:
        """Cards for this run (a model that ran before keeps its widget), the previous run into the history."""
        if self.results is not None:
            self._archive(self.results)
        markdown = self.markdown_toggle.value
        previous = {tag: card.widget for tag, card in self.cards.items()}
        # A model that ran before keeps its card widget: no second set-up on the wire.
        self.cards = {t: Card(t, markdown=markdown, max_rate=self.max_rate, layout=self._card_layout,
                              byte_budget=self.byte_budget, max_stale=self.max_stale, widget=previous.pop(t, None))
                      for t in tags}
        self.card_box.children = tuple(card.widget for card in self.cards.values())
        for widget in previous.values():  # the models not chosen this time
            widget.close()
        self.results = Results(prompt, {t: Result(tag=t) for t in tags})
        self._say("")

    async def _run(self, prompt: str, tags: list[str]) -> Results:
        from .runner import arun

        live = self.results
        assert live is not None
        started = time.monotonic()

        def on_update(update: JobUpdate) -> None:
            r = live[update.tag]
            r.job_id, r.state, r.text = update.job_id, update.state, update.text
            r.error, r.elapsed, r.raw_status = update.error, update.elapsed, update.raw_status
            self.cards[update.tag].push(update)

        def fail(tag: str, message: str) -> None:
            r = live[tag]
            r.state, r.error, r.elapsed = JobState.FAILED, message, time.monotonic() - started
            self.cards[tag].fail(message)

        client, own = self._make_client()
        try:
            # Unknown tags fail their own card; the other models still run.
            await arun(prompt, tags, client=client, on_update=on_update, unknown="fail",
                       announce=self._say, **self._run_kwargs)
            failed = [t for t, r in live.items() if r.state is not JobState.COMPLETED]
            if failed:
                self._say(f"{len(failed)} of {len(tags)} model(s) did not complete: {', '.join(failed)}")
            return live
        except asyncio.CancelledError:
            self._say("cancelled")  # arun has ended the live jobs CANCELLED, text kept
            raise
        except GridLLMError as exc:  # ConfigError, TransportError, UnknownModel: one line
            for tag, r in live.items():
                if not r.state.terminal:
                    fail(tag, str(exc))
            self._say(str(exc))
            return live
        except Exception as exc:  # a bug: show it rather than die silently in a callback
            self._say(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if own:
                await client.aclose()
            for card in self.cards.values():
                card.flush()
            # The task is done only after this returns; refresh once it is.
            if self.task is not None:
                asyncio.get_running_loop().call_soon(self._after_run)

    def _after_run(self) -> None:
        self._refresh_buttons()
        self._apply_cap()
