"""nbval runs these notebooks against a real local service started here.

Kernels inherit this process's environment, so the service URL and a
throwaway history file are set before nbval starts any kernel. nbval's
items are not pytest functions, so this uses session hooks, not fixtures.
"""

from __future__ import annotations

import os
import tempfile

import pytest

for _name in ("GRIDLLM_API_TOKEN", "GRIDLLM_API_URL"):
    os.environ.pop(_name, None)

_state: dict[str, object] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    from gridllm_nb.service.launcher import start_service

    tmp = tempfile.TemporaryDirectory(prefix="gridllm-nb-")
    _state["tmp"] = tmp
    os.environ["GRIDLLM_HISTORY"] = os.path.join(tmp.name, "history.sqlite3")
    service = start_service(db=os.path.join(tmp.name, "jobs.sqlite3"), timeout=180.0)
    _state["service"] = service
    os.environ["GRIDLLM_API_URL"] = service.url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    service = _state.pop("service", None)
    if service is not None:
        service.stop()  # type: ignore[attr-defined]
    tmp = _state.pop("tmp", None)
    if tmp is not None:
        tmp.cleanup()  # type: ignore[attr-defined]
