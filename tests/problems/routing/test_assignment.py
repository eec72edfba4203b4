"""Tests of qopt.problems.routing.assignment: capacity, statistics, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing import (
    PairwiseTerms,
    expert_capacity,
    repair_assignment,
    routing_problem,
    solve_routing,
)


def test_expert_capacity() -> None:
    assert expert_capacity(1024, 8, 1, 1.0) == 128
    assert expert_capacity(1024, 8, 2, 1.25) == 320
    assert expert_capacity(10, 2, 1, 10.0) == 10  # never more than the tokens


def test_bad_inputs_are_refused_clearly() -> None:
    scores = np.zeros((4, 2))
    with pytest.raises(InvalidProblemError, match="non-finite"):
        routing_problem(np.array([[np.nan, 0.0]]), 1, 1)
    with pytest.raises(InvalidProblemError, match="Capacity too small for k"):
        routing_problem(scores, 1, 1)
    with pytest.raises(InvalidProblemError, match="'k' parameter"):
        routing_problem(scores, 3, 4)
    with pytest.raises(InvalidProblemError, match="shape"):
        routing_problem(np.zeros(4), 1, 4)
    with pytest.raises(InvalidProblemError, match="capacity"):
        routing_problem(scores, 1, [4, 4, 4])
    with pytest.raises(InvalidProblemError, match="shape"):
        repair_assignment(np.zeros((3, 1), dtype=int), scores, 1, 4)
    with pytest.raises(InvalidProblemError, match="token_similarity"):
        routing_problem(scores, 1, 4, pairwise=PairwiseTerms(token_similarity=np.ones((2, 2))))
    with pytest.raises(SolverConfigurationError, match="group_size"):
        solve_routing(scores, 1, 4, group_size=0)
    with pytest.raises(SolverConfigurationError, match="warm_start"):
        solve_routing(scores, 1, 4, warm_start="random")  # type: ignore[arg-type]
