"""The HTTP API in-process (real app, jobs and SQLite store; fake engine): shapes and lifecycle."""

from __future__ import annotations

import json
import re
import time

import pytest
from service_support import BASE, submit, terminal, wait_for

HEX32 = re.compile(r"[0-9a-f]{32}")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")

SEED_SUBMIT = {
    "app": "gridrepublic:text-inference",
    "commandLine": "{'input': ['When does 1+1=10?'] }",
    "tag": "fake:fast",
}


def test_seed_submit_and_status_shapes(make_client) -> None:
    client = make_client()
    answer = client.post(f"{BASE}/jobs", json=SEED_SUBMIT)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"success", "ids"} and body["success"] is True
    (job_id,) = body["ids"]
    assert HEX32.fullmatch(job_id)

    job = wait_for(client, job_id, terminal)
    status = client.get(f"{BASE}/jobs/{job_id}").json()
    assert set(status) == {"success", "jobs"} and status["success"] is True
    assert list(status["jobs"]) == [job_id]
    assert set(job) == {"vmStatus", "states", "created", "copy", "tag", "runtime"}
    assert set(job["states"]) == {"default"}
    assert set(job["states"]["default"]) == {"status", "outputFiles", "log", "commandLine", "app"}
    default = job["states"]["default"]
    assert default["status"] == job["vmStatus"] == "completed"
    assert default["outputFiles"] == []
    assert default["log"] == "".join(f"w{n} " for n in range(8))
    assert default["commandLine"] == '{"inputs":["When does 1+1=10?"]}'
    assert default["app"] == "gridrepublic:text-inference"
    assert ISO_UTC.fullmatch(job["created"])
    assert job["copy"] == 0 and job["tag"] == "fake:fast"
    assert isinstance(job["runtime"], int) and job["runtime"] >= 0


def test_api_md_example_commandline_is_echoed_byte_for_byte(make_client) -> None:
    client = make_client()
    body = {"app": "gridrepublic:text-inference", "commandLine": '{"inputs":["How can 1+1=10?"]}', "tag": "fake:fast", "hours": 1}
    (job_id,) = client.post(f"{BASE}/jobs", json=body).json()["ids"]
    raw = client.get(f"{BASE}/jobs/{job_id}").text
    assert '"commandLine":"{\\"inputs\\":[\\"How can 1+1=10?\\"]}"' in raw


def test_charityengine_app_and_one_job_per_input(make_client) -> None:
    client = make_client()
    body = {"app": "charityengine:text-inference", "commandLine": json.dumps({"inputs": ["a", "b", "c"]}), "tag": "fake:fast"}
    ids = client.post(f"{BASE}/jobs", json=body).json()["ids"]
    assert len(ids) == 3 and len(set(ids)) == 3
    jobs = client.get(f"{BASE}/jobs/{','.join(ids)}").json()["jobs"]
    assert list(jobs) == ids
    assert [json.loads(j["states"]["default"]["commandLine"]) for j in jobs.values()] == [
        {"inputs": ["a"]}, {"inputs": ["b"]}, {"inputs": ["c"]}]


def test_unicode_prompt_round_trip(make_client) -> None:
    client = make_client()
    prompt = 'quote " backslash \\ newline \n braces {} ünï 🎉'
    (job_id,) = submit(client, prompt)
    echoed = client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]["states"]["default"]["commandLine"]
    assert json.loads(echoed) == {"inputs": [prompt]}


def test_system_and_options_reach_the_backend(make_client) -> None:
    client = make_client()
    (job_id,) = submit(client, "echo", command={"system": "SYS", "options": {"num_predict": 3, "temperature": 0}})
    job = wait_for(client, job_id, terminal)
    assert job["states"]["default"]["log"] == "SYS|echo"
    request = client.app.state.fake_backends["fake:fast"].calls[-1]
    assert request.max_tokens == 3 and request.temperature == 0.0 and request.system == "SYS"
    assert json.loads(job["states"]["default"]["commandLine"])["options"] == {"max_tokens": 3, "temperature": 0.0}


def test_partial_log_visible_while_running(make_client) -> None:
    client = make_client(slow_delay=0.05)
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 60}})
    job = wait_for(client, job_id, lambda j: j["vmStatus"] == "running" and len(j["states"]["default"]["log"]) > 0)
    partial = job["states"]["default"]["log"]
    assert partial.startswith("w0 ") and len(partial) < len("".join(f"w{n} " for n in range(60)))
    later = wait_for(client, job_id, lambda j: len(j["states"]["default"]["log"]) > len(partial))
    assert later["states"]["default"]["log"].startswith(partial)
    client.delete(f"{BASE}/jobs/{job_id}")


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


