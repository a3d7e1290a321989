"""The ollama and openai backends against real HTTP servers on 127.0.0.1.

Ollama itself cannot be installed here, so a small NDJSON-streaming server
stands in for it; the openai backend is also tested for real against
``python -m llama_cpp.server`` in test_service_live.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from gridllm_nb.service.backend_factory import create_backend
from gridllm_nb.service.backends.base import BackendError, GenerationRequest
from gridllm_nb.service.backends.ollama import OllamaBackend
from gridllm_nb.service.backends.openai import OpenAIBackend
from gridllm_nb.service.registry import ModelSpec, Registry
from tests.service.service_support import BASE, terminal, wait_for


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[tuple[str, dict, dict]]] = []
    pieces: ClassVar[list[str]] = ["Hello", ", ", "world", "!"]
    delay = 0.0

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body, dict(self.headers)))
        if body.get("model") == "missing":
            payload = json.dumps({"error": f"model '{body['model']}' not found"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in self.lines(body):
                self._chunk(line)
                if self.delay:
                    time.sleep(self.delay)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass


class OllamaHandler(_Recorder):
    content_type = "application/x-ndjson"

    def lines(self, body: dict) -> Iterator[bytes]:
        if body.get("model") == "broken":
            yield json.dumps({"model": "broken", "response": "par", "done": False}).encode() + b"\n"
            yield json.dumps({"error": "out of memory"}).encode() + b"\n"
            return
        count = body["options"].get("num_predict", len(self.pieces))
        for piece in (self.pieces * 100)[:count]:
            yield json.dumps({"model": body["model"], "response": piece, "done": False}).encode() + b"\n"
        yield json.dumps({"model": body["model"], "response": "", "done": True, "eval_count": count}).encode() + b"\n"


class OpenAIHandler(_Recorder):
    content_type = "text/event-stream"

    def lines(self, body: dict) -> Iterator[bytes]:
        yield b": keep-alive\n\n"
        for piece in self.pieces[: body["max_tokens"]]:
            choice = {"index": 0, "delta": {"content": piece}} if "messages" in body else {"index": 0, "text": piece}
            yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
        yield b"data: [DONE]\n\n"


@pytest.fixture
def server(request) -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (request.param,), {"requests": [], "delay": 0.0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A backend that cancels hangs up mid-stream: expected here, not worth a printed traceback.
    httpd.handle_error = lambda request, address: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def _spec(backend: str, url: str, model: str = "llama3", mode: str = "chat", **extra) -> ModelSpec:
    return ModelSpec(f"{backend}:{model}", backend, mode, 16, 1, "", {"url": url, "model": model, **extra})


@pytest.mark.parametrize("server", [OllamaHandler], indirect=True)
def test_ollama_streams_and_sends_the_options(server) -> None:
    url, handler = server
    backend = OllamaBackend(_spec("ollama", url))
    request = GenerationRequest("Hi?", system="be kind", max_tokens=4, temperature=0.0, seed=3, stop=("\n",))
    assert list(backend.generate(request, threading.Event())) == ["Hello", ", ", "world", "!"]
    path, body, _ = handler.requests[-1]
    assert path == "/api/generate"
    assert body == {"model": "llama3", "prompt": "Hi?", "stream": True, "system": "be kind",
                    "options": {"num_predict": 4, "temperature": 0.0, "seed": 3, "stop": ["\n"]}}
    backend.close()


@pytest.mark.parametrize("server", [OllamaHandler], indirect=True)
def test_ollama_completion_mode_is_raw(server) -> None:
    url, handler = server
    backend = OllamaBackend(_spec("ollama", url, mode="completion"))
    list(backend.generate(GenerationRequest("Once", system="Story:", max_tokens=2), threading.Event()))
    body = handler.requests[-1][1]
    assert body["raw"] is True and body["prompt"] == "Story:\n\nOnce" and "system" not in body


@pytest.mark.parametrize("server", [OllamaHandler], indirect=True)
@pytest.mark.parametrize("model, fragment", [("missing", "404: model 'missing' not found"), ("broken", "out of memory")])
def test_ollama_errors_are_backend_errors(server, model: str, fragment: str) -> None:
    url, _ = server
    backend = OllamaBackend(_spec("ollama", url, model=model))
    with pytest.raises(BackendError, match=fragment):
        list(backend.generate(GenerationRequest("x", max_tokens=4), threading.Event()))


def test_unreachable_server_is_a_backend_error() -> None:
    from gridllm_nb.service.launcher import free_port

    for cls, backend in (("ollama", OllamaBackend), ("openai", OpenAIBackend)):
        instance = backend(_spec(cls, f"http://127.0.0.1:{free_port()}"))
        with pytest.raises(BackendError, match="ConnectError"):
            list(instance.generate(GenerationRequest("x"), threading.Event()))


@pytest.mark.parametrize("server", [OllamaHandler], indirect=True)
def test_ollama_through_the_jobs_api(server, make_client) -> None:
    url, handler = server
    handler.delay = 0.05
    registry = Registry([_spec("ollama", url, model="llama3")])
    client = make_client(registry=registry, backend_factory=create_backend)
    ids = client.post(f"{BASE}/jobs", json={"app": "gridrepublic:text-inference", "tag": "ollama:llama3",
                                            "commandLine": '{"inputs": ["Hi"], "options": {"num_predict": 40}}'}).json()["ids"]
    partial = wait_for(client, ids[0], lambda j: j["vmStatus"] == "running" and j["states"]["default"]["log"])
    assert partial["states"]["default"]["log"].startswith("Hello")
    job = wait_for(client, ids[0], terminal)
    assert job["vmStatus"] == "completed"
    assert job["states"]["default"]["log"] == "".join((["Hello", ", ", "world", "!"] * 10)[:40])


@pytest.mark.parametrize("server", [OpenAIHandler], indirect=True)
def test_openai_chat_and_completion_sse(server, monkeypatch: pytest.MonkeyPatch) -> None:
    url, handler = server
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    chat = OpenAIBackend(_spec("openai", f"{url}/v1", model="m", api_key_env="TEST_OPENAI_KEY"))
    request = GenerationRequest("Hi", system="S", max_tokens=3, top_p=0.5)
    assert list(chat.generate(request, threading.Event())) == ["Hello", ", ", "world"]
    path, body, headers = handler.requests[-1]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body == {"model": "m", "max_tokens": 3, "stream": True, "top_p": 0.5,
                    "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]}
    completion = OpenAIBackend(_spec("openai", url, model="m", mode="completion"))
    assert "".join(completion.generate(GenerationRequest("Hi", max_tokens=4), threading.Event())) == "Hello, world!"
    assert handler.requests[-1][0] == "/v1/completions" and "Authorization" not in handler.requests[-1][2]


@pytest.mark.parametrize("server", [OllamaHandler], indirect=True)
def test_cancel_stops_a_remote_stream(server) -> None:
    url, handler = server
    handler.delay = 0.02
    backend = OllamaBackend(_spec("ollama", url))
    cancel = threading.Event()
    got = []
    for piece in backend.generate(GenerationRequest("x", max_tokens=1000), cancel):
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert len(got) == 3


class HtmlPageHandler(_Recorder):
    """A proxy's login page, answered 200, where an event stream should be."""

    content_type = "text/html; charset=utf-8"

    def lines(self, body: dict) -> Iterator[bytes]:
        yield b"<!doctype html><html><title>Sign in</title></html>"


