"""Tests of qopt.problems.attention: selectors, the QUBO, its repair, and bad input."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import (
    InvalidProblemError,
    QoptError,
    SolverConfigurationError,
    SolverUnavailableError,
)
from qopt.pipeline import solve
from qopt.problems.attention import (
    attended_fraction,
    attention_problem,
    bigbird_selection,
    block_redundancy,
    block_scores,
    causal_block_pairs,
    check_selection,
    greedy_selection,
    minimum_budget,
    optimal_selection,
    pool_blocks,
    selection_value,
    solve_attention,
    topk_selection,
    window_pairs,
)


def random_case(
    seed: int, heads: int, blocks: int, dim: int = 4, block_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and redundancy from random queries and keys (correlated keys: real redundancy)."""
    rng = np.random.default_rng(seed)
    queries = rng.normal(size=(heads, blocks * block_size, dim))
    base = rng.normal(size=(heads, 3, dim))  # few distinct key directions: near duplicates
    keys = base[:, rng.integers(0, 3, blocks * block_size)] + 0.3 * rng.normal(
        size=(heads, blocks * block_size, dim)
    )
    return block_scores(queries, keys, block_size), block_redundancy(keys, block_size)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    heads = draw(st.integers(1, 2))
    blocks = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 10_000))
    scores, redundancy = random_case(seed, heads, blocks)
    min_blocks = draw(st.integers(1, 3))
    window = draw(st.integers(1, min(3, blocks - 1)))
    floor = max(min_blocks, window)
    max_blocks = draw(st.one_of(st.none(), st.integers(floor, floor + 2)))
    least = minimum_budget(heads, blocks, floor)
    budget = draw(st.integers(least, heads * blocks * (blocks + 1) // 2 + 2))
    weight = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    return {
        "scores": scores,
        "redundancy": redundancy,
        "budget": budget,
        "min_blocks": min_blocks,
        "max_blocks": max_blocks,
        "window": window,
        "redundancy_weight": weight,
        "seed": seed,
    }


def limits(case: dict[str, object]) -> dict[str, object]:
    return {key: case[key] for key in ("min_blocks", "max_blocks", "window")}


def objective_options(case: dict[str, object]) -> dict[str, object]:
    """The case's redundancy, weight and per-query limits, as the selectors take them."""
    return {
        "redundancy": case["redundancy"],
        "redundancy_weight": case["redundancy_weight"],
        **limits(case),
    }


def value_of(selection: np.ndarray, case: dict[str, object]) -> float:
    return selection_value(
        selection,
        case["scores"],
        redundancy=case["redundancy"],
        redundancy_weight=case["redundancy_weight"],  # type: ignore[arg-type]
    )


def brute_force(scores: np.ndarray, budget: int, **options: object) -> tuple[np.ndarray, float]:
    """Best feasible selection by enumerating every subset of off-diagonal causal pairs."""
    heads, n, _ = scores.shape
    window = int(options.get("window", 1))  # type: ignore[call-overload]
    pairs = [(h, i, j) for h in range(heads) for i in range(n) for j in range(i - window + 1)]
    redundancy = options.pop("redundancy", None)
    weight = float(options.pop("redundancy_weight", 1.0))  # type: ignore[arg-type]
    best, best_value = None, -np.inf
    for bits in itertools.product((0, 1), repeat=len(pairs)):
        selection = np.broadcast_to(window_pairs(n, window), scores.shape).copy()
        for bit, (h, i, j) in zip(bits, pairs, strict=True):
            selection[h, i, j] = bool(bit)
        try:
            check_selection(selection, budget=budget, **options)  # type: ignore[arg-type]
        except InvalidProblemError:
            continue
        value = selection_value(selection, scores, redundancy=redundancy, redundancy_weight=weight)
        if value > best_value + 1e-12:
            best, best_value = selection, value
    assert best is not None
    return best, best_value


# ----------------------------------------------------------------------------- scores


def test_block_scores_are_causal_probabilities() -> None:
    scores, redundancy = random_case(0, 2, 5)
    assert scores.shape == (2, 5, 5)
    assert np.allclose(scores.sum(axis=-1), 1.0)
    assert (scores[:, ~causal_block_pairs(5)] == 0).all()
    assert (scores >= 0).all()
    assert np.allclose(redundancy, np.swapaxes(redundancy, -1, -2))
    assert np.allclose(redundancy[:, np.arange(5), np.arange(5)], 1.0)
    assert ((redundancy >= 0) & (redundancy <= 1)).all()


def test_redundancy_finds_duplicate_blocks() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 2, 8))
    keys = np.concatenate([a, b, a, b])  # blocks 0 and 2 are identical, so are 1 and 3
    redundancy = block_redundancy(keys, 2)
    assert redundancy[0, 2] == pytest.approx(1.0)
    assert redundancy[1, 3] == pytest.approx(1.0)
    assert redundancy[0, 1] == pytest.approx(0.0)  # centred: opposite directions


