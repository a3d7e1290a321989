"""llama-cpp-python: the embedded default, GGUF files shipped by PyPI packages.

Chat models go through ``create_chat_completion`` so the GGUF's own chat
template is applied; base models (Gemma 3 270M) through ``create_completion``
with the system prompt prepended. A ``Llama`` object is not thread-safe, so the
backend keeps a small pool: one instance per allowed concurrent job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..registry import ModelSpec, find_packaged_gguf
from . import BackendError, GenerationRequest

__all__ = ["LlamaCppBackend", "resolve_model_path"]


def resolve_model_path(spec: ModelSpec) -> Path:
    """The GGUF file of a llama_cpp entry: an explicit ``path`` or a package's file."""
    settings = spec.settings
    if settings.get("path"):
        path = Path(str(settings["path"])).expanduser()
        if not path.is_file():
            raise BackendError(f"model file for {spec.tag!r} not found: {path}")
        return path
    package = str(settings.get("package", ""))
    found = find_packaged_gguf(package, settings.get("module"))
    if found is None:
        raise BackendError(f"no GGUF file found in package {package!r} for {spec.tag!r}; pip install {package}")
    return found


class LlamaCppBackend:
    """A pool of ``Llama`` instances for one tag, created on first use."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendError("llama-cpp-python is not installed: pip install 'gridllm_nb[local]'") from exc
        settings = self.spec.settings
        kwargs: dict[str, Any] = {"n_ctx": int(settings.get("n_ctx", 2048)), "verbose": False}
        if settings.get("n_threads"):
            kwargs["n_threads"] = int(settings["n_threads"])
        if settings.get("n_batch"):
            kwargs["n_batch"] = int(settings["n_batch"])
        try:
            return Llama(model_path=str(resolve_model_path(self.spec)), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"cannot load {self.spec.tag!r}: {exc}") from exc

    def warm_up(self) -> None:
        """Load one instance now (so RSS and first-token figures do not include loading)."""
        self._release(self._acquire())

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self.spec.concurrency:
                self._created += 1
                try:
                    return self._load()
                except BaseException:
                    self._created -= 1
                    raise
        return self._pool.get()

    def _release(self, llm: Any) -> None:
        self._pool.put(llm)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        llm = self._acquire()
        try:
            kwargs: dict[str, Any] = {"max_tokens": request.max_tokens, "stream": True}
            if request.temperature is not None:
                kwargs["temperature"] = request.temperature
            if request.top_p is not None:
                kwargs["top_p"] = request.top_p
            if request.seed is not None:
                kwargs["seed"] = request.seed
            if request.stop:
                kwargs["stop"] = list(request.stop)
            if self.spec.mode == "chat":
                messages = [{"role": "user", "content": request.prompt}]
                if request.system:
                    messages.insert(0, {"role": "system", "content": request.system})
                stream = llm.create_chat_completion(messages=messages, **kwargs)
                pick = lambda chunk: chunk["choices"][0].get("delta", {}).get("content")
            else:
                prompt = f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
                stream = llm.create_completion(prompt=prompt, **kwargs)
                pick = lambda chunk: chunk["choices"][0].get("text")
            try:
                for chunk in stream:
                    if cancel.is_set():
                        break
                    piece = pick(chunk)
                    if piece:
                        yield piece
            except ValueError as exc:  # e.g. prompt longer than the context
                raise BackendError(str(exc)) from exc
            finally:
                stream.close()  # stops llama.cpp decoding at once
        finally:
            self._release(llm)

    def close(self) -> None:
        while True:
            try:
                llm = self._pool.get_nowait()
            except queue.Empty:
                return
            closer = getattr(llm, "close", None)
            if closer:
                closer()
