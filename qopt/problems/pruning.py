"""Structured pruning as a QUBO: keep the important, non-redundant units within a budget.

Choosing which channels or neurons of a network to keep is a subset selection. Each unit
``i`` has an importance ``I_i`` (a reward for keeping it) and pairs of units overlap in what
they compute (a redundancy ``R_ij``, a penalty for keeping both). Following QUBO feature
selection (Mücke, Heese, Müller, Wolter and Piatkowski, "Feature selection on quantum
computers", Quantum Machine Intelligence 5, 2023), the objective over keep bits ``x`` is

    f(x) = -alpha * sum_i I_i x_i + (1 - alpha) * sum_{i<j in one group} R_ij x_i x_j / (n_g - 1)

subject to, per group ``g``, exactly ``keep`` or at least ``min_keep`` units kept, and one
global budget on what the kept units cost (parameters or MACs) across all groups. The budget
is a hard constraint: a :class:`~qopt.constraints.ConstrainedQUBO` inequality in the QUBO, and
the repair and decode steps enforce it exactly, including the part of the cost bilinear in the
number of units kept in two groups (a layer between two pruned layers costs
``k_in * k_out``).

Examples:
    >>> import numpy as np
    >>> from qopt.pipeline import solve
    >>> from qopt.problems.pruning import PruningGroup, pruning_problem
    >>> group = PruningGroup("fc1", importance=[3.0, 2.9, 2.5, 0.5],
    ...                      redundancy=[[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    >>> problem = pruning_problem([group], budget=2, alpha=0.5)
    >>> solution = solve(problem, solver="exact")
    >>> solution.value["fc1"].tolist()  # units 0 and 1 are copies: keep one of them
    [True, False, True, False]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dimod
import numpy as np

from qopt._validation import check_float
from qopt.constraints import ConstrainedQUBO
from qopt.exceptions import InvalidProblemError
from qopt.pipeline import Formulation

__all__ = [
    "PruningCost",
    "PruningGroup",
    "activation_redundancy",
    "fisher_importance",
    "magnitude_importance",
    "pruning_problem",
    "taylor_importance",
]

_OWNER = "pruning_problem"

#: How many cost quanta the budget spans in the QUBO's inequality; sets the slack bits (~10).
_BUDGET_QUANTA = 1024


def _as_array(values: Any, *, dtype: type = float) -> np.ndarray:
    """A numpy copy of a numpy array, a torch tensor (any device) or a nested sequence."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    return np.array(values, dtype=dtype)


@dataclass(frozen=True)
class PruningGroup:
    """The prunable units of one layer (or of several coupled layers), and what they are worth.

    Attributes:
        name: Unique label of the group; variables are ``(name, unit_index)``.
        importance: Shape ``(n,)``: the reward for keeping each unit (larger is more
            important), e.g. from :func:`magnitude_importance` or :func:`taylor_importance`.
        redundancy: Shape ``(n, n)``, symmetric, in ``[0, 1]``: how much two units duplicate
            each other, e.g. from :func:`activation_redundancy`; ``None`` for none.
        unit_cost: What keeping one unit costs in the budget's currency (parameters or
            MACs), a scalar for all units or shape ``(n,)``; the cost that depends on the
            number kept in another group goes in ``pruning_problem(interactions=...)``.
        min_keep: The fewest units the group may keep (a layer with no unit left breaks the
            network).
        keep: Keep exactly this many units (k of n); ``None`` lets the budget decide.

    Examples:
        >>> from qopt.problems.pruning import PruningGroup
        >>> PruningGroup("conv1", importance=[1.0, 0.2, 0.7], min_keep=1).num_units
        3
    """

    name: str
    importance: Any
    redundancy: Any = None
    unit_cost: Any = 1.0
    min_keep: int = 1
    keep: int | None = None

    @property
    def num_units(self) -> int:
        """How many units the group has."""
        return int(np.size(_as_array(self.importance)))


