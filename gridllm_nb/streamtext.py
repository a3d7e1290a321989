"""``StreamText``: a plain-text widget whose text only travels as deltas.

Stock ipywidgets resend a trait's whole value on every change, so a text
that grows by a few characters ten times a second costs text x updates on
the wire. ``StreamText`` (an ``anywidget.AnyWidget``) keeps the full text on
the Python side in a plain attribute and sends custom messages instead:

* ``{"append": delta, "at": n}``: ``delta`` follows the first ``n`` UTF-16
  code units (JavaScript's ``String.length``) of the text;
* ``{"reset": text}``: the text was replaced (not a continuation), sent once.

The synced ``text`` trait is set only when the widget is created; it is
never resent per update. The front end applies each message to its model
(``model.set("text", ...)`` without ``save_changes()``), so views created
later and the widget state saved in a notebook show the full text, and
``get_state`` (the comm_open and a reloading page's state request) reports
the current text too. A front end that missed a message (one sent before
its module had loaded) sees ``at`` disagree with its length and asks for a
``reset``; on load it also reports its length, so a missed final message
is repaired as well.

The text is shown with ``textContent`` semantics (a DOM text node, never
``innerHTML``): model text is untrusted and never becomes markup.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

__all__ = ["StreamText", "utf16_len"]

_ESM_SOURCE = """\
function initialize({ model }) {
  let waiting = false;
  const text = () => model.get("text") || "";
  const onMsg = (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (typeof msg.reset === "string") {
      waiting = false;
      model.set("text", msg.reset);
    } else if (typeof msg.append === "string" && !waiting) {
      const t = text();
      if (msg.at === t.length) model.set("text", t + msg.append);
      else { waiting = true; model.send({ resync: t.length }); }
    }
  };
  model.on("msg:custom", onMsg);
  model.send({ have: text().length });
  return () => model.off("msg:custom", onMsg);
}
function render({ model, el }) {
  const pre = document.createElement("pre");
  pre.className = "gridllm-text";
  pre.style.whiteSpace = "pre-wrap";
  pre.style.margin = "0";
  const node = document.createTextNode(model.get("text") || "");
  pre.appendChild(node);
  el.appendChild(pre);
  model.on("change:text", () => {
    const t = model.get("text") || "", shown = node.data;
    if (t.length >= shown.length && t.startsWith(shown)) node.appendData(t.slice(shown.length));
    else node.data = t;
  });
}
export default { initialize, render };
"""
# Each widget's comm_open carries the module: sent without the indentation.
_ESM = "\n".join(line.strip() for line in _ESM_SOURCE.splitlines()) + "\n"


def utf16_len(text: str) -> int:
    """The length of ``text`` as JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class StreamText(anywidget.AnyWidget):
    """A ``<pre class="gridllm-text">`` whose text grows by appended deltas.

    Set ``value`` (or call ``append`` / ``reset``): a continuation of the
    current text sends only the new part, anything else one ``reset`` with
    the full new text. An unchanged value sends nothing.
    """

    _esm = _ESM
    text = traitlets.Unicode("").tag(sync=True)  # the initial text only: see ``value``

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        self._value = text
        self._units = utf16_len(text)
        super().__init__(text=text, **kwargs)
        self.on_msg(self._on_front_end_msg)

    @property
    def value(self) -> str:
        """The full text, as the front end shows it once its messages arrive."""
        return self._value

    @value.setter
    def value(self, text: str) -> None:
        if text == self._value:
            return
        if text.startswith(self._value):
            self.append(text[len(self._value):])
        else:
            self.reset(text)

    def append(self, delta: str) -> None:
        """Add ``delta`` at the end; only ``delta`` is sent."""
        if not delta:
            return
        self.send({"append": delta, "at": self._units})
        self._value += delta
        self._units += utf16_len(delta)

    def reset(self, text: str) -> None:
        """Replace the whole text; the new text is sent once."""
        self._value = text
        self._units = utf16_len(text)
        self.send({"reset": text})

    def get_state(self, key: Any = None) -> dict[str, Any]:
        # Whoever asks for the state (comm_open, a reloaded page, embedding)
        # gets the current text, although the trait itself is never updated.
        state = super().get_state(key)
        if "text" in state:
            state["text"] = getattr(self, "_value", state["text"])
        return state

    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if "resync" in content or ("have" in content and content["have"] != self._units):
            self.send({"reset": self._value})
