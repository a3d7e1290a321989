"""Ollama's ``POST /api/generate``: the API the grid's own worker nodes run.

Streaming answers are one JSON object per line; the last has ``done: true``.
Completion-mode tags are sent with ``raw: true`` so Ollama applies no template.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from ..registry import ModelSpec
from . import FINISH_REASONS, BackendError, Finish, GenerationRequest, interruptible

__all__ = ["OllamaBackend"]


class OllamaBackend:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.url = str(spec.settings.get("url", "http://127.0.0.1:11434")).rstrip("/")
        timeout = float(spec.settings.get("timeout", 120.0))
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        for key in ("temperature", "top_p", "seed"):
            value = getattr(request, key)
            if value is not None:
                options[key] = value
        if request.stop:
            options["stop"] = list(request.stop)
        payload: dict[str, Any] = {
            "model": self.spec.settings["model"],
            "prompt": request.prompt,
            "stream": True,
            "options": options,
        }
        if self.spec.mode == "completion":
            payload["raw"] = True
            if request.system:
                payload["prompt"] = f"{request.system}\n\n{request.prompt}"
        elif request.system:
            payload["system"] = request.system
        return payload

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str | Finish]:
        return interruptible(self._stream(request), cancel)

    def _stream(self, request: GenerationRequest) -> Iterator[str | Finish]:
        try:
            with self._client.stream("POST", f"{self.url}/api/generate", json=self._payload(request)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise BackendError(f"ollama answered {response.status_code}: {_error_text(response)}")
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        kind = response.headers.get("content-type", "no content type")
                        raise BackendError(f"ollama at {self.url} answered {kind}, not JSON lines: {line[:80]!r}") from None
                    if obj.get("error"):
                        raise BackendError(f"ollama: {obj['error']}")
                    if obj.get("response"):
                        yield obj["response"]
                    if obj.get("done"):
                        if obj.get("done_reason") in FINISH_REASONS:
                            yield Finish(obj["done_reason"], obj.get("eval_count"))
                        return
                raise BackendError(f"ollama at {self.url} ended its stream before done: the answer may be cut short")
        except httpx.HTTPError as exc:
            raise BackendError(f"ollama at {self.url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:200]
    except ValueError:
        return response.text[:200]