@dataclass(frozen=True)
class PruningCost:
    """The exact cost of a keep mask: constant + per-unit + bilinear in per-group counts.

    ``cost(masks) = fixed + sum_g sum_i unit_cost[g][i] * mask[g][i]
    + sum_{(g, h)} interactions[(g, h)] * k_g * k_h`` with ``k_g = mask[g].sum()``.
    A chain of layers fits this form exactly: a layer whose inputs come from group ``g`` and
    whose outputs form group ``h`` has ``in * out * kernel`` weights, bilinear in ``(k_g, k_h)``.

    Attributes:
        fixed: Cost of everything no group can remove.
        unit_costs: Per group, shape ``(n_g,)``.
        interactions: ``{(g, h): coefficient}`` (``g == h`` allowed: ``k_g ** 2``).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.pruning import PruningCost
        >>> cost = PruningCost(10.0, {"a": np.ones(3), "b": np.ones(2)}, {("a", "b"): 4.0})
        >>> cost({"a": np.array([1, 1, 0]), "b": np.array([1, 0])})
        21.0
    """

    fixed: float
    unit_costs: Mapping[str, np.ndarray]
    interactions: Mapping[tuple[str, str], float]

    def __call__(self, masks: Mapping[str, Any]) -> float:
        """The cost of keeping ``masks[g][i]`` (truthy) units."""
        counts = {g: float(np.count_nonzero(masks[g])) for g in self.unit_costs}
        total = self.fixed + sum(
            float(np.dot(self.unit_costs[g], np.asarray(masks[g], dtype=bool))) for g in counts
        )
        for (g, h), coefficient in self.interactions.items():
            total += coefficient * counts[g] * counts[h]
        return float(total)

    def linearized(self, counts: Mapping[str, float]) -> tuple[float, dict[str, np.ndarray]]:
        """Tangent of the cost at per-group ``counts``: ``(constant, per-unit costs)``.

        ``b k_g k_h ~ b (K_h k_g + K_g k_h - K_g K_h)``: exact at ``counts`` and, when both
        counts shrink from there, never above the true cost.
        """
        constant = self.fixed
        unit = {g: np.array(c, dtype=float) for g, c in self.unit_costs.items()}
        for (g, h), coefficient in self.interactions.items():
            unit[g] = unit[g] + coefficient * counts[h]
            unit[h] = unit[h] + coefficient * counts[g]
            constant -= coefficient * counts[g] * counts[h]
        return constant, unit


def _check_groups(groups: Sequence[PruningGroup]) -> list[dict[str, Any]]:
    if not isinstance(groups, Sequence) or isinstance(groups, str) or len(groups) == 0:
        raise InvalidProblemError(
            f"The 'groups' parameter of {_OWNER} must be a non-empty sequence of PruningGroup. "
            f"Got {groups!r} instead."
        )
    checked: list[dict[str, Any]] = []
    names: set[str] = set()
    for group in groups:
        if not isinstance(group, PruningGroup):
            raise InvalidProblemError(
                f"{_OWNER} expects PruningGroup items. Got {type(group).__name__} instead."
            )
        name = group.name
        if name in names:
            raise InvalidProblemError(
                f"Two pruning groups are named {name!r}; names must be unique."
            )
        names.add(name)
        importance = _as_array(group.importance).reshape(-1)
        n = importance.size
        if n == 0:
            raise InvalidProblemError(
                f"Pruning group {name!r} has no prunable units (empty importance)."
            )
        if not np.isfinite(importance).all():
            raise InvalidProblemError(f"Pruning group {name!r} has non-finite importance scores.")
        if group.redundancy is None:
            redundancy = np.zeros((n, n))
        else:
            redundancy = _as_array(group.redundancy)
            if redundancy.shape != (n, n) or not np.isfinite(redundancy).all():
                raise InvalidProblemError(
                    f"The redundancy of pruning group {name!r} must be a finite ({n}, {n}) "
                    f"matrix. Got shape {redundancy.shape}."
                )
            # Only the pairs matter: symmetrise and ignore the diagonal.
            redundancy = (redundancy + redundancy.T) / 2.0
            np.fill_diagonal(redundancy, 0.0)
        unit_cost = np.broadcast_to(_as_array(group.unit_cost), (n,)).astype(float)
        if not (np.isfinite(unit_cost).all() and (unit_cost >= 0).all()):
            raise InvalidProblemError(
                f"The unit_cost of pruning group {name!r} must be finite and >= 0."
            )
        min_keep = group.min_keep
        if not isinstance(min_keep, int | np.integer) or not 0 <= min_keep <= n:
            raise InvalidProblemError(
                f"The 'min_keep' of pruning group {name!r} must be an int in [0, {n}]. "
                f"Got {min_keep!r} instead."
            )
        keep = group.keep
        if keep is not None and (
            not isinstance(keep, int | np.integer) or not min_keep <= keep <= n
        ):
            raise InvalidProblemError(
                f"The 'keep' of pruning group {name!r} must be an int in [{min_keep}, {n}] "
                f"(at least min_keep). Got {keep!r} instead."
            )
        checked.append(
            {
                "name": name,
                "importance": importance,
                "redundancy": redundancy,
                "unit_cost": unit_cost,
                "min_keep": int(min_keep),
                "keep": None if keep is None else int(keep),
                "n": n,
            }
        )
    return checked


