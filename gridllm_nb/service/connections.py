"""Connections that hold the service hostage are closed: slow headers, a flood of half-open sockets.

uvicorn times out idle keep-alive connections, but not one that is still
sending its request: 300 clients sending a byte a second, or one incomplete
request line, kept their connections (and file descriptors) for as long as
they liked. ``GuardedH11Protocol`` is uvicorn's own HTTP/1.1 protocol with
two rules added at the socket level, before any ASGI code runs:

* a request's headers must be complete within ``header_timeout`` seconds of
  the connection opening (or of the previous response); otherwise the
  server answers 408 and closes it;
* at most ``max_waiting`` connections may be waiting for their headers at
  once; past that the oldest waiting one is closed. A new client that sends
  its request promptly, ``/health`` included, is therefore always served.

Request bodies get their own deadline in the app's guard (``app._Guard``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_WAITING", "guarded_protocol"]

DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_MAX_WAITING = 64
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def guarded_protocol(header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                     max_waiting: int = DEFAULT_MAX_WAITING) -> type[H11Protocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)`` (uvicorn imported only here)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._wait_for_headers()
            waiting = [c for c in self.connections if getattr(c, "_waiting_since", None) is not None]
            if len(waiting) > max_waiting:
                min(waiting, key=lambda c: c._waiting_since)._give_up()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._headers_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._wait_for_headers()  # a keep-alive connection's next request gets the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def _wait_for_headers(self) -> None:
            self._headers_arrived()
            self._waiting_since = self.loop.time()
            self._header_timer: Any = self.loop.call_later(header_timeout, self._give_up)

        def _headers_arrived(self) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            self._header_timer = None
            self._waiting_since = None

        def _give_up(self) -> None:
            self._headers_arrived()
            if not self.transport.is_closing():
                self.transport.write(_TIMEOUT_RESPONSE)
                self.transport.close()

    return GuardedH11Protocol
