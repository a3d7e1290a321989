"""Where the panel's runs go, one at a time, and what the status line says of how each ended.

A run (Process) or a retry (a card's Retry) outlives the click that
started it. Inside an IPython kernel it goes to the process's background
loop (``core.sync.submit``), as a ``--no-wait`` cell's run does: the
kernel's own loop is held by whatever cell runs next (``time.sleep``, a
blocking ``%%gridllm`` cell, a long pandas step), and a run on it would
stop streaming until the kernel is idle. Everything the run does then
happens on that loop's thread: the core applying each update, the cards'
pacing timers, the status line. Outside a kernel, on a running loop (a
script's, or the tests' with their fake-clock poller on it), the run is a
task on that loop; with no loop at all it runs to its end in the call
(``core.sync.run_sync``).

The panel's model list is loaded the same way (``spawn``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from ..api.jobs import JobState, JobUpdate
from ..core.results import Results
from ..core.sync import Background
from ..errors import GridLLMError
from ..widgets.card import Card

__all__ = ["PanelRuns", "Running", "in_kernel", "join", "spawn"]

Running = asyncio.Task[Any] | concurrent.futures.Future[Any]


def in_kernel() -> bool:
    """Whether this is an IPython kernel (whose loop later cells hold), not a terminal or a script."""
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def spawn(work: Coroutine[Any, Any, Any], name: str) -> Running | None:
    """Start ``work`` where it keeps going after this call: the background loop in a kernel, else a task
    on the running loop. None (and ``work`` untouched) when neither: the caller runs it to its end."""
    if in_kernel():
        from ..core.sync import submit

        return submit(work, name=name)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.create_task(work, name=name)


async def join(running: Running) -> None:
    """Wait until ``running`` has ended, however it ended; cancelling this wait leaves it running."""
    waited = running if isinstance(running, asyncio.Future) else asyncio.wrap_future(running)
    await asyncio.wait([waited])
    if not waited.cancelled():
        waited.exception()  # seen: its end is the status line's to tell


class PanelRuns:
    """The panel's one run or retry at a time: started (``start``), cancelled, waited for, and said.

    ``say`` puts one line on the panel's status line; ``after`` is called
    once a run is over and no longer ``running`` (the buttons, Compare, the
    vote), on the thread the run ended on.
    """

    def __init__(self, say: Callable[[str], None], after: Callable[[], None]) -> None:
        self.say = say
        self.after = after
        self.task: Running | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, work: Coroutine[Any, Any, Results]) -> Running | None:
        """Start ``work`` (a ``follow``) as the panel's run; without a loop, run it to its end here."""
        task = spawn(work, "gridllm-panel")
        if task is None:
            from ..core.sync import run_sync

            try:
                run_sync(work)
            finally:
                self.after()
            return None
        self.task = task
        task.add_done_callback(lambda _task: self.after())
        return task

    def cancel(self) -> None:
        """Cancel the run (the core ends its live jobs CANCELLED, text kept)."""
        if self.task is not None and self.running:
            self.say("cancelling…")
            self.task.cancel()

    def call(self, action: Callable[[], None]) -> None:
        """Call ``action`` (one that sends the cards something) where the run sends them its updates: on
        the background loop's thread while a run lives there, so two threads never send a card at once."""
        task = self.task
        if isinstance(task, Background) and not task.done():
            task.loop.call_soon_threadsafe(action)
        else:
            action()

    async def wait(self) -> None:
        """Wait until the run on show has ended (and ``after`` has run)."""
        if self.task is not None:
            await join(self.task)

    async def follow(self, live: Results, cards: Mapping[str, Card], tags: Sequence[str],
                     work: Coroutine[Any, Any, Results]) -> Results:
        """Await a run or a retry of ``tags`` into ``live``, saying on the status line how it ended
        (one line, never a trace); every card shows its last state after."""
        started = time.monotonic()
        try:
            await work
            # The run on show as it stands (after a retry too: the models not retried count as well).
            failed = [t for t, r in live.items() if r.state is not JobState.COMPLETED]
            if failed:
                self.say(f"{len(failed)} of {len(live)} model(s) did not complete: {', '.join(failed)}")
            return live
        except asyncio.CancelledError:
            self.say("cancelled")  # the core has ended the live jobs CANCELLED, text kept
            raise
        except GridLLMError as exc:  # ConfigError, TransportError, UnknownModel: one line
            for tag in tags:
                r = live.get(tag)
                if r is not None and not r.state.terminal:
                    r.apply(JobUpdate(tag=tag, job_id=r.job_id, state=JobState.FAILED, text=r.text,
                                      error=str(exc), elapsed=time.monotonic() - started))
                    cards[tag].show()  # an arena card masks the names itself
            self.say(str(exc))
            return live
        except Exception as exc:  # a bug: show it rather than die silently in a callback
            self.say(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            for card in cards.values():
                card.flush()
