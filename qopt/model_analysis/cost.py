"""The exact parameter and MAC cost of a model as a polynomial in the units kept per group.

Each dimension a group changes is affine in that group's count (``in = c + a k_g``); a layer
costs ``in * out * kernel`` parameters (and that times its positions in MACs), so the model's
cost is a constant, plus a term linear in each count, plus terms bilinear in two counts (a
layer between two pruned groups). :class:`ModelCost` builds the polynomial once from the
groups of :func:`~qopt.model_analysis.tracing.trace_unit_groups` and evaluates it for any
counts; its value is what :func:`~qopt.model_analysis.counting.count_params_and_macs` counts
on the pruned model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from qopt.model_analysis.counting import count_params_and_macs, layer_positions
from qopt.model_analysis.layers import NORM_LAYERS, expert_parameters, input_width, output_width
from qopt.model_analysis.tracing import UnitGroup
from qopt.problems.pruning import PruningCost

__all__ = ["BUDGETS", "ModelCost"]

#: What a budget can count.
BUDGETS = ("macs", "params")

#: ``(constant, linear[group], quadratic[(group, group)])``.
Polynomial = tuple[float, dict[str, float], dict[tuple[str, str], float]]


@dataclass
class _Affine:
    """``constant + sum_g coefficient[g] * k_g``: a layer dimension as a function of counts."""

    constant: float
    coefficient: dict[str, float] = field(default_factory=dict)

    def times(self, other: _Affine, scale: float) -> Polynomial:
        linear: dict[str, float] = {}
        quadratic: dict[tuple[str, str], float] = {}
        for g, a in self.coefficient.items():
            linear[g] = linear.get(g, 0.0) + scale * a * other.constant
        for g, b in other.coefficient.items():
            linear[g] = linear.get(g, 0.0) + scale * b * self.constant
        for g, a in self.coefficient.items():
            for h, b in other.coefficient.items():
                key = (g, h) if g <= h else (h, g)
                quadratic[key] = quadratic.get(key, 0.0) + scale * a * b
        return scale * self.constant * other.constant, linear, quadratic


class ModelCost:
    """Parameters and MACs of ``model`` for any numbers of units kept in ``groups``.

    Args:
        model: The network the groups were traced in, at full size.
        example_input: An input ``model.forward`` accepts, on the model's device.
        groups: Its prunable groups.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis.cost import ModelCost
        >>> from qopt.model_analysis.tracing import trace_unit_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 2))
        >>> example = torch.zeros(1, 8)
        >>> cost = ModelCost(model, example, trace_unit_groups(model, example))
        >>> cost.predict("macs", {"0": 3}), cost.predict("params", {"0": 3})
        (30.0, 35.0)
    """

    def __init__(self, model: nn.Module, example_input: Any, groups: Sequence[UnitGroup]) -> None:
        self.groups = list(groups)
        positions = layer_positions(model, example_input)
        dims: dict[nn.Module, dict[str, _Affine]] = {}
        for group in self.groups:
            for module, (side, per_unit) in group.touched.items():
                if module not in dims:
                    dims[module] = {
                        "in": _Affine(input_width(module)),
                        "out": _Affine(output_width(module)),
                    }
                form = dims[module][side]
                form.constant -= per_unit * group.size
                form.coefficient[group.name] = form.coefficient.get(group.name, 0.0) + per_unit
        self.polynomials: dict[str, Polynomial] = {}
        totals = count_params_and_macs(model, example_input)
        for budget, total in zip(BUDGETS[::-1], totals, strict=True):  # params, macs
            constant = 0.0
            linear: dict[str, float] = {}
            quadratic: dict[tuple[str, str], float] = {}
            for module, sides in dims.items():
                parts = []
                if isinstance(module, NORM_LAYERS):
                    if module.weight is not None and budget == "params":
                        parts.append(_Affine(2.0).times(sides["out"], 1.0))
                elif budget == "params":
                    kernel = math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1
                    parts.append(sides["in"].times(sides["out"], float(kernel)))
                    if module.bias is not None:
                        parts.append(_Affine(1.0).times(sides["out"], 1.0))
                elif module in positions:
                    kernel = math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1
                    parts.append(sides["in"].times(sides["out"], float(kernel * positions[module])))
                for c, lin, quad in parts:
                    constant += c
                    for g, v in lin.items():
                        linear[g] = linear.get(g, 0.0) + v
                    for key, v in quad.items():
                        quadratic[key] = quadratic.get(key, 0.0) + v
            for group in self.groups:
                if group.moe is not None and budget == "params":
                    # An expert's own weights (its router row is counted with the router).
                    own = sum(p[0].numel() for p in expert_parameters(group.moe))
                    linear[group.name] = linear.get(group.name, 0.0) + float(own)
                # MACs: each token runs top_k experts whatever their number; only the router
                # shrinks with the experts, and it is counted through `touched`.
            # Whatever no group touches is fixed: the total minus the touched part at full size.
            full = {g.name: float(g.size) for g in self.groups}
            touched_full = (
                constant
                + sum(v * full[g] for g, v in linear.items())
                + sum(v * full[g] * full[h] for (g, h), v in quadratic.items())
            )
            self.polynomials[budget] = (float(total) - touched_full + constant, linear, quadratic)

    def cost(self, budget: str, alive: Mapping[str, np.ndarray]) -> PruningCost:
        """The exact cost of keeping a subset of the units alive in each group (``alive``:
        per group, a boolean mask over all its units), as a problem's cost."""
        fixed, linear, quadratic = self.polynomials[budget]
        unit_costs = {
            g.name: np.full(int(alive[g.name].sum()), linear.get(g.name, 0.0)) for g in self.groups
        }
        return PruningCost(fixed, unit_costs, dict(quadratic))

    def predict(self, budget: str, counts: Mapping[str, float]) -> float:
        """``budget`` (``"macs"`` or ``"params"``) of the model keeping ``counts[g]`` units of
        every group ``g``."""
        fixed, linear, quadratic = self.polynomials[budget]
        return float(
            fixed
            + sum(v * counts[g] for g, v in linear.items())
            + sum(v * counts[g] * counts[h] for (g, h), v in quadratic.items())
        )
