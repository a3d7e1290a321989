"""Ratings from pairwise games: Bradley–Terry (the default) or Elo, with bootstrap intervals and shared ranks.

Why Bradley–Terry: Elo updates a rating vote by vote, so the same votes in
another order give other ratings, and the last votes weigh most. The
Bradley–Terry model says model ``i`` beats ``j`` with probability
``p_i / (p_i + p_j)``; its maximum-likelihood fit over all games at once
depends only on how many games each pair played and who won them, never on
their order. Public arenas (LMSYS Chatbot Arena) rank this way.

The fit: the strengths where every model's expected wins equal its wins,
``W_i = sum_j n_ij p_i / (p_i + p_j)`` (``W_i`` the wins of ``i``, ``n_ij`` the
games of the pair), found by Newton's method on the log-likelihood, which is
concave. A tie counts as half a win each way (the games stay whole: a tie
is one game).
With few votes a model that never lost has an infinite MLE, so each model
also plays ``prior`` (2) virtual games, tied, against a reference of strength 1
(a maximum a posteriori fit; ``prior=0`` is the plain MLE, which needs
every model to have won and lost). Ratings are on Elo's scale,
``400 * log10(p)``, shifted so that their mean is 1000: 100 points apart
means the stronger wins 64% of their games.

Elo (start 1000, K=32, games in vote order) stays as ``method="elo"``.

Uncertainty: a 95% interval from a seeded bootstrap (the same votes give
the same table). The votes are resampled with replacement ``rounds`` times
and the ratings refitted each time, as public arenas do. That alone cannot
see what every resample shares: from one vote, or votes all alike, each
resample is the same and the interval a point. So Bradley–Terry adds as
many parametric resamples, each game's outcome drawn from the fitted
ratings (a tie drawn as a win or a loss), and the interval is the 2.5th to
97.5th percentile of both together. With the prior of two virtual games,
two models are set apart by a clean sweep of five votes, or by 15-5 but
not 14-6: about where an exact binomial test at 5% would (six, 15-5), never
by one or two votes. A model's rank is 1 + the number of models whose
interval lies wholly above its own:
models whose intervals overlap share a rank, because the votes do not tell
them apart.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["METHODS", "Game", "add_leaderboard_arguments", "bradley_terry", "elo", "rate", "shared_ranks"]

Game = tuple[str, str, float]  # (a, b, a's score: 1 a win, 0.5 a tie, 0 a loss)
METHODS = ("bt", "elo")
MEAN = 1000.0
PRIOR = 2.0  # virtual tied games per model against the reference (see the module's docstring)
ELO_K = 32.0
_SCALE = 400.0 / math.log(10.0)  # natural log of a strength -> Elo points
_TOLERANCE = 1e-10
_MAX_STEPS = 100


def bradley_terry(games: Iterable[Game], models: Sequence[str], *, prior: float = PRIOR) -> dict[str, float]:
    """The Bradley–Terry ratings of ``models`` (mean 1000, Elo scale), the maximum of the likelihood of ``games``.

    ``prior``: virtual tied games each model plays against a reference of strength 1
    (0: the plain maximum-likelihood fit, a ``ValueError`` unless every model won and lost).
    """
    if not models:
        return {}
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    wins = [prior / 2.0] * k
    played = [prior] * k
    pairs: dict[tuple[int, int], float] = {}
    for a, b, score in games:
        i, j = index[a], index[b]
        wins[i] += score
        wins[j] += 1.0 - score
        played[i] += 1.0
        played[j] += 1.0
        key = (i, j) if i < j else (j, i)
        pairs[key] = pairs.get(key, 0.0) + 1.0
    if prior <= 0 and any(w <= 0 or w >= n for w, n in zip(wins, played)):
        raise ValueError("the plain MLE needs every model to have won and lost a game: use a prior")
    theta = _newton(wins, pairs, prior, k)
    mean = sum(theta) / k
    return {m: MEAN + _SCALE * (x - mean) for m, x in zip(models, theta)}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _newton(wins: Sequence[float], pairs: Mapping[tuple[int, int], float], prior: float, k: int) -> list[float]:
    """The log-strengths that zero the gradient ``W_i - sum_j n_ij s(t_i - t_j) - prior s(t_i)`` (``s`` the
    logistic function): Newton's method on the concave log-likelihood, steps halved until it grows.
    Without a prior the scale is free: the last model is pinned at 0."""
    free = k if prior > 0 else k - 1
    theta = [0.0] * k

    def loglik(t: Sequence[float]) -> float:
        total = sum(w * x for w, x in zip(wins, t))
        total -= sum(n * _logaddexp(t[i], t[j]) for (i, j), n in pairs.items())
        return total - sum(prior * _logaddexp(x, 0.0) for x in t)

    current = loglik(theta)
    for _ in range(_MAX_STEPS):
        grad, information = _slope(theta, wins, pairs, prior, free)
        step = _solve(information, grad[:free]) + [0.0] * (k - free)
        size = 1.0
        while True:
            trial = [x + size * d for x, d in zip(theta, step)]
            value = loglik(trial)
            if value >= current or size < 1e-6:
                break
            size /= 2
        theta, current = trial, value
        if max(abs(size * d) for d in step) < _TOLERANCE:
            break
    return theta


def _slope(theta: Sequence[float], wins: Sequence[float], pairs: Mapping[tuple[int, int], float], prior: float,
           free: int) -> tuple[list[float], list[list[float]]]:
    """The gradient of the log-likelihood at ``theta`` and the negated Hessian of its ``free`` first coordinates."""
    k = len(theta)
    grad = list(wins)
    hess = [[0.0] * k for _ in range(k)]
    for i in range(k):
        s = _sigmoid(theta[i])
        grad[i] -= prior * s
        hess[i][i] += prior * s * (1 - s)
    for (i, j), n in pairs.items():
        s = _sigmoid(theta[i] - theta[j])
        grad[i] -= n * s
        grad[j] -= n * (1 - s)
        c = n * s * (1 - s)
        hess[i][i] += c
        hess[j][j] += c
        hess[i][j] -= c
        hess[j][i] -= c
    return grad, [row[:free] for row in hess[:free]]


def _logaddexp(a: float, b: float) -> float:
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))


def _solve(matrix: list[list[float]], vector: Sequence[float]) -> list[float]:
    """``matrix^-1 vector`` by Gaussian elimination with partial pivoting (a small, positive definite system)."""
    n = len(vector)
    rows = [matrix[i][:] + [vector[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / head[col]
            if factor:
                rows[r] = [x - factor * y for x, y in zip(rows[r], head)]
    out = [0.0] * n
    for i in reversed(range(n)):
        out[i] = (rows[i][n] - sum(rows[i][j] * out[j] for j in range(i + 1, n))) / rows[i][i]
    return out


def elo(games: Iterable[Game], models: Sequence[str]) -> dict[str, float]:
    """Elo ratings (start 1000, K=32), updated game by game in the order given."""
    rating = {m: MEAN for m in models}
    for a, b, score in games:
        expected = 1.0 / (1.0 + 10 ** ((rating[b] - rating[a]) / 400.0))
        rating[a] += ELO_K * (score - expected)
        rating[b] -= ELO_K * (score - expected)
    return rating


def _fit(matches: Sequence[Sequence[Game]], models: Sequence[str], method: str, prior: float) -> dict[str, float]:
    played = [g for match in matches for g in match]
    return elo(played, models) if method == "elo" else bradley_terry(played, models, prior=prior)


def _win(a: float, b: float) -> float:
    """The chance that a model rated ``a`` beats one rated ``b``."""
    return 1.0 / (1.0 + 10 ** ((b - a) / 400.0))


def shared_ranks(intervals: Mapping[str, tuple[float, float]]) -> dict[str, int]:
    """Rank of each model: 1 + how many models' intervals lie wholly above its own (overlap: a shared rank)."""
    return {m: 1 + sum(1 for other, (low, _) in intervals.items() if other != m and low > high)
            for m, (_, high) in intervals.items()}


