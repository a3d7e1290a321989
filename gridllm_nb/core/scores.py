"""Pass rates and scores with honest uncertainty: one row per model, and which models tie.

Ten prompts are few: 8/10 passed is anything from about half to nearly all.
So a pass rate comes with its 95% Wilson score interval (good at small n and
near 0 or 1, where the textbook ±1.96·√(p(1-p)/n) interval fails), a mean
judge score with its Student-t interval, and two models whose intervals
overlap are marked as not distinguishable: the grid cannot tell them apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import Result

__all__ = ["has_scores", "mean_interval", "overlaps", "score_rows", "scores_html", "scores_table", "wilson"]

Z95 = 1.959963984540054
# Student's t, two-sided 95%, by degrees of freedom (30 and more: the normal's z).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045}


def wilson(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``passed`` successes in ``n`` trials (95% by default); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """The mean and its 95% Student-t interval; (None, None, None) without values, no interval for one."""
    if not values:
        return None, None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = _T95.get(len(values) - 1, Z95) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def overlaps(a: tuple[float | None, float | None], b: tuple[float | None, float | None]) -> bool:
    """Two intervals share a point (an unknown end counts as overlapping)."""
    if None in a or None in b:
        return True
    return a[0] <= b[1] and b[0] <= a[1]  # type: ignore[operator]


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def score_rows(by_model: Mapping[str, Sequence[Result]]) -> list[dict[str, Any]]:
    """Per model: ``answers`` (ended), ``passed`` (all verdicts passed) of ``checked``, ``pass_rate``
    with ``pass_low``/``pass_high`` (Wilson), ``score`` (mean judge score, 0-1) with ``score_low``/
    ``score_high``, ``ttft_s`` and ``tokens_per_s`` (medians), and ``ties``: the models whose pass
    interval (or, without checks, score interval) overlaps this one's."""
    rows = []
    for tag, results in by_model.items():
        ended = [r for r in results if r.state.terminal]
        verdicts = [r.passed for r in ended if r.passed is not None]
        passed = sum(1 for v in verdicts if v)
        low, high = wilson(passed, len(verdicts)) if verdicts else (None, None)
        judged = [v.score for r in ended for v in r.checks if v.kind == "judge" and v.score is not None]
        mean, s_low, s_high = mean_interval(judged)
        if s_low is not None and s_high is not None:  # the scale is 0-1: so is the interval
            s_low, s_high = max(0.0, s_low), min(1.0, s_high)
        rows.append({
            "model": tag, "answers": len(ended), "checked": len(verdicts), "passed": passed if verdicts else None,
            "pass_rate": passed / len(verdicts) if verdicts else None, "pass_low": low, "pass_high": high,
            "score": mean, "score_low": s_low, "score_high": s_high,
            "ttft_s": _median([r.ttft_s for r in ended if r.ok]),
            "tokens_per_s": _median([r.tokens_per_s for r in ended if r.ok]),
        })
    for row in rows:
        row["ties"] = [other["model"] for other in rows if other is not row and _tied(row, other)]
    return rows


def _tied(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a["pass_rate"] is not None and b["pass_rate"] is not None:
        return overlaps((a["pass_low"], a["pass_high"]), (b["pass_low"], b["pass_high"]))
    if a["score"] is not None and b["score"] is not None:
        return overlaps((a["score_low"], a["score_high"]), (b["score_low"], b["score_high"]))
    return False


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _cells(row: Mapping[str, Any]) -> list[str]:
    rate = "-" if row["pass_rate"] is None else (
        f"{row['passed']}/{row['checked']} {_percent(row['pass_rate'])} "
        f"[{_percent(row['pass_low'])}, {_percent(row['pass_high'])}]")
    score = "-" if row["score"] is None else f"{row['score']:.2f}" + (
        "" if row["score_low"] is None else f" [{row['score_low']:.2f}, {row['score_high']:.2f}]")
    ttft = "-" if row["ttft_s"] is None else f"{row['ttft_s']:.2f} s"
    rate_s = "-" if row["tokens_per_s"] is None else f"{row['tokens_per_s']:.0f}"
    ties = "not distinguishable from " + ", ".join(row["ties"]) if row["ties"] else ""
    return [row["model"], str(row["answers"]), rate, score, ttft, rate_s, ties]


SCORE_HEADINGS = ["model", "answers", "passed (95% CI)", "judge score (95% CI)", "median TTFT", "tok/s", ""]


def scores_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The score rows as aligned plain text, for a terminal or a repr."""
    table = [SCORE_HEADINGS] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(SCORE_HEADINGS))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in table)


def scores_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The score rows as an escaped HTML table (a grid's summary display)."""
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in SCORE_HEADINGS)
    body = "".join("<tr>" + "".join(f"<td style=\"text-align:left\">{html.escape(c)}</td>" for c in _cells(r))
                   + "</tr>" for r in rows)
    return f'<table class="gridllm-scores"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def has_scores(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Some model has a pass rate or a judge score: worth showing."""
    return any(r["pass_rate"] is not None or r["score"] is not None for r in rows)