def _reference_counts(
    groups: list[dict[str, Any]], cost: PruningCost, budget: float
) -> dict[str, float]:
    """Counts at the uniform keep ratio whose exact cost meets the budget (bisection)."""

    def counts_at(ratio: float) -> dict[str, float]:
        out = {}
        for g in groups:
            if g["keep"] is not None:
                out[g["name"]] = float(g["keep"])
            else:
                out[g["name"]] = max(float(g["min_keep"]), ratio * g["n"])
        return out

    def cost_at(ratio: float) -> float:
        counts = counts_at(ratio)
        total = cost.fixed + sum(
            counts[g] / len(c) * float(c.sum()) if len(c) else 0.0
            for g, c in cost.unit_costs.items()
        )
        return total + sum(b * counts[g] * counts[h] for (g, h), b in cost.interactions.items())

    low, high = 0.0, 1.0
    if cost_at(high) <= budget:
        return counts_at(high)
    for _ in range(60):
        middle = (low + high) / 2.0
        low, high = (middle, high) if cost_at(middle) <= budget else (low, middle)
    return counts_at(low)


def pruning_problem(
    groups: Sequence[PruningGroup],
    *,
    budget: float,
    fixed_cost: float = 0.0,
    interactions: Mapping[tuple[str, str], float] | None = None,
    alpha: float = 0.5,
    balance: float = 0.0,
    penalty: float | Literal["auto"] = "auto",
    fill: bool | str = True,
    polish: bool = False,
) -> Formulation:
    """Which units of each group to keep, as a constrained QUBO with a repair step.

    Variables are ``(group.name, unit_index)``, 1 meaning "keep". The objective is the
    importance-minus-redundancy QUBO of Mücke et al. (2023) (see the module docstring):
    importance is divided by its largest absolute value over all groups, so ``alpha``
    weighs two terms of the same scale and groups stay comparable under the global budget;
    each group's redundancy is divided by ``n_g - 1`` so a unit's total penalty does not grow
    with the size of its layer.

    Constraints: per group ``add_k_of_n`` (when ``keep`` is set) or ``add_inequality`` with
    ``lb=min_keep``; one global ``add_inequality(ub=...)`` for the budget. The budget is
    linear in the QUBO: bilinear ``interactions`` are replaced by their tangent at the
    per-group counts of the uniform keep ratio that meets the budget, and costs are
    quantized to about 1/1024 of the budget to keep the slack register short. The repair
    step then enforces the exact :class:`PruningCost` as well, so every returned mask is
    within budget.

    Args:
        groups: The prunable groups (unique names).
        budget: The most the kept units (plus ``fixed_cost``) may cost, in the same currency
            as ``unit_cost`` and ``interactions``.
        fixed_cost: Cost of everything no group can remove.
        interactions: ``{(g, h): b}`` adds ``b * k_g * k_h`` to the cost (``k`` = number kept).
        alpha: Weight of importance against redundancy, in ``[0, 1]`` (1: importance only).
        balance: Weight, ``>= 0``, of a soft pull of each group's number of kept units
            ``k_g`` towards ``K_g``, its count at the uniform keep ratio that meets the
            budget: the objective gains ``balance * v * (k_g - K_g) ** 2 / n_g`` per group
            (not for groups with a fixed ``keep``), where ``v = |alpha * mean(I)| / max|I|``
            is the mean reward of one unit (1 when that is 0). A group whose count
            strays from ``K_g`` by a fraction ``f`` of its units pays ``balance * f ** 2``
            times what its ``n_g`` average units are worth. 0 (the default) lets the scores
            alone split the budget across groups; a large value keeps every group near the
            uniform split and leaves the QUBO to choose which units, not how many.
        penalty: Constraint penalty passed to :class:`~qopt.pipeline.Formulation`.
        fill: What repair and decode do with budget left over: ``True`` adds back units that
            improve the objective while they fit (a local improvement; the optimum is
            unchanged), ``"budget"`` adds the best units per cost until none fits (for
            pruning, where an unused budget is lost accuracy), ``False`` nothing.
        polish: After the fill, repair and decode also swap a kept unit for a dropped one
            of the same group while that lowers the objective and the swap fits the budget
            (best improvement first, 1-swap local search). A swap leaves every group's count
            unchanged, so it refines which units a sample keeps, never how many; a heuristic
            solver's answer to a penalized budget is often a few swaps from the best mask
            with its counts.

    Returns:
        A :class:`~qopt.pipeline.Formulation` whose ``decode`` gives ``{name: bool mask}``
        and whose ``repair`` returns a sample meeting every constraint and the exact budget.
        The exact cost function is ``formulation.cost`` (a :class:`PruningCost`), and
        ``formulation.reference_counts`` the per-group counts ``K_g`` of the uniform split.

    Raises:
        InvalidProblemError: A group with no units, bad shapes, or a budget below the cost of
            the minimum keeps (the message gives both numbers).

    Examples:
        >>> from qopt.pipeline import solve
        >>> from qopt.problems.pruning import PruningGroup, pruning_problem
        >>> groups = [PruningGroup("a", [4.0, 1.0, 3.0], unit_cost=2.0),
        ...           PruningGroup("b", [1.0, 5.0], unit_cost=1.0)]
        >>> problem = pruning_problem(groups, budget=5, alpha=1.0)
        >>> masks = solve(problem, solver="exact").value
        >>> masks["a"].tolist(), masks["b"].tolist()
        ([True, False, True], [False, True])
        >>> problem.cost(masks)  # a: 2 units at 2.0, b: 1 unit at 1.0
        5.0
    """
    checked = _check_groups(groups)
    budget = check_float(budget, "budget", _OWNER, low=0.0)
    fixed_cost = check_float(fixed_cost, "fixed_cost", _OWNER)
    alpha = check_float(alpha, "alpha", _OWNER, low=0.0, high=1.0)
    balance = check_float(balance, "balance", _OWNER, low=0.0)
    if fill not in (True, False, "budget"):
        raise InvalidProblemError(
            f"The 'fill' parameter of {_OWNER} must be True, False or 'budget'. "
            f"Got {fill!r} instead."
        )
    by_name = {g["name"]: g for g in checked}
    pairs: dict[tuple[str, str], float] = {}
    for key, coefficient in (interactions or {}).items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(k in by_name for k in key)):
            raise InvalidProblemError(
                f"interactions keys must be pairs of group names from {sorted(by_name)}. "
                f"Got {key!r}."
            )
        value = float(coefficient)
        if not math.isfinite(value) or value < 0:
            raise InvalidProblemError(
                f"The interaction {key!r} must be a finite cost >= 0. Got {coefficient!r}."
            )
        pairs[key] = pairs.get(key, 0.0) + value
    cost = PruningCost(fixed_cost, {g["name"]: g["unit_cost"] for g in checked}, pairs)

    # The cheapest feasible mask: the cheapest min_keep (or keep) units of every group.
    # Every cost term is non-decreasing in what is kept, so nothing feasible costs less.
    minimum = {
        g["name"]: _cheapest(g, g["keep"] if g["keep"] is not None else g["min_keep"])
        for g in checked
    }
    minimum_cost = cost(minimum)
    if minimum_cost > budget:
        detail = ", ".join(
            f"{g['name']!r}: {g['keep'] if g['keep'] is not None else g['min_keep']}"
            for g in checked
        )
        raise InvalidProblemError(
            f"The budget of {_OWNER} ({budget:g}) is below the cost of the minimum keeps "
            f"({minimum_cost:g} for {detail}). Raise the budget or lower min_keep/keep."
        )

    scale = max(float(np.abs(g["importance"]).max()) for g in checked) or 1.0
    reference = _reference_counts(checked, cost, budget)
    if balance > 0:
        # v: the mean reward of one unit, so that balance is free of the scores' scale.
        mean_reward = alpha * float(np.mean(np.concatenate([g["importance"] for g in checked])))
        unit_value = abs(mean_reward) / scale or 1.0
        for g in checked:
            g["balance"] = 0.0 if g["keep"] is not None else balance * unit_value / g["n"]
            g["target"] = reference[g["name"]]
    else:
        for g in checked:
            g["balance"], g["target"] = 0.0, 0.0
    objective = dimod.BinaryQuadraticModel(dimod.BINARY)
    for g in checked:
        name, n = g["name"], g["n"]
        for i in range(n):
            objective.add_linear((name, i), -alpha * g["importance"][i] / scale)
        if n > 1 and alpha < 1.0:
            rows, cols = np.nonzero(np.triu(g["redundancy"], k=1))
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                objective.add_quadratic(
                    (name, i), (name, j), (1.0 - alpha) * g["redundancy"][i, j] / (n - 1)
                )
        if g["balance"] > 0:
            # c (sum_i x_i - K) ** 2 = c (sum_i (1 - 2K) x_i + 2 sum_{i<j} x_i x_j + K ** 2),
            # using x_i ** 2 = x_i for binary x.
            c, target = g["balance"], g["target"]
            for i in range(n):
                objective.add_linear((name, i), c * (1.0 - 2.0 * target))
            for i, j in itertools.combinations(range(n), 2):
                objective.add_quadratic((name, i), (name, j), 2.0 * c)
            objective.offset += c * target**2

    model = ConstrainedQUBO(objective)
    for g in checked:
        variables = [(g["name"], i) for i in range(g["n"])]
        if g["keep"] is not None:
            model.add_k_of_n(variables, g["keep"], label=f"keep[{g['name']}]")
        elif g["min_keep"] > 0:
            model.add_inequality(
                dict.fromkeys(variables, 1.0), lb=g["min_keep"], label=f"min_keep[{g['name']}]"
            )

    if pairs:
        constant, unit_linear = cost.linearized(reference)
    else:
        constant, unit_linear = cost.fixed, {g: np.array(u) for g, u in cost.unit_costs.items()}
    weights, rhs = _quantize(unit_linear, budget - constant, minimum)
    terms: dict[Hashable, float] = {
        (g, i): float(w) for g, ws in weights.items() for i, w in enumerate(ws) if w > 0
    }
    if terms:
        model.add_inequality(terms, ub=float(rhs), label="budget")

    def within(masks: Mapping[str, np.ndarray]) -> bool:
        linear = float(sum(weights[g] @ masks[g] for g in weights))
        return cost(masks) <= budget + 1e-9 and linear <= rhs + 1e-9

    def masks_of(sample: Mapping[Any, int]) -> dict[str, np.ndarray]:
        return {
            g["name"]: np.array([float(sample.get((g["name"], i), 0) == 1) for i in range(g["n"])])
            for g in checked
        }

    def decode(sample: Mapping[Any, int]) -> dict[str, np.ndarray]:
        # The QUBO's budget is linear; with interactions it is a tangent of the true cost.
        # Decoding enforces the exact budget (and fills what it leaves unused), so every
        # decoded mask is within budget whatever the sample.
        masks = _repair_masks(
            checked,
            masks_of(sample),
            cost,
            weights,
            (budget, math.inf),
            alpha,
            scale,
            fill=fill,
            polish=polish,
        )
        if cost(masks) > budget + 1e-9:
            masks = {name: m.copy() for name, m in minimum.items()}
        return {name: m.astype(bool) for name, m in masks.items()}

    def repair(sample: Mapping[Any, int]) -> dict[Any, int]:
        masks = _repair_masks(
            checked,
            masks_of(sample),
            cost,
            weights,
            (budget, rhs),
            alpha,
            scale,
            fill=fill,
            polish=polish,
        )
        if not within(masks):  # only when exact-k groups block the greedy: cheapest is safe
            masks = {name: m.copy() for name, m in minimum.items()}
        return {(name, i): int(v) for name, m in masks.items() for i, v in enumerate(m)}

    formulation = Formulation(model, decode=decode, repair=repair, penalty=penalty)
    # The exact cost, for callers that report it (the pruning callback does).
    formulation.cost = cost  # type: ignore[attr-defined]
    # The uniform split that `balance` pulls towards.
    formulation.reference_counts = reference  # type: ignore[attr-defined]
    return formulation


