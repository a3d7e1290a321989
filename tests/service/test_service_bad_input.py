"""Every malformed request answers 4xx with {"success": false, "error": "<one line>"}."""

from __future__ import annotations

import json

import pytest
from service_support import BASE

GOOD = {"app": "gridrepublic:text-inference", "commandLine": '{"inputs": ["hi"]}', "tag": "fake:fast"}


def _with(**changes):
    body = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


def assert_error(answer, status: int, fragment: str = "") -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in body["error"]
    assert fragment in body["error"], body["error"]


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"not json", "not valid JSON"),
        (b"{\"app\": ", "not valid JSON"),
        (b"", "missing"),
        (b"[]", "dictionary"),
        (b"null", ""),
        (b"\xff\xfe", ""),
    ],
)
def test_body_not_a_json_object(make_client, raw: bytes, fragment: str) -> None:
    answer = make_client().post(f"{BASE}/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert_error(answer, 400, fragment)


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (_with(commandLine=...), 400, "commandLine"),
        (_with(tag=...), 400, "tag"),
        (_with(commandLine=["hi"]), 400, "commandLine"),
        (_with(commandLine={"inputs": ["hi"]}), 400, "commandLine"),
        (_with(commandLine=5), 400, "commandLine"),
        (_with(tag=3), 400, "tag"),
        (_with(app=None), 400, "app"),
        (_with(hours="soon"), 400, "hours"),
        (_with(commandLine="{'input': "), 400, "neither JSON"),
        (_with(commandLine="{'prompt': ['x']}"), 400, "no 'inputs'"),
        (_with(commandLine='{"inputs": []}'), 400, "non-empty"),
        (_with(commandLine='{"inputs": [""]}'), 400, "empty"),
        (_with(commandLine='{"inputs": [42]}'), 400, "not a string"),
        (_with(app="boinc:anything"), 400, "unknown app"),
        (_with(tag="nope:1b"), 400, "unknown model tag 'nope:1b'; available: fake:fast, fake:slow"),
        (_with(hours=0), 400, "hours"),
        (_with(hours=-1), 400, "hours"),
        (_with(hours=8.01), 400, "hours"),
        (_with(hours=1e308), 400, "hours"),
        (_with(commandLine=json.dumps({"inputs": ["x" * 40000]})), 413, "limit is 32768"),
    ],
)
def test_bad_submissions(make_client, body, status: int, fragment: str) -> None:
    assert_error(make_client().post(f"{BASE}/jobs", json=body), status, fragment)


def test_unknown_tag_message_exact(make_client) -> None:
    answer = make_client().post(f"{BASE}/jobs", json=_with(tag="x"))
    assert answer.json() == {"success": False, "error": "unknown model tag 'x'; available: fake:fast, fake:slow"}


def test_hours_upper_bound_is_inclusive(make_client) -> None:
    assert make_client().post(f"{BASE}/jobs", json=_with(hours=8)).status_code == 200


def test_nan_hours(make_client) -> None:
    raw = b'{"app": "gridrepublic:text-inference", "commandLine": "{\\"inputs\\": [\\"hi\\"]}", "tag": "fake:fast", "hours": NaN}'
    answer = make_client().post(f"{BASE}/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500


def test_body_over_one_megabyte(make_client) -> None:
    client = make_client()
    big = json.dumps(_with(commandLine=json.dumps({"inputs": ["x" * (1024 * 1024)]}))).encode()
    assert_error(client.post(f"{BASE}/jobs", content=big, headers={"Content-Type": "application/json"}), 413, "body")

    def chunks():  # no Content-Length: counted while read
        for _ in range(20):
            yield b"x" * 65536

    assert_error(client.post(f"{BASE}/jobs", content=chunks(), headers={"Content-Type": "application/json"}), 413, "body")


@pytest.mark.parametrize(
    "ids, status, fragment",
    [
        ("xyz", 400, "malformed job id"),
        ("a" * 31, 400, "malformed job id"),
        ("a" * 33, 400, "malformed job id"),
        ("g" * 32, 400, "malformed job id"),
        (",".join(["a" * 32] * 501), 400, "limit is 500"),
        (",,,", 400, "no job ids"),
        ("0" * 32, 404, "no such job"),
        (",".join(["0" * 32, "1" * 32]), 404, "no such job"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bad_ids(make_client, method: str, ids: str, status: int, fragment: str) -> None:
    assert_error(make_client().request(method, f"{BASE}/jobs/{ids}"), status, fragment)


def test_unknown_ids_are_left_out(make_client) -> None:
    client = make_client()
    (job_id,) = client.post(f"{BASE}/jobs", json=GOOD).json()["ids"]
    jobs = client.get(f"{BASE}/jobs/{'0' * 32},{job_id.upper()}, {job_id}").json()["jobs"]
    assert list(jobs) == [job_id]


def test_500_ids_is_allowed(make_client) -> None:
    client = make_client()
    (job_id,) = client.post(f"{BASE}/jobs", json=GOOD).json()["ids"]
    ids = [job_id] + [f"{n:032x}" for n in range(499)]
    assert list(client.get(f"{BASE}/jobs/{','.join(ids)}").json()["jobs"]) == [job_id]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("GET", f"{BASE}/jobs", 405), ("PUT", f"{BASE}/jobs", 405),
    ("PATCH", f"{BASE}/jobs/{'a' * 32}", 405), ("POST", f"{BASE}/models", 405),
])
def test_unknown_routes_and_methods(make_client, method: str, path: str, status: int) -> None:
    assert_error(make_client().request(method, path), status)
