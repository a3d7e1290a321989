"""The job lifecycle through the in-process API: queues, cancel, deadlines, restarts, a full disk."""

from __future__ import annotations

import json
import time

import pytest

from tests.service.service_support import BASE, submit, terminal, wait_for


def test_fifo_queue_with_concurrency_one(make_client) -> None:
    client = make_client(slow_delay=0.02)
    ids = [submit(client, f"p{n}", tag="fake:slow", command={"options": {"max_tokens": 10}})[0] for n in range(3)]
    first = wait_for(client, ids[0], lambda j: j["vmStatus"] == "running")
    assert first
    states = client.get(f"{BASE}/jobs/{','.join(ids)}").json()["jobs"]
    assert states[ids[1]]["vmStatus"] == "queued" and states[ids[2]]["vmStatus"] == "queued"
    assert states[ids[2]]["runtime"] == 0 and states[ids[2]]["states"]["default"]["log"] == ""
    for job_id in ids:
        wait_for(client, job_id, terminal)
    manager = client.app.state.manager
    finished = [manager.get([i])[i].finished for i in ids]
    assert finished == sorted(finished)


def test_models_run_side_by_side(make_client) -> None:
    """Each tag has its own queue: a busy model does not hold up another."""
    client = make_client(slow_delay=0.05)
    (slow,) = submit(client, "x", tag="fake:slow", command={"options": {"max_tokens": 100}})
    wait_for(client, slow, lambda j: j["vmStatus"] == "running")
    (fast,) = submit(client, "y", tag="fake:fast")
    assert wait_for(client, fast, terminal)["vmStatus"] == "completed"
    assert client.get(f"{BASE}/jobs/{slow}").json()["jobs"][slow]["vmStatus"] == "running"
    client.delete(f"{BASE}/jobs/{slow}")


def test_cancel_running_keeps_partial_log(make_client) -> None:
    client = make_client(slow_delay=0.05)
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 200}})
    wait_for(client, job_id, lambda j: len(j["states"]["default"]["log"]) >= 6)
    answer = client.delete(f"{BASE}/jobs/{job_id}")
    assert answer.status_code == 200 and answer.json() == {"success": True, "cancelled": [job_id]}
    job = client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]
    assert job["vmStatus"] == job["states"]["default"]["status"] == "cancelled"
    assert job["states"]["default"]["log"].startswith("w0 w1 ")
    assert job["states"]["default"]["message"] == "cancelled by request"
    time.sleep(0.2)
    assert client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]["vmStatus"] == "cancelled"


def test_cancel_queued_and_finished(make_client) -> None:
    client = make_client(slow_delay=0.05)
    running, queued = (submit(client, p, tag="fake:slow", command={"options": {"max_tokens": 100}})[0] for p in "ab")
    (done,) = submit(client, "c", tag="fake:fast")
    wait_for(client, done, terminal)
    answer = client.delete(f"{BASE}/jobs/{queued},{done}")
    assert answer.json() == {"success": True, "cancelled": [queued]}
    assert client.get(f"{BASE}/jobs/{done}").json()["jobs"][done]["vmStatus"] == "completed"
    job = client.get(f"{BASE}/jobs/{queued}").json()["jobs"][queued]
    assert job["vmStatus"] == "cancelled" and job["states"]["default"]["log"] == "" and job["runtime"] == 0
    client.delete(f"{BASE}/jobs/{running}")
    unknown = client.delete(f"{BASE}/jobs/{'0' * 32}")
    assert unknown.status_code == 404 and unknown.json()["success"] is False


def test_hours_limit_ends_error_with_partial_log(make_client) -> None:
    client = make_client(slow_delay=0.05)
    (job_id,) = submit(client, "go", tag="fake:slow", hours=0.0003, command={"options": {"max_tokens": 1000}})
    job = wait_for(client, job_id, terminal, timeout=10)
    default = job["states"]["default"]
    assert default["status"] == "error"
    assert "time limit" in default["message"] and "0.0003 hours" in default["message"]
    assert default["log"].startswith("w0 w1 ") and len(default["log"].split()) < 1000
    assert 1 <= job["runtime"] <= 3