def _quantize(
    unit_costs: Mapping[str, np.ndarray], room: float, minimum: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], int]:
    """Integer weights and right-hand side for the QUBO's budget inequality.

    Costs are rounded up and the room down, so a mask within the integer budget is within
    the real one. Integer costs of moderate total are kept exact; others are cut to about
    ``1/_BUDGET_QUANTA`` of the budget (a short slack register), finer when that rounding
    would exclude the minimum keeps.
    """
    values = np.concatenate([np.asarray(u, dtype=float) for u in unit_costs.values()])
    total = float(values.sum())
    integral = np.allclose(values, np.round(values)) and math.isclose(room, round(room))
    quantum = (
        1.0
        if integral and total <= 64 * _BUDGET_QUANTA
        else max(room, total, 1e-12) / _BUDGET_QUANTA
    )
    for _ in range(8):
        weights = {g: np.maximum(np.ceil(u / quantum - 1e-9), 0.0) for g, u in unit_costs.items()}
        rhs = math.floor(room / quantum + 1e-9)
        needed = int(sum(float(weights[g] @ minimum[g]) for g in weights))
        if needed <= rhs:
            return weights, rhs
        quantum /= 4.0
    # Still out of reach only through rounding; the exact check in repair/decode remains.
    return weights, needed


def _cheapest(group: Mapping[str, Any], count: int) -> np.ndarray:
    """Mask of the ``count`` cheapest units, ties broken towards the more important."""
    order = np.lexsort((-group["importance"], group["unit_cost"]))
    mask = np.zeros(group["n"])
    mask[order[:count]] = 1.0
    return mask


