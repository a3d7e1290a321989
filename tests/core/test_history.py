"""The SQLite history: record, recent, and never the token."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.core import history, recorder
from gridllm_nb.core.results import Result, Results
from gridllm_nb.errors import ConfigError


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
    recorder.record(_results("first"), "http://127.0.0.1:8765/remotejobs/v2")
    run_id = recorder.record(_results("second"), "http://127.0.0.1:8765/remotejobs/v2",
                            system="be brief", options={"max_tokens": 8})
    runs = history.recent(5)
    assert [r["prompt"] for r in runs] == ["second", "first"]
    assert runs[0]["run_id"] == run_id
    assert runs[0]["system"] == "be brief" and runs[0]["options"] == {"max_tokens": 8}
    assert [r["tag"] for r in runs[0]["results"]] == ["a:1", "b:2"]
    assert runs[0]["results"][1] == {"tag": "b:2", "prompt_index": None, "prompt": "second", "prompt_row": None,
                                     "job_id": "j2", "state": "failed", "elapsed": 0.5,
                                     "error": "boom", "text": "fo", "submitted_s": None, "started_s": None,
                                     "first_token_s": None, "ended_s": None, "finish": None, "tokens": None,
                                     "checks": None}
    assert len(history.recent(1)) == 1


def test_never_stores_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "tok_SUPERSECRET_123"
    db = tmp_path / "h.db"
    monkeypatch.setenv(history.HISTORY_ENV, str(db))
    monkeypatch.setenv("GRIDLLM_API_TOKEN", secret)
    res = _results(f"my token is {secret}")
    recorder.record(res, f"https://user:{secret}@api.example.org/remotejobs/v2?token={secret}#{secret}")
    raw = db.read_bytes()
    assert secret.encode() not in raw
    with sqlite3.connect(db) as conn:
        (url,) = conn.execute("SELECT url FROM responses LIMIT 1").fetchone()
    assert url == "https://api.example.org/remotejobs/v2"


def test_clean_url_keeps_port() -> None:
    assert history.clean_url("http://127.0.0.1:8765/remotejobs/v2") == "http://127.0.0.1:8765/remotejobs/v2"


# -- an older file, run ids, and what a run can be made from again -------------------------

_FIRST_SCHEMA = """
CREATE TABLE responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, created TEXT NOT NULL, url TEXT NOT NULL,
    prompt TEXT NOT NULL, system TEXT, options TEXT, tag TEXT NOT NULL, job_id TEXT, state TEXT NOT NULL,
    elapsed REAL, error TEXT, text TEXT NOT NULL);
CREATE INDEX responses_run ON responses (run_id);
CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, run_id TEXT, prompt TEXT NOT NULL,
                    models TEXT NOT NULL, winner TEXT NOT NULL);
