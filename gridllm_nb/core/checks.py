"""Checks: a verdict on every answer, made the moment the answer ends.

A check is named by a spec (``contains:TEXT``, ``json``, ``max-words:N``...)
or is a plain Python callable ``(answer_text, result) -> bool | float |
(bool, reason)``. ``parse_checks`` turns what a front end was given into
``Check`` objects once, before anything is sent (a bad spec is a one-line
``ConfigError``); ``evaluate`` gives one ``Verdict`` per check when a job
ends. In a grid a spec may name a column of the prompt's row,
``contains:{expected}``, filled in per prompt. A check that raises is a
failed verdict whose reason is the exception in one line: a bad check never
ends a run. Judges (``core.judge``) give verdicts of the same shape, later:
pending until the judge's own; a run cut short (its timeout, a cancel) fails
every verdict still pending, so none stays pending.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.jobs import JobState
from ..errors import ConfigError
from ..text import one_line

if TYPE_CHECKING:
    from .results import Result

__all__ = ["BUILT_INS", "Check", "Verdict", "evaluate_checks", "evaluator", "is_judge", "judged",
           "parse_check", "parse_checks", "settle", "summary_line", "with_judges"]

_FIELD = re.compile(r"\{([A-Za-z_]\w*)\}")
_REASON_WIDTH = 160


@dataclass(frozen=True)
class Verdict:
    """One check's (or judge's) verdict on one answer.

    ``passed`` is None while a judge is still at work (``pending``); ``score``
    is a check's number (a callable's float) or a judge's score scaled to
    0-1; ``reason`` is one line, empty when a check passed for the obvious
    reason; ``raw`` keeps a judge's own words.
    """

    name: str
    passed: bool | None
    score: float | None = None
    reason: str = ""
    kind: str = "check"
    raw: str | None = None

    @property
    def pending(self) -> bool:
        return self.passed is None

    @property
    def mark(self) -> str:
        return "…" if self.pending else "✓" if self.passed else "✗"

    def line(self) -> str:
        """``✓ contains:Paris`` or ``✗ json: Expecting value`` (``… judge:m judging…`` while pending)."""
        if self.pending:
            return f"… {self.name} judging…"
        score = f" {self.score:.2f}" if self.score is not None and self.kind == "judge" else ""
        reason = f": {self.reason}" if self.reason and (not self.passed or self.kind == "judge") else ""
        return f"{self.mark} {self.name}{score}{reason}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "score": self.score, "reason": self.reason,
                               "kind": self.kind}
        if self.raw is not None:
            out["raw"] = self.raw
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(name=str(data.get("name", "")), passed=data.get("passed"), score=data.get("score"),
                   reason=str(data.get("reason") or ""), kind=str(data.get("kind") or "check"), raw=data.get("raw"))


Outcome = Any  # bool | float | (bool | float, reason)
Test = Callable[[str, "Result"], Outcome]


@dataclass(frozen=True)
class Check:
    """A named test of an answer; ``spec`` may hold ``{column}`` fields filled from a grid row."""

    name: str
    make: Callable[[str], Test] | None = None  # spec argument -> test (a built-in)
    argument: str = ""  # the built-in's argument as written, fields and all
    test: Test | None = None  # a callable given as is

    @property
    def fields(self) -> list[str]:
        return _FIELD.findall(self.argument)

    def bound(self, row: Mapping[str, Any] | None) -> Test:
        """The test for one answer: the argument's ``{column}`` fields filled from ``row``."""
        if self.test is not None:
            return self.test
        assert self.make is not None
        argument = self.argument
        if self.fields:
            missing = [f for f in self.fields if row is None or f not in row]
            if missing:
                where = "this prompt's row" if row is not None else "a run (columns come from a grid's rows)"
                raise LookupError(f"no column {missing[0]!r} in {where}")
            argument = _FIELD.sub(lambda m: str(row[m.group(1)]), argument)  # type: ignore[index]
        return self.make(argument)


def _contains(needle: str) -> Test:
    return lambda text, _r: (needle in text, f"no {needle!r} in the answer")


def _icontains(needle: str) -> Test:
    folded = needle.casefold()
    return lambda text, _r: (folded in text.casefold(), f"no {needle!r} in the answer (any case)")


def _not_contains(needle: str) -> Test:
    return lambda text, _r: (needle not in text, f"the answer holds {needle!r}")


def _equals(expected: str) -> Test:
    return lambda text, _r: (text.strip() == expected.strip(), f"the answer is not {expected.strip()!r}")


def _regex(pattern: str) -> Test:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"regex:{pattern}: not a regular expression ({exc})") from None
    return lambda text, _r: (compiled.search(text) is not None, f"nothing matches /{pattern}/")


