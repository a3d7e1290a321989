"""The service under abuse: slow clients, half-open sockets, bodies that never come.

A real uvicorn server (the service's own protocol and app, a fake engine) on
127.0.0.1 in a thread; every loop is bounded in count and time.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from service_support import FakeBackend, fake_registry

from gridllm_nb.service import API_PREFIX
from gridllm_nb.service.app import create_app
from gridllm_nb.service.connections import guarded_protocol
from gridllm_nb.service.launcher import free_port, start_service

HEADER_TIMEOUT = 1.0
MAX_WAITING = 8


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, int]]:
    app = create_app(db=tmp_path / "jobs.sqlite3", registry=fake_registry(),
                     backend_factory=lambda spec: FakeBackend(0.0), body_timeout=1.0)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical",
                            http=guarded_protocol(HEADER_TIMEOUT, MAX_WAITING))
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}{API_PREFIX}", port
    srv.should_exit = True
    thread.join(10)


def open_slow(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def test_slow_clients_are_cut_off_and_health_keeps_answering(server) -> None:
    url, port = server
    slow = [open_slow(port, b"GET /remotejobs/v2/health HTTP/1.1\r\nHo") for _ in range(40)]
    answered = []
    stop = time.monotonic() + 2 * HEADER_TIMEOUT
    while time.monotonic() < stop:  # a byte a tick from every slow client, /health meanwhile
        for sock in slow:
            try:
                sock.send(b"s")
            except OSError:
                pass
        answered.append(httpx.get(f"{url}/health", timeout=2).status_code)
        time.sleep(0.2)
    assert answered and set(answered) == {200}
    endings = [closed_by_server(sock, 2.0) for sock in slow]
    assert all(end is not None for end in endings), "every slow connection was closed"
    assert any(end.startswith(b"HTTP/1.1 408") for end in endings)
    for sock in slow:
        sock.close()


def test_a_flood_of_half_open_sockets_is_capped(server) -> None:
    url, port = server
    flood = [open_slow(port, b"G") for _ in range(5 * MAX_WAITING)]
    time.sleep(0.3)
    still_open = sum(closed_by_server(sock, 0.05) is None for sock in flood)
    assert still_open <= MAX_WAITING + 1
    assert httpx.get(f"{url}/health", timeout=2).status_code == 200
    for sock in flood:
        sock.close()


def test_an_incomplete_request_line_is_closed(server) -> None:
    _, port = server
    sock = open_slow(port, b"GET /remotejobs/v2/hea")
    assert closed_by_server(sock, HEADER_TIMEOUT + 2) is not None
    sock.close()


def test_a_body_that_never_comes_is_408(server) -> None:
    _, port = server
    sock = open_slow(port, b"POST /remotejobs/v2/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"Content-Type: application/json\r\n\r\nFFFFFFFFFFFF\r\n{")
    answer = closed_by_server(sock, 4.0)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 1 s" in answer
    sock.close()


def test_sigterm_exits_0_and_the_launcher_cleans_up(tmp_path) -> None:
    service = start_service(db=tmp_path / "jobs.sqlite3", models=None, timeout=60)
    scratch = service.log_path.parent
    assert scratch.is_dir()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(15) == 0
    service.stop()
    assert not scratch.exists()
