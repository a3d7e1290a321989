"""What every backend shares: the request, the stream of pieces, the error, the end.

``generate`` yields text pieces as the engine produces them and is called from
a worker thread, never from the event loop; it checks ``cancel`` between
pieces so a cancel or a deadline stops the engine promptly. An engine that
knows why it stopped and how many tokens it made yields one ``Finish`` last.
These types import nothing heavy, so the manager, the runners and the app
load without any engine.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = ["FINISH_REASONS", "Backend", "BackendError", "Finish", "GenerationRequest", "interruptible"]

T = TypeVar("T")


class BackendError(Exception):
    """The engine failed; the message (one line) becomes the job's error reason."""


@dataclass(frozen=True)
class GenerationRequest:
    """What a job asks of a model; option names follow the OpenAI spelling."""

    prompt: str
    system: str | None = None
    max_tokens: int = 256
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    repeat_penalty: float | None = None
    # A completion frame for base models ("...{prompt}..."); None: the tag's own.
    template: str | None = None

    @classmethod
    def from_options(cls, prompt: str, system: str | None, options: Mapping[str, Any], *,
                     default_max_tokens: int) -> GenerationRequest:
        """A job's request: its prompt and the ``options`` of its ``commandLine``."""
        return cls(
            prompt=prompt,
            system=system,
            max_tokens=int(options.get("max_tokens") or default_max_tokens),
            temperature=options.get("temperature"),
            top_p=options.get("top_p"),
            seed=options.get("seed"),
            stop=tuple(options.get("stop") or ()),
            repeat_penalty=options.get("repeat_penalty"),
            template=options.get("template"),
        )


FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class Finish:
    """Why generation ended on its own: ``stop`` (the model or a stop string ended
    it) or ``length`` (``max_tokens`` reached), and the tokens generated."""

    reason: str
    tokens: int | None = None


class Backend(Protocol):
    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str | Finish]:
        """Yield text pieces until done, ``max_tokens`` or ``cancel`` is set (then maybe a ``Finish``)."""
        ...

    def close(self) -> None:
        """Release models / connections."""
        ...


def interruptible(pieces: Iterator[T], cancel: threading.Event, *, poll: float = 0.05) -> Iterator[T]:
    """``pieces``, read in a helper thread, so that a cancel returns at once.

    A remote engine that stalls leaves its reader blocked in a socket read
    until the read timeout (two minutes by default); the tag's worker must
    not wait with it. On a cancel this generator returns within ``poll``
    seconds; the helper thread drops whatever still comes and ends with the
    stream. Errors from ``pieces`` are raised here, in the caller's thread.
    """
    items: queue.Queue[tuple[str, object]] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in pieces:
                if stop.is_set():
                    break
                items.put(("item", item))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(("error", exc))
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
            items.put(("end", None))

    threading.Thread(target=produce, name="backend-stream", daemon=True).start()
    try:
        while not cancel.is_set():
            try:
                kind, value = items.get(timeout=poll)
            except queue.Empty:
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