def _repair_masks(
    groups: list[dict[str, Any]],
    masks: dict[str, np.ndarray],
    cost: PruningCost,
    weights: Mapping[str, np.ndarray],
    limits: tuple[float, float],
    alpha: float,
    scale: float,
    *,
    fill: bool | str,
    polish: bool = False,
) -> dict[str, np.ndarray]:
    """Greedy repair: fix the counts, drop the worst value per cost, then fill back.

    ``limits`` is ``(budget, rhs)``: the exact cost must stay within the budget and the
    quantized linear cost (``weights``) within the QUBO's right-hand side.
    """
    budget, rhs = limits

    def gains(g: Mapping[str, Any], mask: np.ndarray) -> np.ndarray:
        # Objective decrease from keeping each unit, given the others kept in its group
        # (the zero diagonal of the redundancy leaves the unit itself out).
        shared = g["redundancy"] @ mask / max(g["n"] - 1, 1)
        value = alpha * g["importance"] / scale - (1.0 - alpha) * shared
        if g.get("balance", 0.0) > 0:
            # c ((k + 1 - K) ** 2 - (k - K) ** 2) with k the others kept: c (2 (k - K) + 1).
            others = mask.sum() - mask
            value = value - g["balance"] * (2.0 * (others - g["target"]) + 1.0)
        return np.asarray(value)

    def step_cost(name: str, counts: Mapping[str, float], sign: int) -> float:
        # Change of the bilinear part when group `name` keeps one unit more (+1) or less (-1).
        delta = 0.0
        for (g, h), b in cost.interactions.items():
            if g == h == name:
                delta += b * (2 * counts[name] + sign)
            elif g == name:
                delta += b * counts[h]
            elif h == name:
                delta += b * counts[g]
        return delta

    for g in groups:
        mask = masks[g["name"]]
        target_low = g["keep"] if g["keep"] is not None else g["min_keep"]
        target_high = g["keep"] if g["keep"] is not None else g["n"]
        while mask.sum() < target_low:
            value = np.where(mask == 0, gains(g, mask), -np.inf)
            mask[int(np.argmax(value))] = 1.0
        while mask.sum() > target_high:
            value = np.where(mask == 1, gains(g, mask), np.inf)
            mask[int(np.argmin(value))] = 0.0

    exact = cost(masks)
    linear = float(sum(weights[g] @ masks[g] for g in weights))
    # Over budget: drop the unit whose objective loss per unit of saved cost is smallest.
    while exact > budget + 1e-9 or linear > rhs + 1e-9:
        counts = {name: float(m.sum()) for name, m in masks.items()}
        best: tuple[float, str, int, float] | None = None
        for g in groups:
            name, mask = g["name"], masks[g["name"]]
            if g["keep"] is not None or mask.sum() <= g["min_keep"]:
                continue
            saved = g["unit_cost"] + step_cost(name, counts, -1)
            ratio = np.where(mask == 1, gains(g, mask) / np.maximum(saved, 1e-12), np.inf)
            i = int(np.argmin(ratio))
            if np.isfinite(ratio[i]) and (best is None or ratio[i] < best[0]):
                best = (float(ratio[i]), name, i, float(saved[i]))
        if best is None:
            break
        masks[best[1]][best[2]] = 0.0
        exact -= best[3]
        linear -= float(weights[best[1]][best[2]])

    if fill and exact <= budget + 1e-9 and linear <= rhs + 1e-9:
        while True:
            counts = {name: float(m.sum()) for name, m in masks.items()}
            best = None
            for g in groups:
                name, mask = g["name"], masks[g["name"]]
                if g["keep"] is not None:
                    continue
                added = g["unit_cost"] + step_cost(name, counts, +1)
                value = gains(g, mask)
                fits = (
                    (mask == 0)
                    & ((value > 0) | (fill == "budget"))
                    & (exact + added <= budget + 1e-9)
                    & (linear + weights[name] <= rhs + 1e-9)
                )
                ratio = np.where(fits, value / np.maximum(added, 1e-12), -np.inf)
                i = int(np.argmax(ratio))
                if np.isfinite(ratio[i]) and (best is None or ratio[i] > best[0]):
                    best = (float(ratio[i]), name, i, float(added[i]))
            if best is None:
                break
            masks[best[1]][best[2]] = 1.0
            exact += best[3]
            linear += float(weights[best[1]][best[2]])

    if polish and exact <= budget + 1e-9 and linear <= rhs + 1e-9:
        for g in groups:
            name, mask = g["name"], masks[g["name"]]
            shared = (1.0 - alpha) * g["redundancy"] / max(g["n"] - 1, 1)
            # Each accepted swap lowers the objective, so this ends; the cap bounds the time.
            for _ in range(4 * g["n"]):
                kept, dropped = np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)
                if kept.size == 0 or dropped.size == 0:
                    break
                value = gains(g, mask)
                # Dropping i and keeping j lowers the objective by value[j] - value[i], plus
                # the redundancy j no longer shares with i (value[j] counted i as kept).
                change = value[dropped][None, :] - value[kept][:, None]
                change = change + shared[np.ix_(kept, dropped)]
                extra = g["unit_cost"][dropped][None, :] - g["unit_cost"][kept][:, None]
                extra_linear = weights[name][dropped][None, :] - weights[name][kept][:, None]
                fits = (exact + extra <= budget + 1e-9) & (linear + extra_linear <= rhs + 1e-9)
                change = np.where(fits, change, -np.inf)
                a, b = np.unravel_index(int(np.argmax(change)), change.shape)
                if change[a, b] <= 1e-12:
                    break
                i, j = int(kept[a]), int(dropped[b])
                mask[i], mask[j] = 0.0, 1.0
                exact += float(extra[a, b])
                linear += float(extra_linear[a, b])
    return masks


