"""The HTTP API in-process (real app, jobs and SQLite store; fake engine): the answers' shapes."""

from __future__ import annotations

import json
import re

from tests.service.service_support import BASE, submit, terminal, wait_for

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


def test_get_answers_a_running_job_whole_as_the_seed_does(make_client) -> None:
    """Only the bulk extension is brief: ``GET /jobs/{id}`` keeps every field of the seed's shape."""
    client = make_client()
    (job_id,) = submit(client, "go", tag="fake:slow", command={"options": {"max_tokens": 1000}})
    job = wait_for(client, job_id, lambda j: j["vmStatus"] == "running" and j["states"]["default"]["log"])
    assert {"vmStatus", "states", "created", "copy", "tag", "runtime"} <= set(job)
    assert {"status", "log", "outputFiles", "commandLine", "app"} <= set(job["states"]["default"])
    client.delete(f"{BASE}/jobs/{job_id}")