def test_top_one_of_identical_queries_and_keys_is_uniform_mass() -> None:
    scores = block_scores(np.ones((6, 3)), np.ones((6, 3)), 2)
    assert np.allclose(scores[2, :3], 1 / 3)


# ----------------------------------------------------------------------------- selectors


@settings(max_examples=60, deadline=None)
@given(cases())
def test_every_selector_is_feasible_and_within_budget(case: dict[str, object]) -> None:
    scores, budget = case["scores"], case["budget"]
    assert isinstance(scores, np.ndarray) and isinstance(budget, int)
    greedy = greedy_selection(
        scores,
        budget,
        redundancy=case["redundancy"],
        redundancy_weight=case["redundancy_weight"],  # type: ignore[arg-type]
        **limits(case),  # type: ignore[arg-type]
    )
    check_selection(greedy, budget=budget, **limits(case))  # type: ignore[arg-type]
    solution = solve_attention(
        scores,
        budget,
        redundancy=case["redundancy"],
        redundancy_weight=case["redundancy_weight"],  # type: ignore[arg-type]
        solver_options={"num_sweeps": 20, "num_reads": 2},
        seed=int(case["seed"]),  # type: ignore[call-overload]
        **limits(case),  # type: ignore[arg-type]
    )
    assert solution.feasible
    check_selection(solution.value, budget=budget, **limits(case))  # type: ignore[arg-type]
    for k in (1, 2, 3):
        check_selection(topk_selection(scores, k), max_blocks=k, min_blocks=k)
    heads, n, _ = scores.shape
    check_selection(bigbird_selection(heads, n, window=2, num_global=1, num_random=1, seed=0))


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(0, 2**31 - 1))
def test_repair_makes_any_sample_feasible(case: dict[str, object], seed: int) -> None:
    scores, budget = case["scores"], case["budget"]
    assert isinstance(scores, np.ndarray) and isinstance(budget, int)
    problem = attention_problem(
        scores,
        budget,
        redundancy=case["redundancy"],
        redundancy_weight=case["redundancy_weight"],  # type: ignore[arg-type]
        **limits(case),  # type: ignore[arg-type]
    )
    assert problem.repair_rows is not None and problem.feasible_rows is not None
    assert problem.decode is not None
    rng = np.random.default_rng(seed)
    rows = (rng.random((4, problem.model.num_variables)) < rng.random()).astype(np.int8)
    fixed = problem.repair_rows(rows)
    assert problem.feasible_rows(fixed).all()
    for row in fixed:
        selection = problem.decode(dict(enumerate(row.tolist())))
        check_selection(selection, budget=budget, **limits(case))  # type: ignore[arg-type]
    # A feasible sample is left as it is.
    feasible = rows[problem.feasible_rows(rows)]
    if feasible.size:
        assert np.array_equal(problem.repair_rows(feasible), feasible)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(2, 7))
def test_greedy_equals_topk_without_redundancy(seed: int, k: int, blocks: int) -> None:
    scores, _ = random_case(seed, 2, blocks)
    ample = 2 * blocks * blocks
    greedy = greedy_selection(scores, ample, max_blocks=k)
    assert np.array_equal(greedy, topk_selection(scores, k))


