"""Running the async core from synchronous code, and in the background.

Every blocking entry point (``run``, ``grid``, ``attach``, ``Results.retry``,
the CLI's commands, a blocking ``%%gridllm`` cell) goes through ``run_sync``,
so Ctrl-C and a running Jupyter loop are handled in one place.

A run that outlives its cell (``%%gridllm --no-wait``, a card's Retry, the
panel's Process) goes to ``submit``: one long-lived event loop in a daemon
thread per process (``background``). The kernel's own loop is no place for
it: a blocking cell, ``time.sleep`` or a long pandas step holds that loop,
and a run on it would stop until the kernel is idle again. The background
loop has its own poller (one per loop), which nothing else blocks; widgets
and displays are sent from its thread (ipykernel sends iopub from any
thread), and whatever a run schedules (a card's pacing timer) runs on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Background", "background", "run_sync", "submit"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from synchronous code, with or without a running loop.

    The coroutine runs on a fresh loop in a worker thread, closed after.
    Inside Jupyter the kernel's own loop is running, and blocked by the very
    cell that called this; in a terminal nothing runs a loop, but Ctrl-C
    must still land on a thread that waits, not inside a task. So it runs
    in a worker thread, in a copy of this context (so what it prints and
    displays still belongs to the cell), while this thread waits. The kernel
    stays an ordinary busy kernel: requests that arrive meanwhile (a widget's
    message, the next cell) wait their turn, rather than running inside this
    cell as they would on a re-entered loop.

    Ctrl-C (``KeyboardInterrupt`` here) cancels the coroutine, lets it unwind
    (``arun`` ends live jobs CANCELLED, text kept), then propagates.
    """
    # Always a worker thread, even where no loop runs (a terminal): Ctrl-C then lands
    # on this thread's wait, never inside the loop's callbacks, where it would
    # escape as a traceback from whichever task it hit.
    loop = asyncio.new_event_loop()
    task: asyncio.Task[T] = loop.create_task(coro)
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = _run_on_new_loop(task, loop)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, raised there
            outcome["error"] = exc
        finally:
            finished.set()

    def cancel() -> None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # it had just finished and closed its loop
            pass

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="gridllm-run", daemon=True)
    worker.start()
    interrupted = _wait_interruptibly(finished, cancel)
    try:
        worker.join(5.0)  # its work is done: this only lets the thread end
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _wait_interruptibly(finished: threading.Event, on_interrupt: Callable[[], None]) -> bool:
    """Wait until ``finished``, calling ``on_interrupt`` on each Ctrl-C; True if there was one.

    An Event rather than ``Thread.join()``: before Python 3.13 a join cut
    short by Ctrl-C can leave the thread looking finished while it runs on.
    """
    interrupted = False
    while not finished.is_set():
        try:  # Ctrl-C may land on any line here
            while not finished.wait(0.1):
                pass
        except KeyboardInterrupt:
            interrupted = True
            on_interrupt()
    return interrupted


def _run_on_new_loop(coro: Coroutine[Any, Any, T] | asyncio.Task[T],
                     loop: asyncio.AbstractEventLoop | None = None) -> T:
    """Run ``coro`` on ``loop`` (a fresh one by default), then cancel what is left and close it."""
    loop = loop or asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for leftover in pending:  # the poller's idle task; a run cut short by Ctrl-C
            leftover.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


_LOOP: asyncio.AbstractEventLoop | None = None
_LOCK = threading.Lock()


def background() -> asyncio.AbstractEventLoop:
    """This process's background loop, running in a daemon thread (started on first use)."""
    global _LOOP
    with _LOCK:
        if _LOOP is None or _LOOP.is_closed():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=serve, name="gridllm-background", daemon=True).start()
            started.wait()
            _LOOP = loop
        return _LOOP


class Background(concurrent.futures.Future):  # type: ignore[type-arg]
    """A coroutine running on the background loop (``submit``), as a ``concurrent.futures.Future``.

    It ends when the coroutine has ended. ``cancel`` asks the coroutine to
    stop and returns at once; the future is cancelled once the coroutine has
    unwound (``arun`` ends its live jobs CANCELLED first), so ``result()``,
    ``wait`` and done callbacks see the run's true end.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self._stop = False

    def cancel(self) -> bool:
        if self.done():
            return False
        self._stop = True
        self.loop.call_soon_threadsafe(self._cancel_task)
        return True

    def _cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _started(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        if self._stop:
            task.cancel()
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            super().cancel()
            self.set_running_or_notify_cancel()  # wakes the waiters
        elif task.exception() is not None:
            self.set_exception(task.exception())
        else:
            self.set_result(task.result())


def submit(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> Background:
    """Run ``coro`` on the background loop, in a copy of this context; returns at once.

    The copy keeps what the coroutine prints and first displays in the cell
    that called this. Its Future (a ``Background``) ends when it does;
    ``cancel()`` stops it.
    """
    loop = background()
    future = Background(loop)
    context = contextvars.copy_context()

    def start() -> None:
        future._started(context.run(loop.create_task, coro, name=name))

    loop.call_soon_threadsafe(start)
    return future
