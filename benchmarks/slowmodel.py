"""A deliberately slow OpenAI-compatible model: streams tokens at a fixed rate.

A stand-in for one GPU host in ``benchmarks/fanout.py``: it answers
``POST /v1/chat/completions`` and ``/v1/completions`` (``stream: true``) with
``max_tokens`` pieces, ``--rate`` per second, and runs at most ``--slots``
answers at once (further requests wait, as in vLLM's queue), so its throughput
is fixed and tiny in CPU: what the benchmark measures is the fan-out, not the
machine. ``GET /v1/models`` is the health probe.

    python benchmarks/slowmodel.py --port 8001 --rate 50 --slots 2
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlowModel(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rate = 50.0
    slots = threading.BoundedSemaphore(1)

    def log_message(self, *args) -> None:
        pass

    def _send_json(self, obj: dict, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send_json({"object": "list", "data": [{"id": "slow", "object": "model"}]})
        else:
            self._send_json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._send_json({"error": "not found"}, 404)
            return
        chat = self.path.endswith("chat/completions")
        count = int(body.get("max_tokens") or 16)
        with self.slots:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                start = time.monotonic()
                for n in range(count):
                    # a fixed schedule, not sleep-per-token, so the rate holds whatever the overhead
                    delay = start + (n + 1) / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    finish = "length" if n == count - 1 else None
                    piece = f"t{n} "
                    choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": finish} if chat
                              else {"index": 0, "text": piece, "finish_reason": finish})
                    self._chunk(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def serve(port: int, rate: float, slots: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A running server (in a daemon thread); ``shutdown()`` it when done."""
    handler = type("SlowModelHandler", (SlowModel,), {"rate": rate, "slots": threading.BoundedSemaphore(slots)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per answer")
    parser.add_argument("--slots", type=int, default=2, help="answers streamed at once")
    args = parser.parse_args()
    server = serve(args.port, args.rate, args.slots, args.host)
    print(f"slow model on http://{args.host}:{args.port}/v1 ({args.rate:g} tokens/s, {args.slots} slots)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
