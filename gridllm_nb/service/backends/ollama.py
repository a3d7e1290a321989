"""Ollama's ``POST /api/generate``: the API the grid's own worker nodes run.

Streaming answers are one JSON object per line; the last has ``done: true``.
Completion-mode tags are sent with ``raw: true`` so Ollama applies no template.
A tag with ``urls = [...]`` spreads its jobs over several Ollama hosts
(``upstreams.UpstreamPool``); the health probe is ``GET /api/tags``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from ..registry import ModelSpec
from .base import FINISH_REASONS, BackendError, Finish, GenerationRequest, interruptible
from .upstreams import (
    ConnectFailed,
    PooledBackend,
    StreamLost,
    Upstream,
    upstreams_from_settings,
)

__all__ = ["OllamaBackend"]


class OllamaBackend(PooledBackend):
    probe_path = "/api/tags"  # cheap, and any server of this kind has it

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        upstreams = upstreams_from_settings(spec.settings, "http://127.0.0.1:11434", spec.concurrency)
        self.url = upstreams[0][0]
        self._open_pool(spec, upstreams)

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
        # The slot is taken and given back in the caller's thread: a cancel frees it at once,
        # even while a stalled read still holds the helper thread of ``interruptible``.
        return self.pool.stream(cancel, lambda upstream: interruptible(self._stream(request, upstream), cancel))

    def _stream(self, request: GenerationRequest, upstream: Upstream) -> Iterator[str | Finish]:
        base = upstream.url
        try:
            with self._client.stream("POST", f"{base}/api/generate", json=self._payload(request)) as response:
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
                        raise BackendError(f"ollama at {base} answered {kind}, not JSON lines: {line[:80]!r}") from None
                    if obj.get("error"):
                        raise BackendError(f"ollama: {obj['error']}")
                    if obj.get("response"):
                        yield obj["response"]
                    if obj.get("done"):
                        if obj.get("done_reason") in FINISH_REASONS:
                            yield Finish(obj["done_reason"], obj.get("eval_count"))
                        return
                raise StreamLost(f"ollama at {base} ended its stream before done: the answer may be cut short")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            raise ConnectFailed(f"ollama at {base}: {type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:  # the request reached the host
            raise StreamLost(f"ollama at {base}: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"ollama at {base}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.pool.close()
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:200]
    except ValueError:
        return response.text[:200]
