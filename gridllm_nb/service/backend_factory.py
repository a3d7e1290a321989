"""Which backend serves a registry entry.

It sits above both ``backends`` and ``runners``: a llama.cpp tag is served by
a pool of runner processes, and the runners import the backend types, so the
choice cannot live in the ``backends`` package without closing an import
cycle. The engines are imported on first use, so an install without
llama.cpp (or without httpx's streaming engines) still serves the others.
"""

from __future__ import annotations

from .backends.base import Backend, BackendError
from .registry import ModelSpec

__all__ = ["create_backend"]


def create_backend(spec: ModelSpec) -> Backend:
    """Instantiate the backend a registry entry names (loading is lazy inside)."""
    if spec.backend == "llama_cpp":
        from .runners import RunnerBackend

        return RunnerBackend(spec)
    if spec.backend == "ollama":
        from .backends.ollama import OllamaBackend

        return OllamaBackend(spec)
    if spec.backend == "openai":
        from .backends.openai import OpenAIBackend

        return OpenAIBackend(spec)
    raise BackendError(f"unknown backend {spec.backend!r}")
