"""``CardWidget``: one model's answer as a single widget, cheap to stream.

A card shows the model's tag, a status badge, the elapsed time, an error
line and the answer (plain text, or sanitized markdown HTML). Made of stock
ipywidgets it would be half a dozen widgets, each opened with its whole
state and each updated on its own; here it is one ``StreamText`` whose
every change (the text's delta, the state, the error) travels in a single
small message, and whose clock ticks in the browser: the kernel sends the
elapsed time once, when the answer ends, never once a second.

Model text is untrusted: the plain view is a DOM text node; the markdown
view takes ``html``, which its producer must have sanitized (the panel
renders with markdown-it, raw HTML off, then cleans with nh3).
"""

from __future__ import annotations

from typing import Any

import traitlets

from .models import JobState
from .streamtext import INITIALIZE_JS, TEXT_NODE_JS, StreamText, compact_esm

__all__ = ["CardWidget"]

_RENDER_JS = """\
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out", "lost"]);
function part(tag, cls, parent) {
  const e = document.createElement(tag);
  e.className = cls;
  parent.appendChild(e);
  return e;
}
function render({ model, el }) {
  el.classList.add("gridllm-card");
  const head = part("div", "gridllm-card-head", el);
  head.style.cssText = "display:flex;gap:8px;align-items:center";
  part("b", "gridllm-card-tag", head).textContent = model.get("tag");
  const badge = part("span", "gridllm-badge", head);
  const clock = part("span", "gridllm-elapsed", head);
  const error = part("div", "gridllm-error", el);
  const pre = part("pre", "gridllm-text", el);
  pre.style.cssText = "white-space:pre-wrap;margin:0";
  const md = part("div", "gridllm-markdown-view", el);
  textNode(model, pre);
  let shownState = null, since = performance.now();
  const tick = () => {
    const live = !TERMINAL.has(model.get("state"));
    const t = (model.get("elapsed") || 0) + (live ? (performance.now() - since) / 1000 : 0);
    clock.textContent = live ? `${Math.floor(t)} s` : `${t.toFixed(1)} s`;
  };
  const sync = () => {
    const state = model.get("state");
    if (state !== shownState) {
      if (shownState) el.classList.remove(`gridllm-state-${shownState}`);
      el.classList.add(`gridllm-state-${state}`);
      badge.textContent = state.replace("_", " ");
      shownState = state;
    }
    error.textContent = model.get("error") || "";
    error.style.display = model.get("error") ? "" : "none";
    const markdown = model.get("markdown");
    pre.style.display = markdown ? "none" : "";
    md.style.display = markdown ? "" : "none";
    if (markdown) md.innerHTML = model.get("html") || "";  // sanitized by the kernel
  };
  model.on("change:state change:error change:markdown change:html", sync);
  let wasLive = true;
  model.on("change:state", () => {
    const live = !TERMINAL.has(model.get("state"));
    if (live && !wasLive) since = performance.now();  // a new answer: the clock starts again
    wasLive = live;
    tick();
  });
  model.on("change:elapsed", () => { since = performance.now(); tick(); });
  sync();
  tick();
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}
export default { initialize, render };
"""


class CardWidget(StreamText):
    """A model's answer card: tag, badge, clock, error line and text, in one widget.

    ``show(text, state=..., elapsed=..., error=..., markdown=..., html=...)``
    sends what changed in one message (see ``StreamText.show``).
    """

    _esm = compact_esm(INITIALIZE_JS, TEXT_NODE_JS, _RENDER_JS)
    live_fields = ("state", "elapsed", "error", "markdown", "html")

    tag = traitlets.Unicode("").tag(sync=True)
    state = traitlets.Unicode(JobState.SUBMITTED.value).tag(sync=True)
    elapsed = traitlets.Float(0.0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    markdown = traitlets.Bool(False).tag(sync=True)
    html = traitlets.Unicode("").tag(sync=True)  # sanitized; only sent while ``markdown``

    def __init__(self, tag: str, text: str = "", **kwargs: Any) -> None:
        super().__init__(text, tag=tag, **kwargs)

    def restart(self, *, markdown: bool = False) -> None:
        """Make the card ready for a new answer (empty, submitted, clock at zero), in one message."""
        self.show("", state=JobState.SUBMITTED.value, elapsed=0.0, error="", markdown=markdown, html="")

    def show_answer(self, state: JobState, text: str, error: str | None, elapsed: float,
                    *, html: str | None = None) -> None:
        """Show one moment of a model's answer, in one message of only what changed.

        The elapsed time goes along only once the answer has ended: until
        then the browser's clock counts on its own, from when the card
        appeared (when the job was submitted). With ``html``
        (sanitized markdown of ``text``) the card shows that instead, and
        the text waits until the card is back in plain mode.
        """
        err = " ".join(str(error).split()) if error else ""
        fields: dict[str, Any] = {"state": state.value, "error": err}
        if state.terminal:
            fields["elapsed"] = round(elapsed, 1)
        if html is None:
            self.show(text, markdown=False, **fields)
        else:
            self.show(markdown=True, html=html, **fields)
