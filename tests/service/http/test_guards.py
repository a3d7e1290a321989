"""The request guards: malformed requests, slow clients, half-open sockets, bodies that never come.

Every malformed request answers 4xx with {"success": false, "error": "<one line>"}.
The abuse tests run a real uvicorn server (the service's own protocol and app,
a fake engine) on 127.0.0.1 in a thread; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from gridllm_nb.config import API_PREFIX
from gridllm_nb.service.http.app import create_app
from gridllm_nb.service.http.guards import guarded_protocol
from gridllm_nb.service.launcher import free_port, start_service
from tests.service.service_support import BASE, FakeBackend, fake_registry

GOOD = {"app": "gridrepublic:text-inference", "commandLine": '{"inputs": ["hi"]}', "tag": "fake:fast"}


def _with(**changes):
    body = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


def assert_error(answer, status: int, fragment: str = "") -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in body["error"]
    assert fragment in body["error"], body["error"]


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"not json", "not valid JSON"),
        (b"{\"app\": ", "not valid JSON"),
        (b"", "missing"),
        (b"[]", "dictionary"),
        (b"null", ""),
        (b"\xff\xfe", ""),
    ],
)
def test_body_not_a_json_object(make_client, raw: bytes, fragment: str) -> None:
    answer = make_client().post(f"{BASE}/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert_error(answer, 400, fragment)


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (_with(commandLine=...), 400, "commandLine"),
        (_with(tag=...), 400, "tag"),
        (_with(commandLine=["hi"]), 400, "commandLine"),
        (_with(commandLine={"inputs": ["hi"]}), 400, "commandLine"),
        (_with(commandLine=5), 400, "commandLine"),
        (_with(tag=3), 400, "tag"),
        (_with(app=None), 400, "app"),
        (_with(hours="soon"), 400, "hours"),
        (_with(commandLine="{'input': "), 400, "neither JSON"),
        (_with(commandLine="{'prompt': ['x']}"), 400, "no 'inputs'"),
        (_with(commandLine='{"inputs": []}'), 400, "non-empty"),
        (_with(commandLine='{"inputs": [""]}'), 400, "empty"),
        (_with(commandLine='{"inputs": [42]}'), 400, "not a string"),
        (_with(app="boinc:anything"), 400, "unknown app"),
        (_with(tag="nope:1b"), 400, "unknown model tag 'nope:1b'; available: fake:fast, fake:slow"),
        (_with(hours=0), 400, "hours"),
        (_with(hours=-1), 400, "hours"),
        (_with(hours=8.01), 400, "hours"),
        (_with(hours=1e308), 400, "hours"),
        (_with(commandLine=json.dumps({"inputs": ["x" * 40000]})), 413, "limit is 32768"),
    ],
)
def test_bad_submissions(make_client, body, status: int, fragment: str) -> None:
    assert_error(make_client().post(f"{BASE}/jobs", json=body), status, fragment)


def test_unknown_tag_message_exact(make_client) -> None:
    answer = make_client().post(f"{BASE}/jobs", json=_with(tag="x"))
    assert answer.json() == {"success": False, "error": "unknown model tag 'x'; available: fake:fast, fake:slow"}


def test_hours_upper_bound_is_inclusive(make_client) -> None:
    assert make_client().post(f"{BASE}/jobs", json=_with(hours=8)).status_code == 200


def test_nan_hours(make_client) -> None:
    raw = b'{"app": "gridrepublic:text-inference", "commandLine": "{\\"inputs\\": [\\"hi\\"]}", "tag": "fake:fast", "hours": NaN}'
    answer = make_client().post(f"{BASE}/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500


def test_body_over_one_megabyte(make_client) -> None:
    client = make_client()
    big = json.dumps(_with(commandLine=json.dumps({"inputs": ["x" * (1024 * 1024)]}))).encode()
    assert_error(client.post(f"{BASE}/jobs", content=big, headers={"Content-Type": "application/json"}), 413, "body")

    def chunks():  # no Content-Length: counted while read
        for _ in range(20):
            yield b"x" * 65536

    assert_error(client.post(f"{BASE}/jobs", content=chunks(), headers={"Content-Type": "application/json"}), 413, "body")


@pytest.mark.parametrize(
    "ids, status, fragment",
    [
        ("xyz", 400, "malformed job id"),
        ("a" * 31, 400, "malformed job id"),
        ("a" * 33, 400, "malformed job id"),
        ("g" * 32, 400, "malformed job id"),
        (",".join(["a" * 32] * 501), 400, "limit is 500"),
        (",,,", 400, "no job ids"),
        ("0" * 32, 404, "no such job"),
        (",".join(["0" * 32, "1" * 32]), 404, "no such job"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bad_ids(make_client, method: str, ids: str, status: int, fragment: str) -> None:
    assert_error(make_client().request(method, f"{BASE}/jobs/{ids}"), status, fragment)


def test_unknown_ids_are_left_out(make_client) -> None:
    client = make_client()
    (job_id,) = client.post(f"{BASE}/jobs", json=GOOD).json()["ids"]
    jobs = client.get(f"{BASE}/jobs/{'0' * 32},{job_id.upper()}, {job_id}").json()["jobs"]
    assert list(jobs) == [job_id]


def test_500_ids_is_allowed(make_client) -> None:
    client = make_client()
    (job_id,) = client.post(f"{BASE}/jobs", json=GOOD).json()["ids"]
    ids = [job_id] + [f"{n:032x}" for n in range(499)]
    assert list(client.get(f"{BASE}/jobs/{','.join(ids)}").json()["jobs"]) == [job_id]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("GET", f"{BASE}/jobs", 405), ("PUT", f"{BASE}/jobs", 405),
    ("PATCH", f"{BASE}/jobs/{'a' * 32}", 405), ("POST", f"{BASE}/models", 405),
])
def test_unknown_routes_and_methods(make_client, method: str, path: str, status: int) -> None:
    assert_error(make_client().request(method, path), status)


# -- connections that hold the service hostage ------------------------------
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
