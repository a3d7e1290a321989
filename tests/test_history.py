"""The SQLite history: record, recent, and never the token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gridllm_nb import history
from gridllm_nb.jobs import JobState
from gridllm_nb.results import Result, Results


def _results(prompt: str = "What is 2+2?") -> Results:
    return Results(prompt, {
        "a:1": Result(tag="a:1", job_id="j1", text="4", state=JobState.COMPLETED, elapsed=1.23456),
        "b:2": Result(tag="b:2", job_id="j2", text="fo", state=JobState.FAILED, error="boom", elapsed=0.5),
    })


def test_default_path_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(history.HISTORY_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert history.history_path() == tmp_path / ".local/share/gridllm_nb/history.sqlite3"
    monkeypatch.setenv(history.HISTORY_ENV, str(tmp_path / "h.db"))
    assert history.history_path() == tmp_path / "h.db"


def test_record_and_recent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(history.HISTORY_ENV, str(tmp_path / "sub" / "h.db"))
    assert history.recent() == []
    history.record(_results("first"), "http://127.0.0.1:8765/remotejobs/v2")
    run_id = history.record(_results("second"), "http://127.0.0.1:8765/remotejobs/v2",
                            system="be brief", options={"max_tokens": 8})
    runs = history.recent(5)
    assert [r["prompt"] for r in runs] == ["second", "first"]
    assert runs[0]["run_id"] == run_id
    assert runs[0]["system"] == "be brief" and runs[0]["options"] == {"max_tokens": 8}
    assert [r["tag"] for r in runs[0]["results"]] == ["a:1", "b:2"]
    assert runs[0]["results"][1] == {"tag": "b:2", "job_id": "j2", "state": "failed", "elapsed": 0.5,
                                     "error": "boom", "text": "fo"}
    assert len(history.recent(1)) == 1


def test_never_stores_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "tok_SUPERSECRET_123"
    db = tmp_path / "h.db"
    monkeypatch.setenv(history.HISTORY_ENV, str(db))
    monkeypatch.setenv("GRIDLLM_API_TOKEN", secret)
    res = _results(f"my token is {secret}")
    history.record(res, f"https://user:{secret}@api.example.org/remotejobs/v2?token={secret}#{secret}")
    raw = db.read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(db) as conn:
        (url,) = conn.execute("SELECT url FROM responses LIMIT 1").fetchone()
    assert url == "https://api.example.org/remotejobs/v2"


def test_clean_url_keeps_port() -> None:
    assert history.clean_url("http://127.0.0.1:8765/remotejobs/v2") == "http://127.0.0.1:8765/remotejobs/v2"