def test_topk_keeps_the_own_block_and_the_best_others() -> None:
    scores = np.array([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0.1, 0.2, 0.7, 0], [0.4, 0.3, 0.2, 0.1]])
    selection = topk_selection(scores, 2)[0]
    assert selection.astype(int).tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 1],
    ]


def test_bigbird_pattern_and_budget_of_its_parts() -> None:
    selection = bigbird_selection(2, 8, window=2, num_global=1, num_random=1, seed=3)
    check_selection(selection)
    # Each query block i >= 3 has its window (2), the global block and one random block.
    assert (selection.sum(axis=2)[:, 3:] == 4).all()
    assert not np.array_equal(selection[0], selection[1])  # random blocks differ per head


def test_greedy_uses_a_shared_budget_where_attention_is_spread() -> None:
    # Query block 2 is focused on itself; query block 3 spreads its mass evenly: the shared
    # budget gives both extra blocks to the spread one, top-1-extra gives one to each.
    scores = np.array(
        [
            [1.0, 0, 0, 0],
            [0.5, 0.5, 0, 0],
            [0.02, 0.02, 0.96, 0],
            [0.25, 0.25, 0.25, 0.25],
        ]
    )
    budget = 4 + 1 + 2
    greedy = greedy_selection(scores, budget)[0]
    assert greedy[3].sum() == 3 and greedy[2].sum() == 1
    assert selection_value(greedy, scores) > selection_value(topk_selection(scores, 2), scores)


def test_redundancy_steers_greedy_away_from_duplicates() -> None:
    scores = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.35, 0.33, 0.32]])
    redundancy = np.eye(3)
    redundancy[0, 2] = redundancy[2, 0] = 1.0  # key block 0 duplicates block 2
    plain = greedy_selection(scores, 5)[0]
    aware = greedy_selection(scores, 5, redundancy=redundancy)[0]
    assert plain[2].tolist() == [True, False, True]
    assert aware[2].tolist() == [False, True, True]


# ----------------------------------------------------------------------------- the QUBO


@pytest.mark.parametrize(("heads", "blocks", "window"), [(1, 4, 1), (2, 3, 1), (1, 5, 2)])
@pytest.mark.parametrize("weight", [0.0, 1.0])
@pytest.mark.parametrize("max_blocks", [None, 3])
def test_qubo_minimum_is_the_brute_force_optimum(
    heads: int, blocks: int, window: int, weight: float, max_blocks: int | None
) -> None:
    for seed in range(3):
        scores, redundancy = random_case(seed, heads, blocks)
        budget = minimum_budget(heads, blocks, window) + 2
        problem = attention_problem(
            scores,
            budget,
            redundancy=redundancy,
            redundancy_weight=weight,
            max_blocks=max_blocks,
            window=window,
            budget_encoding="penalty",
        )
        bqm = problem.model.to_bqm(problem.penalty)
        ground = dimod.ExactSolver().sample(bqm).first.sample
        assert problem.decode is not None
        selection = problem.decode({v: ground[v] for v in problem.model.variables})
        limits = {"max_blocks": max_blocks, "window": window}
        _, best_value = brute_force(
            scores, budget, redundancy=redundancy, redundancy_weight=weight, **limits
        )
        value = selection_value(selection, scores, redundancy=redundancy, redundancy_weight=weight)
        assert value == pytest.approx(best_value, abs=1e-9)
        check_selection(selection, budget=budget, **limits)  # type: ignore[arg-type]
        # Simulated annealing on the priced QUBO (sparse, moderate biases) reaches it here; the
        # provable penalty weights of the other encoding make its landscape too steep for it.
        solved = solve_attention(
            scores,
            budget,
            redundancy=redundancy,
            redundancy_weight=weight,
            **limits,  # type: ignore[arg-type]
            warm_start=None,  # the annealer alone
            solver_options={"num_reads": 20},
            seed=seed,
        )
        got = selection_value(solved.value, scores, redundancy=redundancy, redundancy_weight=weight)
        assert got == pytest.approx(best_value, abs=1e-9), seed
        # The mixed-integer program proves the same optimum.
        optimum = optimal_selection(
            scores,
            budget,
            redundancy=redundancy,
            redundancy_weight=weight,
            **limits,  # type: ignore[arg-type]
        )
        check_selection(optimum, budget=budget, **limits)  # type: ignore[arg-type]
        got = selection_value(optimum, scores, redundancy=redundancy, redundancy_weight=weight)
        assert got == pytest.approx(best_value, abs=1e-9), seed


