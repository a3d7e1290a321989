"""The background service's state file: read, written, and said when it cannot be read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gridllm_nb.service import state
from gridllm_nb.service.launcher import stop_background_service


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(state.STATE_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe", b'{"pid": "x"}', b"[1, 2]", b'{"url": 1}'])
def test_an_unreadable_state_file_is_said_by_local_stop_and_status(state_dir: Path, garbage: bytes) -> None:
    # issue 22, case 5: `local stop` said "something else answers there" and never that the file was garbled
    from gridllm_nb.core.local import local

    path = state_dir / "service-1.json"
    path.write_bytes(garbage)
    assert state.read_state(1) is None
    assert state.unreadable_state(1).startswith(f"its state file {path} is unreadable (")
    said = stop_background_service(1)
    assert said is not None and f"its state file {path} is unreadable" in said and "\n" not in said
    out = io.StringIO()
    local("status", "http://127.0.0.1:1/remotejobs/v2", out)
    assert out.getvalue().startswith("local service at http://127.0.0.1:1/remotejobs/v2: not running, but its state "
                                     f"file {path} is unreadable")
    out = io.StringIO()
    local("stop", "http://127.0.0.1:1/remotejobs/v2", out)
    assert "is unreadable" in out.getvalue()


def test_an_absent_state_file_is_no_problem(state_dir: Path) -> None:
    assert state.read_state(2) is None and state.unreadable_state(2) is None
    assert stop_background_service(2) is None
