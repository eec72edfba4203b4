"""Tests of qopt.problems.routing.formulation: the constrained QUBO and its numpy BQM."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from qopt.problems.routing import (
    PairwiseTerms,
    affinity,
    exact_assignment,
    knn_similarity,
    routing_bqm,
    routing_problem,
)
from tests.problems.routing.helpers import (
    assert_feasible,
    log_probs,
    repair_cases,
)


@settings(max_examples=60, deadline=None)
@given(repair_cases())
def test_routing_problem_repair_gives_feasible_sample(
    case: tuple[np.ndarray, np.ndarray, int, np.ndarray],
) -> None:
    scores, matrix, k, capacity = case
    formulation = routing_problem(scores, k, capacity)
    raw = {(t, e): int(matrix[t, e]) for t, e in np.ndindex(matrix.shape)}
    assert formulation.repair is not None and formulation.decode is not None
    repaired = formulation.repair(raw)
    assert formulation.model.is_feasible(repaired)
    assert_feasible(formulation.decode(repaired), scores.shape[1], k, capacity)


@pytest.mark.parametrize(
    ("num_tokens", "num_experts", "k", "capacity", "penalty", "with_pairwise"),
    [
        (6, 3, 1, [2, 2, 2], None, False),
        (7, 4, 2, [4, 3, 5, 7], 1.5, True),
        (5, 3, 1, [0, 5, 3], None, True),  # a zero capacity and one that cannot bind
        (9, 3, 2, [8, 6, 9], 0.7, False),
    ],
)
def test_routing_bqm_equals_the_constrained_qubo_term_by_term(
    num_tokens: int,
    num_experts: int,
    k: int,
    capacity: list[int],
    penalty: float | None,
    with_pairwise: bool,
) -> None:
    rng = np.random.default_rng(num_tokens)
    scores = rng.normal(size=(num_tokens, num_experts))
    terms = (
        PairwiseTerms(
            token_similarity=knn_similarity(rng.normal(size=(num_tokens, 4)), num_neighbors=2),
            expert_similarity=rng.random((num_experts, num_experts)),
            diversity_weight=0.3,
        )
        if with_pairwise
        else None
    )
    cap = np.array(capacity)
    fast = routing_bqm(scores, k, cap, pairwise=terms, penalty=penalty)
    formulation = routing_problem(scores, k, cap, pairwise=terms, penalty=penalty)
    reference = formulation.model.to_bqm(formulation.penalty)
    assert set(fast.variables) == set(reference.variables)
    order = list(reference.variables)
    linear, (rows, cols, data), offset = fast.to_numpy_vectors(order, sort_indices=True)
    ref_linear, (ref_rows, ref_cols, ref_data), ref_offset = reference.to_numpy_vectors(
        order, sort_indices=True
    )
    assert np.allclose(linear, ref_linear) and offset == pytest.approx(ref_offset)
    assert np.array_equal(rows, ref_rows) and np.array_equal(cols, ref_cols)
    assert np.allclose(data, ref_data)


def test_routing_problem_decodes_a_polished_assignment() -> None:
    scores = log_probs(24, 4, seed=9)
    optimum = affinity(exact_assignment(scores, 1, 6), scores)
    formulation = routing_problem(scores, 1, 6)
    assert formulation.decode is not None and formulation.repair is not None
    # Any feasible sample decodes to the optimum: the polish finishes the job.
    start = formulation.repair({(t, e): 0 for t in range(24) for e in range(4)})
    assert affinity(formulation.decode(start), scores) == pytest.approx(optimum)
    unpolished = routing_problem(scores, 1, 6, polish=False)
    assert unpolished.decode is not None
    assert affinity(unpolished.decode(start), scores) < optimum - 1e-6
