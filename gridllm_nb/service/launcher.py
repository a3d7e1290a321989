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
  is found again through a state file (JSON: pid, url, port, log, started,
  idle timeout; never the token), written under an ``fcntl`` lock so two
  kernels starting at once start one service: the second waits and reuses it.

Every failure message says what happened to the process (exit code or
signal) and quotes the last lines of its log, naming the log's path.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError
from . import API_PREFIX
from .server import default_db_path, is_loopback

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "IDLE_ENV",
    "STATE_DIR_ENV",
    "LocalService",
    "ServiceState",
    "background_idle_timeout",
    "describe_exit",
    "diagnose",
    "ensure_local_service",
    "forget_state",
    "free_port",
    "is_running",
    "log_tail",
    "read_state",
    "start_service",
    "state_dir",
    "stop_background_service",
]

STATE_DIR_ENV = "GRIDLLM_STATE_DIR"
IDLE_ENV = "GRIDLLM_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 1800.0

_ensure_lock = threading.Lock()
# Services this process started: only a parent can learn a child's exit status.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- what happened to a process, in words ---------------------------------------------------


def signal_name(returncode: int) -> str:
    """``SIGSEGV`` for Popen's ``-11`` (a negative return code is the signal that ended it)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int) -> str:
    """``exited with code 2`` or ``exited with SIGSEGV``."""
    if returncode < 0:
        return f"exited with {signal_name(returncode)}"
    return f"exited with code {returncode}"


def log_tail(path: Path | str, lines: int = 3) -> str:
    """``log /x/service.log: "a" / "b" / "c"``: the last non-blank lines, for one-line errors."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"log {path}: unreadable"
    kept = [ln.strip()[:200] for ln in text.splitlines() if ln.strip()]
    tail = kept[-lines:]
    if not tail:
        return f"log {path}: empty"
    quoted = " / ".join(f'"{ln}"' for ln in tail)
    # A crash in native code: faulthandler's first line names it, above a stack that ends the log.
    fatal = [ln for ln in kept[-80:-lines] if ln.startswith("Fatal Python error")]
    if fatal:
        quoted = f'"{fatal[-1]}" … {quoted}'
    return f"log {path}: {quoted}"


# -- an owned service ---------------------------------------------------------------------------


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
    host: str = "127.0.0.1",
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


# -- the background service's state file --------------------------------------------------------


def state_dir() -> Path:
    """``$GRIDLLM_STATE_DIR``, else ``$XDG_STATE_HOME/gridllm_nb`` (``~/.local/state/gridllm_nb``)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV]).expanduser()
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "gridllm_nb"


def _private_dir() -> Path:
    folder = state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        folder.chmod(0o700)
    return folder


def _state_path(port: int) -> Path:
    return state_dir() / f"service-{port}.json"


def _log_path(port: int) -> Path:
    return state_dir() / f"service-{port}.log"


@dataclass(frozen=True)
class ServiceState:
    """What the state file says about a background service (never its token)."""

    pid: int
    url: str
    port: int
    log: str
    started: str
    idle_timeout: float | None = None

    def describe(self) -> str:
        idle = f"after {self.idle_timeout:g} s idle" if self.idle_timeout else "never (no idle timeout)"
        return (f"url: {self.url}\npid: {self.pid}\nlog: {self.log}\nstarted: {self.started}\n"
                f"stops: {idle}")


def read_state(port: int) -> ServiceState | None:
    """The state file of the background service on ``port``; None if absent or unreadable."""
    try:
        data = json.loads(_state_path(port).read_text())
        idle = data.get("idle_timeout")
        return ServiceState(pid=int(data["pid"]), url=str(data["url"]), port=int(data["port"]),
                            log=str(data["log"]), started=str(data.get("started", "")),
                            idle_timeout=float(idle) if idle else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_state(state: ServiceState) -> None:
    """Atomically, mode 0600 in a 0700 folder: other users learn nothing from it."""
    folder = _private_dir()
    path = _state_path(state.port)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as out:
        json.dump(asdict(state), out, indent=2)
    os.replace(tmp, path)


def forget_state(port: int, pid: int | None = None) -> None:
    """Remove the state file of ``port`` (only if it names ``pid``, when given)."""
    if pid is not None:
        state = read_state(port)
        if state is None or state.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        _state_path(port).unlink()


@contextlib.contextmanager
def _locked(port: int) -> Iterator[None]:
    """One starter or stopper at a time per port, across processes (``flock``; freed if we die)."""
    fd = os.open(_private_dir() / f"service-{port}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
    host = parts.hostname or "127.0.0.1"
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
    with _ensure_lock, _locked(port):
        if is_running(url, token):  # another kernel started it while we waited for the lock
            return None
        state = read_state(port)
        if state is not None and _reuse_or_clear(state, url, token):
            return None
        log_path = _log_path(port)
        with contextlib.suppress(OSError):
            log_path.replace(log_path.with_name(log_path.name + ".1"))  # keep the previous run's log
        # The user's own database (as `gridllm-nb serve` uses), so jobs outlive every kernel.
        service = start_service(host=host, port=port, token=token, db=default_db_path(), log_path=log_path,
                                idle_timeout=idle, timeout=timeout)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_state(ServiceState(pid=service.pid, url=service.url, port=port, log=str(log_path),
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
    with _locked(port):
        state = read_state(port)
        if state is None:
            return None
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
