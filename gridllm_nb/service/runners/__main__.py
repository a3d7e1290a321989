"""A model runner: one llama.cpp model in its own process.

``python -m gridllm_nb.service.runners`` reads the model's registry entry as
the first line on stdin, loads it, says ``ready``, then serves one
generation at a time. The protocol is JSON lines (see ``protocol``): requests
and cancels on stdin, events on the process's original stdout. File
descriptor 1 itself is pointed at stderr before llama.cpp loads, so nothing
the native code prints can corrupt the protocol; it lands in the service's
log instead.

The runner exits when stdin closes: its service is gone, whatever killed it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
from typing import Any

from ..backends.base import BackendError, Finish
from ..backends.llama_cpp import LlamaCppBackend
from .protocol import request_from_json, spec_from_json


def main() -> int:
    # Ctrl-C in a foreground `serve` reaches the whole process group; the
    # service ends its jobs and then closes its runners itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    write_lock = threading.Lock()

    def send(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False)
        with write_lock:
            channel.write(line + "\n")
            channel.flush()

    first = sys.stdin.readline()
    if not first:
        return 0
    spec = spec_from_json(first)
    engine = LlamaCppBackend(spec)
    try:
        engine.warm_up()
    except BackendError as exc:
        send({"event": "fatal", "message": str(exc)})
        return 3
    send({"event": "ready", "pid": os.getpid()})

    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancel = threading.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            message = json.loads(line)
            if message.get("op") == "cancel":
                cancel.set()
            elif message.get("op") == "generate":
                requests.put(message)
        os._exit(0)  # stdin closed: the service is gone

    threading.Thread(target=read_commands, name="runner-commands", daemon=True).start()
    while True:
        message = requests.get()
        if message is None:  # pragma: no cover - the reader exits the process instead
            return 0
        cancel.clear()
        request = request_from_json(message["request"])
        try:
            finish: Finish | None = None
            for piece in engine.generate(request, cancel):
                if isinstance(piece, Finish):
                    finish = piece
                else:
                    send({"event": "piece", "text": piece})
            if cancel.is_set():
                send({"event": "done", "finish": "cancelled"})
            else:
                send({"event": "done", "finish": finish.reason if finish else "stop",
                      "tokens": finish.tokens if finish else None})
        except BackendError as exc:
            send({"event": "error", "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            send({"event": "error", "message": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    sys.exit(main())
