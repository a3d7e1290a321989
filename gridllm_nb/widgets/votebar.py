"""The blind arena's widgets: the vote bar, and a ``%%gridllm --arena`` cell's value.

``VoteBar`` is the vote of both front ends: the panel shows it under its
cards once every answer has ended, an arena cell under its lettered
picture. A click casts the vote (``ArenaRound.cast``, into the history DB),
disables the buttons and says who was who; ``on_voted`` lets the owner
reveal the names in its own views (the panel's card titles, the cell's
picture). Everything here is plain text or escaped: tags are user input.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..core.arena import ArenaRound
from ..display.table import results_bundle
from ..errors import GridLLMError
from ..text import one_line

__all__ = ["ArenaOutput", "VoteBar"]


class VoteBar(widgets.VBox):
    """"A better", "B better"[, "C better"], "Tie", "All bad"; after the click, the names.

    Hidden until ``ask(round)``; ``hide()`` puts it away for the next round.
    ``path`` names another votes file than the history DB (tests).
    """

    def __init__(self, on_voted: Callable[[ArenaRound], None] | None = None, *,
                 path: Path | str | None = None) -> None:
        self.round: ArenaRound | None = None
        self.buttons: dict[str, widgets.Button] = {}
        self.on_voted = on_voted
        self.path = path
        self.row = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        self.line = widgets.Label("")  # plain text: the reveal, or why the vote was not stored
        self.line.add_class("gridllm-vote-line")
        super().__init__([self.row, self.line], layout=widgets.Layout(display="none"))
        self.add_class("gridllm-vote")

    def ask(self, arena: ArenaRound) -> None:
        """Show this round's buttons (a voted round: disabled, with its reveal)."""
        self.round = arena
        for button in self.buttons.values():
            button.close()
        self.buttons = {}
        for label, choice in arena.choices():
            button = widgets.Button(description=label, button_style="", tooltip=f"Vote: {label}")
            button.add_class(f"gridllm-vote-{choice.lower()}")
            button.on_click(lambda _b, choice=choice: self.vote(choice))
            self.buttons[choice] = button
        self.row.children = tuple(self.buttons.values())
        self.line.value = "Which answer is better? The names are shown after your vote."
        if arena.vote is not None:
            self._voted()
        self.layout.display = None

    def hide(self) -> None:
        self.layout.display = "none"
        self.round = None

    def vote(self, choice: str) -> None:
        """What a click does: store the vote, then reveal."""
        if self.round is None or self.round.voted:
            return
        try:
            self.round.cast(choice, path=self.path)
        except (GridLLMError, OSError, sqlite3.Error) as exc:
            self.line.value = one_line(f"vote not stored: {exc}")
            return
        self._voted()
        if self.on_voted is not None:
            self.on_voted(self.round)

    def _voted(self) -> None:
        assert self.round is not None and self.round.vote is not None
        winner = self.round.vote.winner
        chosen = next((c for c, t in self.round.letters.items() if t == winner), winner)
        for choice, button in self.buttons.items():
            button.disabled = True
            if choice == chosen:
                button.button_style = "success"
        label = next(lab for lab, c in self.round.choices() if c == chosen)
        self.line.value = f"Your vote: {label}. {self.round.reveal()}."


class ArenaOutput(widgets.VBox):
    """A ``%%gridllm --arena`` cell's value: the answers under letters, the vote under them.

    Until the vote every form of it (the widget, and the ``text/html`` and
    ``text/plain`` a notebook saves for viewers without widgets) shows
    letters; the vote redraws the picture with the names. ``round.results``
    has the real answers by tag.
    """

    def __init__(self, arena: ArenaRound, fmt: str = "markdown", *, path: Path | str | None = None) -> None:
        self.round = arena
        self.fmt = fmt
        self.picture = widgets.HTML(self._bundle()["text/html"])
        self.picture.add_class("gridllm-arena-picture")
        self.vote_bar = VoteBar(on_voted=self._reveal, path=path)
        super().__init__([self.picture, self.vote_bar])
        self.add_class("gridllm-arena")
        self.vote_bar.ask(arena)

    def _bundle(self) -> dict[str, Any]:
        """The side-by-side picture (sanitized answers, escaped titles) as it may be shown now."""
        return results_bundle(list(self.round.shown().values()), self.fmt)

    def _reveal(self, _arena: ArenaRound) -> None:
        self.picture.value = self._bundle()["text/html"]

    def vote(self, choice: str) -> None:
        """Vote from code: ``"A"``, ``"B"``, ``"C"``, ``"tie"`` or ``"bad"``."""
        self.vote_bar.vote(choice)

    def __repr__(self) -> str:
        return f"{self._bundle()['text/plain']}\n\n{self.vote_bar.line.value}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget for a live front end; the picture as it stands for everyone else.
        bundle = {k: v for k, v in self._bundle().items() if k != "application/json"}
        bundle.update(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self)
        return bundle
