"""Where the service keeps its files, and the background service's state file and lock.

The per-user background service outlives whoever started it, so the next
kernel must find it again: a state file per port says which process serves
there and where it logs (never its token). Every starter and stopper holds
the port's ``flock`` while it reads or writes that file, so two kernels
starting at once start one service. The files are private (0600 in a 0700
folder): other users of the machine learn nothing from them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "STATE_DIR_ENV",
    "ServiceState",
    "default_db_path",
    "forget_state",
    "locked",
    "read_state",
    "service_log_path",
    "state_dir",
    "unreadable_state",
    "write_state",
]

STATE_DIR_ENV = "GRIDLLM_STATE_DIR"


def default_db_path() -> Path:
    """``$GRIDLLM_DB``, else ``$XDG_DATA_HOME/gridllm_nb/jobs.sqlite3`` (~/.local/share)."""
    if os.environ.get("GRIDLLM_DB"):
        return Path(os.environ["GRIDLLM_DB"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "gridllm_nb" / "jobs.sqlite3"


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


def service_log_path(port: int) -> Path:
    """The log of the background service on ``port``."""
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
    """The state file of the background service on ``port``; None if absent or unreadable
    (``unreadable_state`` says which)."""
    try:
        return _parse(_state_path(port).read_text())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def unreadable_state(port: int) -> str | None:
    """Why the state file of ``port`` exists but cannot be read (garbled, not ours); None when it is
    absent or reads well. A stopper says it, rather than "no background service"."""
    path = _state_path(port)
    try:
        _parse(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeError) else type(exc).__name__ if isinstance(
            exc, (KeyError, TypeError, AttributeError)) else str(exc).split(":")[0]
        return f"its state file {path} is unreadable ({why})"
    return None


def _parse(text: str) -> ServiceState:
    data = json.loads(text)
    idle = data.get("idle_timeout")
    return ServiceState(pid=int(data["pid"]), url=str(data["url"]), port=int(data["port"]),
                        log=str(data["log"]), started=str(data.get("started", "")),
                        idle_timeout=float(idle) if idle else None)


def write_state(state: ServiceState) -> None:
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
def locked(port: int) -> Iterator[None]:
    """One starter or stopper at a time per port, across processes (``flock``; freed if we die)."""
    fd = os.open(_private_dir() / f"service-{port}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
