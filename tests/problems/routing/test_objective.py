"""Tests of qopt.problems.routing.objective: pairwise terms and routing energy."""

from __future__ import annotations

import numpy as np
import pytest

from qopt.problems.routing import (
    PairwiseTerms,
    exact_assignment,
    knn_similarity,
    routing_energy,
    routing_problem,
)
from tests.problems.routing.helpers import (
    log_probs,
)


def test_routing_energy_matches_the_formulation_objective() -> None:
    scores = log_probs(6, 3, seed=4)
    similarity = knn_similarity(np.random.default_rng(0).normal(size=(6, 5)), num_neighbors=2)
    terms = PairwiseTerms(
        token_similarity=similarity, expert_similarity=np.ones((3, 3)), diversity_weight=0.3
    )
    formulation = routing_problem(scores, 2, 4, pairwise=terms)
    assignment = exact_assignment(scores, 2, 4)
    sample = {(t, e): int(e in assignment[t]) for t in range(6) for e in range(3)}
    centring = 2 * scores.mean(axis=1).sum()  # the objective centres each token's scores
    assert formulation.model.objective_energy(sample) == pytest.approx(
        routing_energy(assignment, scores, terms) + centring
    )


def test_knn_similarity_is_symmetric_sparse_and_blockwise() -> None:
    features = np.random.default_rng(0).normal(size=(10, 4))
    sim = knn_similarity(features, num_neighbors=2, block_size=5)
    assert np.allclose(sim, sim.T)
    assert (sim[:5, 5:] == 0).all()
    assert ((sim > 0).sum(axis=1) >= 1).any()
    assert (np.diag(sim) == 0).all()
