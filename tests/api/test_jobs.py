"""Jobs as the API reports them: the state table, tolerant parsing of odd shapes."""

from __future__ import annotations

import json

import pytest

from gridllm_nb.api.jobs import Job, JobState, state_from_raw

SEED_JOB = {
    "vmStatus": "running",
    "states": {"default": {"status": "running", "outputFiles": [],
                           "log": "1+1=2. When you add numbers, the result",
                           "commandLine": "{\"inputs\":[\"How can 1+1=10?\"]}",
                           "app": "gridrepublic:text-inference"}},
    "created": "2024-05-06T21:26:00+00:00", "copy": 0, "tag": "llama2-uncensored", "runtime": 23,
}

STATE_TABLE = {
    JobState.QUEUED: "created init pending queued unsent waiting assigned",
    JobState.RUNNING: "running in_progress started downloading uploading",
    JobState.COMPLETED: "completed complete done finished success succeeded",
    JobState.FAILED: "error failed failure aborted too_many_error_results no_canonical_result",
    JobState.CANCELLED: "cancelled canceled",
}



@pytest.mark.parametrize(
    "raw,expected",
    [(raw, state) for state, names in STATE_TABLE.items() for raw in names.split()]
    + [("RUNNING", JobState.RUNNING), ("In Progress", JobState.RUNNING), (" Done ", JobState.COMPLETED)],
)
def test_every_row_of_the_state_table(raw: str, expected: JobState) -> None:
    assert state_from_raw(raw) is expected


def test_unknown_status_keeps_previous_state_and_terminal_states_stick() -> None:
    assert state_from_raw("teleporting", JobState.RUNNING) is JobState.RUNNING
    assert state_from_raw("", JobState.QUEUED) is JobState.QUEUED
    assert state_from_raw("running", JobState.COMPLETED) is JobState.COMPLETED
    assert state_from_raw("running", JobState.LOST) is JobState.LOST


def test_job_parses_the_seed_example() -> None:
    job = Job.from_api("9f22472031ef57c3fd517061d116ad68", SEED_JOB)
    assert job.state is JobState.RUNNING and job.raw_status == "running" and job.vm_status == "running"
    assert job.log == "1+1=2. When you add numbers, the result"
    assert job.tag == "llama2-uncensored" and job.runtime == 23 and job.copy == 0
    assert job.created is not None and job.created.year == 2024 and job.created.utcoffset().total_seconds() == 0
    assert json.loads(job.command_line) == {"inputs": ["How can 1+1=10?"]}
    assert job.app == "gridrepublic:text-inference" and job.output_files == []


@pytest.mark.parametrize("entry", [
    None, [], "running", {}, {"states": "x"}, {"states": {"default": None}},
    {"states": {"other": {"status": "done", "log": "x"}}, "created": "yesterday", "runtime": "n/a", "copy": True},
    {"vmStatus": "queued", "states": {}, "surprise": {"nested": [1]}},
    {"states": {"default": {"status": 7, "log": ["not", "text"], "outputFiles": "nope"}}},
])
def test_odd_shapes_never_crash_the_parser(entry: object) -> None:
    job = Job.from_api("x", entry)
    assert isinstance(job.log, str) and isinstance(job.state, JobState)


def test_other_state_keys_and_vm_status_fallback() -> None:
    assert Job.from_api("x", {"states": {"other": {"status": "done"}}}).state is JobState.COMPLETED
    assert Job.from_api("x", {"vmStatus": "queued", "states": {}}).state is JobState.QUEUED
    assert Job.from_api("x", {"vmStatus": "queued", "extra": 1}).extra == {"extra": 1}