def _unit_view(values: Any, name: str, *, min_ndim: int = 1) -> np.ndarray:
    array = _as_array(values)
    if array.ndim < min_ndim:
        raise InvalidProblemError(
            f"{name} must have at least {min_ndim} dimension(s). Got shape {array.shape}."
        )
    return array


def magnitude_importance(weight: Any, *, p: int = 1, bias: Any = None) -> np.ndarray:
    """Lp norm of each output unit's weights (L1: Li et al., "Pruning filters for efficient
    ConvNets", ICLR 2017).

    Args:
        weight: Shape ``(out, ...)``: a Linear ``(out, in)`` or Conv2d ``(out, in, kh, kw)``
            weight (numpy or torch).
        p: 1 or 2.
        bias: Optional shape ``(out,)``, included in the norm.

    Examples:
        >>> from qopt.problems.pruning import magnitude_importance
        >>> magnitude_importance([[1.0, -2.0], [0.5, 0.5]]).tolist()
        [3.0, 1.0]
    """
    if p not in (1, 2):
        raise InvalidProblemError(f"magnitude_importance supports p=1 or p=2. Got {p!r} instead.")
    w = _unit_view(weight, "weight").reshape(np.shape(_as_array(weight))[0], -1)
    if bias is not None:
        w = np.concatenate([w, _as_array(bias).reshape(-1, 1)], axis=1)
    return np.asarray(np.linalg.norm(w, ord=p, axis=1), dtype=float)