def test_models_and_health(make_client) -> None:
    client = make_client()
    models = client.get(f"{BASE}/models").json()
    assert models["success"] is True
    assert models["models"][0] == {"tag": "fake:fast", "backend": "llama_cpp", "local": True, "mode": "chat",
                                   "max_tokens": 8, "description": "fast fake"}
    assert client.get(f"{BASE}/health").json() == {"success": True, "status": "ok", "models": ["fake:fast", "fake:slow"],
                                                "runners": {}}


def test_token_guards_every_route(make_client) -> None:
    client = make_client(token="s3cret-token")
    for method, path in (("GET", "/health"), ("GET", "/models"), ("GET", f"/jobs/{'a' * 32}"), ("POST", "/jobs"),
                         ("DELETE", f"/jobs/{'a' * 32}")):
        answer = client.request(method, BASE + path)
        assert answer.status_code == 401, path
        assert answer.json()["success"] is False and "s3cret" not in answer.text
    assert client.get(f"{BASE}/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/openapi.json").status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert client.get(f"{BASE}/health", headers=good).status_code == 200
    answer = client.post(f"{BASE}/jobs", json=SEED_SUBMIT, headers=good)
    assert answer.status_code == 200


def test_openapi_marks_local_extensions(make_client) -> None:
    spec = make_client().get("/openapi.json").json()
    paths = spec["paths"]
    assert {f"{BASE}/jobs", f"{BASE}/jobs/{{ids}}", f"{BASE}/models", f"{BASE}/health"} <= set(paths)
    assert "Local extension" in paths[f"{BASE}/jobs/{{ids}}"]["delete"]["description"]
    assert "Local extension" in paths[f"{BASE}/models"]["get"]["description"]
    assert "Local extension" in paths[f"{BASE}/health"]["get"]["description"]
    assert "Local extensions" in json.dumps(spec["components"]["schemas"]["SubmitRequest"])


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
    from gridllm_nb.service.app import create_app

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


def test_bulk_status_sends_only_what_each_log_grew_by(make_client) -> None:
    """``POST /jobs/status`` (local extension): many ids in one body, each log past ``logFrom``."""
    client = make_client()
    body = {"app": "gridrepublic:text-inference", "commandLine": json.dumps({"inputs": ["a", "b"]}), "tag": "fake:fast"}
    first, second = client.post(f"{BASE}/jobs", json=body).json()["ids"]
    whole = wait_for(client, first, terminal)["states"]["default"]["log"]
    wait_for(client, second, terminal)
    unknown = "0" * 32
    answer = client.post(f"{BASE}/jobs/status", json={"ids": [first, second, unknown], "logFrom": {first: 4}})
    assert answer.status_code == 200
    jobs = answer.json()["jobs"]
    assert list(jobs) == [first, second]  # an unknown id is left out, as in GET
    assert jobs[first]["states"]["default"]["log"] == whole[4:] and jobs[first]["states"]["default"]["logFrom"] == 4
    assert jobs[second]["states"]["default"]["log"] == whole and "logFrom" not in jobs[second]["states"]["default"]
    # nothing known: an empty answer, never a 404 (which would read as "no such endpoint")
    assert client.post(f"{BASE}/jobs/status", json={"ids": [unknown]}).json() == {"success": True, "jobs": {}}
    too_many = client.post(f"{BASE}/jobs/status", json={"ids": [f"{n:032x}" for n in range(1001)]})
    assert too_many.status_code == 400 and "limit is 1000" in too_many.json()["error"]
    assert client.post(f"{BASE}/jobs/status", json={"ids": ["nope"]}).status_code == 400


def test_bulk_status_sends_a_running_job_brief_and_an_ended_one_whole(make_client) -> None:
    """While a job runs, a bulk answer holds only what changes between polls; at the end, everything."""
    client = make_client()
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 1000}})
    wait_for(client, job_id, lambda j: len(j["states"]["default"]["log"]) >= 6)
    live = client.post(f"{BASE}/jobs/status", json={"ids": [job_id], "logFrom": {job_id: 3}}).json()["jobs"][job_id]
    assert live["vmStatus"] == "running" and set(live) == {"vmStatus", "states"}
    assert set(live["states"]["default"]) == {"status", "log", "logFrom"} and live["states"]["default"]["logFrom"] == 3
    client.delete(f"{BASE}/jobs/{job_id}")
    ended = client.post(f"{BASE}/jobs/status", json={"ids": [job_id], "logFrom": {job_id: 3}}).json()["jobs"][job_id]
    whole = client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]
    assert ended["states"]["default"].pop("logFrom") == 3
    ended["states"]["default"]["log"] = whole["states"]["default"]["log"][:3] + ended["states"]["default"]["log"]
    assert ended == whole  # message, commandLine, tag, runtime: all there once it ended


