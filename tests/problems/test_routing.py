from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing import (
    PairwiseTerms,
    _block_diagonal,
    _group_vectors,
    _sa_beta_range,
    _split_capacity,
    _warm_state,
    affinity,
    apply_capacity,
    exact_assignment,
    expert_capacity,
    greedy_assignment,
    knn_similarity,
    polish_assignment,
    repair_assignment,
    routing_bqm,
    routing_energy,
    routing_problem,
    routing_stats,
    sinkhorn_assignment,
    sinkhorn_plan,
    solve_routing,
    topk_assignment,
)


def _log_probs(num_tokens: int, num_experts: int, seed: int, scale: float = 2.0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(num_tokens, num_experts)) * scale
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def _assert_feasible(
    assignment: np.ndarray, num_experts: int, k: int, capacity: np.ndarray
) -> None:
    assert assignment.shape[1] == k
    assert ((assignment >= 0) & (assignment < num_experts)).all()
    for row in assignment:
        assert len(set(row.tolist())) == k
    load = np.bincount(assignment.reshape(-1), minlength=num_experts)
    assert (load <= capacity).all()


def _brute_force_optimum(scores: np.ndarray, k: int, capacity: int) -> float:
    num_tokens, num_experts = scores.shape
    best = -np.inf
    subsets = list(itertools.combinations(range(num_experts), k))
    for choice in itertools.product(subsets, repeat=num_tokens):
        load = np.bincount(np.array(choice).reshape(-1), minlength=num_experts)
        if (load <= capacity).all():
            best = max(best, sum(scores[t, list(c)].sum() for t, c in enumerate(choice)))
    return float(best)


@st.composite
def _repair_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    num_tokens = draw(st.integers(1, 9))
    num_experts = draw(st.integers(1, 5))
    k = draw(st.integers(1, num_experts))
    capacity = np.array(
        [draw(st.integers(0, num_tokens)) for _ in range(num_experts)], dtype=np.int64
    )
    # Top up capacities until every token can get k experts.
    while capacity.sum() < num_tokens * k:
        capacity[int(np.argmin(capacity))] += 1
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(num_tokens, num_experts))
    matrix = rng.random((num_tokens, num_experts)) < draw(st.floats(0.0, 1.0))
    return scores, matrix, k, capacity


@settings(max_examples=150, deadline=None)
@given(_repair_cases())
def test_repair_always_feasible(case: tuple[np.ndarray, np.ndarray, int, np.ndarray]) -> None:
    scores, matrix, k, capacity = case
    fixed = repair_assignment(matrix, scores, k, capacity)
    _assert_feasible(fixed, scores.shape[1], k, capacity)


@settings(max_examples=60, deadline=None)
@given(_repair_cases())
def test_routing_problem_repair_gives_feasible_sample(
    case: tuple[np.ndarray, np.ndarray, int, np.ndarray],
) -> None:
    scores, matrix, k, capacity = case
    formulation = routing_problem(scores, k, capacity)
    raw = {(t, e): int(matrix[t, e]) for t, e in np.ndindex(matrix.shape)}
    assert formulation.repair is not None and formulation.decode is not None
    repaired = formulation.repair(raw)
    assert formulation.model.is_feasible(repaired)
    _assert_feasible(formulation.decode(repaired), scores.shape[1], k, capacity)


def test_repair_keeps_a_feasible_assignment_unchanged() -> None:
    scores = _log_probs(12, 4, seed=3)
    best = exact_assignment(scores, 2, 6)
    assert np.array_equal(np.sort(repair_assignment(best, scores, 2, 6), 1), np.sort(best, 1))