class StallingHandler(OpenAIHandler):
    """Sends one piece, then nothing for a long while (a stuck upstream)."""

    def lines(self, body: dict) -> Iterator[bytes]:
        yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': 'Hel'}}]})}\n\n".encode()
        time.sleep(20)


@pytest.mark.parametrize("server", [HtmlPageHandler], indirect=True)
def test_a_200_html_page_is_an_error_naming_what_came_back(server, make_client) -> None:
    url, _ = server
    client = make_client(registry=Registry([_spec("openai", url, model="m")]), backend_factory=create_backend)
    (job_id,) = client.post(f"{BASE}/jobs", json={"app": "gridrepublic:text-inference", "tag": "openai:m",
                                                 "commandLine": '{"inputs": ["Hi"]}'}).json()["ids"]
    job = wait_for(client, job_id, terminal)
    assert job["vmStatus"] == "error"
    message = job["states"]["default"]["message"]
    assert "answered 200 with text/html" in message and "not an event stream" in message and "Sign in" in message


@pytest.mark.parametrize("server", [StallingHandler], indirect=True)
def test_cancel_interrupts_a_stalled_read_at_once(server, make_client) -> None:
    url, _ = server
    client = make_client(registry=Registry([_spec("openai", url, model="m", timeout=30.0)]),
                         backend_factory=create_backend)
    submit_body = {"app": "gridrepublic:text-inference", "tag": "openai:m", "commandLine": '{"inputs": ["Hi"]}'}
    (stalled,) = client.post(f"{BASE}/jobs", json=submit_body).json()["ids"]
    wait_for(client, stalled, lambda j: j["states"]["default"]["log"] == "Hel")
    (waiting,) = client.post(f"{BASE}/jobs", json=submit_body).json()["ids"]  # queued behind it
    client.delete(f"{BASE}/jobs/{stalled}")
    # The tag's only worker is free again well before the 30 s read timeout (or the 20 s stall):
    # the next job gets to run (and stalls in turn).
    nxt = wait_for(client, waiting, lambda j: j["states"]["default"]["log"] == "Hel", timeout=10)
    assert nxt["vmStatus"] == "running"
    client.delete(f"{BASE}/jobs/{waiting}")
