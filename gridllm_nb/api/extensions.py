"""The local service's extensions of the jobs API, as the client calls them.

Our own service (a loopback URL, or one that answered ``GET /models``)
offers more than the documented API: a bulk status request that carries
only what each log grew by, a watch stream that pushes what changed, cancel
and a model list. Each is tried only where it may exist, remembered when it
does not (``_features``), and never needed: the client works without them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import APIError, NotSupported, ProtocolError
from . import arguments
from .retry import Retryable
from .wire import chunk_ids, dumps_json, join_log, loads_json

if TYPE_CHECKING:
    from ..config import Endpoint

__all__ = ["MAX_IDS_PER_BULK", "LocalExtensions"]

MAX_IDS_PER_BULK = 1000  # POST /jobs/status: the ids travel in the body
_JSON_TYPE = {"Content-Type": "application/json"}


class LocalExtensions:
    """What ``JobsClient`` can ask the local service besides the documented API."""

    if TYPE_CHECKING:  # what JobsClient gives it
        endpoint: Endpoint
        base_url: str
        _features: dict[str, bool]
        _models: list[dict[str, Any]] | None
        _http: httpx.AsyncClient
        _revive_tried: bool

        async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]: ...

        def _parse(self, method: str, url: str, response: httpx.Response,
                   feature: str | None) -> dict[str, Any]: ...

        def _failure(self, method: str, url: str, exc: httpx.HTTPError) -> Retryable: ...

    def _is_ours(self) -> bool:
        # Where our own service may answer (a loopback URL, or one that answered GET /models):
        # its extensions are not something to try on someone else's API on the off chance.
        return self.endpoint.is_local or bool(self._features.get("models"))

    def _may_bulk(self) -> bool:
        return self._features.get("bulk") is not False and self._is_ours()

    async def _bulk_entries(self, ids: list[str], known: Mapping[str, str], retry: bool) -> dict[str, Any]:
        body = dumps_json({"ids": ids, "logFrom": {i: len(known[i]) for i in ids if known.get(i)}})
        data = await self._call("POST", "jobs/status", json_body=body, retry=retry, feature="bulk")
        jobs = data.get("jobs")
        if not isinstance(jobs, dict):
            raise ProtocolError("the status answer has no 'jobs' object")
        wanted = set(ids)
        return {job_id: join_log(job_id, entry, known.get(job_id, ""))
                for job_id, entry in jobs.items() if job_id in wanted}

    def may_watch(self) -> bool:
        """Whether to try ``watch`` here: our own service, unless it said it has no such thing."""
        return self._features.get("watch") is not False and self._is_ours()

    async def watch(self, ids: Sequence[str], known: Mapping[str, str], *,
                    every: float = 0.3) -> AsyncIterator[dict[str, Any]]:
        """The lines of ``POST /jobs/watch`` (a local extension), decoded, until every job ended.

        One long response in place of a request per poll: the service sends what
        changed, at most once per ``every`` seconds. Each line may hold ``live``
        rows ``[id, status, logFrom, log tail]``, ``jobs`` (ended jobs as
        ``POST /jobs/status`` answers them: ``join_log`` makes them whole) and
        ``unknown`` ids. A ``logFrom`` counts from what this stream sent before
        (``known`` at first). Raises ``NotSupported`` where the service lacks it, and
        the client's usual errors when the stream cannot start or breaks off.
        Close the iterator (``contextlib.aclosing``) to stop early.
        """
        ids = arguments.id_list(ids)
        arguments.number(every, "every")
        body = dumps_json({"ids": list(ids), "every": every,
                           "logFrom": {i: len(known[i]) for i in ids if known.get(i)}})
        url = f"{self.base_url}/jobs/watch"
        try:
            async with self._http.stream("POST", url, content=body, headers=_JSON_TYPE) as response:
                if response.status_code != 200:
                    await response.aread()
                    try:
                        self._parse("POST", url, response, "watch")
                    except Retryable as exc:
                        raise exc.error from None
                    raise ProtocolError(f"POST {url} answered {response.status_code} without a stream")
                self._features["watch"] = True
                self._revive_tried = False
                pending = b""
                async for chunk in response.aiter_bytes():
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        try:
                            data = loads_json(line)
                        except ValueError:
                            raise ProtocolError(f"POST {url} streamed a line that is not JSON") from None
                        if not isinstance(data, dict):
                            raise ProtocolError(f"POST {url} streamed JSON that is not an object")
                        yield data
        except httpx.HTTPError as exc:
            raise self._failure("POST", url, exc).error from None

    async def cancel(self, ids: Iterable[str]) -> list[str]:
        """Cancel jobs (a local-service extension; NotSupported on the real grid)."""
        cancelled: list[str] = []
        for chunk in chunk_ids(arguments.id_list(ids), base_len=len(self.base_url)):
            try:
                data = await self._call("DELETE", "jobs/" + ",".join(chunk), feature="cancel")
            except APIError as exc:
                if exc.status_code == 404:
                    continue
                raise
            got = data.get("cancelled", chunk)
            cancelled.extend(got if isinstance(got, list) else chunk)
        return cancelled

    async def models(self) -> list[dict[str, Any]]:
        """The tags the service serves (``GET /models``, a local extension), cached."""
        if self._models is None:
            data = await self._call("GET", "models", feature="models")
            models = data.get("models")
            if not isinstance(models, list):
                raise ProtocolError("the models answer has no 'models' list")
            self._models = [m if isinstance(m, dict) else {"tag": str(m)} for m in models]
        return self._models

    async def supports(self, feature: str) -> bool:
        """Whether a local extension ("models", "cancel") answered on this endpoint."""
        arguments.text(feature, "feature")
        if feature not in self._features and feature == "models":
            try:
                await self.models()
            except NotSupported:
                pass
        return self._features.get(feature, False)
