"""JobsClient: the HTTP calls of the remote jobs API, and nothing else.

One ``httpx.AsyncClient`` per JobsClient. Errors come out as the
``gridllm_nb.errors`` family with the token scrubbed. Retries (tenacity) are
limited to what cannot create a job twice: a POST is retried only when the
connection failed before anything was sent, or on 429/503, which say the
request was not taken.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import httpx

from ..__version__ import __version__
from ..config import (
    APP,
    Endpoint,
    Secret,
    mask_credentials,
    resolve_endpoint,
)
from ..errors import (
    APIError,
    ConfigError,
    GridLLMError,
    NotSupported,
    ProtocolError,
)
from . import arguments
from .answers import failure, parse_answer
from .clock import Clock, SystemClock
from .extensions import MAX_IDS_PER_BULK, LocalExtensions
from .jobs import Job
from .retry import Retryable, RetryPolicy, retrying
from .submits import SubmitBatcher
from .wire import (
    MAX_IDS_PER_GET,
    chunk_ids,
    dumps_json,
    encode_command_line,
)

__all__ = ["MAX_IDS_PER_BULK", "JobsClient"]

MAX_INPUTS_PER_SUBMIT = 100  # prompts in one POST /jobs when submits are batched (the local service's limit)
# ...and characters of prompt: each may grow 4x as JSON inside a JSON string, and the service takes 1 MiB.
MAX_CHARS_PER_SUBMIT = 200_000
MAX_IN_FLIGHT = 16  # requests one client has on the wire at once (a grid submits hundreds of jobs)
_URL_CACHE_SIZE = 64  # batch shapes remembered per client; a poll loop uses ceil(N/100) at a time

_JSON_TYPE = {"Content-Type": "application/json"}


class JobsClient(LocalExtensions):
    """Async client for ``{base}/jobs``; use ``async with JobsClient() as c``."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | Secret | None = None,
        *,
        app: str = APP,
        input_key: str = "inputs",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint: Endpoint = resolve_endpoint(arguments.optional_text(base_url, "url"), token)
        self.app = arguments.text(app, "app")
        self.input_key = arguments.text(input_key, "input_key")
        self.retry = arguments.instance(retry, "retry", RetryPolicy, "a RetryPolicy") or RetryPolicy()
        self.clock = arguments.instance(clock, "clock", Clock, "a Clock") or SystemClock()
        arguments.instance(transport, "transport", httpx.AsyncBaseTransport, "an httpx transport")
        headers = {"User-Agent": f"gridllm_nb/{__version__}", "Accept": "application/json"}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token.reveal()}"
        try:
            self._http = httpx.AsyncClient(
                base_url=self.endpoint.url + "/",
                headers=headers,
                timeout=arguments.number(timeout, "timeout"),
                transport=transport,
                follow_redirects=False,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ConfigError(f"cannot use the URL {self.endpoint.display!r}: {self._scrub(exc)}") from None
        self._features: dict[str, bool] = {}
        # Requests on the wire at once: a grid's thousand submits wait here, in a plain FIFO,
        # rather than in httpcore's pool, whose queue costs O(waiting x connections) per event.
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        # ids of one GET -> (URL text for messages, URL parsed and checked by httpx once).
        self._urls: dict[tuple[str, ...], tuple[str, httpx.URL]] = {}
        self.urls_built = 0
        self._models: list[dict[str, Any]] | None = None
        self._revive_tried = False
        # Starts the local service again when it died (``revive``); set by ``core.local`` for the default endpoint.
        self.reviver: Callable[[JobsClient], Awaitable[str | None]] | None = None
        self._submits = SubmitBatcher(self.submit_many, max_batch=MAX_INPUTS_PER_SUBMIT,
                                      max_chars=MAX_CHARS_PER_SUBMIT, abandon=self._abandon)

    @property
    def base_url(self) -> str:
        return self.endpoint.url

    def __repr__(self) -> str:
        auth = "token set" if self.endpoint.token else "no token"
        return f"JobsClient({self.endpoint.display!r}, {auth})"

    async def __aenter__(self) -> JobsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    # -- API calls ---------------------------------------------------------

    async def submit(
        self,
        prompt: str,
        tag: str,
        *,
        hours: float | None = None,
        system: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        """Create one job; returns its id.

        On the local service (which makes one job per input, in order),
        submits of the same tag, hours, system prompt and options that overlap
        in time go out together (``submits``): a grid's thousand jobs are ten
        POSTs, not a thousand. Elsewhere each job is its own POST, as the
        API's pages show it.
        """
        prompt, tag, hours, system, options = self._job_arguments(prompt, tag, hours, system, options)
        if self._is_ours():
            key = (tag, hours, system, None if options is None else json.dumps(options, sort_keys=True))
            return await self._submits.submit(prompt, key, tag=tag, hours=hours, system=system, options=options)
        ids = await self.submit_many([prompt], tag, hours=hours, system=system, options=options)
        if len(ids) != 1:
            raise ProtocolError(f"the service answered {len(ids)} ids for one prompt")
        return ids[0]

    async def submit_many(
        self,
        prompts: Sequence[str],
        tag: str,
        *,
        hours: float | None = None,
        system: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[str]:
        """Create one job per prompt in one POST (the API takes a list of inputs)."""
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise ConfigError(f"prompts must be a list of prompts (str), not {type(prompts).__name__}")
        for prompt in prompts:
            self._job_arguments(prompt, tag, hours, system, options)
        if not prompts:
            return []
        body: dict[str, Any] = {
            "app": self.app,
            "commandLine": encode_command_line(
                list(prompts), key=self.input_key, system=system, options=options
            ),
            "tag": tag,
        }
        if hours is not None:
            body["hours"] = hours
        data = await self._call("POST", "jobs", json_body=dumps_json(body))
        ids = data.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise ProtocolError("the service accepted the job but sent no ids")
        return ids

    @staticmethod
    def _job_arguments(prompt: Any, tag: Any, hours: Any, system: Any,
                       options: Any) -> tuple[str, str, float | None, str | None, dict[str, Any] | None]:
        """A job's arguments, checked before anything is sent (``arguments``)."""
        return (arguments.text(prompt, "prompt", empty=True), arguments.text(tag, "model tag"), arguments.number(hours, "hours"),
                arguments.optional_text(system, "system"), arguments.options(options))

    async def status(self, ids: Iterable[str], *, retry: bool = True) -> dict[str, Job]:
        """Latest state of each id; ids the service does not know are left out."""
        entries = await self.status_entries(ids, retry=retry)
        return {job_id: Job.from_api(job_id, entry) for job_id, entry in entries.items()}

    @property
    def ids_per_request(self) -> int:
        """How many ids one status request may carry here: a URL's worth, or the bulk extension's."""
        return MAX_IDS_PER_BULK if self._features.get("bulk") else MAX_IDS_PER_GET

    def status_batches(self, ids: Sequence[str]) -> list[list[str]]:
        """``ids`` split into status requests: GET-sized (a 4 KB URL, 100 ids), or bulk-sized."""
        if self._features.get("bulk"):
            return [list(ids[i:i + MAX_IDS_PER_BULK]) for i in range(0, len(ids), MAX_IDS_PER_BULK)]
        return chunk_ids(ids, base_len=len(self.base_url))

    async def _abandon(self, ids: list[str]) -> None:
        """Cancel jobs created for callers that stopped waiting (a cancelled run) while their POST was out.

        Best effort: a job that cannot be cancelled runs to its end unwatched, as any job
        whose submit was interrupted on the wire.
        """
        try:
            await self.cancel(ids)
        except GridLLMError:
            pass

    async def status_entries(self, ids: Iterable[str], *, retry: bool = True,
                             known: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The raw ``jobs`` entries, unparsed: the poller parses only what changed.

        ``known`` maps ids to the log the caller already has. Where the
        service offers ``POST /jobs/status`` (a local extension), up to 1000
        ids then go in one request and each answer carries only what its log
        grew by; the entries returned hold the whole log either way.
        """
        wanted = arguments.id_list(ids)
        if known is not None and len(wanted) <= MAX_IDS_PER_BULK and self._may_bulk():
            try:
                return await self._bulk_entries(wanted, known, retry)
            except NotSupported:
                pass  # an older or foreign service: GETs from now on
        found: dict[str, Any] = {}
        for chunk in chunk_ids(wanted, base_len=len(self.base_url)):
            try:
                data = await self._call("GET", "", retry=retry, url=self._jobs_url(tuple(chunk)))
            except APIError as exc:
                if exc.status_code == 404:
                    continue  # none of these ids is known
                raise
            jobs = data.get("jobs")
            if jobs is None:
                jobs = {}
            if not isinstance(jobs, dict):
                raise ProtocolError("the status answer has no 'jobs' object")
            wanted = set(chunk)
            found.update((jid, entry) for jid, entry in jobs.items() if jid in wanted)
        return found

    async def revive(self) -> str | None:
        """Start the embedded service again after it went away: once per outage, default endpoint only.

        Returns what had happened to the old one (``... exited with SIGSEGV
        (log ...)``) when a new one now answers, None when nothing was tried
        (no ``reviver``, another endpoint, already tried, or something answers
        anyway). The ``reviver`` is given by the layer that owns the service
        (``core.local.revivable``): this layer only knows when to ask.
        """
        if self.reviver is None or not self.endpoint.is_default or self._revive_tried:
            return None
        self._revive_tried = True
        return await self.reviver(self)

    # -- plumbing ----------------------------------------------------------

    def _jobs_url(self, ids: tuple[str, ...]) -> tuple[str, httpx.URL]:
        """``{base}/jobs/{ids}``, parsed by httpx once per batch shape rather than once per GET.

        The URL text goes through ``httpx.URL``'s parser (all of its checks) once,
        not again on every tick while the set of live jobs stays the same.
        """
        cached = self._urls.get(ids)
        if cached is None:
            text = f"{self.base_url}/jobs/" + ",".join(ids)
            cached = (text, httpx.URL(text))
            if len(self._urls) >= _URL_CACHE_SIZE:
                del self._urls[next(iter(self._urls))]  # the oldest shape
            self._urls[ids] = cached
            self.urls_built += 1
        return cached

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | bytes | None = None,
        retry: bool = True,
        feature: str | None = None,
        url: tuple[str, httpx.URL] | None = None,
    ) -> dict[str, Any]:
        if not retry:
            # What AsyncRetrying does when nothing may be retried, without building it per call.
            try:
                return await self._once(method, path, json_body, feature, url)
            except Retryable as exc:
                raise exc.error from None
        try:
            return await retrying(lambda: self._once(method, path, json_body, feature, url), self.retry, self.clock,
                                  post=method == "POST")
        except Retryable as exc:
            raise exc.error from None

    async def _once(
        self,
        method: str,
        path: str,
        json_body: dict[str, Any] | bytes | None,
        feature: str | None,
        prepared: tuple[str, httpx.URL] | None = None,
    ) -> dict[str, Any]:
        if prepared is None:
            url = f"{self.base_url}/{path}"
            target: str | httpx.URL = url
        else:
            url, target = prepared
        if self._http.is_closed:
            raise ConfigError("this JobsClient is closed: make a new one (or use it inside `async with`)")
        try:
            # An absolute URL: httpx then parses a 3 KB id list once, not three times
            # (and not at all when the batch's URL was prepared on an earlier tick).
            async with self._in_flight:
                if isinstance(json_body, bytes):  # encoded already (the poller's bulk request)
                    response = await self._http.request(method, target, content=json_body, headers=_JSON_TYPE)
                else:
                    response = await self._http.request(method, target, json=json_body)
        except httpx.HTTPError as exc:
            raise self._failure(method, url, exc) from None
        except httpx.InvalidURL as exc:
            raise ConfigError(f"cannot ask {self._scrub(url)!r}: {self._scrub(exc)}") from None
        self._revive_tried = False  # it answered: a later outage may start the service again
        return self._parse(method, url, response, feature)

    def _failure(self, method: str, url: str, exc: httpx.HTTPError) -> Retryable:
        return failure(method, url, exc, base_url=self.base_url, scrub=self._scrub)

    def _parse(self, method: str, url: str, response: httpx.Response, feature: str | None) -> dict[str, Any]:
        return parse_answer(method, url, response, feature, base_url=self.base_url, features=self._features,
                            has_token=bool(self.endpoint.token), scrub=self._scrub)

    def _scrub(self, text: object) -> str:
        """Remove the token, and any password in a URL, from text that may reach a user."""
        out = mask_credentials(str(text))
        if self.endpoint.token and self.endpoint.token.reveal():
            out = out.replace(self.endpoint.token.reveal(), "********")
        return out
