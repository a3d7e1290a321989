"""Serving from the command line: arguments, loopback rule, and the subprocess launcher."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gridllm_nb.config import is_loopback
from gridllm_nb.errors import ConfigError
from gridllm_nb.service.launcher import free_port, is_running, start_service
from gridllm_nb.service.server import add_serve_arguments, serve_from_args
from gridllm_nb.service.state import default_db_path


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDLLM_DB", raising=False)
    args = _parse()
    assert (args.host, args.port, args.db, args.token) == ("127.0.0.1", 8765, None, None)
    assert default_db_path().parts[-3:] == ("share", "gridllm_nb", "jobs.sqlite3") or "XDG_DATA_HOME" in os.environ
    monkeypatch.setenv("GRIDLLM_DB", "/tmp/x.sqlite3")
    assert default_db_path() == Path("/tmp/x.sqlite3")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                             ("0.0.0.0", False), ("192.168.1.5", False), ("example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_refuses_public_host_without_token(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDLLM_SERVICE_TOKEN", raising=False)
    assert serve_from_args(_parse("--host", "0.0.0.0")) == 2
    err = capsys.readouterr().err
    assert "refusing to bind 0.0.0.0 without a token" in err and err.count("\n") == 1


def test_module_entry_point_refuses_too() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRIDLLM_SERVICE_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "gridllm_nb.service", "--host", "0.0.0.0", "--port", str(free_port())],
                          check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "refusing" in done.stderr


def test_is_running_on_a_closed_port() -> None:
    assert is_running(f"http://127.0.0.1:{free_port()}/remotejobs/v2") is False


def test_start_with_token_and_stop(tmp_path: Path) -> None:
    import httpx

    service = start_service(db=tmp_path / "t.sqlite3", token="tok-123", timeout=60)
    with service:
        assert is_running(service.url) is False  # 401 without the token
        assert is_running(service.url, token="tok-123") is True
        assert "tok-123" not in repr(service)
        answer = httpx.get(f"{service.url}/health")
        assert answer.status_code == 401 and answer.json()["success"] is False
        log_text = service.log_path.read_text()
        assert "tok-123" not in log_text
        assert "tok-123" not in " ".join(service.process.args)
    assert service.process.poll() is not None
    service.stop()  # idempotent


def test_bad_requests_over_real_http(tmp_path: Path) -> None:
    """The JSON error shape holds through uvicorn too (long URLs, big bodies, bad ids)."""
    import httpx

    with start_service(db=tmp_path / "h.sqlite3", timeout=60) as service:
        url = service.url
        ids = ",".join(f"{n:032x}" for n in range(501))
        for answer, status in (
            (httpx.get(f"{url}/jobs/{ids}"), 400),
            (httpx.get(f"{url}/jobs/{ids.split(',', 1)[1]}"), 404),
            (httpx.get(f"{url}/jobs/not-an-id"), 400),
            (httpx.post(f"{url}/jobs", content=b"{" + b" " * (1024 * 1024 + 1)), 413),
            (httpx.post(f"{url}/jobs", content=b"nope", headers={"Content-Type": "application/json"}), 400),
            (httpx.post(f"{url}/jobs", json={"commandLine": "{'input': ['x']}", "tag": "nope"}), 400),
        ):
            assert answer.status_code == status, answer.text
            assert answer.json()["success"] is False


def test_the_token_comes_from_a_file_or_the_environment_not_ps(tmp_path: Path, monkeypatch, capsys) -> None:
    from gridllm_nb.service.server import read_token

    monkeypatch.delenv("GRIDLLM_SERVICE_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    assert read_token(_parse("--token-file", str(secret))) == "s3cret"
    monkeypatch.setenv("GRIDLLM_SERVICE_TOKEN", "from-env")
    assert read_token(_parse()) == "from-env"
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("GRIDLLM_SERVICE_TOKEN")
    assert read_token(_parse("--token", "visible")) == "visible"
    assert "warning: --token shows the token to every user" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot read the token file"):
        read_token(_parse("--token-file", str(tmp_path / "missing")))


def test_a_service_started_with_a_token_file_refuses_requests_without_it(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GRIDLLM_SERVICE_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "gridllm_nb.service", "--port", str(port), "--token-file", str(secret),
                             "--db", str(tmp_path / "jobs.sqlite3")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/remotejobs/v2/health"
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer file-token"}).status_code == 200
        assert "file-token" not in " ".join(Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0"))
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