@pytest.mark.parametrize("window", [1, 2, 3])
def test_objective_energy_is_the_negated_selection_value(window: int) -> None:
    scores, redundancy = random_case(5, 2, 5)
    options = {"redundancy": redundancy, "redundancy_weight": 0.7}
    problem = attention_problem(scores, 24, window=window, **options)  # type: ignore[arg-type]
    assert problem.decode is not None
    rng = np.random.default_rng(0)
    # What the window's blocks are worth together: the same whatever the variables say.
    kept = np.broadcast_to(window_pairs(5, window), scores.shape)
    constant = selection_value(kept, scores, **options)  # type: ignore[arg-type]
    for _ in range(5):
        sample = {v: int(rng.integers(0, 2)) for v in problem.model.variables}
        selection = problem.decode(sample)
        check_selection(selection, window=window)
        value = selection_value(selection, scores, **options)  # type: ignore[arg-type]
        energy = problem.model.objective.energy(sample)
        assert -energy == pytest.approx(value - constant)


def test_price_encoding_minimum_is_the_global_top_without_redundancy() -> None:
    scores, _ = random_case(7, 2, 6)
    budget = minimum_budget(2, 6) + 9
    problem = attention_problem(scores, budget)
    assert problem.bqm is not None and problem.decode is not None
    # No redundancy: the priced QUBO is separable; its minimum takes exactly the top 9.
    ground = {v: int(problem.bqm.linear[v] < 0) for v in problem.bqm.variables}
    selection = problem.decode(ground)
    assert int(selection.sum()) == budget
    assert np.array_equal(selection, greedy_selection(scores, budget))
    assert problem.bqm.num_interactions == 0  # the budget adds no clique


def test_window_keeps_the_nearest_blocks_and_chooses_the_rest() -> None:
    scores, redundancy = random_case(3, 2, 8)
    budget = minimum_budget(2, 8, 4) + 6
    options = {"redundancy": redundancy, "min_blocks": 4, "window": 2}
    greedy = greedy_selection(scores, budget, **options)  # type: ignore[arg-type]
    solved = solve_attention(scores, budget, seed=0, **options).value  # type: ignore[arg-type]
    for selection in (greedy, solved):
        check_selection(selection, budget=budget, min_blocks=4, window=2)
        assert int(selection.sum()) == budget  # the budget is spent beyond the window
        beyond = selection & ~window_pairs(8, 2)
        assert beyond.sum() == budget - 2 * window_pairs(8, 2).sum()
    # The QUBO has no variable for a pair of the window.
    problem = attention_problem(scores, budget, **options)  # type: ignore[arg-type]
    assert problem.model.num_variables == 2 * (8 * 9 // 2 - window_pairs(8, 2).sum())


def test_attended_fraction_and_minimum_budget() -> None:
    assert minimum_budget(3, 5) == 15
    assert minimum_budget(1, 5, min_blocks=3) == 1 + 2 + 3 + 3 + 3
    assert attended_fraction(np.tril(np.ones((2, 4, 4), dtype=bool))) == 1.0


# ----------------------------------------------------------------------------- bad input


def test_sequence_length_not_divisible_by_block_size() -> None:
    with pytest.raises(InvalidProblemError, match=r"not a multiple of block_size=4.*Pad"):
        block_scores(np.zeros((10, 2)), np.zeros((10, 2)), 4)
    with pytest.raises(InvalidProblemError, match="not a multiple"):
        pool_blocks(np.zeros((1, 7, 2)), 2)


def test_budget_below_minimum_says_the_minimum() -> None:
    scores, _ = random_case(0, 2, 4)
    for call in (greedy_selection, attention_problem, solve_attention):
        with pytest.raises(InvalidProblemError, match=r"below the minimum of 8.*at least 8"):
            call(scores, 7)
        with pytest.raises(InvalidProblemError, match=r"window=2.*at least 14 or a smaller"):
            call(scores, 13, window=2)


def test_non_finite_scores_name_the_pair() -> None:
    scores, _ = random_case(0, 1, 4)
    scores[0, 2, 1] = np.nan
    with pytest.raises(InvalidProblemError, match="query block 2, key block 1"):
        attention_problem(scores, 6)
    with pytest.raises(InvalidProblemError, match="non-finite"):
        topk_selection(scores, 2)
    clean, _ = random_case(0, 1, 4)
    clean[0, 1, 3] = np.inf  # above the diagonal: ignored
    check_selection(topk_selection(clean, 2))
    with pytest.raises(InvalidProblemError, match="non-finite queries or keys"):
        block_scores(np.full((4, 2), np.inf), np.zeros((4, 2)), 2)


def test_configuration_errors_are_qopt_errors() -> None:
    scores, _ = random_case(0, 1, 4)
    with pytest.raises(SolverConfigurationError, match="budget_encoding"):
        attention_problem(scores, 6, budget_encoding="dense")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match="max_blocks"):
        greedy_selection(scores, 6, min_blocks=3, max_blocks=2)
    with pytest.raises(InvalidProblemError, match="nothing to select"):
        attention_problem(np.ones((1, 1)), 1)
    with pytest.raises(InvalidProblemError, match="window=4 keeps every"):
        attention_problem(scores, 10, window=4)
    with pytest.raises(SolverConfigurationError, match="max_blocks"):
        greedy_selection(scores, 8, window=3, max_blocks=2)
    with pytest.raises(InvalidProblemError, match="shape"):
        topk_selection(np.ones((2, 3)), 1)
    with pytest.raises(QoptError, match="solver_options"):
        solve_attention(scores, 6, solver_options={"sweeps": 3})
    with pytest.raises(SolverConfigurationError, match="'greedy' or None"):
        solve_attention(scores, 6, warm_start="topk")  # type: ignore[arg-type]


