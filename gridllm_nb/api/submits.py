"""Submits of the same kind that overlap in time go out as one POST.

A grid keeps ``max_live`` jobs going: each job that ends frees a slot and
its follower submits the next prompt, so a thousand-prompt grid would make a
thousand POSTs, one job each, and at the start ``max_live`` of them at once.
The jobs API takes a list of inputs (one job per input, in order, on the
local service), so submits for the same model with the same options and
hours are queued per kind and sent together: one POST per kind on the wire
at a time (group commit): a lone submit leaves at once, and whatever arrives
while a POST is out goes in the next one, up to ``max_batch`` prompts and
``max_chars`` characters of prompt (a grid over long documents must not
build a body the service refuses; a prompt longer than that goes alone).
Each caller still gets its own job id, or the POST's error; a batch the
service refuses as bad input is sent again one prompt per POST, so a prompt
the service refuses fails only itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from ..errors import APIError, ProtocolError

__all__ = ["REFUSED_INPUT", "SubmitBatcher"]

REFUSED_INPUT = (400, 413, 422)  # statuses that may be about one input of a batch, not the batch

Send = Callable[..., Awaitable[list[str]]]


class SubmitBatcher:
    """Coalesces concurrent ``send([prompt], **kind)`` calls of one ``kind`` into ``send(prompts, **kind)``.

    ``abandon(ids)`` is called (in the background) with the ids of jobs whose
    caller stopped waiting (a cancelled cell) while their POST was out: the
    job exists but nobody follows it, so it should be cancelled.
    """

    def __init__(self, send: Send, *, max_batch: int, max_chars: int,
                 abandon: Callable[[list[str]], Coroutine[Any, Any, Any]] | None = None) -> None:
        self._send = send
        self._max_batch = max_batch
        self._max_chars = max_chars
        self._abandon = abandon
        self._waiting: dict[Hashable, deque[tuple[str, asyncio.Future[str]]]] = {}
        self._senders: dict[Hashable, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    async def submit(self, prompt: str, key: Hashable, **kind: Any) -> str:
        """The id of ``prompt``'s job, created with the next POST of this ``key`` (whose ``kind`` it is)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append((prompt, future))
        if key not in self._senders:
            # Started on the next turn of the loop: submits made in this one join the first POST.
            task = asyncio.get_running_loop().create_task(self._drain(key, kind), name="gridllm-submits")
            self._senders[key] = task
        return await future  # a cancelled caller: its prompt is dropped if its POST has not left

    async def _drain(self, key: Hashable, kind: dict[str, Any]) -> None:
        waiting = self._waiting[key]
        try:
            while waiting:
                batch: list[tuple[str, asyncio.Future[str]]] = []
                chars = 0
                while waiting and len(batch) < self._max_batch:
                    prompt, future = waiting[0]
                    if batch and chars + len(prompt) > self._max_chars:
                        break
                    waiting.popleft()
                    if not future.done():  # its caller is gone: never sent
                        batch.append((prompt, future))
                        chars += len(prompt)
                if batch:
                    await self._post(batch, kind)
        finally:
            del self._senders[key]
            if waiting:  # the sender itself was cancelled (the loop is closing)
                for _prompt, future in waiting:
                    future.cancel()
            del self._waiting[key]

    async def _post(self, batch: list[tuple[str, asyncio.Future[str]]], kind: dict[str, Any]) -> None:
        try:
            ids = await self._send([prompt for prompt, _ in batch], **kind)
            if len(ids) != len(batch):
                raise ProtocolError(f"the service answered {len(ids)} ids for {len(batch)} prompts")
        except asyncio.CancelledError:
            for _prompt, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the POST raised is each of its callers' error
            if isinstance(exc, APIError) and exc.status_code in REFUSED_INPUT and len(batch) > 1:
                # Perhaps one prompt is what the service refused (too long, not valid Unicode):
                # each goes alone, so it fails only itself, as it would have unbatched.
                await asyncio.gather(*(self._post([one], kind) for one in batch))
                return
            for _prompt, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        orphans = []
        for job_id, (_prompt, future) in zip(ids, batch):
            if future.done():
                orphans.append(job_id)
            else:
                future.set_result(job_id)
        if orphans and self._abandon is not None:
            task = asyncio.get_running_loop().create_task(self._abandon(orphans), name="gridllm-abandon")
            self._background.add(task)  # kept until done: the loop holds only weak references to tasks
            task.add_done_callback(self._background.discard)
