"""Tests of qopt.problems.routing.polish (cycle canceling)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing import (
    PairwiseTerms,
    affinity,
    exact_assignment,
    expert_capacity,
    polish_assignment,
    repair_assignment,
    routing_energy,
    sinkhorn_assignment,
)
from tests.problems.routing.helpers import (
    assert_feasible,
    log_probs,
    repair_cases,
)


@st.composite
def _polish_cases(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, PairwiseTerms | None]:
    """A feasible assignment (repaired from random content), with or without pairwise terms."""
    scores, matrix, k, capacity = draw(repair_cases())
    num_tokens, num_experts = scores.shape
    start = repair_assignment(matrix, scores, k, capacity)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["linear", "tokens", "experts"]))
    terms = None
    if kind == "tokens":
        weights = rng.normal(size=(num_tokens, num_tokens))
        terms = PairwiseTerms(token_similarity=weights + weights.T, similarity_weight=0.7)
    elif kind == "experts":
        cost = rng.uniform(size=(num_experts, num_experts))
        terms = PairwiseTerms(
            expert_similarity=cost + cost.T,
            token_similarity=np.abs(rng.normal(size=(num_tokens, num_tokens))),
        )
    return scores, start, k, capacity, terms


@settings(max_examples=150, deadline=None)
@given(_polish_cases())
def test_polish_stays_feasible_and_never_raises_the_energy(
    case: tuple[np.ndarray, np.ndarray, int, np.ndarray, PairwiseTerms | None],
) -> None:
    scores, start, k, capacity, terms = case
    polished = polish_assignment(start, scores, k, capacity, pairwise=terms)
    assert_feasible(polished, scores.shape[1], k, capacity)
    assert routing_energy(polished, scores, terms) <= routing_energy(start, scores, terms) + 1e-9
    if terms is None and k == 1:
        # Cycle canceling on a linear objective stops only at the optimum (Klein 1967).
        optimum = affinity(exact_assignment(scores, k, capacity), scores)
        assert affinity(polished, scores) == pytest.approx(optimum, abs=1e-9)


def test_polish_reaches_the_exact_optimum_from_sinkhorn() -> None:
    for k in (1, 2):
        scores = log_probs(256, 8, seed=21)
        capacity = expert_capacity(256, 8, k, 1.0)
        warm = sinkhorn_assignment(scores, k, capacity, repair=True)
        optimum = affinity(exact_assignment(scores, k, capacity), scores)
        assert optimum - affinity(warm, scores) > 0.01 * abs(optimum)  # Sinkhorn alone: > 1 %
        polished = polish_assignment(warm, scores, k, capacity)
        assert affinity(polished, scores) == pytest.approx(optimum, abs=1e-9)


def test_polish_refuses_an_infeasible_assignment() -> None:
    scores = log_probs(4, 2, seed=0)
    with pytest.raises(InvalidProblemError, match="feasible assignment"):
        polish_assignment(np.array([[0], [0], [0], [1]]), scores, 1, 2)  # expert 0 over
    with pytest.raises(InvalidProblemError, match="feasible assignment"):
        polish_assignment(np.array([[0], [1], [-1], [1]]), scores, 1, 2)  # a dropped slot
    with pytest.raises(SolverConfigurationError, match="'max_rounds' parameter"):
        polish_assignment(np.array([[0], [0], [1], [1]]), scores, 1, 2, max_rounds=-1)
    # No rounds: the input comes back as it was.
    start = np.array([[1], [0], [1], [0]])
    assert polish_assignment(start, scores, 1, 2, max_rounds=0).tolist() == start.tolist()
