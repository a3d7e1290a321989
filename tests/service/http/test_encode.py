"""The bulk-status and watch answers: only what changed, a running job brief, an ended one whole."""

from __future__ import annotations

import json

from tests.service.service_support import BASE, submit, terminal, wait_for


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
    from gridllm_nb.service.http import app as service_app

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
