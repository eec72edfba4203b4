"""Choose the units to keep: the pruning QUBO of a model's groups, solved through the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dimod
import numpy as np

from qopt.model_analysis.groups import ModelPruningGroups
from qopt.pipeline import Formulation, Solution, solve
from qopt.problems.pruning import PruningGroup, pruning_problem
from qopt.solvers import resolve_solver

__all__ = ["UnitSelection", "select_units"]


@dataclass(frozen=True)
class UnitSelection:
    """What :func:`select_units` chose, and how.

    Attributes:
        masks: Per group name, a boolean array over all its units: True for the units kept
            (always a subset of the units alive before).
        problem: The pruning problem over the alive units
            (:func:`~qopt.problems.pruning.pruning_problem`).
        solution: The pipeline's solution (its ``record`` says which solver answered, and
            whether a fallback did).
    """

    masks: dict[str, np.ndarray]
    problem: Formulation[Any]
    solution: Solution[Any]


def select_units(
    groups: ModelPruningGroups,
    alive: Mapping[str, np.ndarray],
    importance: Mapping[str, np.ndarray],
    redundancy: Mapping[str, np.ndarray | None] | None = None,
    *,
    budget: float,
    currency: str = "macs",
    alpha: float = 0.5,
    balance: float = 0.0,
    polish: bool = False,
    solver: str | dimod.Sampler = "sa",
    solver_options: Mapping[str, Any] | None = None,
    owner: str = "select_units",
) -> UnitSelection:
    """Which of a model's alive units to keep within ``budget``, by the pruning QUBO.

    Each group's importance (over its alive units) is divided by its mean absolute value,
    so layers of different scale compete for the global budget on equal terms; the cost is
    the model's exact cost polynomial over the alive units
    (:class:`~qopt.model_analysis.cost.ModelCost`); every group keeps at least its
    ``min_keep``. The problem (:func:`~qopt.problems.pruning.pruning_problem`, filling the
    budget left over) is solved by :func:`qopt.pipeline.solve` and decoded (repaired, within
    the exact budget).

    Args:
        groups: The model's groups (:func:`~qopt.model_analysis.model_pruning_groups`).
        alive: Per group, a boolean array over all its units: the units still in play.
        importance: Per group, a score for each of its units (all units; the alive ones are
            used).
        redundancy: Per group, a ``(size, size)`` redundancy matrix or ``None``.
        budget: The most the kept model may cost.
        currency: What ``budget`` counts: ``"macs"`` or ``"params"``.
        alpha: Importance against redundancy, in [0, 1].
        balance: Pull of each group's count towards the uniform split.
        polish: Refine the answer by 1-swap local search within each group.
        solver: A registry name or a :class:`dimod.Sampler`.
        solver_options: The options of :func:`qopt.solvers.get_solver` for ``solver``.
        owner: Who is asking, for messages.

    Returns:
        A :class:`UnitSelection`.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from qopt.model_analysis import model_pruning_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(),
        ...                             torch.nn.Linear(6, 2))
        >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
        >>> chosen = select_units(
        ...     groups, {"0": np.ones(6, dtype=bool)}, {"0": np.arange(1.0, 7.0)},
        ...     budget=40, polish=True, solver="sa", solver_options={"num_reads": 10, "seed": 0})
        >>> chosen.masks["0"].tolist(), groups.cost({"0": 4})
        ([False, False, True, True, True, True], 40)
    """
    cost = groups.model_cost.cost(currency, alive)
    problem_groups = []
    for group in groups:
        index = np.flatnonzero(alive[group.name])
        score = np.asarray(importance[group.name])[index]
        mean = float(np.mean(np.abs(score))) or 1.0
        similar = None if redundancy is None else redundancy.get(group.name)
        problem_groups.append(
            PruningGroup(
                group.name,
                importance=score / mean,
                redundancy=None if similar is None else similar[np.ix_(index, index)],
                unit_cost=cost.unit_costs[group.name],
                min_keep=min(group.min_keep, len(index)),
            )
        )
    problem = pruning_problem(
        problem_groups,
        budget=budget,
        fixed_cost=cost.fixed,
        interactions=cost.interactions,
        alpha=alpha,
        balance=balance,
        fill="budget",
        polish=polish,
    )
    solution = solve(problem, resolve_solver(solver, solver_options, owner=owner))
    masks = {}
    for group in groups:
        full = np.zeros(group.size, dtype=bool)
        kept = np.asarray(solution.value[group.name], dtype=bool)
        full[np.flatnonzero(alive[group.name])[kept]] = True
        masks[group.name] = full
    return UnitSelection(masks, problem, solution)
