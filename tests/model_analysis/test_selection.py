"""Tests for select_units: the kept units of a model within its exact budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from qopt.exceptions import SolverConfigurationError
from qopt.model_analysis import model_pruning_groups
from qopt.model_analysis.selection import select_units
from tests.model_analysis.models import tiny_cnn

SA = {"num_reads": 16, "seed": 0}


def _groups():
    return model_pruning_groups(tiny_cnn(), torch.zeros(1, 1, 8, 8))


def test_only_alive_units_are_kept_within_the_exact_budget() -> None:
    groups = _groups()
    rng = np.random.default_rng(0)
    alive = {g.name: rng.random(g.size) < 0.8 for g in groups}
    importance = {g.name: rng.random(g.size) for g in groups}
    budget = 0.5 * groups.cost({})
    chosen = select_units(
        groups, alive, importance, budget=budget, polish=True, solver="sa", solver_options=SA
    )
    for g in groups:
        mask = chosen.masks[g.name]
        assert mask.shape == (g.size,) and not (mask & ~alive[g.name]).any()
        assert mask.sum() >= g.min_keep
    counts = {name: int(mask.sum()) for name, mask in chosen.masks.items()}
    assert groups.cost(counts) <= budget
    # The problem is over the alive units, and it says what the pipeline solved.
    assert chosen.problem.model.objective.num_variables == sum(int(a.sum()) for a in alive.values())
    assert chosen.solution.record.solver == "sa" and chosen.solution.record.fallback is None


def test_the_exact_solver_finds_the_best_subset_within_the_budget() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    groups = model_pruning_groups(model, torch.zeros(1, 4))
    importance = {"0": np.array([5.0, 1, 1, 4, 1, 3, 1, 2])}
    similar = np.zeros((8, 8))
    similar[0, 3] = similar[3, 0] = 1.0  # the two best units duplicate each other
    budget = groups.cost({"0": 3})
    chosen = select_units(
        groups,
        {"0": np.ones(8, dtype=bool)},
        importance,
        {"0": similar},
        budget=budget,
        alpha=0.5,
        solver="exact",
    )
    kept = chosen.masks["0"]
    assert groups.cost({"0": int(kept.sum())}) <= budget
    # Brute force over the problem's own objective and every subset within the budget.
    objective = chosen.problem.model.objective

    def energy(subset: tuple[int, ...]) -> float:
        return objective.energy({("0", i): int(i in subset) for i in range(8)})

    subsets = [s for k in range(1, 4) for s in itertools.combinations(range(8), k)]
    assert energy(tuple(np.flatnonzero(kept))) == pytest.approx(min(map(energy, subsets)))


def test_solver_options_are_get_solver_options() -> None:
    groups = _groups()
    alive = {g.name: np.ones(g.size, dtype=bool) for g in groups}
    importance = {g.name: np.ones(g.size) for g in groups}
    with pytest.raises(SolverConfigurationError, match=r"\['num_sweep'\].*num_sweeps"):
        select_units(groups, alive, importance, budget=1e9, solver_options={"num_sweep": 10})