"""


def test_a_file_written_by_the_first_version_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with closing_db(db) as conn:
        conn.executescript(_FIRST_SCHEMA)
        conn.execute("INSERT INTO responses (run_id, created, url, prompt, system, options, tag, job_id, state,"
                     " elapsed, error, text) VALUES ('0ld0ld', '2024-05-06T21:26:00+00:00', 'http://h/x', 'old prompt',"
                     " NULL, '{\"max_tokens\": 4}', 'm:1', 'j1', 'failed', 1.5, 'boom', 'half')")
        conn.execute("INSERT INTO votes (created, run_id, prompt, models, winner) VALUES ('t', '0ld0ld', 'p', 'm:1', 'm:1')")
    [run] = history.recent(path=db)
    assert run["prompt"] == "old prompt" and run["hours"] is None and run["options"] == {"max_tokens": 4}
    assert run["results"][0]["state"] == "failed" and run["results"][0]["submitted_s"] is None
    with closing_db(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION
        columns = [row[1] for row in conn.execute("PRAGMA table_info(responses)")]
        assert {"hours", "submitted_s", "ended_s", "finish", "tokens", "checks", "prompt_index", "assessors",
                "prompt_row"} <= set(columns)
        assert conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1  # the arena's votes untouched
    old = history.load_run("0ld", path=db)
    assert old.run_id == "0ld0ld" and old["m:1"].error == "boom" and old.retryable == ["m:1"]
    assert old.spec is not None and old.spec.url == "http://h/x" and dict(old.spec.options) == {"max_tokens": 4}
    recorder.record(_results("new run"), "http://h/x", path=db)  # new runs go into the migrated file
    assert [r["prompt"] for r in history.recent(path=db)] == ["new run", "old prompt"]


def test_a_file_from_before_grids_were_recorded_gets_prompt_index_and_reads_as_before(tmp_path: Path) -> None:
    # issue 22, case 10: grids are one run of the history, their rows keyed by prompt index too
    db = tmp_path / "v2.sqlite3"
    with closing_db(db) as conn:
        conn.executescript(_FIRST_SCHEMA)
        for group in history._ADDED[:2]:
            for name, kind in group:
                conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO responses (run_id, created, url, prompt, tag, job_id, state, text, checks)"
                     " VALUES ('a2a2a2', '2026-11-01T10:00:00+00:00', 'http://h/x', 'v2 prompt', 'm:1', 'j1',"
                     " 'submitted', 'so far', NULL)")
    old = history.load_run("a2a2", path=db)
    assert old["m:1"].text == "so far" and old["m:1"].job_id == "j1" and not old["m:1"].state.terminal
    with closing_db(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION == 4
        assert conn.execute("SELECT prompt_index FROM responses").fetchall() == [(None,)]
    [run] = history.recent(path=db)
    assert not history.is_grid(run) and run["results"][0]["prompt_index"] is None


def closing_db(path: Path):
    from contextlib import closing

    return closing(sqlite3.connect(path, isolation_level=None))


def test_a_run_is_named_by_its_id_or_any_unique_start_of_it(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from types import SimpleNamespace

    db = tmp_path / "h.db"
    ids = iter(["abc111" + "0" * 26, "abc222" + "0" * 26, "def333" + "0" * 26])
    monkeypatch.setattr(recorder.uuid, "uuid4", lambda: SimpleNamespace(hex=next(ids)))
    for prompt in ("first", "second", "third"):
        recorder.record(_results(prompt), "http://h/x", path=db)
    assert history.load_run(path=db).prompt == "third"  # the newest by default
    assert history.load_run("ABC2", path=db).prompt == "second"
    assert history.load_run("abc111" + "0" * 26, path=db).prompt == "first"
    with pytest.raises(ConfigError, match=r"abc names more than one run \(abc11100, abc22200\): give more"):
        history.load_run("abc", path=db)
    with pytest.raises(ConfigError, match="no run fff in the history"):
        history.load_run("fff", path=db)
    with pytest.raises(ConfigError, match="no run x% in the history"):
        history.load_run("x%", path=db)  # no pattern: the start of an id, character for character
    with pytest.raises(ConfigError, match="no runs in the history yet"):
        history.load_run(path=tmp_path / "none.db")


def test_a_stored_run_carries_what_retrying_it_needs_but_no_token(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDLLM_API_TOKEN", "tok_ENV")
    db = tmp_path / "h.db"
    recorder.record(_results("p"), "https://api.example.org/remotejobs/v2", system="be brief",
                   options={"temperature": 0}, hours=2.0, path=db)
    spec = history.load_run(path=db).spec
    assert (spec.prompt, spec.system, dict(spec.options), spec.hours) == ("p", "be brief", {"temperature": 0}, 2.0)
    assert spec.url == "https://api.example.org/remotejobs/v2" and spec.token is None  # the env's, when used
    # A run made on the configured endpoint keeps following the configuration (None), so the
    # local service is started on demand as for a new run.
    recorder.record(_results("q"), "http://127.0.0.1:8765/remotejobs/v2", path=db)
    assert history.load_run(path=db).spec.url is None


@pytest.mark.parametrize("garbage", ["bytes", "folder", "foreign"])
def test_a_file_that_is_no_history_is_one_config_error_for_every_reader(garbage: str, tmp_path: Path) -> None:
    # issue 22, case 1: a raw sqlite3.DatabaseError from recent, load_run (attach) and leaderboard
    from gridllm_nb.core.arena import leaderboard

    path = tmp_path / "history.sqlite3"
    if garbage == "bytes":
        path.write_bytes(b"SQLite format 2\x00 garbage" * 50)
    elif garbage == "folder":
        path.mkdir()
    else:
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("CREATE TABLE responses (x TEXT)")
            conn.execute("CREATE TABLE votes (y TEXT)")
    for read in (lambda: history.recent(path=path), lambda: history.load_run(path=path),
                 lambda: leaderboard(path)):
        with pytest.raises(ConfigError, match=f"cannot read the history {path}"):
            read()


def test_asking_for_more_runs_than_sqlite_can_count_lists_them_all(history_file) -> None:
    # found by tests/cli/test_fuzz.py: `gridllm-nb history 99999999999999999999` raised OverflowError
    recorder.record(_results("only"), "http://127.0.0.1:8765/remotejobs/v2")
    assert [run["prompt"] for run in history.recent(10**30)] == ["only"]