def _max_words(n: str) -> Test:
    try:
        limit = int(n)
    except ValueError:
        raise ConfigError(f"max-words:{n}: N must be a whole number") from None
    if limit < 0:
        raise ConfigError(f"max-words:{n}: N must be ≥ 0")

    def test(text: str, _r: Result) -> Outcome:
        words = len(text.split())
        return words <= limit, f"{words} words, over {limit}"
    return test


def _unfenced(text: str) -> str:
    """The answer without a surrounding Markdown code fence (models wrap JSON in one)."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and len(body) >= 6:
        body = body[3:-3]
        first, _, rest = body.partition("\n")
        body = rest if first.strip().isalpha() or not first.strip() else body
    return body.strip()


def _json(_argument: str) -> Test:
    def test(text: str, _r: Result) -> Outcome:
        try:
            json.loads(_unfenced(text))
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        return True
    return test


def _json_schema(file: str) -> Test:
    try:
        schema = json.loads(Path(file).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"json-schema:{file}: cannot read the schema ({exc})") from None
    try:
        import jsonschema
    except ImportError:
        raise ConfigError("json-schema checks need jsonschema: pip install jsonschema") from None
    validator = jsonschema.validators.validator_for(schema)(schema)

    def test(text: str, _r: Result) -> Outcome:
        try:
            value = json.loads(_unfenced(text))
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return True
        return False, f"{'/'.join(map(str, error.absolute_path)) or 'value'}: {error.message}"
    return test


# name -> (makes a test from the argument, takes an argument)
BUILT_INS: dict[str, tuple[Callable[[str], Test], bool]] = {
    "contains": (_contains, True), "icontains": (_icontains, True), "not-contains": (_not_contains, True),
    "equals": (_equals, True), "regex": (_regex, True), "json": (_json, False),
    "json-schema": (_json_schema, True), "max-words": (_max_words, True),
}


def parse_check(spec: str | Callable[..., Any] | Check) -> Check:
    """One check from a spec (``contains:TEXT``...), a callable, or a ``Check``; ConfigError if it is none."""
    if isinstance(spec, Check):
        return spec
    if callable(spec):
        return Check(name=getattr(spec, "__name__", None) or type(spec).__name__, test=spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a check is a spec such as contains:TEXT or a callable, not {spec!r:.40}")
    kind, colon, argument = spec.strip().partition(":")
    known = ", ".join(f"{k}:…" if takes else k for k, (_m, takes) in BUILT_INS.items())
    if kind not in BUILT_INS:
        raise ConfigError(f"unknown check {spec!r}; the built-in ones: {known}")
    make, takes = BUILT_INS[kind]
    if takes and not (colon and argument):
        raise ConfigError(f"check {kind} needs its argument: {kind}:…")
    if not takes and argument:
        raise ConfigError(f"check {kind} takes no argument (given {argument!r})")
    check = Check(name=spec.strip(), make=make, argument=argument)
    if not check.fields:
        make(argument)  # a bad regex, N or schema file is said now, before anything is sent
    return check


def parse_checks(specs: Sequence[str | Callable[..., Any] | Check] | str | Callable[..., Any] | None
                 ) -> tuple[Check, ...]:
    """``checks=`` as given (one spec, a callable, a list of them, or None) as ``Check`` objects."""
    if specs is None:
        return ()
    if isinstance(specs, (str, Check)) or callable(specs):
        specs = [specs]  # type: ignore[list-item]
    if not isinstance(specs, Sequence):
        raise ConfigError(f"checks must be a spec, a callable or a list of them, not {type(specs).__name__}")
    checks = tuple(parse_check(s) for s in specs)
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ConfigError(f"two checks are named {next(n for n in names if names.count(n) > 1)!r}")
    return checks


def _one_line(text: str) -> str:
    line = one_line(text)
    return line if len(line) <= _REASON_WIDTH else line[: _REASON_WIDTH - 1] + "…"


def _verdict(name: str, outcome: Outcome) -> Verdict:
    reason = ""
    if isinstance(outcome, tuple) and len(outcome) == 2:
        outcome, reason = outcome
    if isinstance(outcome, bool) or outcome is None:
        passed = bool(outcome)
        return Verdict(name, passed, 1.0 if passed else 0.0, "" if passed else _one_line(reason or "failed"))
    if isinstance(outcome, (int, float)):
        score = float(outcome)
        passed = score >= 0.5
        return Verdict(name, passed, score, _one_line(reason) if reason or passed else f"score {score:g}")
    raise TypeError(f"a check returns bool, a number or (bool, reason), not {type(outcome).__name__}")


def evaluate_checks(checks: Sequence[Check], result: Result, row: Mapping[str, Any] | None = None) -> list[Verdict]:
    """Every check's verdict on ``result`` (ended): an answer that did not complete fails them all."""
    if not result.ok:
        why = f"no answer: {result.state.label}"
        return [Verdict(c.name, False, 0.0, why) for c in checks]
    verdicts = []
    for check in checks:
        try:
            verdicts.append(_verdict(check.name, check.bound(row)(result.text, result)))
        except Exception as exc:  # noqa: BLE001 - a check's own bug is its verdict, never the run's end
            verdicts.append(Verdict(check.name, False, 0.0, _one_line(f"{type(exc).__name__}: {exc}")))
    return verdicts


