"""Results as the front ends show them: one model's answer, and a run's answers by tag.

``Result.apply`` is the one place a result changes; ``Results`` is the value
of a run everywhere (the magic's cell, the panel, ``run``/``arun``, the CLI),
and in a notebook its rich display is the saved side-by-side picture.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ..api.jobs import JobState, JobUpdate, finish_note
from ..errors import ConfigError
from ..text import shorten
from . import hooks

if typing.TYPE_CHECKING:
    from pathlib import Path

    from ..api.client import JobsClient
    from ..api.poller import PollSettings
    from ..config import Secret
    from .checks import Verdict
    from .diff import Diff

__all__ = ["RETRYABLE", "Result", "Results", "RunSpec", "verdict_columns"]

# The ends worth another try: the model did not answer (completed is not among them).
RETRYABLE = frozenset({JobState.FAILED, JobState.LOST, JobState.CANCELLED, JobState.TIMED_OUT})


@dataclass
class Result:
    """One model's answer to one prompt; partial text is kept whatever happens."""

    tag: str
    job_id: str | None = None
    text: str = ""
    state: JobState = JobState.SUBMITTED
    error: str | None = None
    elapsed: float = 0.0
    raw_status: str = ""
    finish_raw: str | None = None  # the service's own "stop"/"length" (local extension), kept as sent
    service_tokens: int | None = None  # tokens the service counted (local extension), else None
    # Run-relative times (seconds since the run started, as ``JobUpdate.elapsed``), recorded by
    # ``apply`` so every front end shows the same stats without keeping clocks of its own.
    submitted_s: float | None = None
    started_s: float | None = None  # first RUNNING, or first text when running was never seen
    first_token_s: float | None = None
    ended_s: float | None = None
    restarted: bool = False  # the service restarted the job: ``text`` keeps all that was shown (``api.feed``)
    checks: list[Verdict] = field(default_factory=list)  # set when the job ends (``core.checks``, ``core.judge``)

    @property
    def ok(self) -> bool:
        return self.state is JobState.COMPLETED

    @property
    def unsent(self) -> bool:
        """No job yet, nor an end: a grid's job waiting for its slot (or left so by a grid whose kernel
        died before its turn), or a submit still on its way."""
        return self.job_id is None and self.state is JobState.SUBMITTED

    @property
    def label(self) -> str:
        """Its state as tables and reports name it: ``not sent`` for a job that never went out."""
        return "not sent" if self.unsent else self.state.label

    # -- stats: why it ended, how long each phase took, how fast -------------------------

    @property
    def finish(self) -> str | None:
        """Why the answer ended, in one vocabulary: ``completed``, ``length`` (stopped at the
        token limit), ``failed``, ``cancelled``, ``timed_out``, ``lost``; None while live."""
        if not self.state.terminal:
            return None
        if self.state is JobState.COMPLETED:
            return "length" if self.finish_raw == "length" else "completed"
        return self.state.value.replace(" ", "_").replace("-", "_")

    @property
    def tokens(self) -> int | None:
        """The service's token count where it reports one, else an estimate (chars / 4)."""
        if self.service_tokens is not None:
            return self.service_tokens
        return max(1, round(len(self.text) / 4)) if self.text else None

    @property
    def tokens_estimated(self) -> bool:
        """True when ``tokens`` is len(text)/4 rather than the service's count."""
        return self.service_tokens is None and bool(self.text)

    @property
    def queued_s(self) -> float | None:
        """Submitted → first running."""
        if self.started_s is None:
            return None
        return max(0.0, self.started_s - (self.submitted_s or 0.0))

    @property
    def ttft_s(self) -> float | None:
        """Submitted → first text."""
        if self.first_token_s is None:
            return None
        return max(0.0, self.first_token_s - (self.submitted_s or 0.0))

    @property
    def gen_s(self) -> float | None:
        """First text → end (→ the latest update while live)."""
        if self.first_token_s is None:
            return None
        end = self.ended_s if self.ended_s is not None else self.elapsed
        return max(0.0, end - self.first_token_s)

    @property
    def tokens_per_s(self) -> float | None:
        tokens, gen = self.tokens, self.gen_s
        if not tokens or not gen:
            return None
        return tokens / gen

    def stats_line(self) -> str:
        """One compact line for a card: ``queued 0.2 s · first token 0.6 s · 41 tok/s``
        (``~41 tok/s`` when the tokens are estimated); empty when nothing is known yet. The
        state and the token-limit note are shown beside it already, so they are not repeated."""
        parts = []
        if self.queued_s is not None:
            parts.append(f"queued {self.queued_s:.1f} s")
        if self.ttft_s is not None:
            parts.append(f"first token {self.ttft_s:.1f} s")
        if (rate := self.tokens_per_s) is not None:
            parts.append(f"{'~' if self.tokens_estimated else ''}{rate:.0f} tok/s")
        return " · ".join(parts)

    @property
    def passed(self) -> bool | None:
        """Every check and judge passed; None without any, or while one is pending."""
        if not self.checks or any(v.pending for v in self.checks):
            return None
        return all(v.passed for v in self.checks)

    @property
    def score(self) -> float | None:
        """The mean score of the verdicts that have one (0-1); None without any."""
        scores = [v.score for v in self.checks if v.score is not None]
        return sum(scores) / len(scores) if scores else None

    @property
    def finish_note(self) -> str:
        return finish_note(self.state, self.finish_raw, self.service_tokens)

    def apply(self, update: JobUpdate) -> None:
        """Take one live update: the one place a result's state (and its stats) change.

        A restart (``JobUpdate.restart``, before a retry) drops everything the
        previous job left: its id, text, error, finish and times.
        """
        if update.restarts:
            for f in fields(self):
                if f.name != "tag":
                    setattr(self, f.name, f.default_factory() if f.default_factory is not MISSING else f.default)
            return
        if update.job_id:
            self.job_id = update.job_id
        at = update.elapsed
        first_look = self.submitted_s is None
        if first_look:
            # the first update a result sees is its submission (or, attached later, its
            # first look at the job); before it nothing about this job was known
            self.submitted_s = at if update.state is JobState.SUBMITTED else 0.0
        # A job first seen ended (a stored answer shown again): when it started or spoke is unknown.
        if not (first_look and update.state.terminal):
            if self.started_s is None and (update.state is JobState.RUNNING or update.text):
                self.started_s = at
            if self.first_token_s is None and update.text:
                self.first_token_s = at
        if update.state.terminal and self.ended_s is None:
            self.ended_s = at
        self.state, self.text, self.error = update.state, update.text, update.error
        self.elapsed, self.raw_status = update.elapsed, update.raw_status
        if update.finish is not None:
            self.finish_raw = update.finish
        if update.tokens is not None:
            self.service_tokens = update.tokens
        self.restarted = self.restarted or update.restarted

    def as_update(self) -> JobUpdate:
        """This result as it stands, as one update to a view that shows nothing of it yet (``delta`` is
        the whole text): how a stored answer is shown by a view fed with updates."""
        return JobUpdate(tag=self.tag, job_id=self.job_id, state=self.state, text=self.text, delta=self.text,
                         error=self.error,
                         elapsed=self.elapsed, raw_status=self.raw_status, finish=self.finish_raw,
                         tokens=self.service_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "id": self.job_id,
            "state": self.state.value,
            "text": self.text,
            "error": self.error,
            "elapsed_s": round(self.elapsed, 3),
            "queued_s": _round(self.queued_s),
            "ttft_s": _round(self.ttft_s),
            "gen_s": _round(self.gen_s),
            "tokens": self.tokens,
            "tokens_estimated": self.tokens_estimated,
            "tokens_per_s": _round(self.tokens_per_s, 1),
            "finish": self.finish,
            **({"checks": [v.to_dict() for v in self.checks], "passed": self.passed, "score": _round(self.score)}
               if self.checks else {}),
        }