def test_check_selection_refuses_what_is_not_a_selection() -> None:
    with pytest.raises(InvalidProblemError, match="future"):
        check_selection(np.ones((3, 3), dtype=bool))
    with pytest.raises(InvalidProblemError, match="diagonal"):
        check_selection(np.zeros((3, 3), dtype=bool))
    with pytest.raises(InvalidProblemError, match="window=2"):
        check_selection(np.eye(3, dtype=bool), window=2)
    with pytest.raises(InvalidProblemError, match="over the budget"):
        check_selection(np.tril(np.ones((3, 3), dtype=bool)), budget=5)
    with pytest.raises(InvalidProblemError, match="boolean"):
        check_selection(np.eye(3))


def test_solution_through_the_pipeline_reports_the_solve() -> None:
    scores, redundancy = random_case(2, 2, 6)
    budget = minimum_budget(2, 6) + 8
    solution = solve(attention_problem(scores, budget, redundancy=redundancy), "sa", seed=1)
    assert solution.feasible and solution.record.solver == "sa"
    check_selection(solution.value, budget=budget)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 7), st.integers(0, 30))
def test_greedy_sort_shortcut_equals_the_ascent(seed: int, blocks: int, extra: int) -> None:
    # No redundancy takes a sort; zero redundancy with weight 1 takes the step-by-step ascent.
    scores, _ = random_case(seed, 2, blocks)
    budget = minimum_budget(2, blocks) + extra
    zero = np.zeros((blocks, blocks))
    assert np.array_equal(
        greedy_selection(scores, budget), greedy_selection(scores, budget, redundancy=zero)
    )


