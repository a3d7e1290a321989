"""Idle shutdown in the app: never while a job is live or a request is in flight; once idle, exactly once."""

from __future__ import annotations

import time

from gridllm_nb.service.http.idle import IdleWatch
from tests.service.service_support import (
    BASE,
    fake_registry,
    submit,
    terminal,
    wait_for,
)


def test_no_idle_exit_while_a_job_is_live_then_one_after(make_client) -> None:
    # fake:slow makes 8 pieces 0.35 s apart: a job of ~2.8 s, longer than the 1 s idle timeout
    client = make_client(slow_delay=0.35, registry=fake_registry(max_tokens=8), idle_timeout=1.0)
    watch = client.app.state.idle
    fired: list[float] = []
    watch.on_idle = lambda: fired.append(time.monotonic())
    [job_id] = submit(client, "count", tag="fake:slow")
    submitted = time.monotonic()
    time.sleep(2.0)  # no requests at all, but the job runs: not idle
    assert fired == [] and client.app.state.manager.live_count() == 1
    job = wait_for(client, job_id, terminal, timeout=10)
    assert job["states"]["default"]["status"] == "completed"
    ended = time.monotonic()
    deadline = ended + 5
    while not fired and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fired) == 1 and fired[0] - ended >= 0.9 and fired[0] - submitted > 2.5
    time.sleep(0.5)
    assert len(fired) == 1  # once


def test_requests_count_as_use(make_client) -> None:
    client = make_client(idle_timeout=0.6)
    fired: list[bool] = []
    client.app.state.idle.on_idle = lambda: fired.append(True)
    for _ in range(8):  # 1.6 s of polling, every 0.2 s
        assert client.get(f"{BASE}/health").status_code == 200
        time.sleep(0.2)
    assert fired == []
    time.sleep(1.2)
    assert fired == [True]


def test_without_a_timeout_there_is_no_watch(make_client) -> None:
    client = make_client()
    assert getattr(client.app.state, "idle", None) is None


def test_watch_counts_in_flight_requests_and_live_jobs() -> None:
    now = [0.0]
    live = [0]
    watch = IdleWatch(10, live=lambda: live[0], clock=lambda: now[0])
    now[0] = 9.0
    assert not watch.check()
    watch.in_flight = 1
    now[0] = 30.0
    assert watch.idle_for() == 0 and not watch.check()
    watch.in_flight = 0
    live[0] = 1
    now[0] = 50.0
    assert not watch.check()
    live[0] = 0
    now[0] = 59.0
    assert not watch.check()
    now[0] = 60.0
    assert watch.check() and watch.fired and not watch.check()
