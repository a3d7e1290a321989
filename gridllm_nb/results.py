"""Results as the front ends show them: one model's answer, and a run's answers by tag.

``Result.apply`` is the one place a result changes; ``Results`` is the value
of a run everywhere (the magic's cell, the panel, ``run``/``arun``, the CLI),
and in a notebook its rich display is the saved side-by-side picture.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .jobs import JobState, JobUpdate, finish_note

if typing.TYPE_CHECKING:
    from .diff import Diff

__all__ = ["Result", "Results"]


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
    finish: str | None = None
    tokens: int | None = None

    @property
    def ok(self) -> bool:
        return self.state is JobState.COMPLETED

    @property
    def finish_note(self) -> str:
        return finish_note(self.state, self.finish, self.tokens)

    def apply(self, update: JobUpdate) -> None:
        """Take one live update: the one place a result's state changes."""
        if update.job_id:
            self.job_id = update.job_id
        self.state, self.text, self.error = update.state, update.text, update.error
        self.elapsed, self.raw_status = update.elapsed, update.raw_status
        if update.finish is not None:
            self.finish, self.tokens = update.finish, update.tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "id": self.job_id,
            "state": self.state.value,
            "text": self.text,
            "error": self.error,
            "elapsed_s": round(self.elapsed, 3),
            "finish": self.finish,
            "tokens": self.tokens,
        }


class Results(Mapping[str, Result]):
    """tag -> Result for one run, in the order the models were asked for."""

    def __init__(self, prompt: str = "", results: Mapping[str, Result] | None = None,
                 format: str = "markdown") -> None:
        self.prompt = prompt
        self.format = format  # how the rich display shows each answer: markdown, text, code or json
        self._by_tag: dict[str, Result] = dict(results or {})

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

    def to_list(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._by_tag.values()]

    def to_pandas(self) -> Any:
        """A DataFrame with one row per model (pandas is imported only here)."""
        import pandas as pd

        from .diff import similarity_columns

        rows = self.to_list()
        for row in rows:
            row["prompt"] = self.prompt
        return pd.DataFrame(rows, columns=["tag", "id", "state", "elapsed_s", "finish", "tokens", "error", "text",
                                           "prompt"]).assign(**similarity_columns(self))  # sim_<tag> per model

    def diff(self, a: str, b: str) -> Diff:
        """Model ``a``'s answer against ``b``'s, word by word (``diff.Diff``; ConfigError on an unknown tag)."""
        from .diff import diff_results

        return diff_results(self, a, b)

    def table(self, width: int = 60) -> str:
        """Compact plain-text table: tag, state, elapsed, first line of text or error."""
        rows = [("model", "state", "time", "answer")]
        for r in self._by_tag.values():
            first = (r.error if r.error and not r.text else r.text).strip().splitlines()
            snippet = first[0] if first else ""
            if len(snippet) > width:
                snippet = snippet[: width - 1] + "…"
            rows.append((r.tag, r.state.label, f"{r.elapsed:.1f}s", snippet))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
            for row in rows
        ).rstrip()

    def __repr__(self) -> str:
        return f"Results({len(self)} model{'' if len(self) == 1 else 's'})\n{self.table()}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook the value *is* the picture: every answer side by side, saved
        as sanitized HTML that needs no widget (``sidebyside``)."""
        from .sidebyside import results_bundle

        return results_bundle(list(self._by_tag.values()), self.format)