def summary_line(verdicts: Sequence[Verdict]) -> str:
    """``2/3 checks passed`` (empty without verdicts)."""
    done = [v for v in verdicts if not v.pending]
    if not done:
        return ""
    return f"{sum(1 for v in done if v.passed)}/{len(done)} checks passed"


def is_judge(item: Any) -> bool:
    """A judge (``core.judge.Judge``) grades asynchronously: it has ``grade(jobs, result, row)``."""
    return hasattr(item, "grade")


RowOf = Callable[["Result"], "Mapping[str, Any] | None"]


def evaluator(items: Sequence[Any], row_of: RowOf | None = None) -> Callable[[Any, Result], None] | None:
    """``LiveJobs.evaluate`` for ``items``: as a job ends, its checks' verdicts, and a pending one per judge
    (the card shows "judging…" until ``judged`` has the judge's own)."""
    if not items:
        return None
    plain = [c for c in items if not is_judge(c)]
    judges = [j for j in items if is_judge(j)]

    def evaluate(_jobs: Any, result: Result) -> None:
        verdicts = evaluate_checks(plain, result, row_of(result) if row_of else None)
        if result.ok:
            verdicts += [Verdict(j.name, None, kind="judge") for j in judges]
        else:
            verdicts += [Verdict(j.name, False, 0.0, f"no answer: {result.state.label}", kind="judge")
                         for j in judges]
        result.checks = verdicts
    return evaluate


def settle(jobs: Any, result: Result, verdict: Verdict) -> None:
    """``verdict`` in place of ``result``'s of the same name (a judge's, pending until now), published as the
    same end again (``LiveJobs.publish``): the card, the history and a grid's counts see it."""
    result.checks = [verdict if v.name == verdict.name else v for v in result.checks]
    jobs.publish(result, replace(result.as_update(), delta=""))


async def judged(step: Awaitable[None], jobs: Any, result: Result, items: Sequence[Any], question: str,
                 row: Mapping[str, Any] | None, group: Sequence[Result], claimed: set[tuple[int, int]]) -> None:
    """``step`` (a job followed to its end), then each judge's grading of its answer, one after the other;
    a pairwise judge's, once every answer of its ``group`` (the prompt's) has ended, by the last to end.
    Cut short (the run's timeout or a cancel), it fails the verdicts it would have given (``_not_judged``)."""
    judges = [j for j in items if is_judge(j)]
    try:
        await step
        for judge in judges:
            if getattr(judge, "pairwise", False):
                key = (id(judge), id(group[0]))
                if all(r.state.terminal for r in group) and key not in claimed:
                    claimed.add(key)
                    await judge.grade_group(jobs, group, question, row)
            elif result.ok:
                await judge.grade(jobs, result, question, row)
    except asyncio.CancelledError:
        _not_judged(jobs, result, group, judges, claimed)
        raise


def _not_judged(jobs: Any, result: Result, group: Sequence[Result], judges: Sequence[Any],
                claimed: set[tuple[int, int]]) -> None:
    """A run cut short starts no judging job, so each verdict still pending would stay so for ever: those of
    ``result``, and its group's pairwise ones (an answer that ended first waits for its group), fail now. A
    pairwise judging job already under way (``claimed``) fails its own, saying how it ended (``core.judge``)."""
    why = "not judged within the run's timeout" if jobs.cut is JobState.TIMED_OUT else "not judged: interrupted"
    for judge in judges:
        pairwise = getattr(judge, "pairwise", False)
        if pairwise and (id(judge), id(group[0])) in claimed:
            continue
        for r in (group if pairwise else [result]):
            if any(v.name == judge.name and v.pending for v in r.checks):
                settle(jobs, r, Verdict(judge.name, False, None, why, kind="judge"))


def with_judges(items: Sequence[Any], question_of: Callable[[Result], str], row_of: RowOf | None = None,
                group_of: Callable[[Result], Sequence[Result]] | None = None
                ) -> Callable[[Awaitable[None], Any, Result], Awaitable[None]]:
    """Wraps a job's coroutine so its judging follows in the same slot (so ``max_live`` bounds both);
    ``question_of(result)`` is the prompt it answered, ``group_of(result)`` every answer to it."""
    if not any(is_judge(i) for i in items):
        return lambda step, _jobs, _result: step
    claimed: set[tuple[int, int]] = set()
    return lambda step, jobs, result: judged(step, jobs, result, items, question_of(result),
                                             row_of(result) if row_of else None,
                                             group_of(result) if group_of else [result], claimed)