def _watch(client, body: dict) -> list[dict]:
    with client.stream("POST", f"{BASE}/jobs/watch", json=body) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in answer.iter_lines() if line]


def test_watch_streams_what_changed_then_each_ended_job_whole_then_ends(make_client) -> None:
    """``POST /jobs/watch`` (local extension): one response, a JSON line whenever something changed."""
    client = make_client()
    (slow,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 12}})
    (fast,) = submit(client, "go")
    unknown = "0" * 32
    lines = _watch(client, {"ids": [slow, fast, unknown], "every": 0.1})
    assert lines[0]["unknown"] == [unknown] and all("unknown" not in line for line in lines[1:])
    logs = {slow: "", fast: ""}
    ended: dict[str, dict] = {}
    for line in lines:
        assert set(line) <= {"live", "jobs", "unknown"} and line  # (no heartbeat within a second)
        for job_id, status, start, tail in line.get("live", []):
            assert job_id not in ended and status in ("queued", "running") and start == len(logs[job_id])
            logs[job_id] += tail
        for job_id, entry in line.get("jobs", {}).items():
            assert job_id not in ended
            state = entry["states"]["default"]
            assert state.get("logFrom", 0) == len(logs[job_id])
            logs[job_id] = logs[job_id][:state.pop("logFrom", 0)] + state["log"]
            state["log"] = logs[job_id]
            ended[job_id] = entry
    assert sum(1 for line in lines if slow in {row[0] for row in line.get("live", [])}) >= 3  # it grew while watched
    for job_id in (slow, fast):
        whole = client.get(f"{BASE}/jobs/{job_id}").json()["jobs"][job_id]
        assert ended[job_id] == whole and logs[job_id] == "".join(f"w{n} " for n in range(12 if job_id == slow else 8))


def test_watch_starts_where_the_client_is_and_refuses_bad_requests(make_client, monkeypatch) -> None:
    from gridllm_nb.service import app as service_app

    client = make_client()
    (job_id,) = submit(client, "go")
    whole = wait_for(client, job_id, terminal)["states"]["default"]["log"]
    (line,) = _watch(client, {"ids": [job_id], "logFrom": {job_id: 5}})
    assert line["jobs"][job_id]["states"]["default"]["log"] == whole[5:]
    for body, status, words in (({"ids": ["nope"]}, 400, "malformed job id"),
                                ({"ids": [f"{n:032x}" for n in range(1001)]}, 400, "limit is 1000"),
                                ({"ids": []}, 400, "no job ids"),
                                ({"every": 1}, 400, "ids")):
        answer = client.post(f"{BASE}/jobs/watch", json=body)
        assert answer.status_code == status and words in answer.json()["error"], answer.text
    monkeypatch.setattr(service_app, "MAX_WATCHED", 1)
    assert _watch(client, {"ids": [job_id]})  # the streams before it gave their share back when they ended
    answer = client.post(f"{BASE}/jobs/watch", json={"ids": [job_id, "0" * 32]})
    assert answer.status_code == 429 and "at most 64 streams and 1 jobs" in answer.json()["error"]
    monkeypatch.setattr(service_app, "MAX_WATCHES", 0)
    answer = client.post(f"{BASE}/jobs/watch", json={"ids": [job_id]})
    assert answer.status_code == 429 and "at most 0 streams" in answer.json()["error"]


def test_get_answers_a_running_job_whole_as_the_seed_does(make_client) -> None:
    """Only the bulk extension is brief: ``GET /jobs/{id}`` keeps every field of the seed's shape."""
    client = make_client()
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 1000}})
    job = wait_for(client, job_id, lambda j: j["vmStatus"] == "running" and j["states"]["default"]["log"])
    assert {"vmStatus", "states", "created", "copy", "tag", "runtime"} <= set(job)
    assert {"status", "log", "outputFiles", "commandLine", "app"} <= set(job["states"]["default"])
    client.delete(f"{BASE}/jobs/{job_id}")
