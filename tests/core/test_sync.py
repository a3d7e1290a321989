"""Running the core from synchronous code (``run_sync``) and in the background (``background``, ``submit``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time

import pytest

from gridllm_nb.api.poller import get_poller
from gridllm_nb.core.sync import Background, background, run_sync, submit

CELL = contextvars.ContextVar("CELL", default="none")


def test_run_sync_runs_off_this_thread_and_returns_the_value() -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert run_sync(where()) == "gridllm-run"


def test_every_submit_goes_to_one_background_loop_in_a_copy_of_the_callers_context() -> None:
    async def seen() -> tuple[asyncio.AbstractEventLoop, str, str, int]:
        await asyncio.sleep(0)
        return asyncio.get_running_loop(), threading.current_thread().name, CELL.get(), id(get_poller())

    CELL.set("cell 1")
    first = submit(seen())
    CELL.set("cell 2")
    second = submit(seen())
    (loop1, thread, cell1, poller1), (loop2, _, cell2, poller2) = first.result(5), second.result(5)
    assert isinstance(first, Background) and isinstance(first, concurrent.futures.Future)
    assert loop1 is loop2 is background() and thread == "gridllm-background"
    assert (cell1, cell2) == ("cell 1", "cell 2")  # what it prints and displays belongs to its cell
    assert poller1 == poller2  # one poller for every background run


def test_a_background_run_goes_on_while_the_caller_sleeps() -> None:
    """What a --no-wait cell needs from the next cell: ``time.sleep`` there holds this thread, not the run."""
    ticks: list[float] = []

    async def tick() -> None:
        for _ in range(10):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    start = time.monotonic()
    run = submit(tick())
    time.sleep(1.0)  # a blocking cell
    assert run.done() and len(ticks) == 10 and ticks[-1] - start < 0.9


def test_cancel_ends_the_future_only_once_the_coroutine_has_unwound() -> None:
    unwound = threading.Event()
    started = threading.Event()

    async def long_run() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # ending its jobs CANCELLED takes a moment
            unwound.set()
            raise

    run = submit(long_run())
    assert started.wait(5)
    assert run.cancel() and not run.cancelled()  # asked; not ended yet
    concurrent.futures.wait([run], timeout=5)
    assert run.cancelled() and unwound.is_set()
    assert not run.cancel()  # over: nothing left to cancel


def test_a_run_cancelled_before_it_starts_never_runs() -> None:
    ran: list[bool] = []

    async def never() -> None:
        ran.append(True)

    blocker = threading.Event()
    background().call_soon_threadsafe(blocker.wait, 5)  # the loop is busy a moment
    run = submit(never())
    run.cancel()
    blocker.set()
    concurrent.futures.wait([run], timeout=5)
    assert run.cancelled() and ran == []


def test_an_error_reaches_the_future() -> None:
    async def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        submit(boom()).result(5)
