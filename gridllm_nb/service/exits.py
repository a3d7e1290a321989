"""What ended a process, in words: the one describer for the service and its model runners.

A failure message is only useful if it says how the process ended (an exit
code, or the signal that killed it) and quotes what it printed last, naming
the log it printed to; the user then knows what to look at, and where.
"""

from __future__ import annotations

import signal
from pathlib import Path

__all__ = ["describe_exit", "log_tail", "signal_name"]


def signal_name(returncode: int) -> str:
    """``SIGSEGV`` for Popen's ``-11`` (a negative return code is the signal that ended it)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int | None, *, crash: bool = False) -> str:
    """``exited with code 2`` or ``exited with SIGSEGV``.

    With ``crash`` (a model runner, which only ends on a signal when something
    went wrong): ``crashed (SIGSEGV)``, ``was killed (SIGKILL: ...)``, and
    ``stopped answering`` when no exit status came (``returncode`` None).
    """
    if returncode is None:
        return "stopped answering"
    if returncode >= 0:
        return f"exited with code {returncode}"
    name = signal_name(returncode)
    if not crash:
        return f"exited with {name}"
    if name == "SIGKILL":
        return "was killed (SIGKILL: out of memory, or killed by hand)"
    return f"crashed ({name})"


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
