"""Start, find again and stop the local service: the client's default endpoint.

The service always runs in its own process and session, so model threads,
memory and crashes never touch a notebook kernel, and a kernel restart
(which signals the kernel's whole process group) never takes it along.

Two ways to start one:

* ``start_service`` runs a service owned by the caller (tests, the demo):
  ``stop()`` or a ``with`` block ends it.
* ``ensure_local_service`` starts the per-user *background* service behind
  a loopback URL, shared by every kernel, terminal and panel of this user.
  It outlives whoever started it and ends itself after an idle period. It
  is found again through its state file (``state``), written under a lock
  so two kernels starting at once start one service: the second waits and
  reuses it.

Every failure message says what happened to the process (exit code or
signal) and quotes the last lines of its log, naming the log's path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..config import API_PREFIX, DEFAULT_HOST, is_loopback
from ..errors import ConfigError
from .exits import describe_exit, log_tail
from .state import (
    ServiceState,
    default_db_path,
    forget_state,
    locked,
    read_state,
    service_log_path,
    unreadable_state,
    write_state,
)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_ENV",
    "LocalService",
    "background_idle_timeout",
    "diagnose",
    "ensure_local_service",
    "forget_state",
    "free_port",
    "is_running",
    "read_state",
    "start_service",
    "stop_background_service",
    "unreadable_state",
]

IDLE_ENV = "GRIDLLM_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 1800.0

_ensure_lock = threading.Lock()
# Services this process started: only a parent can learn a child's exit status.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on now, for a service of our own."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalService:
    """A service subprocess; ``stop()`` is idempotent and also runs on ``with`` exit."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path, token: str | None = None,
                 scratch: Path | None = None) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path
        self._token = token
        self._scratch = scratch  # a temporary folder of ours (log, default db): removed by stop()

    def __repr__(self) -> str:  # no token in reprs
        state = "running" if self.process.poll() is None else describe_exit(self.process.returncode)
        return f"<LocalService {self.url} pid={self.process.pid} {state}>"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (uvicorn shuts down cleanly), then SIGKILL; then
        remove the temporary folder ``start_service`` made for it."""
        try:
            self._terminate(timeout)
        finally:
            if self._scratch is not None and self.process.poll() is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    def _terminate(self, timeout: float) -> None:
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


def _health(url: str, token: str | None = None, timeout: float = 1.0) -> int | None:
    """The status code of ``GET {url}/health``, or None when nothing answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx.get(f"{url.rstrip('/')}/health", headers=headers, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def is_running(url: str, token: str | None = None) -> bool:
    """True when ``GET {url}/health`` answers 200 within a second."""
    return _health(url, token) == 200


def start_service(
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    db: str | Path | None = None,
    models: str | Path | None = None,
    token: str | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    preload: bool = False,
    log_path: Path | None = None,
    idle_timeout: float | None = None,
) -> LocalService:
    """Run ``python -m gridllm_nb.service`` in a new session; wait until its health check answers.

    Its output goes to ``log_path`` (a fresh temporary folder by default). If
    it exits first, or does not answer within ``timeout``, ConfigError says
    how it ended and quotes its log.
    """
    port = port if port is not None else free_port(host)
    scratch = Path(tempfile.mkdtemp(prefix="gridllm_service_")) if log_path is None else None
    workdir = scratch or log_path.parent  # type: ignore[union-attr]
    log_path = log_path if log_path is not None else workdir / "service.log"
    cmd = [sys.executable, "-m", "gridllm_nb.service", "--host", host, "--port", str(port)]
    cmd += ["--db", str(db if db is not None else workdir / "jobs.sqlite3")]
    if models is not None:
        cmd += ["--models", str(models)]
    if preload:
        cmd.append("--preload")
    if idle_timeout:
        cmd += ["--idle-timeout", f"{idle_timeout:g}"]
    child_env = dict(os.environ if env is None else env)
    if token:
        child_env["GRIDLLM_SERVICE_TOKEN"] = token  # via env, so it never shows in `ps`
    else:
        child_env.pop("GRIDLLM_SERVICE_TOKEN", None)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=child_env, start_new_session=True)
    _CHILDREN[process.pid] = process
    url = f"http://{host}:{port}{API_PREFIX}"
    service = LocalService(url, process, log_path, token, scratch=scratch)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ConfigError(f"the local service {describe_exit(process.returncode)} before it answered "
                              f"({log_tail(log_path)})")
        if is_running(url, token):
            return service
        if time.monotonic() > deadline:
            service.stop()
            raise ConfigError(f"the local service did not answer within {timeout:g} s, so it was stopped "
                              f"({log_tail(log_path)})")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not; our own children are reaped here)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _is_service(pid: int) -> bool:
    """Whether ``pid`` is our service, not an unrelated process that reused the number."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)  # no /proc (macOS): trust the state file
    return b"gridllm_nb.service" in cmdline or b"gridllm-nb" in cmdline


def background_idle_timeout() -> float | None:
    """``$GRIDLLM_IDLE_TIMEOUT`` seconds (``0``/``none``: never), else 1800."""
    raw = os.environ.get(IDLE_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT
    if raw in ("0", "none", "never", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{IDLE_ENV} must be a number of seconds (0: never), got {raw!r}") from None
    return value if value > 0 else None


def diagnose(url: str) -> str | None:
    """What happened to the background service behind ``url``, if one was started there.

    ``the local service at URL (pid N) exited with SIGSEGV (log …: "…")``;
    None when no state file names one (nothing local was involved).
    """
    port = urlsplit(url).port or 80
    state = read_state(port)
    if state is None:
        return None
    child = _CHILDREN.get(state.pid)
    if child is not None and child.poll() is not None:
        how = describe_exit(child.returncode)
    elif not _alive(state.pid):
        how = "is no longer running"
    else:
        how = "is running but does not answer"
    return f"the local service at {state.url} (pid {state.pid}) {how} ({log_tail(state.log)})"


def _check_can_start(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or DEFAULT_HOST
    if not is_loopback(host):
        raise ConfigError(f"cannot start a local service for {url}: not a loopback address")
    missing = [m for m in ("llama_cpp", "fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError("the local service needs its extras: pip install 'gridllm_nb[local]'")
    return host, parts.port or 80


def _reuse_or_clear(state: ServiceState, url: str, token: str | None, wait: float = 5.0) -> bool:
    """With the lock held: True if the recorded service answers (give it ``wait`` s); else clear it.

    A state file whose pid is gone (or is someone else's now) is stale and is
    removed. A live service that does not answer is not replaced (it holds
    the port): that is an error naming it, its log and the way to stop it.
    """
    if not (_alive(state.pid) and _is_service(state.pid)):
        forget_state(state.port)
        return False
    deadline = time.monotonic() + wait
    code = None
    while time.monotonic() < deadline:
        code = _health(url, token)
        if code == 200:
            return True
        if code is not None:
            break
        time.sleep(0.2)
    if code in (401, 403):
        raise ConfigError(f"the local service at {url} (pid {state.pid}) refuses the token: it was started with "
                          "another one; stop it with `gridllm-nb local stop`")
    raise ConfigError(f"the local service at {url} (pid {state.pid}) is running but does not answer; stop it with "
                      f"`gridllm-nb local stop` ({log_tail(state.log)})")


def ensure_local_service(
    url: str,
    *,
    token: str | None = None,
    announce: Callable[[str], None] | None = print,
    timeout: float = 120.0,
) -> LocalService | None:
    """Start the background service behind a loopback ``url`` unless something answers there.

    Returns None when a service already answers (this user's background one,
    or a foreground ``gridllm-nb serve``); otherwise the handle of the one
    started now, which is *not* stopped when this process exits: it stops
    itself after ``$GRIDLLM_IDLE_TIMEOUT`` seconds (default 1800) with no
    jobs and no requests, or with ``gridllm-nb local stop``.
    """
    if is_running(url, token):
        return None
    host, port = _check_can_start(url)
    idle = background_idle_timeout()
    with _ensure_lock, locked(port):
        if is_running(url, token):  # another kernel started it while we waited for the lock
            return None
        state = read_state(port)
        if state is not None and _reuse_or_clear(state, url, token):
            return None
        log_path = service_log_path(port)
        with contextlib.suppress(OSError):
            log_path.replace(log_path.with_name(log_path.name + ".1"))  # keep the previous run's log
        # The user's own database (as `gridllm-nb serve` uses), so jobs outlive every kernel.
        service = start_service(host=host, port=port, token=token, db=default_db_path(), log_path=log_path,
                                idle_timeout=idle, timeout=timeout)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_state(ServiceState(pid=service.pid, url=service.url, port=port, log=str(log_path),
                                  started=started, idle_timeout=idle))
    if announce is not None:
        stops = (f"stops after {idle / 60:g} min idle" if idle >= 120 else f"stops after {idle:g} s idle") \
            if idle else "runs until stopped"
        announce(f"gridllm_nb: started the local service at {service.url} in the background "
                 f"(pid {service.pid}; {stops}; `gridllm-nb local stop` stops it; log {log_path})")
    return service


def stop_background_service(port: int, timeout: float = 10.0) -> str | None:
    """Stop the background service on ``port`` (SIGTERM, wait, SIGKILL); a one-line report.

    None when no state file names one (nothing to stop here).
    """
    with locked(port):
        state = read_state(port)
        if state is None:
            problem = unreadable_state(port)
            if problem is None:
                return None
            return (f"cannot stop the background local service on port {port}: {problem}; if one still "
                    f"answers there, end its process by hand, then remove that file")
        if not (_alive(state.pid) and _is_service(state.pid)):
            forget_state(port)
            return f"the local service at {state.url} (pid {state.pid}) was not running; its state file is removed"
        how = ""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                if os.getpgid(state.pid) == state.pid:
                    os.killpg(state.pid, sig)  # with its model runners, if any
                else:
                    os.kill(state.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(state.pid):
                break
            how = f" with SIGKILL (SIGTERM had no effect in {timeout:g} s)"
        forget_state(port)
        return f"stopped the local service at {state.url} (pid {state.pid}){how}"
