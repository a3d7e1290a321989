"""What a request and a connection must satisfy before any route runs.

The service runs models on behalf of whoever reaches it, so nothing a client
sends may cost it more than the request is worth:

* ``RequestGuard`` (pure ASGI, before FastAPI parses anything): the bearer
  token, compared in constant time and never logged; the body's size; and a
  deadline for the body, so a client that stops sending is answered 408.
* ``guarded_protocol``: uvicorn times out idle keep-alive connections, but
  not one that is still sending its request, so 300 clients sending a byte a
  second, or one incomplete request line, would keep their connections (and
  file descriptors) as long as they liked. Its HTTP/1.1 protocol adds two
  rules at the socket level: a request's headers must be complete within
  ``header_timeout`` seconds of the connection opening (or of the previous
  response), else 408 and close; and at most ``max_waiting`` connections may
  wait for their headers at once, past which the oldest waiting one is
  closed. A client that sends its request promptly, ``/health`` included, is
  therefore always served.
* ``parse_ids``: job ids as the routes accept them.

Nothing here imports FastAPI or uvicorn at import time: ``serve`` reads the
defaults before it knows whether the local extras are installed.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_WAITING", "MAX_BODY_BYTES", "MAX_BULK_IDS", "MAX_IDS",
           "ApiError", "RequestGuard", "guarded_protocol", "parse_ids"]

MAX_BODY_BYTES = 1024 * 1024
MAX_IDS = 500
MAX_BULK_IDS = 1000  # POST /jobs/status: ids travel in the body, not in a URL
DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_MAX_WAITING = 64
_ID = re.compile(r"[0-9a-f]{32}")
_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class ApiError(Exception):
    """Raised by handlers; becomes ``{"success": false, "error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_ids(raw: str | list[str], limit: int = MAX_IDS) -> list[str]:
    """Comma-separated ids (or a list) -> unique, lower-case, validated list (order kept)."""
    parts = [p.strip().lower() for p in (raw.split(",") if isinstance(raw, str) else raw)]
    parts = [p for p in parts if p]
    if not parts:
        raise ApiError(400, "no job ids given")
    if len(parts) > limit:
        raise ApiError(400, f"{len(parts)} job ids in one request; the limit is {limit}")
    for part in parts:
        if not _ID.fullmatch(part):
            raise ApiError(400, f"malformed job id {part[:40]!r}: expected 32 hex digits")
    return list(dict.fromkeys(parts))


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> ASGIApp:
    from .encode import error_answer  # FastAPI: with the app, not with this module

    return error_answer(status, message, headers)


class RequestGuard:
    """Bearer-token check, body size limit and body deadline, before FastAPI parses anything.

    Pure ASGI (not BaseHTTPMiddleware) so streaming and errors stay cheap; the
    token is compared in constant time and never logged.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body: int, body_timeout: float = 10.0) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None:
            given = headers.get(b"authorization", b"")
            if not secrets.compare_digest(given, self.expected):
                what = "wrong bearer token" if given else "missing Authorization: Bearer <token> header"
                await _refusal(401, f"unauthorized: {what}", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _refusal(400, "malformed Content-Length header")(scope, receive, send)
                return
            if too_big:
                await _refusal(413, f"request body over {self.max_body} bytes")(scope, receive, send)
                return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # The whole body, within a deadline: a client that stops sending
            # (or announces a chunk of 0xFFFFFFFFFFFF bytes) is answered 408.
            body = bytearray()
            deadline = time.monotonic() + self.body_timeout
            while True:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    await _refusal(408, f"request body did not arrive within {self.body_timeout:g} s",
                                   {"Connection": "close"})(scope, receive, send)
                    return
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                if len(body) > self.max_body:
                    await _refusal(413, f"request body over {self.max_body} bytes")(scope, receive, send)
                    return
                if not message.get("more_body"):
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


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