def taylor_importance(
    weight: Any, grad: Any, *, bias: Any = None, bias_grad: Any = None
) -> np.ndarray:
    """First-order Taylor importance of each output unit: ``(sum_s w_s g_s) ** 2``.

    The squared loss change when the unit's parameters are zeroed, to first order (Molchanov,
    Mallya, Tyree, Frosio and Kautz, "Importance estimation for neural network pruning",
    CVPR 2019). Average it over mini-batches for a stable estimate.

    Args:
        weight: Shape ``(out, ...)``.
        grad: The loss gradient with respect to ``weight``, same shape.
        bias: Optional shape ``(out,)``.
        bias_grad: Its gradient, shape ``(out,)``.

    Examples:
        >>> from qopt.problems.pruning import taylor_importance
        >>> taylor_importance([[1.0, 2.0], [3.0, 0.0]], [[0.5, -0.5], [0.1, 9.0]]).round(6).tolist()
        [0.25, 0.09]
    """
    w = _unit_view(weight, "weight")
    g = _unit_view(grad, "grad")
    if w.shape != g.shape:
        raise InvalidProblemError(f"weight {w.shape} and grad {g.shape} must have the same shape.")
    contribution = (w * g).reshape(w.shape[0], -1).sum(axis=1)
    if bias is not None and bias_grad is not None:
        contribution = contribution + _as_array(bias).reshape(-1) * _as_array(bias_grad).reshape(-1)
    return np.asarray(contribution**2, dtype=float)


