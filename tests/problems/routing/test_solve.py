"""Tests of qopt.problems.routing.solve: solve_routing through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from qopt.exceptions import SolverConfigurationError
from qopt.problems.routing import (
    PairwiseTerms,
    affinity,
    exact_assignment,
    expert_capacity,
    knn_similarity,
    routing_energy,
    routing_stats,
    sinkhorn_assignment,
    solve_routing,
)
from qopt.problems.routing.solve import (
    _block_diagonal,
    _group_vectors,
    _split_capacity,
    _warm_state,
)
from tests.problems.routing.helpers import (
    assert_feasible,
    log_probs,
)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("num_tokens", "num_experts", "k", "factor"),
    [
        (8, 4, 1, 1.0),
        (8, 3, 2, 1.0),
        (12, 4, 1, 1.5),
        (12, 4, 2, 1.25),
    ],
)
def test_linear_objective_within_one_percent_of_exact_optimum(
    seed: int, num_tokens: int, num_experts: int, k: int, factor: float
) -> None:
    scores = log_probs(num_tokens, num_experts, seed)
    capacity = expert_capacity(num_tokens, num_experts, k, factor)
    optimum = affinity(exact_assignment(scores, k, capacity), scores)
    # No warm start: the annealer alone (plus repair) must get there.
    result = solve_routing(
        scores, k, capacity, solver="sa", warm_start=None, seed=seed, num_reads=20
    )
    assert_feasible(result.assignment, num_experts, k, np.full(num_experts, capacity))
    assert result.warm_start_kept == 0
    assert optimum - result.affinity <= 0.01 * abs(optimum)
    stats = routing_stats(result.assignment, num_experts, capacity)
    assert stats.capacity_violation == 0 and stats.dropped == 0


def test_tight_capacity_gives_perfect_balance() -> None:
    scores = log_probs(16, 4, seed=0)
    result = solve_routing(scores, 1, 4, seed=0)
    stats = routing_stats(result.assignment, 4, 4)
    assert stats.load == (4, 4, 4, 4) and stats.max_violation == 0.0


def test_groups_share_capacity_and_stay_feasible() -> None:
    scores = log_probs(40, 4, seed=1)
    capacity = expert_capacity(40, 4, 2, 1.25)
    result = solve_routing(scores, 2, capacity, group_size=16, seed=0, num_reads=4)
    assert result.num_groups == 3
    assert len(result.solutions) == 1  # one solver call served the three groups
    assert result.num_samples == 3 * 4  # four reads, each seen by three groups
    assert_feasible(result.assignment, 4, 2, np.full(4, capacity))


@pytest.mark.parametrize("use_warm", [True, False])
def test_split_capacity_keeps_every_group_feasible(use_warm: bool) -> None:
    scores = log_probs(37, 5, seed=2)
    cap = np.full(5, expert_capacity(37, 5, 2, 1.0))
    groups = [np.arange(s, min(s + 8, 37)) for s in range(0, 37, 8)]
    warm = sinkhorn_assignment(scores, 2, cap, repair=True) if use_warm else None
    shares = _split_capacity(cap, groups, 2, warm)
    assert (np.sum(shares, axis=0) <= cap).all()
    for share, group in zip(shares, groups, strict=True):
        assert np.minimum(share, group.size).sum() >= group.size * 2
        if warm is not None:
            assert (np.bincount(warm[group].reshape(-1), minlength=5) <= share).all()


def test_warm_start_never_loses_and_reaches_tabu() -> None:
    scores = log_probs(32, 4, seed=5)
    capacity = expert_capacity(32, 4, 1, 1.0)
    warm = sinkhorn_assignment(scores, 1, capacity, repair=True)
    result = solve_routing(scores, 1, capacity, solver="tabu", timeout=20, seed=0)
    assert result.energy <= routing_energy(warm, scores) + 1e-9


def test_pairwise_similarity_pulls_tokens_together() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    similarity = np.zeros((4, 4))
    similarity[0, 1] = similarity[1, 0] = 5.0
    terms = PairwiseTerms(token_similarity=similarity)
    result = solve_routing(scores, 1, 2, pairwise=terms, warm_start=None, seed=0)
    assert result.assignment[0, 0] == result.assignment[1, 0]
    linear = solve_routing(scores, 1, 2, warm_start=None, seed=0)
    assert linear.assignment[0, 0] != linear.assignment[1, 0]


def test_pairwise_diversity_and_communication_cost_keep_experts_apart() -> None:
    scores = np.array([[1.0, 0.9, 0.5, 0.0]] * 2)
    expert_similarity = np.zeros((4, 4))
    expert_similarity[0, 1] = expert_similarity[1, 0] = 10.0
    result = solve_routing(
        scores, 2, 2, pairwise=PairwiseTerms(expert_similarity=expert_similarity), seed=0
    )
    assert all(set(row) != {0, 1} for row in result.assignment.tolist())
    comm = PairwiseTerms.device_cost([0, 1, 1, 0], device_cost=[[0, 10], [10, 0]])
    result = solve_routing(scores, 2, 2, pairwise=PairwiseTerms(communication_cost=comm), seed=0)
    for row in result.assignment.tolist():
        assert len({[0, 1, 1, 0][e] for e in row}) == 1  # both experts on one device


def test_block_diagonal_bqm_prices_the_warm_start_at_its_objective() -> None:
    # The warm state sets every slack bit so that no penalty is paid: its energy in the
    # batched BQM is the centred objective, group by group. This pins the slack encoding.
    scores = log_probs(40, 4, seed=7)
    capacity = np.full(4, expert_capacity(40, 4, 2, 1.25))
    warm = sinkhorn_assignment(scores, 2, capacity, repair=True)
    groups = [np.arange(s, min(s + 16, 40)) for s in range(0, 40, 16)]
    shares = _split_capacity(capacity, groups, 2, warm)
    blocks = [
        _group_vectors(scores[g], 2, c, None, None) for g, c in zip(groups, shares, strict=True)
    ]
    bqm, starts = _block_diagonal(blocks, 40 * 4, groups, 4)
    state = _warm_state(warm, [b.slack for b in blocks], starts, groups, shares, bqm.num_variables)
    centred = routing_energy(warm, scores) + 2 * scores.mean(axis=1).sum()
    assert bqm.energy((state, list(range(bqm.num_variables)))) == pytest.approx(centred)
    one_more = state.copy()
    one_more[int(np.flatnonzero(state[:160] == 0)[0])] = 1  # a token with k + 1 experts
    assert bqm.energy((one_more, list(range(bqm.num_variables)))) > centred


@pytest.mark.parametrize("solver", ["sa", "steepest"])
def test_large_batch_is_feasible_and_never_below_its_warm_start(solver: str) -> None:
    scores = log_probs(512, 8, seed=11)
    capacity = expert_capacity(512, 8, 2, 1.0)
    warm = sinkhorn_assignment(scores, 2, capacity, repair=True)
    result = solve_routing(scores, 2, capacity, solver=solver, group_size=64, seed=0, num_reads=1)
    assert_feasible(result.assignment, 8, 2, np.full(8, capacity))
    assert result.num_groups == 8
    assert result.energy <= routing_energy(warm, scores) + 1e-9


def test_the_pipeline_selects_and_repairs_the_routing_solve() -> None:
    # A penalty far too weak to enforce anything: raw samples break the constraints, and the
    # answer must come out of the Formulation's repair inside qopt.pipeline.
    scores = log_probs(48, 4, seed=3)
    capacity = expert_capacity(48, 4, 1, 1.0)
    result = solve_routing(
        scores,
        1,
        capacity,
        group_size=16,
        warm_start=None,
        penalty=1e-3,
        polish=None,
        seed=0,
        num_reads=3,
    )
    (solution,) = result.solutions
    assert solution.num_infeasible == 3 and solution.repaired and solution.feasible
    assert_feasible(result.assignment, 4, 1, np.full(4, capacity))
    # The pipeline's chosen sample is the assignment (no warm start to fall back on) ...
    matrix = np.zeros((48, 4), dtype=int)
    matrix[np.arange(48), result.assignment[:, 0]] = 1
    assert [solution.sample[i] for i in range(48 * 4)] == matrix.reshape(-1).tolist()
    # ... and its objective the centred routing energy of that assignment.
    centred = scores - scores.mean(axis=1, keepdims=True)
    assert solution.objective == pytest.approx(routing_energy(result.assignment, centred))
    assert result.num_infeasible == result.num_samples == 3 * 3  # per group, before repair


@pytest.mark.parametrize("k", [1, 2])
def test_solve_routing_within_one_percent_of_the_exact_optimum_at_callback_settings(
    k: int,
) -> None:
    # The callback's defaults: groups of 32, one read of 20 sweeps from Sinkhorn, polish.
    scores = log_probs(512, 8, seed=7)
    capacity = expert_capacity(512, 8, k, 1.0)
    optimum = affinity(exact_assignment(scores, k, capacity), scores)  # linear_sum_assignment / LP
    options = {"group_size": 32, "seed": 0, "num_reads": 1, "num_sweeps": 20}
    result = solve_routing(scores, k, capacity, **options)
    assert optimum - result.affinity <= 0.01 * abs(optimum)
    stats = routing_stats(result.assignment, 8, capacity)
    assert stats.capacity_violation == 0 and stats.dropped == 0 and stats.max_violation <= 0.05
    # What does the work: without the polish the annealer returns its warm start, > 1 % off,
    # and polishing inside the groups alone is held back by the capacity split.
    plain = solve_routing(scores, k, capacity, polish=None, **options)
    assert optimum - plain.affinity > 0.01 * abs(optimum)
    groups = solve_routing(scores, k, capacity, polish="groups", **options)
    assert plain.affinity < groups.affinity < result.affinity + 1e-9
    assert result.polish_gain > 0 and plain.polish_gain == 0


@pytest.mark.parametrize("skew", [4.0, 8.0])
def test_solve_routing_reaches_the_optimum_when_one_expert_dominates(skew: float) -> None:
    # A router that sends most tokens to one or two experts (as an unbalanced character-level
    # model does): the polish must still move hundreds of tokens to reach the optimum.
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, size=(1024, 8))
    logits[:, 0] += skew
    logits[:, 1] += skew / 2
    scores = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    capacity = expert_capacity(1024, 8, 1, 1.0)
    optimum = affinity(exact_assignment(scores, 1, capacity), scores)
    result = solve_routing(scores, 1, capacity, group_size=32, seed=0)
    assert result.affinity == pytest.approx(optimum, abs=1e-9)


def test_solve_routing_differs_from_the_exact_optimum_only_among_identical_tokens() -> None:
    # A character-level batch repeats tokens whose router logits are bit-identical (the same
    # byte at the same position after the same prefix, e.g. crops that start inside
    # indentation). The optimum may split such a class between experts, and which of its
    # tokens goes where is a tie that linear_sum_assignment and the polish break differently
    # (issue #4's stdlib "gap"): the objective and each class's expert counts must agree.
    rng = np.random.default_rng(0)
    distinct = rng.normal(0.0, 2.0, size=(128, 8))
    distinct[:, 0] += 4.0  # one expert dominates, as in the unbalanced stdlib runs
    logits = distinct[rng.integers(0, 128, size=512)]
    scores = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    capacity = expert_capacity(512, 8, 1, 1.0)
    exact = exact_assignment(scores, 1, capacity)
    result = solve_routing(scores, 1, capacity, group_size=32, seed=0)
    assert result.affinity == pytest.approx(affinity(exact, scores), abs=1e-9)
    _, label = np.unique(scores, axis=0, return_inverse=True)
    label = label.reshape(-1)

    def counts(assignment: np.ndarray) -> np.ndarray:
        table = np.zeros((label.max() + 1, 8), dtype=np.int64)
        np.add.at(table, (label, assignment[:, 0]), 1)
        return table

    assert ((counts(exact) > 0).sum(axis=1) > 1).any()  # the instance has ties that matter
    np.testing.assert_array_equal(counts(result.assignment), counts(exact))


def test_pairwise_objective_never_gets_worse_than_its_warm_start_or_its_sample() -> None:
    scores = log_probs(128, 8, seed=3)
    capacity = expert_capacity(128, 8, 1, 1.0)
    hidden = np.random.default_rng(3).normal(size=(128, 16))
    terms = PairwiseTerms(
        token_similarity=knn_similarity(hidden, num_neighbors=4, block_size=32),
        similarity_weight=0.1,
    )
    result = solve_routing(scores, 1, capacity, pairwise=terms, group_size=32, seed=0)
    warm = sinkhorn_assignment(scores, 1, capacity, repair=True)
    assert result.warm_energy == pytest.approx(routing_energy(warm, scores, terms))
    assert result.energy == pytest.approx(routing_energy(result.assignment, scores, terms))
    assert result.energy < result.warm_energy  # strictly better on this instance
    assert result.energy <= result.sample_energy + 1e-9
    assert_feasible(result.assignment, 8, 1, np.full(8, capacity))


def test_bad_polish_option_is_refused() -> None:
    with pytest.raises(SolverConfigurationError, match="'polish' parameter"):
        solve_routing(log_probs(8, 2, seed=0), 1, 4, polish="everywhere")  # type: ignore[arg-type]