def verdict_columns(results: Iterable[Result]) -> dict[str, list[Any]]:
    """A column per check or judge (True/False, None where it gave no verdict), then ``passed`` and
    ``score``: none at all when no result has a verdict."""
    results = list(results)
    names = list(dict.fromkeys(v.name for r in results for v in r.checks))
    if not names:
        return {}
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for r in results:
        by_name = {v.name: v.passed for v in r.checks}
        for name in names:
            columns[name].append(by_name.get(name))
    columns["passed"] = [r.passed for r in results]
    columns["score"] = [r.score for r in results]
    return columns


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class RunSpec:
    """What made a run, kept on its ``Results`` so ``retry`` asks again exactly the same way.

    The prompt and what went with it (system prompt, options, hours) and the
    endpoint: the URL as given (None: the configured one) with its token, a
    ``Secret`` that no repr shows, or the ``client`` that made the run while
    that client is still open. ``poll`` keeps the run's polling pace.
    """

    prompt: str
    system: str | None = None
    options: Mapping[str, Any] | None = field(default=None, hash=False)
    hours: float | None = None
    url: str | None = None
    token: Secret | None = field(default=None, repr=False)
    poll: PollSettings | None = field(default=None, repr=False)
    client: JobsClient | None = field(default=None, repr=False, compare=False)
    checks: tuple[Any, ...] = field(default=(), repr=False, compare=False)  # ``core.checks.Check``, judges
    # The names of the run's checks and judges that its ``checks`` lack: read from the history, a Python
    # callable cannot come back (``history.spec_of_run``); a retry says it does not run them.
    unkept_checks: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # A copy nobody can change: the caller's dict may be edited after the run.
        if self.options is not None:
            object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def open_client(self) -> tuple[JobsClient, bool]:
        """The run's own client while it is open, else a new one for the same endpoint; True: close it after."""
        if self.client is not None and not self.client.closed:
            return self.client, False
        from ..api.client import (
            JobsClient,  # httpx loads with the first run, not with the package
        )

        return JobsClient(self.url, self.token), True


