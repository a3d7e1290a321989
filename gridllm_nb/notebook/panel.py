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
``Checkbox.value`` / ``panel.prompt.value`` and call ``Button.click()`` (or
``panel.prompt.submit()``, what Ctrl+Enter does) inside a running asyncio
loop, then ``await panel.wait()``.

Earlier runs come from the local SQLite history (``history.py``): a new
panel lists the runs made before it, by other panels or by ``%%gridllm``,
and each run the panel makes is recorded there.

``Panel(arena=True)`` is the blind arena (``arena.ArenaRound``): the 2 or 3
ticked models answer on cards titled "A", "B", "C" in a shuffled order, and
until the vote nothing the browser is sent names them: not the titles, CSS
classes, errors, status line or Compare view (all masked to the letters),
nor any panel's History (a round on show is listed nowhere until its vote).
Once every answer has ended the vote bar (``arenawidget.VoteBar``) asks
which is better; the vote goes to the history DB and the cards get their
names. Process starts a new round, with a new deal; a round left without a
vote has none, and joins the History, names and all, as the next one starts.

A card whose model ended without an answer (failed, lost, cancelled, timed
out) shows a Retry button once the run is over: it asks that model again
(``runner.aretry``: the same prompt and options) into the same ``Results``
and the same card, in the background like Process, with Cancel to stop it;
the run's history rows are updated by the core.
"""

from __future__ import annotations

import asyncio
import html
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

from ..core.arena import ArenaRound, unvoted_runs
from ..widgets.card import BYTE_BUDGET, DEFAULT_RATE, MAX_STALE, Card, one_line, slug
from ..api.client import JobsClient, RetryPolicy
from ..errors import ConfigError, GridLLMError, NotSupported
from ..core.history import local_time, results_from_run
from ..api.jobs import JobState, JobUpdate
from ..display.render import render_text  # re-exported; model text -> HTML lives in render.py
from ..core.results import Result, Results

__all__ = ["HISTORY_RUNS", "MAX_MODELS", "Card", "Panel", "PromptBox", "render_text", "slug"]

MAX_MODELS = 3
HISTORY_RUNS = 20  # earlier runs listed under History, newest first

_CSS = """
<style>
.gridllm-panel { gap: 6px; }
.gridllm-history-entry { padding: 4px 0; border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); }
.gridllm-history-prompt { margin-bottom: 2px; overflow-wrap: anywhere; }
.gridllm-history-when { color: var(--jp-ui-font-color2, #666); margin-right: 6px; }
.gridllm-history-model summary { cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.gridllm-history-model > div { margin: 2px 0 6px 1.2em; max-height: 24em; overflow-y: auto; }
.gridllm-history-entry pre { white-space: pre-wrap; overflow-wrap: break-word; margin: 0;
  font-family: var(--jp-content-font-family, sans-serif); font-size: 0.95em; background: none; border: 0; }
.gridllm-status { min-height: 1.2em; }
.gridllm-hint { color: #666; font-style: italic; }
</style>
"""  # the cards and their grid style themselves: static/card.css


# -- the prompt: a textarea that knows Ctrl+Enter ------------------------------------

_PROMPT_JS = """\
function render({ model, el }) {
  const ta = document.createElement("textarea");
  ta.className = "gridllm-prompt-input";
  ta.rows = 4;
  ta.spellcheck = true;
  el.appendChild(ta);
  const sync = () => {
    const v = model.get("value") || "";
    if (ta.value !== v) ta.value = v;  // never while it is the same: the caret stays put
    ta.placeholder = model.get("placeholder") || "";
    ta.disabled = !!model.get("disabled");
  };
  ta.addEventListener("input", () => { model.set("value", ta.value); model.save_changes(); });
  ta.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.isComposing) return;
    // Ctrl+Enter / Cmd+Enter runs Process, not the notebook cell around the panel.
    e.preventDefault();
    e.stopPropagation();
    model.set("value", ta.value);
    model.save_changes();
    model.send({ submit: ta.value });
  });
  model.on("change:value change:placeholder change:disabled", sync);
  sync();
}
export default { render };
"""

_PROMPT_CSS = """\
.gridllm-prompt { align-self: stretch; box-sizing: border-box; width: auto; max-width: 100%; min-width: 0; }
.gridllm-prompt textarea { display: block; box-sizing: border-box; width: 100%; height: 6em; min-height: 3em;
  margin: 0; padding: 4px 8px; resize: vertical; font-family: var(--jp-ui-font-family, sans-serif);
  font-size: var(--jp-widgets-font-size, 13px); line-height: 1.4;
  color: var(--jp-widgets-input-color, #000); background: var(--jp-widgets-input-background-color, #fff);
  border: var(--jp-widgets-input-border-width, 1px) solid var(--jp-widgets-input-border-color, #9e9e9e);
  border-radius: 2px; }
.gridllm-prompt textarea:focus { outline: none; border-color: var(--jp-widgets-input-focus-border-color, #64b5f6); }
.gridllm-prompt textarea:disabled { opacity: 0.6; }
"""


class PromptBox(anywidget.AnyWidget):
    """The prompt: a plain textarea whose Ctrl+Enter (Cmd+Enter) submits.

    ``value`` is synced on every keystroke as ``ipywidgets.Textarea``'s is;
    ``on_submit(callback)`` registers what Ctrl+Enter does and ``submit()``
    does it from Python. The box fills its row exactly (border-box), so its
    right border is never clipped.
    """

    _esm = _PROMPT_JS
    _css = _PROMPT_CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(value=value, **kwargs)
        self._submit_handlers = widgets.CallbackDispatcher()
        self.on_msg(self._on_custom_msg)

    def on_submit(self, callback: Any, remove: bool = False) -> None:
        """Call ``callback(prompt_box)`` on Ctrl+Enter / Cmd+Enter."""
        self._submit_handlers.register_callback(callback, remove=remove)

    def submit(self) -> None:
        """What Ctrl+Enter does."""
        self._submit_handlers(self)

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and isinstance(content.get("submit"), str):
            if content["submit"] != self.value:  # the keystrokes' own update came first; this is a backstop
                self.value = content["submit"]
            self.submit()


# -- history entries ------------------------------------------------------------------


def first_words(text: str, limit: int = 80) -> str:
    """The start of an answer, on one line: what a history line shows of it."""
    line = one_line(text)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def history_entry_html(results: Results, created: str | None = None) -> str:
    """One earlier run: the prompt, then one expandable line per model (tag · state · time · first words).

    Every piece of model or user text is escaped (``render_text`` for the
    answers, ``html.escape`` for the rest): the entry is built, never copied.
    """
    when = local_time(created)
    head = f'<span class="gridllm-history-when">{html.escape(when)}</span>' if when else ""
    prompt = first_words(results.prompt, 200)
    parts = [f'<div class="gridllm-history-prompt">{head}<b>Prompt:</b> {html.escape(prompt)}</div>']
    for r in results.values():
        body = r.text or r.error or ""
        line = " · ".join(x for x in (r.tag, r.state.label, f"{r.elapsed:.1f} s", first_words(body)) if x)
        error = (f'<div class="gridllm-error">{html.escape(one_line(r.error))}</div>'
                 if r.error and r.text else "")
        parts.append(f'<details class="gridllm-history-model"><summary>{html.escape(line)}</summary>'
                     f"<div>{error}{render_text(body)}</div></details>")
    return "".join(parts)


# -- one card per model ---------------------------------------------------------


class Panel(widgets.VBox):
    """The WebUI of the service as a notebook widget.

    ``Panel()`` lists the service's models (``GET /models``); ``Panel(models=[...])``
    names them. ``url``, ``token``, ``hours``, ``timeout``, ``system``,
    ``options`` and ``poll`` are passed through to ``arun``; ``client`` (a
    ``JobsClient``) replaces the one the panel would make. ``max_rate``,
    ``byte_budget`` and ``max_stale`` tune how card updates are coalesced
    (see ``Card``); ``retry`` bounds how long an unreachable service is
    retried before the panel says so. ``history`` (on by default) lists the
    last ``history_runs`` runs of the local SQLite history under History and
    records each of the panel's runs there; off, History lists this panel's
    own earlier runs only. ``arena`` makes it the blind arena (see the
    module's docstring); ``rng`` deals its letters (seeded in tests). Votes
    are stored in the history DB whatever ``history`` says: a vote is a
    click that asks for it.
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
        history: bool = True,
        history_runs: int = HISTORY_RUNS,
        arena: bool = False,
        rng: random.Random | None = None,
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
        self.history: list[Results] = []  # the runs listed under History, oldest first
        self.use_history = history
        self.history_runs = history_runs
        self._entries: list[tuple[str, widgets.HTML, Results]] = []  # (run id, widget, run), newest first
        self.available: list[str] | None = None  # what GET /models said, if it answered
        self.cards: dict[str, Card] = {}
        self.task: asyncio.Task[Any] | None = None
        self._load_task: asyncio.Future[Any] | None = None
        self._card_layout = widgets.Layout()  # one for every card: opened once, not per card
        self.arena = arena
        self.arena_round: ArenaRound | None = None  # the round on show (arena mode)
        self._rng = rng

        style = widgets.HTML(_CSS)
        style.add_class("gridllm-style")
        self.model_box = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        self.model_box.add_class("gridllm-models")
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self.hint = widgets.Label("", layout=widgets.Layout(display="none"))
        self.hint.add_class("gridllm-hint")
        self.prompt = PromptBox(prompt, placeholder="Enter your prompt (plain text); Ctrl+Enter runs it",
                                _dom_classes=("gridllm-prompt",))
        self.process_button = widgets.Button(description="Process", button_style="primary",
                                             icon="play", disabled=True)
        self.process_button.add_class("gridllm-process")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop",
                                            layout=widgets.Layout(display="none"))
        self.cancel_button.add_class("gridllm-cancel")
        self.markdown_toggle = widgets.ToggleButton(value=markdown, description="Markdown",
                                                    tooltip="Render answers as (sanitized) markdown")
        self.markdown_toggle.add_class("gridllm-markdown")
        self.compare_toggle = widgets.ToggleButton(value=False, description="Compare",
                                                   tooltip="Compare two answers word by word")
        self.compare_toggle.add_class("gridllm-compare")
        buttons = widgets.HBox([self.process_button, self.cancel_button, self.markdown_toggle,
                                self.compare_toggle])
        self.status = widgets.Label("", layout=widgets.Layout(display="none"))
        self.status.add_class("gridllm-status")
        # Only a line with something to say takes room: no gap between the buttons and the cards.
        self.status.observe(self._show_status, names="value")
        self.card_box = widgets.Box([], layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                              width="100%"))
        self.card_box.add_class("gridllm-cards")
        # Compare: two answers word by word (diff.py), under the cards; shown while the toggle is on.
        self.diff_a = widgets.Dropdown(description="A", options=[], style={"description_width": "initial"},
                                      layout=widgets.Layout(width="auto", margin="0 12px 0 0"))
        self.diff_b = widgets.Dropdown(description="B", options=[], style={"description_width": "initial"},
                                      layout=widgets.Layout(width="auto", margin="0 12px 0 0"))
        self.diff_html = widgets.HTML("")
        self.diff_html.add_class("gridllm-diff")
        self.diff_pick = widgets.HBox([self.diff_a, self.diff_b])
        self.diff_box = widgets.VBox([self.diff_pick, self.diff_html], layout=widgets.Layout(display="none"))
        self.diff_box.add_class("gridllm-diff-box")
        self._diff_syncing = False
        self.history_box = widgets.VBox([])
        self.history_box.add_class("gridllm-history-list")
        self.history_accordion = widgets.Accordion([self.history_box], selected_index=None)
        self.history_accordion.set_title(0, "History (0 earlier runs)")
        self.history_accordion.add_class("gridllm-history")
        if self.use_history:
            self._sync_history()

        heading = ("<b>Arena</b>: tick 2 or 3 models; their answers show as A, B, C until you vote"
                   if arena else "<b>Models</b> (up to 3)")
        arena_widgets: list[widgets.Widget] = []
        if arena:
            from ..widgets.votebar import VoteBar

            self.vote_bar = VoteBar(on_voted=self._reveal)
            arena_widgets.append(self.vote_bar)
        super().__init__([style, widgets.HTML(heading), self.model_box, self.hint,
                          self.prompt, buttons, self.status, self.card_box, *arena_widgets, self.diff_box,
                          self.history_accordion])
        self.add_class("gridllm-panel")

        self.prompt.observe(self._refresh_buttons, names="value")
        self.process_button.on_click(self._guard(lambda _button: self.process()))
        self.prompt.on_submit(self._guard(lambda _box: self.process()))  # Ctrl+Enter / Cmd+Enter
        self.cancel_button.on_click(self._guard(lambda _button: self.cancel()))
        self._retry_card = self._guard(lambda tag: self.retry_failed([tag]))  # a card's Retry button
        self.markdown_toggle.observe(self._on_markdown, names="value")
        self.compare_toggle.observe(self._refresh_diff, names="value")
        self.diff_a.observe(self._refresh_diff, names="value")
        self.diff_b.observe(self._refresh_diff, names="value")

        if models is not None:
            self.set_models(list(models))
        else:
            self._start_loading()

    def _guard(self, action: Callable[[Any], Any]) -> Callable[[Any], None]:
        """A click handler that puts an unexpected error on the status line (ipywidgets hides it)."""

        def handler(source: Any) -> None:  # the button, the prompt box, or a card's tag
            try:
                action(source)
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
            from ..core.sync import run_sync

            run_sync(self.load_models())
            return
        self.status.value = "loading the model list…"
        self._load_task = loop.create_task(self.load_models())

    async def load_models(self) -> list[str] | None:
        """Ask the service which models it serves; the answer fills the checkboxes."""
        client, own = self._make_client()
        try:
            from ..core.local import ensure_service

            await ensure_service(client, self._say)
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

    def _show_status(self, change: dict[str, Any]) -> None:
        self.status.layout.display = None if change["new"] else "none"

    def _say(self, message: str) -> None:
        self.status.value = one_line(self._mask(message))

    def _mask(self, text: str) -> str:
        """In a round not voted on yet, every model name in ``text`` becomes its letter."""
        return self.arena_round.mask(text) if self.arena_round is not None else text

    @property
    def chosen(self) -> list[str]:
        return [t for t, cb in self.checkboxes.items() if cb.value]

    def _on_tick(self, change: dict[str, Any]) -> None:
        if change["new"] and len(self.chosen) > self.max_models:
            # One tick too many (two clicks racing the disabling, or code): undone here, in the
            # kernel, whatever the front end allowed. The undo runs this handler again.
            change["owner"].value = False
            return
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
        for card in self.cards.values():  # one thing at a time: no Retry while a run or a retry goes
            card.widget.offer_retry(not busy)

    def _on_markdown(self, change: dict[str, Any]) -> None:
        for card in self.cards.values():
            card.set_markdown(bool(change["new"]))

    def _refresh_diff(self, _change: Any = None) -> None:
        """Compare on and two answers or more: the dropdowns list the run's models, the HTML their diff."""
        if self._diff_syncing:
            return
        results = self.results
        if results is not None and self.arena_round is not None:  # lettered until the vote
            results = self.arena_round.shown(results)
        tags = list(results) if results is not None else []
        self.diff_box.layout.display = None if self.compare_toggle.value else "none"
        self.diff_pick.layout.display = None if len(tags) >= 2 else "none"
        if not self.compare_toggle.value:
            return
        if len(tags) < 2:
            self.diff_html.value = "<em>Compare needs two answers: run two models or more.</em>"
            return
        self._diff_syncing = True  # new options set the values: one refresh, not three
        try:
            a, b = self.diff_a.value, self.diff_b.value
            if list(self.diff_a.options) != tags:
                self.diff_a.options, self.diff_b.options = tags, tags
            self.diff_a.value = a if a in tags else tags[0]
            self.diff_b.value = b if b in tags and b != self.diff_a.value else next(
                t for t in tags if t != self.diff_a.value)
        finally:
            self._diff_syncing = False
        assert results is not None
        if not results.done:
            self.diff_html.value = "<em>the comparison is shown when the run ends</em>"
            return
        # Every piece of model text in it is html.escape'd (diff.py): never live HTML.
        self.diff_html.value = results.diff(self.diff_a.value, self.diff_b.value)._repr_html_()

    # -- runs -----------------------------------------------------------------

    def process(self) -> asyncio.Task[Any] | None:
        """What the Process button does: start a run of the prompt on the ticked models."""
        if self.running:
            return self.task
        tags, prompt = self.chosen, self.prompt.value
        if not tags or not prompt.strip():
            self._say("choose at least one model and write a prompt")
            return None
        if self.arena:
            try:
                blind = ArenaRound(tags, prompt, rng=self._rng)  # a new deal
            except ConfigError as exc:  # one model, or four
                self._say(str(exc))
                return None
            if self.arena_round is not None:
                self.arena_round.close()  # voted or left without a vote: the History may name it now
            self.arena_round = blind
            tags = list(blind.tags)  # cards in letter order
            self.vote_bar.hide()
        self._prepare(prompt, tags)
        return self._start(self._run(prompt, tags))

    def retry_failed(self, tags: Sequence[str] | None = None) -> asyncio.Task[Any] | None:
        """What a card's Retry button does: ask ``tags`` (default: every model of the run on show that
        ended without an answer) again, with the run's prompt and options, into the same Results and cards.

        It runs as Process does (Cancel stops it; Process waits); a tag that
        answered meanwhile, or is not in the run, is a one-line error on the
        status line. The panel's ``timeout`` does not bound it: a model is
        retried mostly because that limit cut it short; Cancel still stops it.
        """
        if self.running:
            return self.task
        if self.results is None:
            self._say("nothing to retry: no run yet")
            return None
        tags = list(self.results.retryable if tags is None else tags)
        if not tags:
            self._say("nothing to retry: every model answered")
            return None
        self._say("")
        return self._start(self._retry(tags))

    def _start(self, work: Coroutine[Any, Any, Results]) -> asyncio.Task[Any] | None:
        """Run ``work`` (a run or a retry) as the panel's task on the running loop (the kernel's, so the
        widgets stay live); without a loop, to its end here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from ..core.sync import run_sync

            try:
                run_sync(work)
            finally:
                self._after_run()
            return None
        self.task = loop.create_task(work)
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

    # -- history ----------------------------------------------------------------

    def _history_entry(self, results: Results, created: str | None) -> widgets.HTML:
        entry = widgets.HTML(history_entry_html(results, created))
        entry.add_class("gridllm-history-entry")
        return entry

    def _show_history(self) -> None:
        for _, widget, _ in self._entries[self.history_runs:]:  # fell off the end
            widget.close()
        del self._entries[self.history_runs:]
        self.history = [results for _, _, results in reversed(self._entries)]
        self.history_box.children = tuple(widget for _, widget, _ in self._entries)
        n = len(self._entries)
        self.history_accordion.set_title(0, f"History ({n} earlier run{'' if n == 1 else 's'})")

    def _sync_history(self) -> None:
        """List the SQLite history's recent runs not listed yet (the run on show is never among them:
        this runs when the panel opens, and when that run becomes an earlier one)."""
        from ..core.history import recent

        try:
            runs = recent(self.history_runs)
        except Exception as exc:  # noqa: BLE001 - an unreadable history must not break the panel
            self._say(f"history not read: {exc}")
            return
        known = {run_id for run_id, _, _ in self._entries} | unvoted_runs()  # an arena round stays blind
        fresh = []
        for run in runs:
            if run["run_id"] not in known:
                results = results_from_run(run)
                fresh.append((run["run_id"], self._history_entry(results, run.get("created")), results))
        # What the database holds that the panel has not listed is newer than what it lists
        # (the first time: all of it), so it goes on top, in the database's order.
        self._entries[:0] = fresh
        self._show_history()

    def _archive(self, results: Results) -> None:
        """The run on show becomes an earlier run."""
        if results.run_id is None:  # not in the SQLite history: listed from memory
            self._entries.insert(0, ("", self._history_entry(results, None), results))
        if self.use_history:
            self._sync_history()  # a recorded run is in the database now, with whatever else ran since
        else:
            self._show_history()

    def _prepare(self, prompt: str, tags: list[str]) -> None:
        """Cards for this run (a model that ran before keeps its widget), the previous run into the history."""
        if self.results is not None:
            self._archive(self.results)
        markdown = self.markdown_toggle.value
        previous = {card.title: card.widget for card in self.cards.values()}
        title = self.arena_round.title if self.arena_round is not None else str
        # A model that ran before keeps its card widget: no second set-up on the wire. (An arena
        # card is kept by its letter: the same widget for another model tells nobody which.)
        self.cards = {t: Card(t, markdown=markdown, max_rate=self.max_rate, layout=self._card_layout,
                              byte_budget=self.byte_budget, max_stale=self.max_stale,
                              widget=previous.pop(title(t), None), title=title(t), on_retry=self._retry_card)
                      for t in tags}
        self.card_box.children = tuple(card.widget for card in self.cards.values())
        for widget in previous.values():  # the models not chosen this time
            widget.close()
        self.results = Results(prompt, {t: Result(tag=t) for t in tags})
        self._say("")
        self._refresh_diff()

    def _on_update(self, update: JobUpdate) -> None:
        """A run's or a retry's update, to its card (the Results themselves are filled by the core);
        an arena card is sent its error masked to the letters."""
        blind = self.arena_round
        if blind is None:
            self.cards[update.tag].push(update)
            return
        if blind.run_id is None and self.results is not None and self.results.run_id:
            blind.run_id = self.results.run_id  # in the history from its first submit: no History lists it
        self.cards[update.tag].push(blind.hide(update))

    async def _run(self, prompt: str, tags: list[str]) -> Results:
        from ..core.run import arun

        async def run() -> Results:
            client, own = self._make_client()
            try:
                # Unknown tags fail their own card; the other models still run.
                return await arun(prompt, tags, client=client, on_update=self._on_update, unknown="fail",
                                  announce=self._say, results=self.results, history=self.use_history,
                                  **self._run_kwargs)
            finally:
                if own:  # closed before the run counts as over (``_follow``)
                    await client.aclose()

        return await self._follow(tags, run())

    async def _retry(self, tags: list[str]) -> Results:
        from ..core.run import aretry

        assert self.results is not None
        # The run's own endpoint, prompt and options (its spec); its history rows are updated.
        return await self._follow(tags, aretry(self.results, tags, on_update=self._on_update, announce=self._say))

    async def _follow(self, tags: list[str], work: Coroutine[Any, Any, Results]) -> Results:
        """Await a run or a retry of ``tags``, saying on the status line how it ended (one line, never a trace)."""
        live = self.results
        assert live is not None
        started = time.monotonic()

        def fail(tag: str, message: str) -> None:
            r = live[tag]
            r.state, r.error, r.elapsed = JobState.FAILED, message, time.monotonic() - started
            self.cards[tag].fail(self._mask(message))

        try:
            await work
            # The run on show as it stands (after a retry too: the models not retried count as well).
            failed = [t for t, r in live.items() if r.state is not JobState.COMPLETED]
            if failed:
                self._say(f"{len(failed)} of {len(live)} model(s) did not complete: {', '.join(failed)}")
            return live
        except asyncio.CancelledError:
            self._say("cancelled")  # the core has ended the live jobs CANCELLED, text kept
            raise
        except GridLLMError as exc:  # ConfigError, TransportError, UnknownModel: one line
            for tag in tags:
                if tag in live and not live[tag].state.terminal:
                    fail(tag, str(exc))
            self._say(str(exc))
            return live
        except Exception as exc:  # a bug: show it rather than die silently in a callback
            self._say(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for card in self.cards.values():
                card.flush()
            # The task is done only after this returns; refresh once it is.
            if self.task is not None:
                asyncio.get_running_loop().call_soon(self._after_run)

    def _after_run(self) -> None:
        self._refresh_buttons()
        self._apply_cap()
        self._refresh_diff()
        self._offer_vote()

    # -- the arena ----------------------------------------------------------------

    def _offer_vote(self) -> None:
        """Every answer of the round has ended: the vote bar asks (the run is in the history now)."""
        blind = self.arena_round
        if blind is None or blind.voted or self.results is None or not self.results.done:
            return
        blind.run_id = self.results.run_id
        self.vote_bar.ask(blind)

    def vote(self, choice: str) -> None:
        """What a vote button does: ``"A"``, ``"B"``, ``"C"``, ``"tie"`` or ``"bad"``."""
        if not self.arena:
            raise ConfigError("this panel is no arena: Panel(arena=True) has votes")
        self.vote_bar.vote(choice)

    def _reveal(self, blind: ArenaRound) -> None:
        """After the vote: each card's title names its model; Compare names them too."""
        for tag, card in self.cards.items():
            card.widget.tag = blind.title(tag)
        self._refresh_diff()