def test_hours_limit_applies_to_a_stuck_backend(make_client) -> None:
    """The housekeeper ends a job whose engine hangs between tokens."""
    client = make_client()
    (job_id,) = submit(client, "hang", hours=0.0003)
    started = time.monotonic()
    job = wait_for(client, job_id, terminal, timeout=10)
    assert job["vmStatus"] == "error" and job["states"]["default"]["log"] == "w0 "
    assert time.monotonic() - started < 3


def test_backend_error_ends_error_with_reason(make_client) -> None:
    client = make_client()
    (job_id,) = submit(client, "fail")
    job = wait_for(client, job_id, terminal)
    assert job["vmStatus"] == "error"
    assert job["states"]["default"]["message"] == "engine exploded badly"
    assert job["states"]["default"]["log"] == "w0 "


def test_invalid_text_from_an_engine_is_repaired(make_client) -> None:
    client = make_client()
    (job_id,) = submit(client, "surrogate")
    job = wait_for(client, job_id, terminal)
    assert job["vmStatus"] == "completed" and job["states"]["default"]["log"] == "ok ? ok"


def test_get_never_waits_on_a_generation(make_client) -> None:
    client = make_client()
    (job_id,) = submit(client, "hang")
    wait_for(client, job_id, lambda j: j["vmStatus"] == "running")
    started = time.perf_counter()
    for _ in range(20):
        assert client.get(f"{BASE}/jobs/{job_id}").status_code == 200
    assert time.perf_counter() - started < 1.0
    client.delete(f"{BASE}/jobs/{job_id}")


def test_restart_keeps_jobs_and_ends_interrupted_ones(make_client, tmp_path) -> None:
    db = tmp_path / "restart.sqlite3"
    first = make_client(db=db, slow_delay=0.05)
    (done,) = submit(first, "finished")
    wait_for(first, done, terminal)
    (running,) = submit(first, "go", tag="fake:slow", command={"options": {"max_tokens": 1000}})
    (queued,) = submit(first, "later", tag="fake:slow")
    wait_for(first, running, lambda j: len(j["states"]["default"]["log"]) >= 9)
    first.__exit__(None, None, None)  # the service stops

    second = make_client(db=db)
    jobs = second.get(f"{BASE}/jobs/{done},{running},{queued}").json()["jobs"]
    assert jobs[done]["vmStatus"] == "completed" and jobs[done]["states"]["default"]["log"] == "".join(f"w{n} " for n in range(8))
    for job_id in (running, queued):
        assert jobs[job_id]["vmStatus"] == "error"
        assert jobs[job_id]["states"]["default"]["message"] == "interrupted by service restart"
    assert jobs[running]["states"]["default"]["log"].startswith("w0 w1 w2 ")


def test_restart_after_a_crash(tmp_path, make_client) -> None:
    """A process killed mid-job leaves 'running' rows; the next start ends them with the reason."""
    from gridllm_nb.service.store import JobRecord, JobStore

    db = tmp_path / "crash.sqlite3"
    store = JobStore(db)
    store.save([JobRecord(id="a" * 32, tag="fake:fast", app="gridrepublic:text-inference",
                          command_line='{"inputs":["x"]}', prompt="x", system=None, options={}, hours=1,
                          created="2024-05-06T21:26:00+00:00", status="running", log="partial", started=time.time() - 5)])
    store.close()
    client = make_client(db=db)
    job = client.get(f"{BASE}/jobs/{'a' * 32}").json()["jobs"]["a" * 32]
    assert job["vmStatus"] == "error" and job["states"]["default"]["log"] == "partial"
    assert job["states"]["default"]["message"] == "interrupted by service restart"
    assert job["created"] == "2024-05-06T21:26:00+00:00" and job["runtime"] >= 5


def test_logs_are_flushed_while_running(make_client, tmp_path) -> None:
    """The store sees the growing log (journaled ~every 100 ms), not only the final one."""
    from gridllm_nb.service.store import JobStore

    db = tmp_path / "flush.sqlite3"
    client = make_client(db=db, slow_delay=0.05)
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 200}})
    wait_for(client, job_id, lambda j: len(j["states"]["default"]["log"]) >= 12)
    time.sleep(0.3)
    stored = JobStore(db, exclusive=False).get([job_id])[job_id]
    assert not stored.terminal and stored.log.startswith("w0 w1 w2 ")
    client.delete(f"{BASE}/jobs/{job_id}")


