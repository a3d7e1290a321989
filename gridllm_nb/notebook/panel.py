"""The ipywidgets panel: the service's WebUI inside the notebook.

It composes the model checkboxes (``model_picker.py``), the prompt
(``widgets.prompt``), Process / Cancel, one card per chosen model
(``widgets.card``), the Compare pane (``compare.py``) and the History
(``history_list.py``). Runs go through ``arun``, the core of the magic and
the CLI too, into the panel's ``results``: each card reads its model's
Result, which the core fills. It is driven from Python as from a browser:
set ``Checkbox.value`` / ``panel.prompt.value``, call ``Button.click()``
inside a running loop, then ``await panel.wait()``.

``Panel(arena=True)`` is the blind arena (``core.arena.ArenaRound``): the
2 or 3 ticked models answer on cards titled "A", "B", "C" in a shuffled
order, and until the vote nothing the browser is sent names them (titles,
CSS classes, errors, status line, Compare: all lettered; no History lists
the round). Once every answer has ended the vote bar asks which is better;
the vote goes to the history DB and the cards get their names.

A card whose model ended without an answer offers Retry once the run is
over: that model is asked again (``core.run.aretry``) into the same
Results and card, in the background like Process, with Cancel to stop it.

Where a run goes (in a kernel, the background loop, so the cards keep
streaming while later cells run) and how its end is told: ``panel_run``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import ipywidgets as widgets

from ..api import arguments
from ..api.client import JobsClient, RetryPolicy
from ..api.jobs import JobUpdate
from ..config import resolve_endpoint
from ..core.arena import ArenaRound
from ..core.live import check_arguments
from ..core.results import Result, Results
from ..errors import ConfigError
from ..text import one_line
from ..widgets.card import BYTE_BUDGET, DEFAULT_RATE, MAX_STALE, Card
from ..widgets.prompt import PromptBox
from ..widgets.sheet import PanelSheet
from .compare import ComparePane
from .history_list import HISTORY_RUNS, HistoryList
from .model_picker import ModelPicker
from .panel_run import PanelRuns, Running, join, spawn

__all__ = ["MAX_MODELS", "Panel"]

MAX_MODELS = 3


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
        check_arguments(url=url, token=token, client=client, options=options, hours=hours, timeout=timeout,
                        system=system, poll=poll, history=history)
        if client is None:
            resolve_endpoint(url, token)  # the URL and the token as the panel's client will take them
        tags = None if models is None else arguments.models(models)
        arguments.flag(markdown, "markdown")
        arguments.flag(arena, "arena")
        arguments.whole(max_models, "max_models")
        arguments.whole(history_runs, "history_runs", least=0)
        arguments.number(max_rate, "max_rate", positive=False, unit="updates a second", optional=False)
        arguments.number(byte_budget, "byte_budget", positive=False, unit="bytes sent per byte of text")
        arguments.number(max_stale, "max_stale", positive=False, optional=False)
        arguments.instance(retry, "retry", RetryPolicy, "a RetryPolicy")
        arguments.instance(rng, "rng", random.Random, "a random.Random")
        arguments.text(prompt, "prompt", empty=True)

        self._url = url
        self._token = token
        self._client = client
        self._run_kwargs: dict[str, Any] = {
            "options": options, "hours": hours, "timeout": timeout, "system": system, "poll": poll,
        }
        self.max_rate = max_rate
        self.byte_budget = byte_budget
        self.max_stale = max_stale
        self.retry = retry or RetryPolicy(budget=8.0, initial=0.3, maximum=2.0)
        self.results: Results | None = None
        self.use_history = history
        self.available: list[str] | None = None  # what GET /models said, if it answered
        self.cards: dict[str, Card] = {}
        self.runs = PanelRuns(self._say, self._after_run)
        self._refreshing = threading.RLock()
        self._load_task: Running | None = None
        self._card_layout = widgets.Layout()  # one for every card: opened once, not per card
        self.arena = arena
        self.arena_round: ArenaRound | None = None  # the round on show (arena mode)
        self._rng = rng

        self.picker = ModelPicker(max_models, on_change=self._refresh_buttons)
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
        self.compare = ComparePane(self._compared)  # under the cards; shown while its toggle is on
        buttons = widgets.HBox([self.process_button, self.cancel_button, self.markdown_toggle,
                                self.compare.toggle])
        self.status = widgets.Label("", layout=widgets.Layout(display="none"))
        self.status.add_class("gridllm-status")
        # Only a line with something to say takes room: no gap between the buttons and the cards.
        self.status.observe(self._show_status, names="value")
        self.card_box = widgets.Box([], layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                              width="100%"))
        self.card_box.add_class("gridllm-cards")
        self.history_list = HistoryList(limit=history_runs, recorded=history, say=self._say)

        heading = ("<b>Arena</b>: tick 2 or 3 models; their answers show as A, B, C until you vote"
                   if arena else "<b>Models</b> (up to 3)")
        arena_widgets: list[widgets.Widget] = []
        if arena:
            from ..widgets.votebar import VoteBar

            self.vote_bar = VoteBar(on_voted=self._reveal)
            arena_widgets.append(self.vote_bar)
        super().__init__([PanelSheet(), widgets.HTML(heading), self.picker.box, self.picker.hint,
                          self.prompt, buttons, self.status, self.card_box, *arena_widgets, self.compare,
                          self.history_list])
        self.add_class("gridllm-panel")

        self.prompt.observe(self._refresh_buttons, names="value")
        self.process_button.on_click(self._guard(lambda _button: self.process()))
        self.prompt.on_submit(self._guard(lambda _box: self.process()))  # Ctrl+Enter / Cmd+Enter
        self.cancel_button.on_click(self._guard(lambda _button: self.cancel()))
        self._retry_card = self._guard(lambda tag: self.retry_failed([tag]))  # a card's Retry button
        self.markdown_toggle.observe(self._on_markdown, names="value")

        if tags is not None:
            self.set_models(tags)
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
    def history(self) -> list[Results]:
        """The runs listed under History, oldest first."""
        return self.history_list.runs

    @property
    def task(self) -> Running | None:
        """The run or retry on show: a task on the running loop, or (in a kernel) on the background loop."""
        return self.runs.task

    @property
    def running(self) -> bool:
        return self.runs.running

    # -- models ---------------------------------------------------------------

    @property
    def checkboxes(self) -> dict[str, widgets.Checkbox]:
        """One checkbox per model, by tag."""
        return self.picker.checkboxes

    @property
    def chosen(self) -> list[str]:
        """The ticked models."""
        return self.picker.chosen

    def set_models(self, tags: Sequence[str]) -> None:
        """(Re)build the checkboxes, keeping the ticks of tags that stay."""
        self.picker.set_models(tags)
        self._refresh_buttons()

    def _make_client(self) -> tuple[JobsClient, bool]:
        if self._client is not None:
            return self._client, False
        return JobsClient(self._url, self._token, retry=self.retry), True

    def _start_loading(self) -> None:
        loading = self.load_models()
        self._load_task = spawn(loading, "gridllm-models")
        if self._load_task is None:
            from ..core.sync import run_sync

            run_sync(loading)
        else:
            self.status.value = "loading the model list…"

    async def load_models(self) -> list[str] | None:
        """Ask the service which models it serves; the answer fills the checkboxes."""
        client, own = self._make_client()
        try:
            self.available = await self.picker.load(client, self._say)
        finally:
            if own:
                await client.aclose()
        self._refresh_buttons()
        return self.available

    async def loaded(self) -> None:
        """Wait until the model list has arrived (or failed)."""
        if self._load_task is not None:
            await join(self._load_task)

    def _show_status(self, change: dict[str, Any]) -> None:
        self.status.layout.display = None if change["new"] else "none"

    def _say(self, message: str) -> None:
        self.status.value = one_line(self._mask(message))

    def _mask(self, text: str) -> str:
        """In a round not voted on yet, every model name in ``text`` becomes its letter."""
        return self.arena_round.mask(text) if self.arena_round is not None else text

    def _refresh_buttons(self, _change: Any = None) -> None:
        # One refresh at a time: a run's end refreshes on its own thread (``panel_run``), and the
        # last to write must be the last to have looked.
        with self._refreshing:
            busy = self.running
            can = bool(self.chosen) and bool(self.prompt.value.strip()) and not busy
            self.process_button.disabled = not can
            self.cancel_button.layout.display = None if busy else "none"
            self.prompt.disabled = busy
            self.picker.hold(busy)
            for card in self.cards.values():  # one thing at a time: no Retry while a run or a retry goes
                card.widget.offer_retry(not busy)

    def _on_markdown(self, change: dict[str, Any]) -> None:
        def restyle() -> None:
            for card in self.cards.values():
                card.set_markdown(bool(change["new"]))

        self.runs.call(restyle)  # where a live run sends its cards their updates

    def _compared(self) -> Results | None:
        """What the Compare pane may show: the run on show, lettered until the arena's vote."""
        if self.results is not None and self.arena_round is not None:
            return self.arena_round.shown(self.results)
        return self.results

    # -- runs -----------------------------------------------------------------

    def process(self) -> Running | None:
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
        return self._start(tags, self._run(prompt, tags))

    def retry_failed(self, tags: Sequence[str] | None = None) -> Running | None:
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
        return self._start(tags, self._retry(tags))

    def _start(self, tags: list[str], work: Coroutine[Any, Any, Results]) -> Running | None:
        assert self.results is not None
        running = self.runs.start(self.runs.follow(self.results, self.cards, tags, work))
        self._refresh_buttons()
        return running

    def cancel(self) -> None:
        """What the Cancel button does: cancel the run (live jobs end CANCELLED, text kept)."""
        self.runs.cancel()

    async def wait(self) -> Results | None:
        """Wait for the current run to end; returns ``panel.results``."""
        await self.runs.wait()
        return self.results

    def _prepare(self, prompt: str, tags: list[str]) -> None:
        """Cards for this run (a model that ran before keeps its widget), the previous run into the history."""
        if self.results is not None:
            self.history_list.archive(self.results)
        blind = self.arena_round
        # An arena's run is its round's: the Results it is dealt, by tag in letter order.
        self.results = blind.results if blind is not None else Results(prompt, {t: Result(tag=t) for t in tags})
        title = blind.title if blind is not None else str
        previous = {card.title: card.widget for card in self.cards.values()}
        # A model that ran before keeps its card widget: no second set-up on the wire. (An arena
        # card is kept by its letter: the same widget for another model tells nobody which.)
        self.cards = {t: Card(self.results[t], title=title(t), mask=blind.mask if blind is not None else None,
                              markdown=self.markdown_toggle.value, max_rate=self.max_rate,
                              layout=self._card_layout, byte_budget=self.byte_budget, max_stale=self.max_stale,
                              widget=previous.pop(title(t), None), on_retry=self._retry_card)
                      for t in tags}
        self.card_box.children = tuple(card.widget for card in self.cards.values())
        for widget in previous.values():  # the models not chosen this time
            widget.close()
        self._say("")
        self.compare.refresh()

    def _on_update(self, update: JobUpdate) -> None:
        """A run's or a retry's update: its Result (filled by the core) changed, its card shows it."""
        self.cards[update.tag].push(update)

    async def _run(self, prompt: str, tags: list[str]) -> Results:
        from ..core.run import arun

        client, own = self._make_client()
        try:
            # Unknown tags fail their own card; the other models still run.
            return await arun(prompt, tags, client=client, on_update=self._on_update, unknown="fail",
                              announce=self._say, results=self.results, history=self.use_history,
                              **self._run_kwargs)
        finally:
            if own:  # closed before the run counts as over
                await client.aclose()

    async def _retry(self, tags: list[str]) -> Results:
        from ..core.run import aretry

        assert self.results is not None
        # The run's own endpoint, prompt and options (its spec); its history rows are updated.
        return await aretry(self.results, tags, on_update=self._on_update, announce=self._say)

    def _after_run(self) -> None:
        self._refresh_buttons()
        self.compare.refresh()
        self._offer_vote()

    # -- the arena ----------------------------------------------------------------

    def _offer_vote(self) -> None:
        """Every answer of the round has ended: the vote bar asks (the run is in the history now)."""
        blind = self.arena_round
        if blind is None or blind.voted or self.results is None or not self.results.done:
            return
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
        self.compare.refresh()
