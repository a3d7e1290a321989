"""The panel's model checkboxes: the service's list, at most ``limit`` ticked, with a hint.

``load`` asks the service which models it serves (``GET /models``, the
local service started first if it is the one asked). The cap holds in the kernel, whatever the front end allowed: a tick too
many (two clicks racing the disabling, or code) is undone here, and the
browser is told. While the panel runs, no box can be ticked or unticked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from ..api.client import JobsClient
from ..core.local import ensure_service
from ..errors import GridLLMError, NotSupported
from ..widgets.card import slug

__all__ = ["ModelPicker"]


class ModelPicker:
    """``box`` (one checkbox per model, classed ``gridllm-model-<slug>``) and ``hint``, for the panel to place.

    ``on_change()`` is called after each tick that stands.
    """

    def __init__(self, limit: int, on_change: Callable[[], None]) -> None:
        self.limit = limit
        self.on_change = on_change
        self.busy = False
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self.box = widgets.HBox([], layout=widgets.Layout(flex_flow="row wrap"))
        self.box.add_class("gridllm-models")
        self.hint = widgets.Label("", layout=widgets.Layout(display="none"))
        self.hint.add_class("gridllm-hint")

    @property
    def chosen(self) -> list[str]:
        return [t for t, cb in self.checkboxes.items() if cb.value]

    def set_models(self, tags: Sequence[str]) -> None:
        """(Re)build the checkboxes, keeping the ticks of tags that stay."""
        ticked = set(self.chosen)
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
        self.box.children = tuple(boxes.values())
        self.refresh()

    async def load(self, client: JobsClient, say: Callable[[str], None]) -> list[str] | None:
        """The service's models as checkboxes; None (and why, to ``say``) if it did not list them."""
        try:
            await ensure_service(client, say)
            listed = await client.models()
        except NotSupported:
            say("this service does not list its models: pass Panel(models=[...])")
            return None
        except GridLLMError as exc:
            say(str(exc))
            return None
        tags = [str(m["tag"]) for m in listed if m.get("tag")]
        self.set_models(tags)
        say("" if tags else "the service lists no models")
        return tags

    def hold(self, busy: bool) -> None:
        """Lock every box while the owner runs (``busy``); unlock them, the cap kept, after."""
        self.busy = busy
        self.refresh()

    def _on_tick(self, change: dict[str, Any]) -> None:
        if change["new"] and len(self.chosen) > self.limit:
            change["owner"].value = False  # the undo runs this handler again
            return
        self.refresh()
        self.on_change()

    def refresh(self) -> None:
        """Disable what may not be ticked now; the hint shows while the cap is reached."""
        full = len(self.chosen) >= self.limit
        for cb in self.checkboxes.values():
            want = self.busy or (full and not cb.value)
            if cb.disabled != want:
                cb.disabled = want
        if full:
            self.hint.value = f"At most {self.limit} models at once: untick one to choose another."
        self.hint.layout.display = None if full else "none"
