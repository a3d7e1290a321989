"""Start and stop the local service as a subprocess: the client's default endpoint.

The service runs in its own process (and process group) so model threads,
memory and crashes never touch a notebook kernel; its output goes to a log
file whose path every error message names.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError
from . import API_PREFIX
from .server import default_db_path, is_loopback

__all__ = ["LocalService", "ensure_local_service", "free_port", "is_running", "start_service"]

_ensure_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalService:
    """A running service subprocess; ``stop()`` is idempotent and also runs on ``with`` exit."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path, token: str | None = None) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path
        self._token = token

    def __repr__(self) -> str:  # no token in reprs
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"<LocalService {self.url} pid={self.process.pid} {state}>"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (uvicorn shuts down cleanly), then SIGKILL."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalService:  # noqa: PYI034 - typing.Self needs 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def is_running(url: str, token: str | None = None) -> bool:
    """True when ``GET {url}/health`` answers 200 within a second."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(f"{url.rstrip('/')}/health", headers=headers, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_service(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    db: str | Path | None = None,
    models: str | Path | None = None,
    token: str | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    preload: bool = False,
) -> LocalService:
    """Run ``python -m gridllm_nb.service`` and wait until its health check answers."""
    port = port if port is not None else free_port(host)
    workdir = Path(tempfile.mkdtemp(prefix="gridllm_service_"))
    log_path = workdir / "service.log"
    cmd = [sys.executable, "-m", "gridllm_nb.service", "--host", host, "--port", str(port)]
    cmd += ["--db", str(db if db is not None else workdir / "jobs.sqlite3")]
    if models is not None:
        cmd += ["--models", str(models)]
    if preload:
        cmd.append("--preload")
    child_env = dict(os.environ if env is None else env)
    if token:
        child_env["GRIDLLM_SERVICE_TOKEN"] = token  # via env, so it never shows in `ps`
    else:
        child_env.pop("GRIDLLM_SERVICE_TOKEN", None)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=child_env, start_new_session=True)
    url = f"http://{host}:{port}{API_PREFIX}"
    service = LocalService(url, process, log_path, token)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ConfigError(f"the local service exited with code {process.returncode} (log {log_path}: {_last_line(log_path)})")
        if is_running(url, token):
            return service
        if time.monotonic() > deadline:
            service.stop()
            raise ConfigError(f"the local service did not answer within {timeout:g} s (log {log_path}: {_last_line(log_path)})")
        time.sleep(0.1)


def ensure_local_service(
    url: str,
    *,
    token: str | None = None,
    announce: Callable[[str], None] | None = print,
) -> LocalService | None:
    """Start the service behind a loopback ``url`` unless it already answers.

    Returns None when something already serves ``url``; otherwise the started
    handle (stopped at interpreter exit). One lock per process, so concurrent
    callers never start two services.
    """
    with _ensure_lock:
        if is_running(url, token):
            return None
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        if not is_loopback(host):
            raise ConfigError(f"cannot start a local service for {url}: not a loopback address")
        missing = [m for m in ("llama_cpp", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError("the local service needs its extras: pip install 'gridllm_nb[local]'")
        # The user's own database (as `gridllm-nb serve` uses), so runs outlive the kernel.
        service = start_service(host=host, port=parts.port or 80, token=token, db=default_db_path())
        atexit.register(service.stop)
        if announce is not None:
            announce(f"gridllm_nb: started the local service at {service.url} (stops when this process exits)")
        return service