def test_repair_escapes_when_greedy_fill_gets_stuck() -> None:
    # Tokens 0 and 1 hold experts 0 and 1; token 2 needs two experts but only expert 2 has
    # room: the greedy fill is stuck and an exchange (or the exact fallback) must move something.
    scores = np.array([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    start = np.array([[0, 1], [0, 1], [-1, -1]])
    fixed = repair_assignment(start, scores, 2, 2)
    _assert_feasible(fixed, 3, 2, np.full(3, 2))


def test_repair_unsticks_with_the_cheapest_single_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    # Experts 0 and 1 are full; token 2 holds the only expert with room and needs one more.
    # Token 1 moving from expert 0 to expert 2 (and token 2 taking expert 0) loses nothing;
    # every other exchange loses 2. No linear program is needed for it.
    import qopt.problems.routing as routing

    def no_lp(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the exact fallback was not needed")

    monkeypatch.setattr(routing, "_b_matching", no_lp)
    scores = np.array([[5.0, 5.0, 1.0], [5.0, 5.0, 3.0], [2.0, 0.0, 9.0]])
    start = np.array([[0, 1], [0, 1], [2, -1]])
    fixed = repair_assignment(start, scores, 2, 2)
    assert fixed.tolist() == [[0, 1], [1, 2], [2, 0]]


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
        scores = _log_probs(num_tokens, num_experts, seed)
        chosen = exact_assignment(scores, k, capacity)
        _assert_feasible(chosen, num_experts, k, np.full(num_experts, capacity))
        assert affinity(chosen, scores) == pytest.approx(_brute_force_optimum(scores, k, capacity))


def test_exact_assignment_fills_capacity_when_short() -> None:
    chosen = exact_assignment(np.zeros((5, 2)), 1, 2)
    assert (chosen >= 0).sum() == 4  # 2 experts x 2 slots, one token dropped


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
    scores = _log_probs(num_tokens, num_experts, seed)
    capacity = expert_capacity(num_tokens, num_experts, k, factor)
    optimum = affinity(exact_assignment(scores, k, capacity), scores)
    # No warm start: the annealer alone (plus repair) must get there.
    result = solve_routing(
        scores, k, capacity, solver="sa", warm_start=None, seed=seed, num_reads=20
    )
    _assert_feasible(result.assignment, num_experts, k, np.full(num_experts, capacity))
    assert result.warm_start_kept == 0
    assert optimum - result.affinity <= 0.01 * abs(optimum)
    stats = routing_stats(result.assignment, num_experts, capacity)
    assert stats.capacity_violation == 0 and stats.dropped == 0


def test_tight_capacity_gives_perfect_balance() -> None:
    scores = _log_probs(16, 4, seed=0)
    result = solve_routing(scores, 1, 4, seed=0)
    stats = routing_stats(result.assignment, 4, 4)
    assert stats.load == (4, 4, 4, 4) and stats.max_violation == 0.0


def test_groups_share_capacity_and_stay_feasible() -> None:
    scores = _log_probs(40, 4, seed=1)
    capacity = expert_capacity(40, 4, 2, 1.25)
    result = solve_routing(scores, 2, capacity, group_size=16, seed=0, num_reads=4)
    assert result.num_groups == 3
    assert len(result.solutions) == 1  # one solver call served the three groups
    assert result.num_samples == 3 * 4  # four reads, each seen by three groups
    _assert_feasible(result.assignment, 4, 2, np.full(4, capacity))
    assert 0 <= result.num_infeasible <= result.num_samples


@pytest.mark.parametrize("use_warm", [True, False])
def test_split_capacity_keeps_every_group_feasible(use_warm: bool) -> None:
    scores = _log_probs(37, 5, seed=2)
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
    scores = _log_probs(32, 4, seed=5)
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


def test_routing_energy_matches_the_formulation_objective() -> None:
    scores = _log_probs(6, 3, seed=4)
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


def test_block_diagonal_bqm_prices_the_warm_start_at_its_objective() -> None:
    # The warm state sets every slack bit so that no penalty is paid: its energy in the
    # batched BQM is the centred objective, group by group. This pins the slack encoding.
    scores = _log_probs(40, 4, seed=7)
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


def test_annealing_schedule_matches_dwave_samplers_default() -> None:
    from dwave.samplers.sa.sampler import _default_ising_beta_range

    for k, capacity, penalty in ((1, 8, None), (2, 20, 0.3)):
        bqm = routing_bqm(_log_probs(64, 8, seed=k), k, capacity, penalty=penalty)
        h, j, _ = bqm.to_ising()
        assert np.allclose(_sa_beta_range(bqm), _default_ising_beta_range(h, j))


@pytest.mark.parametrize("solver", ["sa", "steepest"])
def test_large_batch_is_feasible_and_never_below_its_warm_start(solver: str) -> None:
    scores = _log_probs(512, 8, seed=11)
    capacity = expert_capacity(512, 8, 2, 1.0)
    warm = sinkhorn_assignment(scores, 2, capacity, repair=True)
    result = solve_routing(scores, 2, capacity, solver=solver, group_size=64, seed=0, num_reads=1)
    _assert_feasible(result.assignment, 8, 2, np.full(8, capacity))
    assert result.num_groups == 8
    assert result.energy <= routing_energy(warm, scores) + 1e-9


def test_the_pipeline_selects_and_repairs_the_routing_solve() -> None:
    # A penalty far too weak to enforce anything: raw samples break the constraints, and the
    # answer must come out of the Formulation's repair inside qopt.pipeline.
    scores = _log_probs(48, 4, seed=3)
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
    _assert_feasible(result.assignment, 4, 1, np.full(4, capacity))
    # The pipeline's chosen sample is the assignment (no warm start to fall back on) ...
    matrix = np.zeros((48, 4), dtype=int)
    matrix[np.arange(48), result.assignment[:, 0]] = 1
    assert [solution.sample[i] for i in range(48 * 4)] == matrix.reshape(-1).tolist()
    # ... and its objective the centred routing energy of that assignment.
    centred = scores - scores.mean(axis=1, keepdims=True)
    assert solution.objective == pytest.approx(routing_energy(result.assignment, centred))
    assert result.num_infeasible == result.num_samples == 3 * 3  # per group, before repair


# --------------------------------------------------------------------------- polish


@st.composite
def _polish_cases(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, PairwiseTerms | None]:
    """A feasible assignment (repaired from random content), with or without pairwise terms."""
    scores, matrix, k, capacity = draw(_repair_cases())
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
    _assert_feasible(polished, scores.shape[1], k, capacity)
    assert routing_energy(polished, scores, terms) <= routing_energy(start, scores, terms) + 1e-9
    if terms is None and k == 1:
        # Cycle canceling on a linear objective stops only at the optimum (Klein 1967).
        optimum = affinity(exact_assignment(scores, k, capacity), scores)
        assert affinity(polished, scores) == pytest.approx(optimum, abs=1e-9)


def test_polish_reaches_the_exact_optimum_from_sinkhorn() -> None:
    for k in (1, 2):
        scores = _log_probs(256, 8, seed=21)
        capacity = expert_capacity(256, 8, k, 1.0)
        warm = sinkhorn_assignment(scores, k, capacity, repair=True)
        optimum = affinity(exact_assignment(scores, k, capacity), scores)
        assert optimum - affinity(warm, scores) > 0.01 * abs(optimum)  # Sinkhorn alone: > 1 %
        polished = polish_assignment(warm, scores, k, capacity)
        assert affinity(polished, scores) == pytest.approx(optimum, abs=1e-9)


def test_polish_refuses_an_infeasible_assignment() -> None:
    scores = _log_probs(4, 2, seed=0)
    with pytest.raises(InvalidProblemError, match="feasible assignment"):
        polish_assignment(np.array([[0], [0], [0], [1]]), scores, 1, 2)  # expert 0 over
    with pytest.raises(InvalidProblemError, match="feasible assignment"):
        polish_assignment(np.array([[0], [1], [-1], [1]]), scores, 1, 2)  # a dropped slot
    with pytest.raises(SolverConfigurationError, match="'max_rounds' parameter"):
        polish_assignment(np.array([[0], [0], [1], [1]]), scores, 1, 2, max_rounds=-1)
    # No rounds: the input comes back as it was.
    start = np.array([[1], [0], [1], [0]])
    assert polish_assignment(start, scores, 1, 2, max_rounds=0).tolist() == start.tolist()


@pytest.mark.parametrize("k", [1, 2])
def test_solve_routing_within_one_percent_of_the_exact_optimum_at_callback_settings(
    k: int,
) -> None:
    # The callback's defaults: groups of 32, one read of 20 sweeps from Sinkhorn, polish.
    scores = _log_probs(512, 8, seed=7)
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
    scores = _log_probs(128, 8, seed=3)
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
    _assert_feasible(result.assignment, 8, 1, np.full(8, capacity))


def test_routing_problem_decodes_a_polished_assignment() -> None:
    scores = _log_probs(24, 4, seed=9)
    optimum = affinity(exact_assignment(scores, 1, 6), scores)
    formulation = routing_problem(scores, 1, 6)
    assert formulation.decode is not None and formulation.repair is not None
    # Any feasible sample decodes to the optimum: the polish finishes the job.
    start = formulation.repair({(t, e): 0 for t in range(24) for e in range(4)})
    assert affinity(formulation.decode(start), scores) == pytest.approx(optimum)
    unpolished = routing_problem(scores, 1, 6, polish=False)
    assert unpolished.decode is not None
    assert affinity(unpolished.decode(start), scores) < optimum - 1e-6


def test_bad_polish_option_is_refused() -> None:
    with pytest.raises(SolverConfigurationError, match="'polish' parameter"):
        solve_routing(_log_probs(8, 2, seed=0), 1, 4, polish="everywhere")  # type: ignore[arg-type]
