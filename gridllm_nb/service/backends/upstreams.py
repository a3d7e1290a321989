"""Fan-out: one tag served by several remote engines (``urls = [...]`` in the registry).

``UpstreamPool`` holds the engines of one tag, each with its own concurrency
(slots). A job takes a slot on the least-busy healthy engine (busy / slots,
ties to the one that served fewest jobs) and gives it back when its stream
ends. The tag's worker count is the sum of the slots, so a slot is free
whenever every engine is up; while one is down, the extra workers wait for a
slot on the others (their jobs show ``running`` meanwhile, and a cancel or
deadline still ends the wait at once).

Health: an engine is marked down when a connection to it fails, when it drops
a stream, or when a probe fails; down engines are skipped until a probe
answers again. A background thread probes, every ``health_interval`` seconds,
the engines that are down or idle -- never one that is streaming a job (its
stream is proof enough, and llama.cpp's server would interrupt a running
answer to answer a probe).

Retries are decided here, once for both backends: a job whose connection
failed (nothing was sent) moves on to the next engine; once a request reached
an engine, any failure ends the job ``error`` naming that engine -- running it
again elsewhere would repeat text the job already shows. If every engine is
marked down, the job still tries each one once before it fails (the marks may
be older than a recovery).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from .base import BackendError

__all__ = ["ConnectFailed", "PooledBackend", "StreamLost", "Upstream", "UpstreamPool", "upstreams_from_settings"]

T = TypeVar("T")
log = logging.getLogger("gridllm_nb.service")

DEFAULT_HEALTH_INTERVAL = 10.0
DEFAULT_HEALTH_TIMEOUT = 2.0


class ConnectFailed(BackendError):
    """No connection to the engine: nothing was sent, so another engine may take the job."""


class StreamLost(BackendError):
    """The engine failed after the request reached it: the job ends here (marks the engine down)."""


@dataclass
class Upstream:
    url: str
    slots: int
    busy: int = 0
    served: int = 0
    healthy: bool = True
    reason: str | None = None  # why it is down

    def load(self) -> float:
        return self.busy / self.slots

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "slots": self.slots, "busy": self.busy, "served": self.served,
                "healthy": self.healthy, "reason": self.reason}


def upstreams_from_settings(settings: Mapping[str, Any], default_url: str, concurrency: int) -> list[tuple[str, int]]:
    """(url, slots) pairs: ``urls`` + ``concurrency_per_url`` (int or list), else the single ``url``."""
    urls = settings.get("urls")
    if not urls:
        return [(str(settings.get("url", default_url)).rstrip("/"), max(1, concurrency))]
    per = settings.get("concurrency_per_url", 1)
    per_list = list(per) if isinstance(per, (list, tuple)) else [per] * len(urls)
    return [(str(url).rstrip("/"), int(n)) for url, n in zip(urls, per_list)]


class UpstreamPool:
    """The engines of one tag, their slots and health.

    ``probe(url)`` raises when the engine does not answer (any exception);
    probing starts with the first job and only for more than one engine.
    """

    def __init__(self, upstreams: list[tuple[str, int]], probe: Callable[[str], None], *,
                 interval: float = DEFAULT_HEALTH_INTERVAL, name: str = "upstreams") -> None:
        self.upstreams = [Upstream(url, slots) for url, slots in upstreams]
        self._probe = probe
        self.interval = interval
        self.name = name
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None

    # -- choice ---------------------------------------------------------------
    def acquire(self, cancel: threading.Event, tried: set[str]) -> Upstream | None:
        """A slot on the least-busy healthy engine not yet ``tried``; waits while all are full.

        With no healthy untried engine left, the least-busy untried down one
        (it may have recovered since its probe). None: cancelled, or every
        engine tried.
        """
        with self._cond:
            while not cancel.is_set():
                untried = [u for u in self.upstreams if u.url not in tried]
                if not untried:
                    return None
                healthy = [u for u in untried if u.healthy]
                pool = healthy or untried
                free = [u for u in pool if u.busy < u.slots]
                if free:
                    chosen = min(free, key=lambda u: (u.load(), u.served))
                    chosen.busy += 1
                    chosen.served += 1
                    return chosen
                self._cond.wait(0.1)
            return None

    def release(self, upstream: Upstream) -> None:
        with self._cond:
            upstream.busy -= 1
            self._cond.notify_all()

    def mark_down(self, upstream: Upstream, reason: str) -> None:
        with self._cond:
            if upstream.healthy and len(self.upstreams) > 1:
                log.warning("%s: upstream %s is down (%s); skipping it until it answers again",
                            self.name, upstream.url, reason)
            upstream.healthy, upstream.reason = False, reason
            self._cond.notify_all()

    def mark_up(self, upstream: Upstream) -> None:
        with self._cond:
            if not upstream.healthy and len(self.upstreams) > 1:
                log.warning("%s: upstream %s answers again", self.name, upstream.url)
            upstream.healthy, upstream.reason = True, None
            self._cond.notify_all()

    def stats(self) -> list[dict[str, Any]]:
        with self._cond:
            return [u.describe() for u in self.upstreams]

    # -- one job --------------------------------------------------------------
    def stream(self, cancel: threading.Event, open_stream: Callable[[Upstream], Iterator[T]]) -> Iterator[T]:
        """Run ``open_stream`` on a chosen engine; on ``ConnectFailed`` try the next one.

        Runs in the caller's thread, so the slot is released as soon as the
        caller stops (a cancel), whatever the stream's reader is doing.

        ``open_stream`` raises ``ConnectFailed`` only before it sent the request,
        ``StreamLost`` for a transport failure after it (the engine is marked
        down either way), and plain ``BackendError`` for answers such as a 404.
        """
        if len(self.upstreams) > 1:
            self._start_probing()
        tried: set[str] = set()
        failures: list[ConnectFailed] = []
        while True:
            upstream = self.acquire(cancel, tried)
            if upstream is None:
                if cancel.is_set():
                    return
                if len(failures) == 1:
                    raise failures[0]
                raise BackendError(f"none of the {len(failures)} upstreams could be reached: "
                                   + "; ".join(str(f) for f in failures))
            tried.add(upstream.url)
            pieces = 0
            try:
                for item in open_stream(upstream):
                    pieces += 1
                    yield item
                if not cancel.is_set():
                    self.mark_up(upstream)
                return
            except ConnectFailed as exc:
                self.mark_down(upstream, str(exc))
                failures.append(exc)
                continue
            except StreamLost as exc:
                self.mark_down(upstream, str(exc))
                if len(self.upstreams) > 1 or pieces:
                    raise StreamLost(f"lost upstream {upstream.url} after {pieces} pieces (partial output kept; "
                                     f"not retried on another upstream): {exc}") from exc
                raise
            finally:
                self.release(upstream)

    # -- health probes ------------------------------------------------------------
    def _start_probing(self) -> None:
        with self._cond:
            if self._prober is None and not self._stop.is_set():
                self._prober = threading.Thread(target=self._probe_loop, name=f"{self.name}-health", daemon=True)
                self._prober.start()

    def _probe_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.probe_once()

    def probe_once(self) -> None:
        """Probe the engines that are down or idle (one at a time: probes are cheap)."""
        with self._cond:
            targets = [u for u in self.upstreams if not u.healthy or u.busy == 0]
        for upstream in targets:
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                self._probe(upstream.url)
            except Exception as exc:  # noqa: BLE001 - any failure means "not now"
                with self._cond:
                    busy = upstream.busy
                if upstream.healthy and busy == 0:  # a job may have started meanwhile: its stream decides
                    self.mark_down(upstream, f"health check failed after {time.monotonic() - started:.1f} s: "
                                             f"{type(exc).__name__}: {exc}")
                continue
            if not upstream.healthy:
                self.mark_up(upstream)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._prober is not None:
            self._prober.join(timeout=5)


class PooledBackend:
    """What the remote backends share: one httpx client, an ``UpstreamPool`` over the
    tag's URLs, and a health probe (``GET <upstream><probe_path>``, any status below 500)."""

    probe_path = ""

    def _open_pool(self, spec: Any, upstreams: list[tuple[str, int]], headers: dict[str, str] | None = None) -> None:
        settings = spec.settings
        timeout = float(settings.get("timeout", 120.0))
        self._client = httpx.Client(headers=headers or {}, timeout=httpx.Timeout(timeout, connect=10.0))
        self._health_timeout = float(settings.get("health_timeout", DEFAULT_HEALTH_TIMEOUT))
        self.pool = UpstreamPool(upstreams, self._probe, name=spec.tag,
                                 interval=float(settings.get("health_interval", DEFAULT_HEALTH_INTERVAL)))

    def _probe(self, base: str) -> None:
        url = f"{base}{self.probe_path}"
        response = self._client.get(url, timeout=self._health_timeout)
        if response.status_code >= 500:
            raise BackendError(f"GET {url} answered {response.status_code}")

    def upstreams(self) -> list[dict[str, Any]]:
        """Each upstream's url, slots, jobs in flight, jobs served and health."""
        return self.pool.stats()

