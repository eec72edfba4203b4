"""Tests for qopt.problems.pruning: feasibility of every repair, optimality on small cases."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError
from qopt.pipeline import solve
from qopt.problems.pruning import (
    PruningCost,
    PruningGroup,
    activation_redundancy,
    fisher_importance,
    magnitude_importance,
    pruning_problem,
    taylor_importance,
)


@st.composite
def problems(
    draw: st.DrawFn,
    *,
    interactions: bool = True,
    max_units: int = 4,
    max_groups: int = 3,
    max_cost: int = 6,
) -> dict:
    """Random groups (sizes, scores, integer costs, keeps) with a feasible budget."""
    num_groups = draw(st.integers(1, max_groups))
    groups = []
    for g in range(num_groups):
        n = draw(st.integers(1, max_units))
        importance = draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n))
        redundancy = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n * n, max_size=n * n)))
        cost = draw(st.lists(st.integers(0, max_cost), min_size=n, max_size=n))
        min_keep = draw(st.integers(0, n))
        keep = draw(st.one_of(st.none(), st.integers(min_keep, n)))
        groups.append(
            PruningGroup(f"g{g}", importance, redundancy.reshape(n, n), cost, min_keep, keep)
        )
    pairs = {}
    if interactions and num_groups > 1 and draw(st.booleans()):
        pairs[("g0", "g1")] = float(draw(st.integers(0, 3)))
    if interactions and draw(st.booleans()):
        pairs[("g0", "g0")] = float(draw(st.integers(0, 2)))
    fixed = float(draw(st.integers(0, 5)))
    alpha = draw(st.sampled_from([0.3, 0.5, 1.0]))
    balance = draw(st.sampled_from([0.0, 0.0, 0.5, 5.0]))
    polish = draw(st.booleans())
    # A budget between the cheapest feasible mask and everything kept.
    minimum = {g.name: _cheapest(g, g.keep if g.keep is not None else g.min_keep) for g in groups}
    cost = PruningCost(fixed, {g.name: np.asarray(g.unit_cost, float) for g in groups}, pairs)
    low = cost(minimum)
    high = cost({g.name: np.ones(g.num_units) for g in groups})
    budget = low + draw(st.floats(0.0, 1.0)) * (high - low)
    return {
        "groups": groups,
        "budget": budget,
        "fixed": fixed,
        "pairs": pairs,
        "alpha": alpha,
        "balance": balance,
        "polish": polish,
    }


def _cheapest(group: PruningGroup, count: int) -> np.ndarray:
    order = np.lexsort((-np.asarray(group.importance), np.asarray(group.unit_cost)))
    mask = np.zeros(group.num_units)
    mask[order[:count]] = 1
    return mask


def _build(case: dict):
    return pruning_problem(
        case["groups"],
        budget=case["budget"],
        fixed_cost=case["fixed"],
        interactions=case["pairs"],
        alpha=case["alpha"],
        balance=case["balance"],
        polish=case["polish"],
    )


def _assert_valid(case: dict, masks: dict, cost: PruningCost) -> None:
    assert cost(masks) <= case["budget"] + 1e-9
    for g in case["groups"]:
        kept = int(np.count_nonzero(masks[g.name]))
        assert kept >= g.min_keep
        if g.keep is not None:
            assert kept == g.keep


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=problems(), data=st.data())
def test_every_repaired_sample_is_feasible_and_within_budget(
    case: dict, data: st.DataObject
) -> None:
    problem = _build(case)
    variables = list(problem.model.variables)
    bits = data.draw(st.lists(st.integers(0, 1), min_size=len(variables), max_size=len(variables)))
    sample = dict(zip(variables, bits, strict=True))
    repaired = problem.repair(sample)
    assert problem.model.is_feasible(repaired)
    masks = {
        g.name: np.array([repaired[(g.name, i)] for i in range(g.num_units)])
        for g in case["groups"]
    }
    _assert_valid(case, masks, problem.cost)
    # Decoding any sample, feasible or not, also yields a mask within the exact budget.
    _assert_valid(case, problem.decode(sample), problem.cost)


def _objective(case: dict, masks: dict, reference: dict | None = None) -> float:
    """The documented objective, written out term by term."""
    groups = case["groups"]
    scale = max(float(np.abs(np.asarray(g.importance)).max()) for g in groups) or 1.0
    everything = np.concatenate([np.asarray(g.importance, dtype=float) for g in groups])
    unit_value = abs(case["alpha"] * everything.mean()) / scale or 1.0
    total = 0.0
    for g in groups:
        x = np.asarray(masks[g.name], dtype=float)
        importance = np.asarray(g.importance, dtype=float)
        redundancy = np.asarray(g.redundancy, dtype=float)
        redundancy = (redundancy + redundancy.T) / 2
        np.fill_diagonal(redundancy, 0.0)
        total -= case["alpha"] * importance @ x / scale
        total += (1 - case["alpha"]) * (x @ np.triu(redundancy, 1) @ x) / max(g.num_units - 1, 1)
        if case.get("balance") and g.keep is None:
            assert reference is not None
            deviation = x.sum() - reference[g.name]
            total += case["balance"] * unit_value * deviation**2 / g.num_units
    return total


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=problems(interactions=False, max_units=3, max_groups=2, max_cost=3))
def test_qubo_optimum_equals_brute_force_over_feasible_masks(case: dict) -> None:
    problem = _build(case)
    solution = solve(problem, solver="exact")
    groups = case["groups"]
    best = np.inf
    sizes = [g.num_units for g in groups]
    for bits in itertools.product([0, 1], repeat=sum(sizes)):
        masks, start = {}, 0
        for g, n in zip(groups, sizes, strict=True):
            masks[g.name] = np.array(bits[start : start + n])
            start += n
        counts_ok = all(
            masks[g.name].sum() >= g.min_keep and (g.keep is None or masks[g.name].sum() == g.keep)
            for g in groups
        )
        if counts_ok and problem.cost(masks) <= case["budget"] + 1e-9:
            best = min(best, _objective(case, masks, problem.reference_counts))
    assert solution.feasible
    value = _objective(case, solution.value, problem.reference_counts)
    assert value == pytest.approx(best, abs=1e-9)
    # The QUBO's objective is the documented one, balance term and its offset included.
    assert problem.model.objective.energy(
        {(g.name, i): int(solution.value[g.name][i]) for g in groups for i in range(g.num_units)}
    ) == pytest.approx(value, abs=1e-9)
    _assert_valid(case, solution.value, problem.cost)


def test_redundant_copies_are_not_both_kept() -> None:
    # Units 0 and 1 are copies; greedy importance would keep both.
    group = PruningGroup(
        "fc",
        importance=[3.0, 2.9, 2.5, 0.5],
        redundancy=[[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    )
    solution = solve(pruning_problem([group], budget=2, alpha=0.5), solver="exact")
    assert solution.value["fc"].tolist() == [True, False, True, False]


def test_bilinear_budget_is_met_exactly_by_the_decoded_masks() -> None:
    # A 3-layer MLP's MACs: 8*k1 + k1*k2 + 3*k2, with 6 and 5 hidden units.
    groups = [
        PruningGroup("h1", np.linspace(1, 2, 6), unit_cost=8.0),
        PruningGroup("h2", np.linspace(2, 1, 5), unit_cost=3.0),
    ]
    full = 8 * 6 + 6 * 5 + 3 * 5
    problem = pruning_problem(groups, budget=full / 2, interactions={("h1", "h2"): 1.0})
    masks = solve(problem, solver="sa", num_reads=20, seed=1).value
    k1, k2 = int(masks["h1"].sum()), int(masks["h2"].sum())
    assert 8 * k1 + k1 * k2 + 3 * k2 == problem.cost(masks) <= full / 2
    # The fill step uses the budget: no further unit fits.
    assert problem.cost(masks) + 8 + k2 > full / 2 or k1 == 6
    assert problem.cost(masks) + 3 + k1 > full / 2 or k2 == 5


def test_errors_name_the_problem() -> None:
    with pytest.raises(InvalidProblemError, match="below the cost of the minimum keeps"):
        pruning_problem([PruningGroup("a", [1.0, 2.0], unit_cost=5.0, min_keep=2)], budget=9)
    with pytest.raises(InvalidProblemError, match="'b' has no prunable units"):
        pruning_problem([PruningGroup("b", [])], budget=1)
    with pytest.raises(InvalidProblemError, match="named 'a'"):
        pruning_problem([PruningGroup("a", [1.0]), PruningGroup("a", [1.0])], budget=2)
    with pytest.raises(InvalidProblemError, match="redundancy of pruning group 'a'"):
        pruning_problem([PruningGroup("a", [1.0, 2.0], redundancy=np.eye(3))], budget=2)
    with pytest.raises(InvalidProblemError, match="interactions keys"):
        pruning_problem([PruningGroup("a", [1.0])], budget=2, interactions={("a", "z"): 1.0})
    with pytest.raises(ValueError, match="'alpha' parameter of pruning_problem"):
        pruning_problem([PruningGroup("a", [1.0])], budget=2, alpha=1.5)


def test_importance_helpers_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(4, 3, 2, 2))
    grad = rng.normal(size=weight.shape)
    np.testing.assert_allclose(magnitude_importance(weight), np.abs(weight).reshape(4, -1).sum(1))
    np.testing.assert_allclose(
        magnitude_importance(torch.as_tensor(weight), p=2),
        np.sqrt((weight**2).reshape(4, -1).sum(1)),
    )
    # First-order Taylor: the squared loss change of zeroing the unit, to first order.
    np.testing.assert_allclose(
        taylor_importance(weight, grad), ((weight * grad).reshape(4, -1).sum(1)) ** 2
    )
    acts = rng.normal(size=(5, 4, 3))
    grads = rng.normal(size=acts.shape)
    expected = ((acts * grads).sum(axis=2) ** 2).sum(axis=0) / 10
    np.testing.assert_allclose(fisher_importance(acts, grads), expected)


def test_activation_redundancy_finds_duplicates() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(64, 3, 4))
    acts = np.concatenate([base, -2.0 * base[:, :1], np.ones((64, 1, 4))], axis=1)
    redundancy = activation_redundancy(torch.as_tensor(acts))
    assert redundancy.shape == (5, 5)
    np.testing.assert_allclose(redundancy, redundancy.T)
    assert redundancy[0, 3] == pytest.approx(1.0)  # a scaled, sign-flipped copy
    assert redundancy[1:3, 3].max() < 0.5
    assert redundancy[4].max() == 0.0  # a constant unit carries nothing
    assert np.diag(redundancy).max() == 0.0


def test_objective_is_the_documented_qubo() -> None:
    group = PruningGroup("a", [2.0, 1.0, 4.0], redundancy=[[0, 0.5, 0], [0.5, 0, 1], [0, 1, 0]])
    problem = pruning_problem([group], budget=3, alpha=0.25, fill=False)
    objective: dimod.BinaryQuadraticModel = problem.model.objective
    assert objective.get_linear(("a", 2)) == pytest.approx(-0.25)
    assert objective.get_quadratic(("a", 1), ("a", 2)) == pytest.approx(0.75 * 1 / 2)


def test_balance_pulls_each_group_towards_the_uniform_split() -> None:
    # Group "a" scores far higher, so without balance the budget goes to it; with a strong
    # balance both groups keep the same fraction, chosen by importance within each.
    groups = [
        PruningGroup("a", [10.0, 10.5, 10.2, 10.9], unit_cost=1.0),
        PruningGroup("b", [1.0, 1.9, 1.5, 1.2], unit_cost=1.0),
    ]
    free = solve(pruning_problem(groups, budget=4, alpha=1.0), solver="exact").value
    assert free["a"].sum() == 3 and free["b"].sum() == 1
    problem = pruning_problem(groups, budget=4, alpha=1.0, balance=50.0)
    assert problem.reference_counts == pytest.approx({"a": 2.0, "b": 2.0})
    balanced = solve(problem, solver="exact").value
    assert balanced["a"].tolist() == [False, True, False, True]  # the two best of each
    assert balanced["b"].tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="'balance' parameter of pruning_problem"):
        pruning_problem(groups, budget=4, balance=-1.0)


def test_polish_swaps_to_the_best_units_for_the_counts_kept() -> None:
    # Whatever the sample keeps, polish ends at the best units for that count: here,
    # with importance only, the top 3 of each group.
    rng = np.random.default_rng(0)
    groups = [PruningGroup(name, rng.random(10), unit_cost=1.0) for name in ("a", "b")]
    problem = pruning_problem(groups, budget=6, alpha=1.0, fill=False, polish=True)
    worst = {(g.name, i): int(i in np.argsort(g.importance)[:3]) for g in groups for i in range(10)}
    masks = problem.decode(problem.repair(worst))
    for g in groups:
        assert set(np.flatnonzero(masks[g.name])) == set(np.argsort(g.importance)[-3:])
