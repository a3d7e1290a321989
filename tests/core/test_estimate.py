"""Estimates before a grid: from a seeded history, per model, and "unknown" without one."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridllm_nb.api.jobs import JobState
from gridllm_nb.api.poller import Poller, PollSettings, use_poller
from gridllm_nb.core import recorder
from gridllm_nb.core.estimate import estimate_grid
from gridllm_nb.core.grid import agrid
from gridllm_nb.core.results import Result, Results

from ..fakes import FakeClock, FakeJobsAPI, client_for


def seed(path: Path, tag: str, answers: list[tuple[int, float, float, float]]) -> None:
    """Past answers of ``tag``: (tokens, queued s, first token s, end s), each submitted at 0."""
    for tokens, started, first, ended in answers:
        r = Result(tag=tag, text="x" * tokens * 4, state=JobState.COMPLETED, service_tokens=tokens,
                   submitted_s=0.0, started_s=started, first_token_s=first, ended_s=ended)
        recorder.record(Results("p", {tag: r}), "http://127.0.0.1:8765/remotejobs/v2", path=path)


def test_estimate_from_a_seeded_history(history_file: Path) -> None:
    seed(history_file, "fast", [(20, 0.1, 0.2, 1.2), (40, 0.3, 0.4, 2.4), (30, 0.2, 0.3, 1.8)])
    seed(history_file, "slow", [(100, 1.0, 2.0, 12.0)])
    failed = Result(tag="fast", text="", state=JobState.FAILED)  # a failed answer is no basis
    recorder.record(Results("p", {"fast": failed}), "http://x", path=history_file)
    guess = estimate_grid([f"q{i}" for i in range(40)], ["fast", "slow", "new"], max_live=8)
    fast, slow, new = guess.models
    assert (fast.jobs, fast.basis, fast.tokens_per_answer, fast.tokens) == (40, 3, 30, 1200)
    assert fast.tokens_per_s == pytest.approx(20.0) and fast.queue_s == pytest.approx(0.2)
    assert fast.job_s == pytest.approx(1.8)
    assert fast.seconds == pytest.approx(40 * 1.8 / 8)  # its jobs alone, 8 at a time
    assert estimate_grid(["q"] * 40, ["fast", "slow"], max_live=8).seconds == \
        pytest.approx((40 * 1.8 + 40 * 12.0) / 8)  # the grid pools both models' jobs in the 8 slots
    assert (slow.basis, slow.tokens, slow.tokens_per_s, slow.job_s) == (1, 4000, 10.0, 12.0)
    assert new.basis == 0 and new.line() == "new: 40 jobs · no history: unknown"
    assert guess.line() == "estimate: 120 jobs · no history for new: time unknown"
    assert "fast: 40 jobs · ~1200 tokens · ~0:09 (from 3 past answers: 30 tok/answer, 20 tok/s" in str(guess)


def test_the_grid_total_shares_max_live_and_max_tokens_caps_the_answers(history_file: Path) -> None:
    seed(history_file, "m", [(100, 0.0, 0.5, 5.5)] * 4)
    guess = estimate_grid(["a"] * 10, ["m"], max_live=5, options={"max_tokens": 16})
    assert guess.tokens == 160 and guess.seconds == pytest.approx(10 * 5.5 / 5)
    assert guess.line() == "estimate: 10 jobs · ~160 tokens · ~0:11 at max_live 5 (from 4 past answers)"


def test_without_a_history_file_every_model_is_unknown(history_file: Path) -> None:
    assert not history_file.exists()
    assert estimate_grid(["a"], ["m"]).models[0].basis == 0


@pytest.mark.anyio
async def test_a_grid_with_estimate_sends_nothing_and_a_large_grid_says_its_estimate_first(
        history_file: Path) -> None:
    clock = FakeClock()
    use_poller(Poller(PollSettings(fast=0.1, slow=0.1), clock=clock))
    fake = FakeJobsAPI()
    said: list[str] = []
    result = await agrid(["a", "b"], ["m"], client=client_for(fake, clock=clock), estimate=True,
                         announce=said.append, progress=None)
    assert len(result) == 0 and not fake.requests
    assert said == ["estimate: 2 jobs · no history for m: time unknown\n  m: 2 jobs · no history: unknown"]
    said.clear()
    await agrid([f"q{i}" for i in range(101)], ["m", "n"], client=client_for(fake, clock=clock),
                announce=said.append, progress=None)
    assert said[0] == "estimate: 202 jobs · no history for m, n: time unknown"