class Results(Mapping[str, Result]):
    """tag -> Result for one run, in the order the models were asked for.

    ``spec`` is what made the run (``runner.RunSpec``: prompt, options,
    endpoint), set by ``arun``, so ``retry`` can ask again the same way;
    ``run_id`` is the run's id in the local history, when it is recorded there;
    ``started_at`` when the run started (UTC): a reattached job's times count from it.
    """

    def __init__(self, prompt: str = "", results: Mapping[str, Result] | None = None,
                 format: str = "markdown", *, spec: RunSpec | None = None, run_id: str | None = None,
                 started_at: datetime | None = None) -> None:
        self.prompt = prompt
        self.format = format  # how the rich display shows each answer: markdown, text, code or json
        self._by_tag: dict[str, Result] = dict(results or {})
        self.spec = spec
        self.run_id = run_id
        self.started_at = started_at

    def __getitem__(self, tag: str) -> Result:
        return self._by_tag[tag]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_tag)

    def __len__(self) -> int:
        return len(self._by_tag)

    def _set(self, result: Result) -> None:
        self._by_tag[result.tag] = result

    @property
    def ok(self) -> bool:
        """True when every model completed."""
        return bool(self._by_tag) and all(r.ok for r in self._by_tag.values())

    @property
    def done(self) -> bool:
        return all(r.state.terminal for r in self._by_tag.values())

    @property
    def retryable(self) -> list[str]:
        """The tags that ended without an answer (failed, lost, cancelled or timed out): what ``retry`` resubmits."""
        return [tag for tag, r in self._by_tag.items() if r.state in RETRYABLE]

    async def aretry(self, tags: Sequence[str] | None = None, *,
                     on_update: Callable[[JobUpdate], Any] | None = None,
                     timeout: float | None = None) -> Results:
        """Submit ``tags`` (default: every ``retryable`` one) again, as the run did, and follow them.

        The same prompt, system prompt, options, hours and endpoint as the run
        that made these Results (``spec``); the same ``Result`` objects start
        over (``JobUpdate.restart``) and are updated in place, and ``on_update``
        gets every update as with ``arun``. Returns ``self``.
        """
        if hooks.retrier is None:  # the package root gives it, on import
            raise ConfigError("retry needs gridllm_nb.core.run: import gridllm_nb and call run() first")
        return await hooks.retrier(self, tags, on_update=on_update, timeout=timeout)

    def retry(self, tags: Sequence[str] | None = None, *,
              on_update: Callable[[JobUpdate], Any] | None = None,
              timeout: float | None = None) -> Results:
        """Blocking ``aretry`` for scripts and notebooks (works inside Jupyter's running loop)."""
        from .sync import run_sync

        return run_sync(self.aretry(tags, on_update=on_update, timeout=timeout))

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._by_tag.values()]

    def to_pandas(self) -> Any:
        """A DataFrame with one row per model (pandas is imported only here)."""
        import pandas as pd

        from .diff import similarity_columns

        rows = self.to_list()
        for row in rows:
            row["prompt"] = self.prompt
        return pd.DataFrame(rows, columns=["tag", "id", "state", "elapsed_s", "queued_s", "ttft_s", "gen_s",
                                           "tokens", "tokens_per_s", "finish", "error", "text", "prompt"]
                            ).assign(**similarity_columns(self), **verdict_columns(self.values()))

    def diff(self, a: str, b: str) -> Diff:
        """Model ``a``'s answer against ``b``'s, word by word (``diff.Diff``; ConfigError on an unknown tag)."""
        from .diff import diff_results

        return diff_results(self, a, b)

    def table(self, width: int = 60) -> str:
        """Compact plain-text table: tag, state, elapsed, first line of text or error."""
        rows = [("model", "state", "time", "answer")]
        for r in self._by_tag.values():
            first = (r.error if r.error and not r.text else r.text).strip().splitlines()
            snippet = shorten(first[0], width) if first else ""
            rows.append((r.tag, r.label, f"{r.elapsed:.1f}s", snippet))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
            for row in rows
        ).rstrip()

    def __repr__(self) -> str:
        return f"Results({len(self)} model{'' if len(self) == 1 else 's'})\n{self.table()}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook the value *is* the picture: every answer side by side, saved
        as sanitized HTML that needs no widget (``display.table``)."""
        if hooks.picture is None:
            return {"text/plain": repr(self)}
        return hooks.picture(list(self._by_tag.values()), self.format)

    def save_html(self, path: Path | str) -> Path:
        """Write the run as one self-contained HTML report to ``path`` (``display.report``): the prompt,
        the answers side by side, stats, checks and judges, the endpoint (masked) and the options.
        No script, nothing loaded, model text sanitized: safe to mail. Returns the path."""
        return save_report(self, path)


def save_report(value: Any, path: Path | str) -> Path:
    """``value``'s report (a ``Results`` or a ``GridResults``) through the injected ``hooks.reporter``."""
    if hooks.reporter is None:
        raise ConfigError("save_html needs gridllm_nb's display layer: import gridllm_nb first")
    return hooks.reporter(value, path)  # type: ignore[no-any-return]
