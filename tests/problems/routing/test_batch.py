"""Tests of qopt.problems.routing.batch: one training batch through BatchRouter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing import (
    ROUTING_SOLVER_DEFAULTS,
    BatchRouter,
    PairwiseTerms,
    expert_capacity,
    routing_energy,
    sinkhorn_assignment,
)
from qopt.solvers import QoptFallbackWarning, resolve_solver
from tests.problems.routing.helpers import assert_feasible


def _logits(num_tokens: int, num_experts: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=(num_tokens, num_experts))


def test_linear_batch_reports_its_gap_to_the_exact_optimum() -> None:
    router = BatchRouter(group_size=32, sample_params={"seed": 0})
    logits = _logits(128, 8, seed=0)
    routed = router.route(logits, k=2, capacity=expert_capacity(128, 8, 2, 1.0))
    assert_feasible(routed.assignment, 8, 2, np.full(8, 32))
    record = routed.record
    assert record["dropped"] == 0 and record["max_violation"] == 0.0
    # The global polish reaches the exact optimum on a linear objective.
    assert record["optimality_gap"] == pytest.approx(0.0, abs=1e-9)
    assert record["objective"] == pytest.approx(record["exact_objective"])
    assert routed.fallback is None


def test_similarity_terms_come_from_the_router_inputs_and_beat_the_warm_start() -> None:
    router = BatchRouter(
        pairwise="similarity", similarity_weight=0.1, group_size=32, sample_params={"seed": 0}
    )
    logits = _logits(128, 8, seed=3)
    hidden = np.random.default_rng(3).normal(size=(128, 16))
    capacity = expert_capacity(128, 8, 1, 1.0)
    routed = router.route(logits, 1, capacity, hidden)
    terms = router.pairwise_terms(logits, hidden)
    assert terms is not None and terms.token_similarity is not None
    assert (terms.token_similarity[:32, 32:] == 0).all()  # neighbours within a group only
    assert "optimality_gap" not in routed.record  # no exact comparison with pairwise terms
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    warm = sinkhorn_assignment(log_probs, 1, capacity, repair=True)
    assert routed.solution.energy < routing_energy(warm, log_probs, terms)


def test_a_callable_gives_the_terms() -> None:
    seen: list[tuple[int, ...]] = []

    def terms(log_probs: np.ndarray, hidden: np.ndarray | None) -> PairwiseTerms:
        seen.append(log_probs.shape)
        return PairwiseTerms(expert_similarity=np.eye(4))

    BatchRouter(pairwise=terms, sample_params={"seed": 0}).route(_logits(16, 4, 1), 1, 4)
    assert seen == [(16, 4)]


def test_a_remote_solver_that_fails_is_reported_as_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("dwave.system")
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "nowhere" / "dwave.conf"))
    solver = resolve_solver("dwave", defaults=ROUTING_SOLVER_DEFAULTS)
    router = BatchRouter(solver=solver, group_size=8)
    with pytest.warns(QoptFallbackWarning, match="Solver 'dwave' failed"):
        routed = router.route(_logits(16, 4, 2), 1, 4)
    assert routed.fallback is not None and "DWAVE_CONFIG_FILE" in routed.fallback
    assert routed.solution.solutions[0].record is not None
    assert routed.solution.solutions[0].record.solved_by == "sa"
    assert_feasible(routed.assignment, 4, 1, np.full(4, 4))


def test_bad_batches_and_settings_are_refused() -> None:
    with pytest.raises(InvalidProblemError, match="non-finite"):
        BatchRouter().route(np.full((4, 2), np.nan), 1, 2)
    with pytest.raises(InvalidProblemError, match="Capacity too small for k"):
        BatchRouter().route(_logits(8, 2, 0), 1, 3)
    with pytest.raises(SolverConfigurationError, match="'pairwise' parameter of Mine"):
        BatchRouter(pairwise="dense", owner="Mine")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match="'group_size' parameter of BatchRouter"):
        BatchRouter(group_size=0)


def test_experts_restrict_the_routing_to_their_columns() -> None:
    logits = _logits(64, 8, seed=3)
    experts = np.array([0, 2, 3, 6, 7])
    capacity = expert_capacity(64, 5, 1, 1.0)
    router = BatchRouter(group_size=16, sample_params={"seed": 0})
    routed = router.route(logits, k=1, capacity=capacity, experts=experts)
    # Every token on one of the given experts, none over capacity; indices are the layer's.
    assert set(np.unique(routed.assignment)) <= set(experts.tolist())
    assert np.bincount(routed.assignment.reshape(-1), minlength=8).max() <= capacity
    # The same route and figures as routing the sliced logits, with log-probabilities among
    # the routed experts only (the objective stays on its scale).
    alone = router.route(logits[:, experts], k=1, capacity=capacity)
    np.testing.assert_array_equal(routed.assignment, experts[alone.assignment])
    for key in ("objective", "exact_objective", "max_violation", "dead_experts", "dropped"):
        assert routed.record[key] == pytest.approx(alone.record[key])
    assert routed.record["optimality_gap"] == pytest.approx(0.0, abs=1e-9)


def test_experts_restrict_the_expert_pair_terms() -> None:
    cost = PairwiseTerms.device_cost([0, 0, 1, 1, 2, 2])
    terms = PairwiseTerms(communication_cost=cost, communication_weight=5.0)
    router = BatchRouter(group_size=None, pairwise=terms, sample_params={"seed": 0})
    logits = _logits(24, 6, seed=4)
    experts = np.array([1, 2, 3, 5])
    routed = router.route(logits, k=2, capacity=expert_capacity(24, 4, 2, 1.5), experts=experts)
    assert set(np.unique(routed.assignment)) <= set(experts.tolist())
    # The pair terms that reached the solver are those among the routed experts.
    sliced = BatchRouter(
        group_size=None,
        pairwise=PairwiseTerms(
            communication_cost=cost[np.ix_(experts, experts)], communication_weight=5.0
        ),
        sample_params={"seed": 0},
    ).route(logits[:, experts], k=2, capacity=expert_capacity(24, 4, 2, 1.5))
    np.testing.assert_array_equal(routed.assignment, experts[sliced.assignment])


def test_bad_experts_are_refused() -> None:
    router = BatchRouter(group_size=8)
    logits = _logits(8, 4, seed=0)
    for bad in ([0, 0, 1], [0, 4], [], [0.0, 1.0]):
        with pytest.raises(InvalidProblemError, match="'experts' parameter"):
            router.route(logits, k=1, capacity=8, experts=bad)
