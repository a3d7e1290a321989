"""Judges: a model grades each answer, as a job like any other, on the same service.

``judge(model, rubric)`` goes wherever ``checks`` go. When an answer ends,
its card shows "judging…" (a pending ``Verdict``); the judging job is then
sent to ``model`` through the run's own client and poller, in the answer's
own slot (so a grid's ``max_live`` bounds answers and judgements together).
The judge is asked for a score on a fixed scale and one line of reason;
``parse_score`` reads the score robustly (``SCORE: 7``, ``7/10``, ``7 out
of 10``...). A reply with no score in it is a failed judgement that keeps
the judge's raw text. The rubric may name the prompt row's columns
(``The right answer is {expected}.``), as checks do. A ``pairwise`` judge
sees every model's answer to a prompt in one job, lettered in a shuffled
order with no model named (as in the arena), and names the better one.
A run cut short (its timeout, a cancel) ends a judging job as it ends its
own jobs, and fails the verdict: none stays "judging…".
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..api.jobs import JobState
from ..errors import ConfigError
from ..text import one_line, shorten
from .checks import Verdict, is_judge, parse_checks, settle

if TYPE_CHECKING:
    from .live import LiveJobs
    from .results import Result

__all__ = ["DEFAULT_RUBRIC", "Judge", "judge", "judge_prompt", "pairwise_prompt", "parse_all", "parse_judge_spec",
           "parse_score", "parse_winner"]

DEFAULT_RUBRIC = "Is the answer correct, complete and to the point?"
_FIELD = re.compile(r"\{([A-Za-z_]\w*)\}")
_NUMBER = r"(\d+(?:\.\d+)?)"
_PATTERNS = (
    re.compile(rf"score\W{{0,4}}{_NUMBER}\s*(?:/|out of)\s*{_NUMBER}", re.IGNORECASE),
    re.compile(rf"score\W{{0,4}}{_NUMBER}", re.IGNORECASE),
    re.compile(rf"{_NUMBER}\s*(?:/|out of)\s*{_NUMBER}", re.IGNORECASE),
    re.compile(rf"^\W*{_NUMBER}\b"),
)


@dataclass(frozen=True)
class Judge:
    """``model`` grades each answer by ``rubric`` on 0..``scale``; ``pass_mark`` (0-1) is the pass."""

    model: str
    rubric: str = DEFAULT_RUBRIC
    scale: int = 10
    pass_mark: float = 0.5
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"max_tokens": 48,
                                                                                 "temperature": 0}))
    pairwise: bool = False  # sees every model's answer to a prompt at once, shuffled, names hidden
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{'pairwise' if self.pairwise else 'judge'}:{self.model}"

    def prompt(self, question: str, answer: str, row: Mapping[str, Any] | None = None) -> str:
        return judge_prompt(_fill(self.rubric, row), question, answer, self.scale)

    async def grade(self, jobs: LiveJobs, result: Result, question: str,
                    row: Mapping[str, Any] | None = None) -> None:
        """Send the judging job for ``result`` (its answer to ``question`` ended), wait for it, and put the verdict in
        place of the pending one on ``result`` (``settle``)."""
        await self._ask(jobs, self.prompt(question, result.text, row),
                        lambda graded: settle(jobs, result, self.verdict(graded)))

    async def grade_group(self, jobs: LiveJobs, group: Sequence[Result], question: str,
                          row: Mapping[str, Any] | None = None) -> None:
        """``pairwise``: one judging job sees every answer to ``question`` that completed, lettered in a
        shuffled order (as in the arena: no model's name, no fixed side); each gets the verdict."""
        answered = [r for r in group if r.ok]
        if len(answered) < 2:
            for r in answered:
                settle(jobs, r, Verdict(self.name, False, None, "nothing to compare it with", kind="judge"))
            return
        order = list(answered)
        self.rng.shuffle(order)
        letters = [chr(ord("A") + i) for i in range(len(order))]

        def give(graded: Result) -> None:
            for r, verdict in zip(order, self.pairwise_verdicts(graded, letters)):
                settle(jobs, r, verdict)

        await self._ask(jobs, pairwise_prompt(_fill(self.rubric, row), question, [r.text for r in order], letters),
                        give)

    async def _ask(self, jobs: LiveJobs, prompt: str, give: Callable[[Result], None]) -> None:
        """Send one judging job, follow it to its end and ``give`` it, ended, for its verdicts. A run cut short
        ends the judging job as it ends its own jobs (``jobs.cut``: timed out, or cancelled), gives it so
        before the cut goes on (no verdict stays pending), and asks the service to cancel it."""
        from .live import LiveJobs
        from .results import Result

        side = LiveJobs(jobs.client, jobs.poller, hours=jobs.hours, options=dict(self.options))
        graded = Result(tag=self.model)
        try:
            await side.follow(prompt, graded, own_clock=True)
        except asyncio.CancelledError:
            cut = jobs.cut or JobState.CANCELLED
            live = side.end_live([graded], cut, "interrupted" if cut is JobState.CANCELLED else "")
            give(graded)
            await asyncio.shield(side.cancel(live))
            raise
        finally:
            side.close()
        give(graded)

    def verdict(self, graded: Result) -> Verdict:
        """The verdict of a judging job that ended."""
        if not graded.ok:
            return self._failed(graded)
        score, reason = parse_score(graded.text, self.scale)
        if score is None:
            return Verdict(self.name, False, None, "no score in the judge's reply", kind="judge", raw=graded.text)
        return Verdict(self.name, score >= self.pass_mark, score, reason, kind="judge", raw=graded.text)

    def pairwise_verdicts(self, graded: Result, letters: Sequence[str]) -> list[Verdict]:
        """The verdicts of a pairwise judging job that ended, one per lettered answer: the winner passes."""
        if not graded.ok:
            return [self._failed(graded)] * len(letters)
        winner, reason = parse_winner(graded.text, letters)
        if winner is None:
            return [Verdict(self.name, False, None, "no winner in the judge's reply", kind="judge",
                            raw=graded.text)] * len(letters)
        verdicts = []
        for letter in letters:
            won = winner in ("tie", letter)
            outcome = "a tie" if winner == "tie" else "won" if won else "lost"
            verdicts.append(Verdict(self.name, won, 0.5 if winner == "tie" else float(won),
                                    f"as {letter}, {outcome}" + (f": {reason}" if reason else ""), kind="judge",
                                    raw=graded.text))
        return verdicts

    def _failed(self, graded: Result) -> Verdict:
        """A judging job that ended without an answer: a failed verdict with no score (the judge gave none)."""
        why = f"the judge's job {graded.state.label}" + (f": {graded.error}" if graded.error else "")
        return Verdict(self.name, False, None, shorten(one_line(why), 160), kind="judge", raw=graded.text or None)


def _fill(rubric: str, row: Mapping[str, Any] | None) -> str:
    """The rubric's ``{column}`` fields from the prompt's row (left as written where it has none)."""
    return _FIELD.sub(lambda m: str(row[m.group(1)]) if row and m.group(1) in row else m.group(0), rubric)


def pairwise_prompt(rubric: str, question: str, answers: Sequence[str], letters: Sequence[str]) -> str:
    """What a pairwise judge is asked: the question, the answers by letter, and the reply's form."""
    shown = "".join(f"Answer {letter}:\n<<<\n{text}\n>>>\n\n" for letter, text in zip(letters, answers))
    return (f"You compare answers to a question. {rubric}\n\nQuestion:\n<<<\n{question}\n>>>\n\n{shown}"
            f"Which answer is better ({', '.join(letters)}, or TIE)? Reply in this form:\n"
            f"WINNER: {letters[0]}\nREASON: it is right and the other is not")


def parse_winner(text: str, letters: Sequence[str]) -> tuple[str | None, str]:
    """The winning letter (or ``"tie"``) in a pairwise judge's reply, and its reason; None when there is none."""
    match = re.search(r"winner\W{0,4}(tie|[A-Z])\b", text, re.IGNORECASE)
    found = match.group(1) if match else None
    if found is None and re.search(r"\btie\b", text, re.IGNORECASE):
        found = "tie"
    winner = None if found is None else "tie" if found.lower() == "tie" else found.upper()
    if winner is not None and winner != "tie" and winner not in letters:
        winner = None
    reason_match = re.search(r"reason\W{0,3}(.+)", text, re.IGNORECASE)
    reason = shorten(one_line(reason_match.group(1)), 160) if reason_match else ""
    return winner, reason


def judge_prompt(rubric: str, question: str, answer: str, scale: int = 10) -> str:
    """What the judge is asked: the rubric, the question and the answer, and the reply's two lines."""
    return (f"You grade an answer to a question. {rubric}\n\n"
            f"Question:\n<<<\n{question}\n>>>\n\nAnswer:\n<<<\n{answer}\n>>>\n\n"
            f"Give a score from 0 to {scale} and one short reason, in this form:\n"
            f"SCORE: 7\nREASON: the answer is right but long")


def parse_score(text: str, scale: int = 10) -> tuple[float | None, str]:
    """The score in a judge's reply, scaled to 0-1 (None when there is none on the scale), and its reason."""
    score = None
    for pattern in _PATTERNS:
        match = pattern.search(text.strip())
        if match is None:
            continue
        value = float(match.group(1))
        top = float(match.group(2)) if match.lastindex == 2 else float(scale)
        if top > 0 and 0 <= value <= top:
            score = value / top
            break
    reason_match = re.search(r"reason\W{0,3}(.+)", text, re.IGNORECASE)
    if reason_match:
        reason = reason_match.group(1)
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip() and not re.search(r"score", ln, re.IGNORECASE)]
        reason = lines[0] if lines else ""
    return score, shorten(one_line(reason), 160)


