"""The per-user background service: one per port, outlives its starter, idles out, stops on request.

Every test runs in its own state folder, database and port (127.0.0.1 only),
and stops what it started. No model is loaded: the service loads models on
the first job, and these tests never submit one to a real model.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridllm_nb.errors import ConfigError
from gridllm_nb.service import launcher
from gridllm_nb.service.launcher import (
    diagnose,
    ensure_local_service,
    free_port,
    is_running,
    read_state,
    start_service,
    stop_background_service,
)
from gridllm_nb.service.state import state_dir

pytest.importorskip("uvicorn")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state folder and database; whatever background service a test leaves is stopped."""
    monkeypatch.setenv("GRIDLLM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GRIDLLM_DB", str(tmp_path / "jobs.sqlite3"))
    monkeypatch.delenv("GRIDLLM_IDLE_TIMEOUT", raising=False)
    yield tmp_path
    folder = tmp_path / "state"
    for file in folder.glob("service-*.json") if folder.exists() else []:
        stop_background_service(int(file.stem.split("-")[1]), timeout=5)


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/remotejobs/v2"


def _starter(url: str) -> str:
    """A separate Python process that ensures the service and exits at once."""
    return (
        "import sys\n"
        "from gridllm_nb.service.launcher import ensure_local_service\n"
        f"s = ensure_local_service({url!r}, announce=None)\n"
        "print('started', s.pid if s else 'reused', flush=True)\n"
    )


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_two_starters_at_once_start_exactly_one_service(home: Path) -> None:
    port = free_port()
    url = _url(port)
    procs = [subprocess.Popen([sys.executable, "-c", _starter(url)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ)) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(o[1] == "reused" for o in outs) == [False, True], outs  # one started, one waited and reused
    pid = int(next(o[1] for o in outs if o[1] != "reused"))
    state = read_state(port)
    assert state is not None and state.pid == pid and state.url == url
    assert is_running(url)  # both starters have exited: the service lives on


def test_the_service_outlives_its_starter_and_its_state_file_is_private(home: Path) -> None:
    port = free_port()
    url = _url(port)
    done = subprocess.run([sys.executable, "-c", _starter(url)], check=False, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, GRIDLLM_SERVICE_TOKEN="", GRIDLLM_API_TOKEN=""))
    assert done.returncode == 0 and done.stdout.startswith("started"), done.stderr
    time.sleep(0.5)
    assert is_running(url)
    path = state_dir() / f"service-{port}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(state_dir().stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert set(data) == {"pid", "url", "port", "log", "started", "idle_timeout"}
    assert data["idle_timeout"] == 1800 and Path(data["log"]).parent == state_dir()
    # a new caller finds it and reuses it
    assert ensure_local_service(url, announce=None) is None


def test_the_token_is_never_written_to_the_state_file_or_announced(home: Path) -> None:
    port = free_port()
    said: list[str] = []
    service = ensure_local_service(_url(port), token="tok-secret-42", announce=said.append)
    assert service is not None and is_running(service.url, "tok-secret-42")
    text = (state_dir() / f"service-{port}.json").read_text()
    assert "tok-secret-42" not in text and "tok-secret-42" not in " ".join(said)
    assert "in the background" in said[0] and "local stop" in said[0] and str(service.log_path) in said[0]


def test_a_stale_state_file_is_replaced(home: Path) -> None:
    port = free_port()
    folder = state_dir()
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / f"service-{port}.json").write_text(json.dumps(
        {"pid": dead.pid, "url": _url(port), "port": port, "log": "/nonexistent", "started": "", "idle_timeout": None}))
    service = ensure_local_service(_url(port), announce=None)
    assert service is not None and read_state(port).pid == service.pid


def test_idle_shutdown_removes_the_state_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLLM_IDLE_TIMEOUT", "2")
    port = free_port()
    service = ensure_local_service(_url(port), announce=None)
    assert service is not None and read_state(port).idle_timeout == 2
    assert _wait_until(lambda: service.process.poll() is not None, 20), "still running after 2 s idle"
    assert service.process.returncode == 0
    assert read_state(port) is None and not (state_dir() / f"service-{port}.json").exists()
    assert "idle for 2 s: stopped" in service.log_path.read_text()


def test_foreground_serve_has_no_idle_timeout_by_default(tmp_path: Path) -> None:
    """``gridllm-nb serve`` in the foreground keeps serving as it always did."""
    with start_service(db=tmp_path / "f.sqlite3", timeout=60) as service:
        time.sleep(0.3)
        assert is_running(service.url)
        assert "stops after" not in service.log_path.read_text()


def test_local_stop_and_status_from_the_cli(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gridllm_nb.cli import main

    port = free_port()
    url = _url(port)
    service = ensure_local_service(url, announce=None)
    assert main(["local", "status", "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert f"url: {url}" in out and f"pid: {service.pid}" in out and "log: " in out and "1800 s idle" in out
    assert main(["local", "stop", "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"stopped the local service at {url} (pid {service.pid})" in out
    assert service.process.poll() is not None and not is_running(url) and read_state(port) is None
    assert main(["local", "stop", "--port", str(port)]) == 0
    assert "no background local service" in capsys.readouterr().out
    assert main(["local", "status", "--port", str(port)]) == 1
    assert "not running" in capsys.readouterr().out


def test_local_stop_kills_a_service_that_ignores_sigterm(home: Path) -> None:
    port = free_port()
    service = ensure_local_service(_url(port), announce=None)
    os.kill(service.pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    said = stop_background_service(port, timeout=0.5)
    assert said is not None and "with SIGKILL" in said and service.process.poll() is not None


def test_a_dead_service_is_described_by_its_signal_and_log(home: Path) -> None:
    port = free_port()
    url = _url(port)
    service = ensure_local_service(url, announce=None)
    os.kill(service.pid, signal.SIGSEGV)
    assert _wait_until(lambda: service.process.poll() is not None, 10)
    what = diagnose(url)
    assert what is not None and "exited with SIGSEGV" in what and str(service.log_path) in what
    assert "Segmentation fault" in what  # faulthandler's line, quoted from the log
    assert diagnose(_url(free_port())) is None  # nothing local there


def test_a_service_that_cannot_start_says_its_exit_code_and_last_log_lines(tmp_path: Path) -> None:
    bad = tmp_path / "models.toml"
    bad.write_text('[models."a"]\nbackend = "nope"\n')
    with pytest.raises(ConfigError) as info:
        start_service(models=bad, timeout=60)
    message = str(info.value)
    assert "exited with code 2" in message and "service.log" in message and "backend must be one of" in message


def test_a_service_killed_by_a_signal_at_start_says_which(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, signal, sys\nprint('loading the engine', file=sys.stderr, flush=True)\n"
        "print('about to crash', file=sys.stderr, flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with pytest.raises(ConfigError) as info:
        start_service(db=tmp_path / "x.sqlite3", env=env, timeout=60)
    message = str(info.value)
    assert "exited with SIGSEGV" in message and "service.log" in message
    assert '"loading the engine" / "about to crash"' in message and "\n" not in message


def test_idle_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDLLM_IDLE_TIMEOUT", raising=False)
    assert launcher.background_idle_timeout() == 1800
    for raw, value in (("60", 60.0), ("0", None), ("none", None)):
        monkeypatch.setenv("GRIDLLM_IDLE_TIMEOUT", raw)
        assert launcher.background_idle_timeout() == value
    monkeypatch.setenv("GRIDLLM_IDLE_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="GRIDLLM_IDLE_TIMEOUT"):
        launcher.background_idle_timeout()
