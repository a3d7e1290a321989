"""Any OpenAI-compatible server (vLLM, llama.cpp's server): scale beyond one machine.

Chat tags use ``/v1/chat/completions``, completion tags ``/v1/completions``;
both stream server-sent events (``data: {...}`` lines, ending ``data: [DONE]``).
The API key comes from the environment variable the registry names, so the
TOML file never holds a secret.

A tag with ``urls = [...]`` spreads its jobs over several such servers
(``upstreams.UpstreamPool``: least-busy first, unhealthy ones skipped, a job
that lost its server mid-stream ends ``error`` naming it, never re-run
elsewhere); the probe is ``GET /v1/models``.
"""

from __future__ import annotations

import json
import os
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

__all__ = ["OpenAIBackend"]


class OpenAIBackend(PooledBackend):
    probe_path = "/models"  # cheap, and any server of this kind has it

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        upstreams = [(_v1(url), slots) for url, slots in
                     upstreams_from_settings(spec.settings, "http://127.0.0.1:8000", spec.concurrency)]
        self.base = upstreams[0][0]
        headers = {}
        key_env = spec.settings.get("api_key_env")
        if key_env and os.environ.get(str(key_env)):
            headers["Authorization"] = f"Bearer {os.environ[str(key_env)]}"
        self._open_pool(spec, upstreams, headers)

    def _request(self, request: GenerationRequest, base: str | None = None) -> tuple[str, dict[str, Any]]:
        base = base or self.base
        body: dict[str, Any] = {"model": self.spec.settings["model"], "max_tokens": request.max_tokens, "stream": True}
        for key in ("temperature", "top_p", "seed"):
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        if request.stop:
            body["stop"] = list(request.stop)
        if self.spec.mode == "chat":
            messages = [{"role": "user", "content": request.prompt}]
            if request.system:
                messages.insert(0, {"role": "system", "content": request.system})
            body["messages"] = messages
            return f"{base}/chat/completions", body
        body["prompt"] = f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
        return f"{base}/completions", body

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str | Finish]:
        # The slot is taken and given back in the caller's thread: a cancel frees it at once,
        # even while a stalled read still holds the helper thread of ``interruptible``.
        return self.pool.stream(cancel, lambda upstream: interruptible(self._stream(request, upstream), cancel))

    def _stream(self, request: GenerationRequest, upstream: Upstream) -> Iterator[str | Finish]:
        url, body = self._request(request, upstream.url)
        try:
            with self._client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise BackendError(f"{url} answered {response.status_code}: {response.text[:200]}")
                kind = response.headers.get("content-type", "")
                if "text/event-stream" not in kind:
                    # e.g. a proxy's login or error page, answered 200
                    head = next(response.iter_text(), "")[:80]
                    raise BackendError(f"{url} answered {response.status_code} with {kind or 'no content type'}, "
                                       f"not an event stream: {head!r}")
                finish = None
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # comments, event: lines, keep-alives
                    data = line[5:].strip()
                    if data == "[DONE]":
                        if finish in FINISH_REASONS:
                            yield Finish(finish)
                        return
                    try:
                        choice = json.loads(data)["choices"][0]
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise BackendError(f"unexpected event from {url}: {data[:80]!r}") from None
                    finish = choice.get("finish_reason") or finish
                    piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    if piece:
                        yield piece
                raise StreamLost(f"{url} ended its stream without [DONE]: the answer may be cut short")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            raise ConnectFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:  # the request reached the server
            raise StreamLost(f"{url}: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{url}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.pool.close()
        self._client.close()


def _v1(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"
