"""Inference backends: one small class per engine, all with one method.

``generate`` yields text pieces as the engine produces them and is called from
a worker thread, never from the event loop; it checks ``cancel`` between
pieces so a cancel or a deadline stops the engine promptly. Imports of the
engines (llama.cpp, httpx) happen inside the backend modules so the registry
and the app load without them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..registry import ModelSpec

__all__ = ["Backend", "BackendError", "GenerationRequest", "create_backend"]


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


class Backend(Protocol):
    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        """Yield text pieces until done, ``max_tokens`` or ``cancel`` is set."""
        ...

    def close(self) -> None:
        """Release models / connections."""
        ...


def create_backend(spec: ModelSpec) -> Backend:
    """Instantiate the backend a registry entry names (loading is lazy inside)."""
    if spec.backend == "llama_cpp":
        from .llama_cpp import LlamaCppBackend

        return LlamaCppBackend(spec)
    if spec.backend == "ollama":
        from .ollama import OllamaBackend

        return OllamaBackend(spec)
    if spec.backend == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(spec)
    raise BackendError(f"unknown backend {spec.backend!r}")