def fisher_importance(activations: Any, activation_grads: Any) -> np.ndarray:
    """Fisher pruning signal of each unit: ``sum_n (sum_s a_ns g_ns) ** 2 / (2 N)``.

    The loss increase, under a Fisher-information approximation, from removing the unit's
    feature map (Theis, Korshunova, Tejani and Huszár, "Faster gaze prediction with dense
    networks and Fisher pruning", 2018).

    Args:
        activations: Shape ``(N, units, *spatial)``: the unit's output on a calibration batch.
        activation_grads: The loss gradient with respect to ``activations``, same shape.

    Examples:
        >>> from qopt.problems.pruning import fisher_importance
        >>> fisher_importance([[1.0, 2.0], [1.0, 0.0]], [[2.0, 0.5], [0.0, 1.0]]).tolist()
        [1.0, 0.25]
    """
    a = _unit_view(activations, "activations", min_ndim=2)
    g = _unit_view(activation_grads, "activation_grads", min_ndim=2)
    if a.shape != g.shape:
        raise InvalidProblemError(
            f"activations {a.shape} and activation_grads {g.shape} must have the same shape."
        )
    per_sample = (a * g).reshape(a.shape[0], a.shape[1], -1).sum(axis=2)
    return np.asarray((per_sample**2).sum(axis=0) / (2.0 * a.shape[0]), dtype=float)


def activation_redundancy(activations: Any, *, center: bool = True) -> np.ndarray:
    """Pairwise redundancy of units: absolute cosine similarity of their activations.

    Each unit's activations over a calibration batch (and over spatial positions for a
    feature map) form one vector; two units whose vectors point the same way (or opposite
    ways) compute the same thing up to scale, which the next layer can absorb.

    Args:
        activations: Shape ``(N, units, *spatial)``.
        center: Subtract each unit's mean first (then the similarity is the absolute Pearson
            correlation), so that two always-positive units are not called redundant merely
            for being positive. A constant unit is redundant with nothing.

    Returns:
        Shape ``(units, units)``, symmetric, values in ``[0, 1]``, zero diagonal.

    Examples:
        >>> from qopt.problems.pruning import activation_redundancy
        >>> activation_redundancy([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, 0.0]]).round(2).tolist()
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    a = _unit_view(activations, "activations", min_ndim=2)
    units = a.shape[1]
    vectors = np.moveaxis(a, 1, 0).reshape(units, -1)
    if center:
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1)
    safe = np.where(norms > 1e-12, norms, np.inf)
    unit_vectors = vectors / safe[:, None]
    similarity = np.clip(np.abs(unit_vectors @ unit_vectors.T), 0.0, 1.0)
    np.fill_diagonal(similarity, 0.0)
    return np.asarray(similarity, dtype=float)
