"""``StreamText``: a plain-text widget whose text only travels as deltas.

Stock ipywidgets resend a trait's whole value on every change, so a text
that grows by a few characters ten times a second costs text x updates on
the wire. ``StreamText`` (an ``anywidget.AnyWidget``) keeps the full text on
the Python side in a plain attribute and sends custom messages instead:

* ``{"append": delta, "at": n}``: ``delta`` follows the first ``n`` UTF-16
  code units (JavaScript's ``String.length``) of the text;
* ``{"reset": text}``: the text was replaced (not a continuation), sent once;
* ``{"set": {name: value}}``: other synced fields that changed (subclasses'
  ``live_fields``), alone or along with one of the above.

The synced ``text`` trait (and each live field) is set only when the
widget is created; it is never resent per update. The front end applies
each message to its model (``model.set`` without ``save_changes()``), so views created
later and the widget state saved in a notebook show the full text, and
``get_state`` (the comm_open and a reloading page's state request) reports
the current text too. A front end that missed a message (one sent before
its module had loaded) sees ``at`` disagree with its length and asks for a
``reset``; on load it also reports its length, so a missed final message
is repaired as well.

The text is shown with ``textContent`` semantics (a DOM text node, never
``innerHTML``): model text is untrusted and never becomes markup. The front
end is ``static/deltas.js`` (what every text widget shares: the messages,
the text node) and ``static/streamtext.js`` (this widget's view).
"""

from __future__ import annotations

import json
from typing import Any

import anywidget
import traitlets

from .assets import esm

__all__ = ["StreamText", "utf16_len"]


def utf16_len(text: str) -> int:
    """The length of ``text`` as JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class StreamText(anywidget.AnyWidget):
    """A ``<pre class="gridllm-text">`` whose text grows by appended deltas.

    Set ``value`` (or call ``append`` / ``reset``): a continuation of the
    current text sends only the new part, anything else one ``reset`` with
    the full new text. An unchanged value sends nothing.

    Subclasses name further synced traits in ``live_fields``: those, too,
    travel only inside these messages (``show``), so one message carries a
    text delta and every other change of the same moment.
    """

    _esm = esm("deltas", "streamtext")
    text = traitlets.Unicode("").tag(sync=True)  # the initial text only: see ``value``
    live_fields: tuple[str, ...] = ()

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        self._value = text
        self._units = utf16_len(text)
        self.sent_bytes = 0  # JSON bytes of the messages sent so far (their content)
        super().__init__(text=text, **kwargs)
        self._live = {name: getattr(self, name) for name in self.live_fields}
        self.on_msg(self._on_front_end_msg)

    @property
    def value(self) -> str:
        """The full text, as the front end shows it once its messages arrive."""
        return self._value

    @value.setter
    def value(self, text: str) -> None:
        self.show(text)

    def live(self, name: str) -> Any:
        """The current value of a live field (its trait keeps the initial value)."""
        return self._live[name]

    def show(self, text: str | None = None, **fields: Any) -> None:
        """Send, in one message, the text's change and every live field that changed.

        A continuation of the text goes as its delta, anything else as a
        reset; nothing unchanged is sent, and no change sends no message.
        """
        msg: dict[str, Any] = {}
        changed = {k: v for k, v in fields.items() if self._live[k] != v}
        if changed:
            self._live.update(changed)
            msg["set"] = changed
        if text is not None and text != self._value:
            if text.startswith(self._value):
                msg["append"], msg["at"] = text[len(self._value):], self._units
            else:
                msg["reset"] = text
            self._value = text
            self._units = utf16_len(text)
        if msg:
            self._send_custom(msg)

    def append(self, delta: str) -> None:
        """Add ``delta`` at the end; only ``delta`` is sent."""
        self.show(self._value + delta)

    def reset(self, text: str) -> None:
        """Replace the whole text; the new text is sent once."""
        self._value = text
        self._units = utf16_len(text)
        self._send_custom({"reset": text})

    def _send_custom(self, msg: dict[str, Any]) -> None:
        # What ipywidgets puts in the comm message's data
        self.sent_bytes += len(json.dumps({"method": "custom", "content": msg}, ensure_ascii=False).encode())
        self.send(msg)

    def get_state(self, key: Any = None) -> dict[str, Any]:
        # Whoever asks for the state (comm_open, a reloaded page, embedding)
        # gets the current values, although the traits themselves are never updated.
        state = super().get_state(key)
        current = {"text": getattr(self, "_value", None), **getattr(self, "_live", {})}
        for name in state:
            if name in current and current[name] is not None:
                state[name] = current[name]
        return state

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if "resync" in content or ("have" in content and content["have"] != self._units):
            # it may have missed live fields too: those come along
            self._send_custom({"reset": self._value, **({"set": dict(self._live)} if self._live else {})})
