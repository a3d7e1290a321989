"""Jobs as the API reports them: their states, a job's status, one live update.

Parsing is deliberately tolerant: the public service documents one status
string ("running") and the grid underneath uses others, so unknown strings
and extra keys are kept, never fatal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Job", "JobState", "JobUpdate", "finish_note", "read_entry", "state_from_raw"]


class JobState(str, enum.Enum):
    """Client-side state machine of ``shared/API.md``; the last five never change."""

    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def label(self) -> str:
        """Human form for badges and tables: ``timed out`` rather than ``timed_out``."""
        return self.value.replace("_", " ")

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
)

_RAW_STATES: dict[str, JobState] = {}
for _state, _names in {
    JobState.QUEUED: "created init pending queued unsent waiting assigned",
    JobState.RUNNING: "running in_progress started downloading uploading",
    JobState.COMPLETED: "completed complete done finished success succeeded",
    JobState.FAILED: "error failed failure aborted too_many_error_results no_canonical_result",
    JobState.CANCELLED: "cancelled canceled",
}.items():
    for _name in _names.split():
        _RAW_STATES[_name] = _state


def state_from_raw(raw: str | None, previous: JobState = JobState.SUBMITTED) -> JobState:
    """Map a server status string onto the state machine.

    Terminal states are sticky, and an unknown string keeps the previous state
    (the raw string stays visible on the Job), so a new server word never
    makes a job look finished or broken.
    """
    if previous.terminal:
        return previous
    key = (raw or "").strip().lower().replace(" ", "_").replace("-", "_")
    return _RAW_STATES.get(key, previous)


def _parse_created(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Job:
    """One job as last reported by ``GET /jobs/{ids}``."""

    id: str
    tag: str = ""
    state: JobState = JobState.SUBMITTED
    raw_status: str = ""
    vm_status: str = ""
    log: str = ""
    created: datetime | None = None
    runtime: float | None = None
    copy: int | None = None
    output_files: list[Any] = field(default_factory=list)
    command_line: str = ""
    app: str = ""
    message: str = ""
    # Why generation ended ("stop", "length") and the tokens made: local-service extensions.
    finish: str | None = None
    tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(
        cls, job_id: str, data: Any, previous: JobState = JobState.SUBMITTED
    ) -> Job:
        """Build from one entry of the ``jobs`` object; never raises on odd shapes."""
        data = data if isinstance(data, Mapping) else {}
        inner, vm_status, raw, log = read_entry(data)
        copy = _as_number(data.get("copy"))
        files = inner.get("outputFiles")
        known = {"vmStatus", "states", "created", "copy", "tag", "runtime"}
        return cls(
            id=job_id,
            tag=str(data.get("tag") or ""),
            state=state_from_raw(raw, previous),
            raw_status=raw,
            vm_status=vm_status,
            log=log,
            created=_parse_created(data.get("created")),
            runtime=_as_number(data.get("runtime")),
            copy=int(copy) if copy is not None else None,
            output_files=list(files) if isinstance(files, list) else [],
            command_line=str(inner.get("commandLine") or ""),
            app=str(inner.get("app") or ""),
            # Why a job ended error/cancelled: a local-service extension, absent on the grid.
            message=str(inner.get("message") or ""),
            finish=inner.get("finish") if inner.get("finish") in ("stop", "length") else None,
            tokens=int(tokens) if (tokens := _as_number(inner.get("tokens"))) is not None else None,
            extra={k: v for k, v in data.items() if k not in known},
        )


def read_entry(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str, str]:
    """``(state, vmStatus, raw status, log)`` of one entry of a status answer.

    The one reading of the shape, for ``Job.from_api`` and for the poller's
    check of whether a job changed at all (before it builds anything).
    """
    states = data.get("states")
    states = states if isinstance(states, Mapping) else {}
    inner = states.get("default")
    if not isinstance(inner, Mapping):
        # Keys other than "default" may occur: take the first mapping.
        inner = next((v for v in states.values() if isinstance(v, Mapping)), {})
    vm_status = data.get("vmStatus")
    vm_status = vm_status if isinstance(vm_status, str) else ""
    status = inner.get("status")
    raw = status if isinstance(status, str) and status else vm_status
    log = inner.get("log")
    return inner, vm_status, raw, log if isinstance(log, str) else ""


@dataclass(frozen=True)
class JobUpdate:
    """One live change to one model's answer, as the front ends receive it.

    ``delta`` is what to append; when ``reset`` is true the job restarted
    elsewhere and ``text`` (the whole new log) replaces everything shown.
    A ``reset`` in state SUBMITTED (``JobUpdate.restart``) starts the model
    over: it is about to be submitted again (a retry), so its previous job,
    text, error and times are all dropped.
    """

    tag: str
    job_id: str | None
    state: JobState
    text: str
    delta: str = ""
    reset: bool = False
    error: str | None = None
    elapsed: float = 0.0
    raw_status: str = ""
    finish: str | None = None
    tokens: int | None = None
    restarted: bool = False  # the service's log once failed to continue what was shown (``api.feed``)

    @classmethod
    def restart(cls, tag: str) -> JobUpdate:
        """The update that clears a model before it is submitted again (``Results.retry``)."""
        return cls(tag=tag, job_id=None, state=JobState.SUBMITTED, text="", reset=True)

    @property
    def restarts(self) -> bool:
        """True for ``restart``'s update: whoever shows the model starts it from nothing."""
        return self.reset and self.state is JobState.SUBMITTED and self.job_id is None


def finish_note(state: JobState, finish: str | None, tokens: int | None) -> str:
    """``stopped at 64 tokens`` for an answer the token limit cut short; else nothing.

    Only the local service says why generation ended; elsewhere this is empty.
    """
    if state is JobState.COMPLETED and finish == "length":
        return f"stopped at {tokens} tokens" if tokens else "stopped at the token limit"
    return ""
