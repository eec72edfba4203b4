"""Tests of qopt.problems.routing.baselines: exact assignment, Sinkhorn, greedy."""

from __future__ import annotations

import numpy as np
import pytest

from qopt.problems.routing import (
    affinity,
    apply_capacity,
    exact_assignment,
    greedy_assignment,
    routing_stats,
    sinkhorn_assignment,
    sinkhorn_plan,
    topk_assignment,
)
from tests.problems.routing.helpers import (
    assert_feasible,
    brute_force_optimum,
    log_probs,
)


@pytest.mark.parametrize(
    ("num_tokens", "num_experts", "k", "capacity"),
    [
        (5, 3, 1, 2),
        (4, 3, 2, 3),
        (5, 2, 1, 3),
        (3, 4, 2, 2),
    ],
)
def test_exact_assignment_matches_brute_force(
    num_tokens: int, num_experts: int, k: int, capacity: int
) -> None:
    for seed in range(3):
        scores = log_probs(num_tokens, num_experts, seed)
        chosen = exact_assignment(scores, k, capacity)
        assert_feasible(chosen, num_experts, k, np.full(num_experts, capacity))
        assert affinity(chosen, scores) == pytest.approx(brute_force_optimum(scores, k, capacity))


def test_exact_assignment_fills_capacity_when_short() -> None:
    chosen = exact_assignment(np.zeros((5, 2)), 1, 2)
    assert (chosen >= 0).sum() == 4  # 2 experts x 2 slots, one token dropped


def test_classical_routers() -> None:
    scores = np.array([[3.0, 1.0, 0.0], [2.5, 0.0, 1.0], [2.0, 1.0, 0.0]])
    assert topk_assignment(scores, 2).tolist() == [[0, 1], [0, 2], [0, 1]]
    assert greedy_assignment(scores, 1, 1).tolist() == [[0], [-1], [-1]]
    assert apply_capacity(np.array([[0, 1], [0, 1]]), 1, 3).tolist() == [[0, 1], [-1, -1]]
    plan = sinkhorn_plan(scores, 1, num_iterations=300)
    assert np.allclose(plan.sum(axis=1), 1.0) and np.allclose(plan.sum(axis=0), 1.0, atol=1e-3)
    balanced = sinkhorn_assignment(scores, 1, 1)
    assert sorted(balanced[:, 0].tolist()) == [0, 1, 2]
    stats = routing_stats(greedy_assignment(scores, 1, 1), 3, capacity=1)
    assert stats.dropped == 2 and stats.dead_experts == 2 and stats.dropped_tokens == 2
    assert stats.dropped_fraction == pytest.approx(2 / 3)