def judge(model: str, rubric: str = DEFAULT_RUBRIC, *, scale: int = 10, pass_mark: float = 0.5,
          options: Mapping[str, Any] | None = None, pairwise: bool = False, seed: int | None = None) -> Judge:
    """A judge for ``judge=``: ``model`` grades every answer by ``rubric``, 0..``scale``. With ``pairwise``
    it sees all the models' answers to a prompt at once, in a shuffled order (``seed`` fixes it), names
    hidden, and names the better one: the winner passes (a tie: all, at 0.5)."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("judge needs a model tag, e.g. judge('smollm2:135m')")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ConfigError("judge's rubric must be text")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"judge's scale must be a whole number ≥ 1, not {scale!r}")
    if not 0 <= pass_mark <= 1:
        raise ConfigError(f"judge's pass_mark is a fraction of the scale, 0-1, not {pass_mark!r}")
    chosen = dict(Judge.__dataclass_fields__["options"].default_factory())  # type: ignore[misc]
    chosen.update(options or {})
    return Judge(model.strip(), rubric.strip(), scale, pass_mark, MappingProxyType(chosen), bool(pairwise),
                 random.Random(seed))


def parse_judge_spec(spec: str) -> Judge:
    """``--judge MODEL[:RUBRIC]``. A tag holds at most one colon (``smollm2:135m``), so the text after a
    second colon is the rubric, and so is the text after the first when it holds a space
    (``judge-model:Is it polite?``)."""
    parts = spec.split(":")
    if len(parts) >= 3:
        model, rubric = ":".join(parts[:2]), ":".join(parts[2:])
    elif len(parts) == 2 and " " in parts[1].strip():
        model, rubric = parts
    else:
        model, rubric = spec, ""
    return judge(model, rubric.strip() or DEFAULT_RUBRIC)


def parse_all(checks: Any = None, judge: Any = None) -> tuple[Any, ...]:
    """``checks=`` and ``judge=`` of a run or grid, as one tuple of ``Check`` and judges (ConfigError if bad)."""
    judges: list[Any] = [] if judge is None else list(judge) if isinstance(judge, (list, tuple)) else [judge]
    judges = [parse_judge_spec(j) if isinstance(j, str) else j for j in judges]  # ``MODEL[:RUBRIC]``
    for j in judges:
        if not is_judge(j):
            raise ConfigError(f"judge= takes judge(model, rubric) or 'MODEL[:RUBRIC]', not {type(j).__name__}")
    return parse_checks(checks) + tuple(judges)