def test_one_service_per_database(make_client, tmp_path) -> None:
    from gridllm_nb.errors import ConfigError
    from gridllm_nb.service.store import JobStore

    db = tmp_path / "shared.sqlite3"
    make_client(db=db)
    with pytest.raises(ConfigError, match="in use by another gridllm_nb service"):
        JobStore(db)


def test_waiting_jobs_are_bounded_with_429_and_retry_after(make_client) -> None:
    client = make_client(slow_delay=0.2, max_queued=5)
    body = {"app": "gridrepublic:text-inference", "tag": "fake:slow",
            "commandLine": json.dumps({"inputs": [f"p{n}" for n in range(4)]})}
    assert client.post(f"{BASE}/jobs", json=body).status_code == 200
    refused = client.post(f"{BASE}/jobs", json=body)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "10"
    assert refused.json()["success"] is False and "at most 5" in refused.json()["error"]


def test_a_full_database_answers_503_then_recovers(make_client, tmp_path, caplog) -> None:
    client = make_client(db=tmp_path / "full.sqlite3")
    store = client.app.state.manager.store
    (pages,) = store._write.execute("PRAGMA page_count").fetchone()
    store._write.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    body = {"app": "gridrepublic:text-inference", "tag": "fake:fast",
            "commandLine": json.dumps({"inputs": ["x" * 20000]})}
    refused = client.post(f"{BASE}/jobs", json=body)
    assert refused.status_code == 503 and "Retry-After" in refused.headers
    assert refused.json()["error"] == f"database is full: {tmp_path / 'full.sqlite3'}"
    store._write.execute("PRAGMA max_page_count = 1073741823")
    (job_id,) = submit(client, "fine again")
    assert wait_for(client, job_id, terminal)["vmStatus"] == "completed"


def test_old_finished_jobs_are_pruned_at_start(make_client, tmp_path) -> None:
    db = tmp_path / "prune.sqlite3"
    first = make_client(db=db)
    (old,) = submit(first, "old")
    wait_for(first, old, terminal)
    first.__exit__(None, None, None)
    second = make_client(db=db, keep_days=0.0)
    assert second.get(f"{BASE}/jobs/{old}").status_code == 404


def test_an_unusable_database_is_one_line(tmp_path) -> None:
    from gridllm_nb.errors import ConfigError
    from gridllm_nb.service.http.app import create_app

    (tmp_path / "jobs.sqlite3").mkdir()  # a folder where the file should be
    with pytest.raises(ConfigError) as caught:
        create_app(db=tmp_path / "jobs.sqlite3")
    assert "\n" not in str(caught.value) and str(tmp_path / "jobs.sqlite3") in str(caught.value)


def test_a_full_disk_mid_job_logs_one_line_and_loses_nothing(make_client, tmp_path, caplog) -> None:
    client = make_client(db=tmp_path / "mid.sqlite3", slow_delay=0.02)
    store = client.app.state.manager.store
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 60}})
    wait_for(client, job_id, lambda j: j["vmStatus"] == "running")
    (pages,) = store._write.execute("PRAGMA page_count").fetchone()
    store._write.execute(f"PRAGMA max_page_count = {pages}")
    store.journal_path.unlink()
    store.journal_path.mkdir()  # appends to the journal fail too (EISDIR), as on a full disk
    with caplog.at_level("WARNING", logger="gridllm_nb.service"):
        time.sleep(1.5)  # the job ends meanwhile; ~15 flushes fail
    problems = [r for r in caplog.records if "cannot save jobs" in r.getMessage()]
    assert len(problems) == 1 and problems[0].exc_info is None
    assert client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]["vmStatus"] == "completed"
    store.journal_path.rmdir()
    store._write.execute("PRAGMA max_page_count = 1073741823")
    time.sleep(0.5)
    from gridllm_nb.service.store import JobStore

    saved = JobStore(tmp_path / "mid.sqlite3", exclusive=False).get([job_id])[job_id]
    assert saved.status == "completed" and saved.log == "".join(f"w{n} " for n in range(60))
