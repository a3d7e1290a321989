"""``PromptBox``: the panel's prompt, a plain textarea whose Ctrl+Enter (Cmd+Enter) submits.

``ipywidgets.Textarea`` has no key events, and Ctrl+Enter in a notebook
runs the cell around the widget; this anywidget stops that in the front
end (``static/prompt.js``) and sends ``{"submit": text}`` to the kernel
instead. Its look is ``static/prompt.css``.
"""

from __future__ import annotations

from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

from .assets import css, esm

__all__ = ["PromptBox"]


class PromptBox(anywidget.AnyWidget):
    """The prompt: a plain textarea whose Ctrl+Enter (Cmd+Enter) submits.

    ``value`` is synced on every keystroke as ``ipywidgets.Textarea``'s is;
    ``on_submit(callback)`` registers what Ctrl+Enter does and ``submit()``
    does it from Python. The box fills its row exactly (border-box), so its
    right border is never clipped.
    """

    _esm = esm("prompt")
    _css = css("prompt")
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