def test_price_encoding_has_no_penalty_terms_and_greedy_is_a_local_minimum() -> None:
    scores, redundancy = random_case(11, 2, 8)
    budget = minimum_budget(2, 8, min_blocks=3) + 12
    options = {"redundancy": redundancy, "min_blocks": 3, "max_blocks": 5}
    problem = attention_problem(scores, budget, **options)  # type: ignore[arg-type]
    assert problem.bqm is not None
    assert problem.bqm.num_variables == problem.model.num_variables  # no slack bits
    assert problem.bqm.num_interactions == problem.model.objective.num_interactions
    greedy = greedy_selection(scores, budget, **options)  # type: ignore[arg-type]
    i, j = np.tril_indices(8, -1)
    x = np.concatenate([greedy[h][i, j] for h in range(2)]).astype(int)
    energy = problem.bqm.energy(dict(enumerate(x.tolist())))
    for v in range(x.size):  # no single flip lowers the priced energy
        flipped = x.copy()
        flipped[v] = 1 - flipped[v]
        assert problem.bqm.energy(dict(enumerate(flipped.tolist()))) >= energy - 1e-12


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(["price", "penalty"]))
def test_warm_started_answer_is_never_worse_than_greedy(
    case: dict[str, object], encoding: str
) -> None:
    scores, budget = case["scores"], case["budget"]
    assert isinstance(scores, np.ndarray) and isinstance(budget, int)
    options = objective_options(case)
    greedy = greedy_selection(scores, budget, **options)  # type: ignore[arg-type]
    solution = solve_attention(
        scores,
        budget,
        budget_encoding=encoding,  # type: ignore[arg-type]
        solver_options={"num_sweeps": 5, "num_reads": 1},  # a poor anneal on purpose
        seed=int(case["seed"]),  # type: ignore[call-overload]
        **options,  # type: ignore[arg-type]
    )
    check_selection(solution.value, budget=budget, **limits(case))  # type: ignore[arg-type]
    assert value_of(solution.value, case) >= value_of(greedy, case) - 1e-9
    # The solution's own record agrees with what it returns.
    problem = attention_problem(scores, budget, **options)  # type: ignore[arg-type]
    assert solution.objective == pytest.approx(problem.model.objective.energy(solution.sample))


class _Recording(dimod.Sampler):
    """Takes initial states, remembers them and returns the empty selection (a bad answer)."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @property
    def parameters(self) -> dict[str, list[str]]:
        return {"initial_states": []}

    @property
    def properties(self) -> dict[str, object]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: object) -> dimod.SampleSet:
        self.seen.append(parameters.get("initial_states"))
        zeros = {v: 0 for v in bqm.variables}
        return dimod.SampleSet.from_samples_bqm(zeros, bqm)


def test_warm_start_reaches_the_solver_and_wins_over_a_worse_answer() -> None:
    scores, redundancy = random_case(3, 2, 6)
    budget = minimum_budget(2, 6) + 6
    greedy = greedy_selection(scores, budget, redundancy=redundancy)
    sampler = _Recording()
    solution = solve_attention(scores, budget, redundancy=redundancy, solver=sampler)
    (state,) = sampler.seen
    i, j = np.tril_indices(6, -1)
    expected = np.concatenate([greedy[h][i, j] for h in range(2)]).astype(np.int8)
    assert np.array_equal(np.asarray(state)[0], expected)
    assert np.array_equal(solution.value, greedy) and not solution.repaired
    cold = solve_attention(scores, budget, redundancy=redundancy, solver=sampler, warm_start=None)
    assert sampler.seen[-1] is None
    assert int(cold.value.sum()) == 2 * 6  # the solver's own (empty) answer: diagonals only


@settings(max_examples=40, deadline=None)
@given(cases())
def test_optimal_selection_is_feasible_and_at_least_greedy(case: dict[str, object]) -> None:
    scores, budget = case["scores"], case["budget"]
    assert isinstance(scores, np.ndarray) and isinstance(budget, int)
    options = objective_options(case)
    optimum = optimal_selection(scores, budget, **options)  # type: ignore[arg-type]
    check_selection(optimum, budget=budget, **limits(case))  # type: ignore[arg-type]
    greedy = greedy_selection(scores, budget, **options)  # type: ignore[arg-type]
    assert value_of(optimum, case) >= value_of(greedy, case) - 1e-9


def test_optimal_selection_without_a_proof_in_time_says_so() -> None:
    scores, redundancy = random_case(4, 4, 24)
    budget = minimum_budget(4, 24) + 100
    with pytest.raises(SolverUnavailableError, match="time_limit"):
        optimal_selection(scores, budget, redundancy=redundancy, time_limit=1e-6)
    with pytest.raises(SolverConfigurationError, match="time_limit"):
        optimal_selection(scores, budget, time_limit=0)
