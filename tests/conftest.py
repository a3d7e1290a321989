"""Shared fixtures: a real local service on a free port, and a clean environment.

Tests never see the developer's real endpoint or token: the variables are
dropped at import, before any test module reads them.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gridllm_nb.service.launcher import LocalService

for _name in ("GRIDLLM_API_TOKEN", "GRIDLLM_API_URL", "GRIDLLM_SERVICE_TOKEN", "GRIDLLM_DB", "GRIDLLM_MODELS",
              "GRIDLLM_STATE_DIR", "GRIDLLM_IDLE_TIMEOUT"):
    os.environ.pop(_name, None)
# Nor the user's state and data: a background service started by a test keeps its state
# file, log and jobs here, never beside a real one in ~/.local.
_ISOLATED = tempfile.mkdtemp(prefix="gridllm-tests-")
atexit.register(shutil.rmtree, _ISOLATED, True)
os.environ["XDG_STATE_HOME"] = os.path.join(_ISOLATED, "state")
os.environ["XDG_DATA_HOME"] = os.path.join(_ISOLATED, "share")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, as a kernel does."""
    return "asyncio"


@pytest.fixture
def history_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own SQLite history (``$GRIDLLM_HISTORY``), never the user's."""
    path = tmp_path / "history.sqlite3"
    monkeypatch.setenv("GRIDLLM_HISTORY", str(path))
    return path


@pytest.fixture
def over_fake(monkeypatch: pytest.MonkeyPatch):
    """``over_fake(fake)``: the clients the core makes for itself (a retry's, an attach's, a run
    given only a URL) talk to ``fake`` (a ``tests.fakes.FakeJobsAPI``) instead of the network."""
    from gridllm_nb.api.client import JobsClient
    from gridllm_nb.core.results import RunSpec

    def use(fake) -> None:
        def open_client(spec: RunSpec) -> tuple[JobsClient, bool]:
            if spec.client is not None and not spec.client.closed:
                return spec.client, False
            return JobsClient(spec.url, spec.token, transport=fake.transport()), True

        monkeypatch.setattr(RunSpec, "open_client", open_client)

    return use


@pytest.fixture(scope="session")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """The real service (``python -m gridllm_nb.service``) with real models, on 127.0.0.1."""
    from gridllm_nb.service.launcher import start_service

    db: Path = tmp_path_factory.mktemp("service") / "jobs.sqlite3"
    service = start_service(db=db, timeout=180.0)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def service_url(local_service) -> str:
    """Base URL of the session's local service, ``http://127.0.0.1:<port>/remotejobs/v2``."""
    return local_service.url


# -- widget comm messages, recorded instead of sent -------------------------------------


class Wire:
    """Every comm message the widgets send, as (comm_id, msg_type, data), in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []

    def of(self, widget, msg_type: str = "comm_msg") -> list[dict]:
        return [d for cid, t, d in self.sent if cid == widget.model_id and t == msg_type]

    def custom(self, widget) -> list[dict]:
        return [d["content"] for d in self.of(widget) if d.get("method") == "custom"]

    def updates(self, widget) -> list[dict]:
        return [d["state"] for d in self.of(widget) if d.get("method") == "update"]


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    import comm
    from comm.base_comm import BaseComm

    w = Wire()

    class RecordingComm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys) -> None:
            w.sent.append((self.comm_id, msg_type, json.loads(json.dumps(data or {}, default=str))))

    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    return w
