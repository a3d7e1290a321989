"""Bradley–Terry and Elo from pairwise games, bootstrap intervals and shared ranks, against hand-computed cases."""

from __future__ import annotations

import math
import random

import pytest

from gridllm_nb.core.ratings import bradley_terry, elo, rate, shared_ranks

A_B_C = (
    [("A", "B", 1.0)] * 2 + [("B", "A", 1.0)]
    + [("A", "C", 1.0)] * 4 + [("C", "A", 1.0)]
    + [("B", "C", 1.0)] * 2 + [("C", "B", 1.0)]
)


def test_the_plain_mle_of_a_hand_computed_case() -> None:
    """A beat B 2 of 3, A beat C 4 of 5, B beat C 2 of 3.

    The log-likelihood in ``t = log p`` is concave and its gradient for model i
    is ``W_i - sum_j n_ij p_i / (p_i + p_j)``. At p = (4, 2, 1):
    A: W = 2 + 4 = 6, expected 3 * 4/6 + 5 * 4/5 = 2 + 4 = 6;
    B: W = 1 + 2 = 3, expected 3 * 2/6 + 3 * 2/3 = 1 + 2 = 3;
    C: W = 1 + 1 = 2, expected 5 * 1/5 + 3 * 1/3 = 1 + 1 = 2.
    The gradient is zero, so (4, 2, 1) is the MLE (unique up to scale: the
    comparison graph is connected). On Elo's scale with mean 1000 (geometric
    mean of the strengths 2): A = 1000 + 400 log10 2 = 1120.41, B = 1000,
    C = 1000 - 400 log10 2 = 879.59.
    """
    got = bradley_terry(A_B_C, ["A", "B", "C"], prior=0)
    step = 400 * math.log10(2)
    assert got == pytest.approx({"A": 1000 + step, "B": 1000.0, "C": 1000 - step}, abs=1e-6)


def test_a_tie_is_half_a_win_each_way() -> None:
    """A beat B once and tied once: A has 1.5 wins of 2 games, so p_A / (p_A + p_B) = 3/4,
    p_A / p_B = 3, and the ratings are 1000 ± 200 log10 3 (95.42 points each side)."""
    got = bradley_terry([("A", "B", 1.0), ("B", "A", 0.5)], ["A", "B"], prior=0)
    half = 200 * math.log10(3)
    assert got == pytest.approx({"A": 1000 + half, "B": 1000 - half}, abs=1e-6)
    assert bradley_terry([("A", "B", 0.5)] * 4, ["A", "B"]) == pytest.approx({"A": 1000.0, "B": 1000.0})


def test_the_fit_does_not_depend_on_the_order_of_the_games_and_elo_does() -> None:
    games = A_B_C * 3
    shuffled = random.Random(4).sample(games, len(games))
    models = ["A", "B", "C"]
    assert bradley_terry(shuffled, models) == pytest.approx(bradley_terry(games, models), abs=1e-6)
    assert elo(shuffled, models) != pytest.approx(elo(games, models), abs=1e-6)


def test_with_a_prior_the_fit_zeroes_the_gradient_and_an_unbeaten_model_stays_finite() -> None:
    """With the prior every model also has one virtual tied game against a reference of strength 1;
    the fit must make each model's expected wins, virtual ones included, equal its wins."""
    games = [("A", "B", 1.0)] * 5 + [("B", "C", 1.0)]
    models = ["A", "B", "C"]
    with pytest.raises(ValueError, match="won and lost"):
        bradley_terry(games, models, prior=0)
    got = bradley_terry(games, models, prior=1.0)
    assert got["A"] > got["B"] > got["C"] and all(math.isfinite(v) for v in got.values())
    p = {m: 10 ** ((r - 1000) / 400) for m, r in got.items()}
    # The ratings are shifted to mean 1000; the reference sits where the fit put it, a factor c away.
    # c solves C's equation (C lost its one game): 0.5 = 1 * p_C/(p_C+p_B) + 1 * cp_C/(cp_C+1), found by bisection.
    def c_equation(c: float) -> float:
        return c * p["C"] / (c * p["C"] + 1) + p["C"] / (p["C"] + p["B"]) - 0.5
    low, high = 1e-6, 1e6
    for _ in range(200):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if c_equation(mid) < 0 else (low, mid)
    s = {m: low * v for m, v in p.items()}
    wins = {"A": 5.5, "B": 1.5, "C": 0.5}
    n = {("A", "B"): 5, ("B", "C"): 1}
    for m in models:
        expected = s[m] / (s[m] + 1)
        for (i, j), count in n.items():
            if m in (i, j):
                other = j if m == i else i
                expected += count * s[m] / (s[m] + s[other])
        assert expected == pytest.approx(wins[m], abs=1e-6), m


def test_elo_keeps_its_old_rule() -> None:
    got = elo([("A", "B", 1.0)], ["A", "B"])
    assert got == pytest.approx({"A": 1016.0, "B": 984.0})


def test_ranks_are_shared_when_intervals_overlap() -> None:
    intervals = {"a": (1100.0, 1200.0), "b": (1050.0, 1150.0), "c": (900.0, 1000.0), "d": (950.0, 1060.0)}
    # a and b overlap (rank 1); d overlaps b but lies under a (rank 2); c lies under a and b, overlaps d (rank 3).
    assert shared_ranks(intervals) == {"a": 1, "b": 1, "d": 2, "c": 3}


def test_rate_gives_seeded_intervals_around_the_fit_and_shared_ranks() -> None:
    matches = [[g] for g in A_B_C * 4] + [[("A", "C", 1.0), ("A", "B", 1.0)]] * 30
    rows = rate(matches, ["A", "B", "C"], seed=3)
    assert rows == rate(matches, ["A", "B", "C"], seed=3)
    assert [r["model"] for r in rows] == ["A", "B", "C"]
    for r in rows:
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
    by = {r["model"]: r for r in rows}
    assert by["A"]["rank"] == 1 and by["A"]["ci_low"] > by["B"]["ci_high"]
    assert by["B"]["rank"] == by["C"]["rank"] == 2  # B and C: 8-4 between them, too few games to tell apart
    assert by["B"]["ci_low"] < by["C"]["ci_high"]
    flat = rate(matches, ["A", "B", "C"], rounds=0)
    assert all(r["ci_low"] == r["rating"] == r["ci_high"] for r in flat)
    with pytest.raises(ValueError, match="unknown rating method"):
        rate(matches, ["A", "B", "C"], method="glicko")


def test_how_many_votes_set_two_models_apart() -> None:
    """Against an exact two-sided binomial test at 5%: a sweep needs 6 votes (5-0: p = 0.0625), 15-5 is
    p = 0.041 and 14-6 p = 0.115. The ranks split at a sweep of five, at 15-5, not at 14-6, and never on
    one or two votes, whose bootstrap alone would be a point (every resample the same vote)."""
    def apart(wins: int, losses: int) -> bool:
        rows = rate([[("a", "b", 1.0)]] * wins + [[("b", "a", 1.0)]] * losses, ["a", "b"])
        return [r["rank"] for r in rows] == [1, 2]

    assert [apart(n, 0) for n in range(1, 8)] == [False] * 4 + [True] * 3
    assert apart(15, 5) and not apart(14, 6) and not apart(8, 2)
