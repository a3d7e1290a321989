"""Labelled live text: several models' answers on one terminal, as they arrive.

The one text stream of the CLI (``gridllm-nb run`` piped to a terminal
that cannot move its cursor, ``gridllm-nb watch``) and of the magic in a
plain IPython terminal. Each model's text follows its ``[tag]`` label; its
end is one line, ``[tag: completed in 2.1s]``; a job that restarted
elsewhere shows its new text after ``(restarted)``; a live notice
(``reconnecting…``) shows once, inline where the text streams.

Two ways to share the terminal: as the text arrives, with a new label
whenever the speaker changes (the CLI), or ``one_at_a_time`` (the magic):
the model shown streams live and the others are kept and printed whole as
soon as it ends (ended ones first), so answers never interleave.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..api.jobs import JobUpdate

__all__ = ["TextStream"]


class TextStream:
    """Labelled live text on ``out`` (default: ``sys.stdout`` as it is when written to).

    Call it with each ``JobUpdate``; ``finish`` prints what is left once the
    run is over. ``tags`` gives the order models are taken in when one waits
    for another (``one_at_a_time``); a tag not named joins at the end.
    ``fmt`` ``code`` or ``json``: an answer is printed again at its end as
    that format extracts it.
    """

    def __init__(self, out: TextIO | None = None, tags: Sequence[str] = (), *, fmt: str = "text",
                 one_at_a_time: bool = False) -> None:
        self._out = out
        self.order = list(tags)
        self.fmt = fmt
        self.one_at_a_time = one_at_a_time
        self.latest: dict[str, JobUpdate] = {}
        self.printed: dict[str, str] = {}  # tag -> its text printed so far
        self.restarted: set[str] = set()  # a reset arrived that is not printed yet
        self.closed: set[str] = set()  # ended, and said so
        self.notices: dict[str, str | None] = {}
        self.current: str | None = None  # the model the last label named, until it ends

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    def __call__(self, update: JobUpdate) -> None:
        tag = update.tag
        if tag not in self.order:
            self.order.append(tag)
        if update.restarts:  # a retry: the model starts over, from a new label
            for kept in (self.printed, self.latest, self.notices):
                kept.pop(tag, None)
            self.closed.discard(tag)
            self.restarted.discard(tag)
            return
        if update.reset:
            self.restarted.add(tag)
        self.latest[tag] = update
        if self.one_at_a_time:
            self._pump()
            if tag == self.current:
                self._notice(update)
        else:
            self._notice(update)
            if tag not in self.closed and (self._unprinted(tag) or update.state.terminal):
                self._write(tag)
        self.out.flush()

    def finish(self, note: str | None = None) -> None:
        """The run is over: every model not ended yet printed as it stands, its end line saying ``note``."""
        if self.one_at_a_time:
            self._pump()
        for tag in self.order:
            if tag not in self.closed and tag in self.latest:
                self._write(tag, note=note or "")
        self.out.flush()

    # ------------------------------------------------------------------ helpers

    def _unprinted(self, tag: str) -> bool:
        return tag in self.restarted or self.latest[tag].text != self.printed.get(tag, "")

    def _notice(self, u: JobUpdate) -> None:
        """A live job's notice (``reconnecting…``), once, inline where its text streams."""
        if u.state.terminal or u.error == self.notices.get(u.tag):
            return
        self.notices[u.tag] = u.error
        if u.error:
            self._label(u.tag)
            self.out.write(f" ({u.error}) ")

    def _next(self) -> str | None:
        """The model to show next: the first ended one, else the first with text, in ``order``."""
        waiting = [t for t in self.order if t not in self.closed and t in self.latest]
        for wanted in (lambda u: u.state.terminal, lambda u: bool(u.text)):
            for tag in waiting:
                if wanted(self.latest[tag]):
                    return tag
        return None

    def _pump(self) -> None:
        while (tag := self.current or self._next()) is not None:
            self._write(tag)
            if not self.latest[tag].state.terminal:
                break

    def _label(self, tag: str, force: bool = False) -> None:
        if force or self.current != tag:
            self.out.write(("\n" if self.current is not None else "") + f"[{tag}] ")
            self.current = tag

    def _write(self, tag: str, *, note: str | None = None) -> None:
        """``tag``'s text not printed yet; its end line once it has ended (or ``note`` ends it)."""
        u = self.latest[tag]
        shown = self.printed.get(tag)
        if tag in self.restarted or (shown is not None and not u.text.startswith(shown)):
            self.restarted.discard(tag)
            self._label(tag, force=shown is not None)
            self.out.write("(restarted) " + u.text)
        elif u.text != (shown or "") or shown is None:
            self._label(tag)
            self.out.write(u.text[len(shown or ""):])
        self.printed[tag] = u.text
        if u.state.terminal or note is not None:
            self._end(u, note or "")

    def _end(self, u: JobUpdate, note: str) -> None:
        if self.fmt in ("code", "json") and u.text:
            from .render import final_bundle

            body = final_bundle(u.tag, u.state.label, u.elapsed, u.text, u.error, self.fmt)["text/plain"]
            self.out.write(f"\n{body}")
        error = u.error if u.state.terminal else note  # a live job's error is a notice, not why it ended
        self.out.write(f"\n[{u.tag}: {u.state.label} in {u.elapsed:.1f}s{f' — {error}' if error else ''}]\n")
        self.closed.add(u.tag)
        self.current = None