def _percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values``, linearly interpolated."""
    at = q * (len(values) - 1)
    low = math.floor(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def rate(matches: Sequence[Sequence[Game]], models: Sequence[str], *, method: str = "bt", rounds: int = 200,
         seed: int = 0, prior: float = PRIOR) -> list[dict[str, Any]]:
    """One row per model, best first: ``model``, ``rank``, ``rating``, ``ci_low``, ``ci_high``.

    ``matches``: the games of each vote (a vote is what the bootstrap
    resamples, so the games of one round stay together). ``rounds`` 0: no
    interval (it is the rating itself).
    """
    if method not in METHODS:
        raise ValueError(f"unknown rating method {method!r}; choose from {', '.join(METHODS)}")
    rating = _fit(matches, models, method, prior)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(rounds if matches else 0):
        boot = _fit(rng.choices(matches, k=len(matches)), models, method, prior)
        for m in models:
            samples[m].append(boot[m])
    if method == "bt":  # as many again, each game's outcome drawn from the fitted model
        played = [(a, b) for match in matches for a, b, _ in match]
        for _ in range(rounds if played else 0):
            drawn = [(a, b, 1.0 if rng.random() < _win(rating[a], rating[b]) else 0.0) for a, b in played]
            boot = bradley_terry(drawn, models, prior=prior)
            for m in models:
                samples[m].append(boot[m])
    intervals = {}
    for m in models:
        s = sorted(samples[m]) or [rating[m]]
        intervals[m] = (_percentile(s, 0.025), _percentile(s, 0.975))
    ranks = shared_ranks(intervals)
    rows = [{"model": m, "rank": ranks[m], "rating": rating[m], "ci_low": intervals[m][0],
             "ci_high": intervals[m][1]} for m in models]
    rows.sort(key=lambda r: (-r["rating"], r["model"]))
    return rows


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    """The leaderboard's options, declared once so ``gridllm-nb leaderboard`` and ``%gridllm leaderboard``
    take the same names, defaults and help (here, beside ``METHODS``: parsing a command line loads no more)."""
    parser.add_argument("--method", choices=METHODS, default="bt", help="bt: Bradley–Terry (default); elo: Elo")
    parser.add_argument("--mine", action="store_true", help="count only the votes cast by this user")
