"""Fan-out: one tag served by several engines (``urls = [...]``), all on 127.0.0.1.

Tiny http.server stubs test the choice (least-busy first), the health marks
(a dead engine is skipped, then used again once it answers) and the rule that
a job which lost its engine mid-stream ends ``error`` and is never re-run
elsewhere. The ``models`` tests then do it for real with two
``python -m llama_cpp.server`` processes serving SmolLM2, one killed mid-run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gridllm_nb.errors import ConfigError
from gridllm_nb.service.backend_factory import create_backend
from gridllm_nb.service.backends.base import BackendError, GenerationRequest
from gridllm_nb.service.backends.upstreams import UpstreamPool
from gridllm_nb.service.launcher import free_port
from gridllm_nb.service.registry import ModelSpec, Registry, load_registry
from tests.service.service_support import (
    BASE,
    need_llama_server,
    start_llama_server,
    stop_process,
    submit,
    terminal,
    wait_for,
)

TAG = "pool:m"


# -- registry ---------------------------------------------------------------------------
def _load(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return load_registry(path, builtins=False)


def test_registry_urls_sum_their_concurrency(tmp_path: Path) -> None:
    registry = _load(tmp_path, '[models."a"]\nbackend = "openai"\nmodel = "m"\n'
                               'urls = ["http://h1:8000/v1/", "http://h2:8000/v1"]\nconcurrency_per_url = 3\n'
                               '[models."b"]\nbackend = "ollama"\nmodel = "m"\n'
                               'urls = ["http://h1:11434", "http://h2:11434"]\nconcurrency_per_url = [4, 1]\n'
                               'health_interval = 0.5\n')
    assert registry["a"].concurrency == 6
    assert registry["a"].settings["urls"] == ["http://h1:8000/v1", "http://h2:8000/v1"]
    assert registry["a"].settings["concurrency_per_url"] == [3, 3]
    assert registry["b"].concurrency == 5 and registry["b"].settings["concurrency_per_url"] == [4, 1]
    assert "urls" not in json.dumps(registry["a"].describe()), "GET /models never shows where engines are"


@pytest.mark.parametrize("body, fragment", [
    ('backend = "openai"\nmodel = "m"\nurls = []', "non-empty list"),
    ('backend = "openai"\nmodel = "m"\nurls = "http://h:1"', "non-empty list"),
    ('backend = "openai"\nmodel = "m"\nurls = ["h:1"]', "http://"),
    ('backend = "openai"\nmodel = "m"\nurls = ["http://h:1", "http://h:1/"]', "same server twice"),
    ('backend = "openai"\nmodel = "m"\nurl = "http://h:1"\nurls = ["http://h:2"]', "either 'url' or 'urls'"),
    ('backend = "openai"\nmodel = "m"\nurls = ["http://h:1"]\nconcurrency = 4', "concurrency_per_url"),
    ('backend = "openai"\nmodel = "m"\nurls = ["http://h:1", "http://h:2"]\nconcurrency_per_url = [1]', "2 urls"),
    ('backend = "openai"\nmodel = "m"\nurls = ["http://h:1"]\nconcurrency_per_url = 0', "positive integer"),
    ('backend = "openai"\nmodel = "m"\nconcurrency_per_url = 2', "needs 'urls'"),
    ('backend = "llama_cpp"\npath = "/x.gguf"\nurls = ["http://h:1"]', "openai and ollama"),
    ('backend = "openai"\nmodel = "m"\nurls = ["http://h:1"]\nhealth_interval = 0', "health_interval"),
])
def test_registry_rejects_bad_fan_out(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        _load(tmp_path, f'[models."a"]\n{body}\n')


# -- the choice -------------------------------------------------------------------------
def test_least_busy_first_by_share_of_slots() -> None:
    pool = UpstreamPool([("http://a", 2), ("http://b", 1), ("http://c", 1)], probe=lambda url: None)
    cancel = threading.Event()
    order = [pool.acquire(cancel, set()).url for _ in range(4)]
    # a, b, c are idle (a first: ties go in listed order); then a (1/2 busy) beats b and c (1/1)
    assert order == ["http://a", "http://b", "http://c", "http://a"]
    assert [u["busy"] for u in pool.stats()] == [2, 1, 1]
    # all slots taken: the next job waits, and a cancel ends the wait at once
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    assert pool.acquire(cancel, set()) is None
    assert time.monotonic() - started < 1.0
    # a freed slot goes to the waiting job
    b = pool.upstreams[1]
    threading.Timer(0.1, pool.release, args=(b,)).start()
    assert pool.acquire(threading.Event(), set()) is b


def test_down_upstreams_are_skipped_and_probes_bring_them_back() -> None:
    answers = {"http://a": True, "http://b": False}

    def probe(url: str) -> None:
        if not answers[url]:
            raise OSError("connection refused")

    pool = UpstreamPool([("http://a", 1), ("http://b", 1)], probe=probe)
    pool.probe_once()
    assert [u["healthy"] for u in pool.stats()] == [True, False]
    cancel = threading.Event()
    a = pool.acquire(cancel, set())
    assert a.url == "http://a"
    pool.release(a)
    assert pool.acquire(cancel, set()).url == "http://a", "b is skipped while down, even though a is busier"
    answers["http://b"] = True
    pool.probe_once()
    assert pool.stats()[1]["healthy"] is True and pool.stats()[1]["reason"] is None
    assert pool.acquire(cancel, set()).url == "http://b"


def test_busy_upstreams_are_not_probed() -> None:
    probed: list[str] = []
    pool = UpstreamPool([("http://a", 1), ("http://b", 1)], probe=probed.append)
    pool.acquire(threading.Event(), set())
    pool.probe_once()
    assert probed == ["http://b"], "a streaming engine's stream is its health check"


# -- stub engines over real HTTP ----------------------------------------------------------
class StubEngine(BaseHTTPRequestHandler):
    """OpenAI chat (SSE) or Ollama (NDJSON) stream of ``w0 w1 ...``; counts requests.

    A prompt ``die`` makes it drop the connection after three pieces.
    """

    protocol_version = "HTTP/1.1"
    delay = 0.02
    server: StubServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.probes += 1
        data = b'{"data": [], "models": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ollama = self.path == "/api/generate"
        prompt = body["prompt"] if ollama else body["messages"][-1]["content"]
        count = body["options"]["num_predict"] if ollama else body["max_tokens"]
        with self.server.lock:
            self.server.requests.append(prompt)
            self.server.active += 1
            self.server.peak = max(self.server.peak, self.server.active)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for n in range(count):
                if prompt == "die" and n == 3:
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the host vanishes mid-answer
                    return
                time.sleep(self.delay)
                piece = f"w{n} "
                line = (json.dumps({"response": piece, "done": False}) + "\n" if ollama else
                        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}}]})}\n\n")
                self._chunk(line.encode())
            end = json.dumps({"response": "", "done": True, "done_reason": "length"}) + "\n" if ollama else \
                "data: [DONE]\n\n"
            self._chunk(end.encode())
            self._chunk(b"")
        except OSError:
            pass
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), StubEngine)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.active = self.peak = self.probes = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def stubs() -> Iterator[list[StubServer]]:
    servers = [StubServer(free_port()) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def _url(server: StubServer, backend: str = "openai") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}" + ("/v1" if backend == "openai" else "")


def _pool_spec(urls: list[str], backend: str = "openai", per_url: int = 2, **extra) -> ModelSpec:
    return ModelSpec(TAG, backend, "chat", 8, per_url * len(urls), "",
                     {"model": "m", "urls": urls, "concurrency_per_url": per_url, "health_interval": 0.1, **extra})


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["openai", "ollama"])
def test_jobs_spread_over_upstreams_least_busy_first(stubs, make_client, backend: str) -> None:
    client = make_client(registry=Registry([_pool_spec([_url(s, backend) for s in stubs], backend)]),
                         backend_factory=create_backend)
    ids = submit(client, [f"p{n}" for n in range(8)], tag=TAG)
    for job_id in ids:
        job = wait_for(client, job_id, terminal)
        assert job["vmStatus"] == "completed" and job["states"]["default"]["log"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert [len(s.requests) for s in stubs] == [4, 4]
    assert [s.peak for s in stubs] == [2, 2], "each engine ran its two slots, never more"
    stats = client.app.state.manager.backend(TAG).upstreams()
    assert [(u["served"], u["busy"], u["healthy"]) for u in stats] == [(4, 0, True), (4, 0, True)]


def test_a_dead_upstream_is_skipped_then_used_again_after_recovery(stubs, make_client) -> None:
    dead_port = free_port()
    urls = [_url(stubs[0]), f"http://127.0.0.1:{dead_port}/v1", _url(stubs[1])]
    client = make_client(registry=Registry([_pool_spec(urls, per_url=1)]), backend_factory=create_backend)
    backend = client.app.state.manager.backend(TAG)
    ids = submit(client, [f"p{n}" for n in range(6)], tag=TAG)
    jobs = [wait_for(client, job_id, terminal) for job_id in ids]
    # the job that went to the dead port first could not connect (nothing sent): it moved on
    assert all(job["vmStatus"] == "completed" for job in jobs), jobs
    assert len(stubs[0].requests) + len(stubs[1].requests) == 6
    dead = backend.upstreams()[1]
    assert dead["healthy"] is False and "ConnectError" in dead["reason"] and str(dead_port) in dead["reason"]
    served_while_down = dead["served"]
    assert served_while_down <= 1, "skipped after the first failed connect"
    ids = submit(client, [f"q{n}" for n in range(4)], tag=TAG)
    assert all(wait_for(client, i, terminal)["vmStatus"] == "completed" for i in ids)
    assert backend.upstreams()[1]["served"] == served_while_down, "not used while down"

    revived = StubServer(dead_port)  # the host comes back on the same port
    try:
        _wait(lambda: backend.upstreams()[1]["healthy"])  # a probe noticed
        ids = submit(client, [f"r{n}" for n in range(3)], tag=TAG)
        assert all(wait_for(client, i, terminal)["vmStatus"] == "completed" for i in ids)
        assert len(revived.requests) >= 1, "used again after recovery"
    finally:
        revived.stop()


def test_all_upstreams_down_fails_naming_each() -> None:
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    backend = create_backend(_pool_spec(urls, per_url=1))
    with pytest.raises(BackendError, match="none of the 2 upstreams could be reached") as info:
        list(backend.generate(GenerationRequest("x", max_tokens=2), threading.Event()))
    assert all(url in str(info.value) for url in urls)
    backend.close()


@pytest.mark.parametrize("backend", ["openai", "ollama"])
def test_lost_mid_stream_is_an_error_naming_the_upstream_never_retried(stubs, make_client, backend: str) -> None:
    urls = [_url(s, backend) for s in stubs]
    client = make_client(registry=Registry([_pool_spec(urls, backend, per_url=1)]), backend_factory=create_backend)
    (job_id,) = submit(client, "die", tag=TAG)
    job = wait_for(client, job_id, terminal)
    assert job["vmStatus"] == "error"
    message = job["states"]["default"]["message"]
    assert f"lost upstream {urls[0]} after 3 pieces" in message and "not retried" in message, message
    assert job["states"]["default"]["log"] == "w0 w1 w2 ", "the partial text is kept"
    time.sleep(0.3)
    assert [len(s.requests) for s in stubs] == [1, 0], "never re-run on the other engine"
    # the engine that dropped the stream is skipped until a probe says it is back
    stats = client.app.state.manager.backend(TAG).upstreams()
    assert stats[1]["healthy"] is True


# -- real engines: two llama_cpp.server processes ----------------------------------------------
@pytest.fixture
def llama_servers(tmp_path: Path) -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    need_llama_server()
    servers: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for n in range(2):
            port = free_port()
            servers.append((port, start_llama_server(port, tmp_path / f"llama-{n}.log", "--n_threads", "1",
                                                     "--interrupt_requests", "False")))
        yield servers
    finally:
        for _, process in servers:
            stop_process(process)


def _submit_real(client, prompts: list[str], max_tokens: int) -> list[str]:
    return submit(client, prompts, tag=TAG, command={"options": {"max_tokens": max_tokens, "temperature": 0}})


@pytest.mark.models
def test_llama_servers_one_killed_mid_run(llama_servers, make_client, tmp_path: Path) -> None:
    (port_a, process_a), (port_b, _) = llama_servers
    url_a, url_b = f"http://127.0.0.1:{port_a}/v1", f"http://127.0.0.1:{port_b}/v1"
    spec = ModelSpec(TAG, "openai", "chat", 16, 2, "two llama.cpp servers",
                     {"model": "smollm2", "urls": [url_a, url_b], "concurrency_per_url": 1, "health_interval": 0.3})
    client = make_client(registry=Registry([spec]), backend_factory=create_backend)
    backend = client.app.state.manager.backend(TAG)

    # spread: two long jobs at once, one on each server
    ids = _submit_real(client, ["Write a long story about a dragon who learns to bake bread."] * 2, max_tokens=400)
    for job_id in ids:
        wait_for(client, job_id, lambda j: terminal(j) or len(j["states"]["default"]["log"]) > 20, timeout=60)
    assert [u["busy"] for u in backend.upstreams()] == [1, 1], backend.upstreams()
    partial = {i: client.get(f"{BASE}/jobs/{i}").json()["jobs"][i]["states"]["default"]["log"] for i in ids}

    stop_process(process_a, signal.SIGKILL)  # host A dies mid-answer
    jobs = [wait_for(client, i, terminal, timeout=60) for i in ids]
    errors = [j for j in jobs if j["vmStatus"] == "error"]
    assert len(errors) == 1, jobs
    lost = errors[0]
    message = lost["states"]["default"]["message"]
    assert f"lost upstream {url_a}" in message and "not retried" in message, message
    lost_id = next(i for i, j in zip(ids, jobs) if j is lost)
    assert lost["states"]["default"]["log"].startswith(partial[lost_id]) and partial[lost_id].strip(), \
        "its partial text is kept"
    survivor = next(j for j in jobs if j is not lost)
    assert survivor["vmStatus"] == "completed", survivor
    a, b = backend.upstreams()
    assert a["healthy"] is False and (a["served"], b["served"]) == (1, 1)

    # later jobs go to the survivor only, while A is down
    ids = _submit_real(client, ["Name a color.", "Name a fruit.", "Name an animal."], max_tokens=8)
    assert all(wait_for(client, i, terminal, timeout=60)["vmStatus"] == "completed" for i in ids)
    a, b = backend.upstreams()
    assert (a["served"], b["served"], a["healthy"]) == (1, 4, False)

    # A comes back on the same port: a probe notices, and it takes jobs again
    llama_servers[0] = (port_a, start_llama_server(port_a, tmp_path / "llama-0-again.log", "--n_threads", "1",
                                                   "--interrupt_requests", "False"))
    _wait(lambda: backend.upstreams()[0]["healthy"], timeout=30)
    ids = _submit_real(client, ["Write a short poem about the sea.", "Write a short poem about snow."], max_tokens=24)
    assert all(wait_for(client, i, terminal, timeout=60)["vmStatus"] == "completed" for i in ids)
    a, b = backend.upstreams()
    assert a["healthy"] and a["served"] >= 2 and a["served"] + b["served"] == 7, (a, b)
