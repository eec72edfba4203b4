"""Observations to surrogate targets: ParEGO scalarization and black-box constraint ranking."""

from __future__ import annotations

import math

import numpy as np

from qopt.search import rank_infeasible, scalarize, targets


def test_scalarize_keeps_pareto_order_and_marks_failures_worst() -> None:
    values = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [np.nan, 0.0]])
    for seed in range(5):
        y = scalarize(values, np.random.default_rng(seed))
        # The dominated point (2, 2) is worse than both front points under any weights.
        assert y[2] > max(y[0], y[1])
        assert math.isinf(y[3])


def test_infeasible_points_rank_after_feasible_ones_by_violation() -> None:
    y = rank_infeasible(np.array([5.0, 1.0, 0.0, -1.0, np.inf]), [0.0, 0.0, 2.0, 1.0, 0.0])
    feasible, infeasible = y[[0, 1]], y[[2, 3]]
    assert infeasible.min() > feasible.max()
    assert y[2] > y[3]  # more violation, worse
    assert math.isinf(y[4])


def test_targets_follow_the_direction_and_fail_worst() -> None:
    rng = np.random.default_rng(0)
    y = targets([(2.0,), (math.nan,), (5.0,)], [0.0] * 3, [-1.0], rng)
    assert y.tolist() == [-2.0, math.inf, -5.0]
    assert targets([(2.0,), (5.0,)], [0.0, 0.0], [1.0], rng).tolist() == [2.0, 5.0]
