"""The public view of a model's prunable groups: what they are, what any selection costs, removal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownNameError
from qopt.model_analysis.cost import BUDGETS, ModelCost
from qopt.model_analysis.surgery import as_keep_mask, remove_units
from qopt.model_analysis.tracing import UnitGroup, move_to_device, trace_unit_groups

__all__ = ["ModelPruningGroups", "PrunableGroup", "model_pruning_groups"]


@dataclass(frozen=True)
class PrunableGroup:
    """A set of units of a model that structured pruning keeps or removes together.

    Attributes:
        name: The group's label: the names of the layers whose outputs are its units, joined
            by ``+`` (layers coupled by a residual addition form one group), or
            ``"<moe>.experts"`` for the experts of the MoE layer ``<moe>``.
        size: How many units (channels, neurons or experts) the group has.
        layers: Names of the modules whose outputs are the units: Linear/Conv2d layers, or
            the one :class:`qopt.moe.MoE` layer.
        kind: ``"channels"`` (outputs of Linear/Conv2d layers) or ``"experts"``.
        min_keep: The fewest units a pruned model may keep (``top_k`` for experts).

    Examples:
        >>> from qopt.model_analysis import PrunableGroup
        >>> PrunableGroup("fc1", 16, ("fc1",), "channels", 1).size
        16
    """

    name: str
    size: int
    layers: tuple[str, ...]
    kind: str
    min_keep: int


class ModelPruningGroups(Sequence[PrunableGroup]):
    """The prunable groups of a model and its exact cost: see :func:`model_pruning_groups`.

    A sequence of :class:`PrunableGroup`, plus :meth:`cost` (parameters or MACs of the model
    for any numbers of units kept per group) and :meth:`prune` (remove units for real).

    Attributes:
        unit_groups: The traced groups (:class:`~qopt.model_analysis.tracing.UnitGroup`:
            the modules that produce and read each group's units).
        model_cost: The cost polynomial (:class:`~qopt.model_analysis.cost.ModelCost`).

    Examples:
        >>> import torch
        >>> from qopt.model_analysis import model_pruning_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 2))
        >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
        >>> [g.name for g in groups], groups.cost({"0": 4}), groups.cost({"0": 3})
        (['0'], 40, 30)
    """

    def __init__(
        self,
        unit_groups: Sequence[UnitGroup],
        model_cost: ModelCost,
        example_input: Any,
        min_keep: int,
    ) -> None:
        self.unit_groups = list(unit_groups)
        self.model_cost = model_cost
        self._example = example_input
        self._groups = tuple(
            PrunableGroup(
                name=g.name,
                size=g.size,
                layers=tuple(n for n, _ in g.roots),
                kind="experts" if g.moe is not None else "channels",
                min_keep=g.min_keep(min_keep),
            )
            for g in self.unit_groups
        )

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):  # by name, too
            for group in self._groups:
                if group.name == index:
                    return group
            raise UnknownNameError(
                f"No pruning group is named {index!r}; the groups are "
                f"{[g.name for g in self._groups]}."
            )
        return self._groups[index]

    def __repr__(self) -> str:
        inner = ", ".join(f"{g.name!r}: {g.size} {g.kind}" for g in self._groups)
        return f"ModelPruningGroups({inner})"

    def _check_names(self, names: Any, method: str, what: str) -> None:
        unknown = sorted(set(names) - {g.name for g in self._groups})
        if unknown:
            raise InvalidProblemError(
                f"ModelPruningGroups.{method} got {what} for unknown groups {unknown}; the "
                f"groups are {[g.name for g in self._groups]}."
            )

    def cost(self, counts: Mapping[str, int], budget: str = "macs") -> int:
        """Exact MACs (or parameters) of the model pruned to ``counts[name]`` units per group.

        A group missing from ``counts`` keeps all its units. The value is the one
        :func:`~qopt.model_analysis.count_params_and_macs` gives on the pruned model.
        """
        if budget not in BUDGETS:
            raise SolverConfigurationError(
                f"The 'budget' parameter of ModelPruningGroups.cost must be one of "
                f"{list(BUDGETS)}. Got {budget!r} instead."
            )
        self._check_names(counts, "cost", "counts")
        full = {g.name: int(counts.get(g.name, g.size)) for g in self._groups}
        return round(self.model_cost.predict(budget, full))

    def prune(self, model: nn.Module, masks: Mapping[str, Any]) -> None:
        """Remove, in place, the units whose ``masks[name]`` entry is False.

        ``model`` must have the architecture the groups were found in (the model given to
        :func:`model_pruning_groups`, or a copy of it). Groups missing from ``masks`` are
        left whole. Channels go through Torch-Pruning, experts through
        :meth:`qopt.moe.MoE.keep_experts`.
        """
        self._check_names(masks, "prune", "masks")
        full = {
            g.name: masks[g.name] if g.name in masks else np.ones(g.size, dtype=bool)
            for g in self._groups
        }
        for group in self._groups:
            kept = int(np.count_nonzero(as_keep_mask(full[group.name])))
            if kept < group.min_keep:
                raise InvalidProblemError(
                    f"The mask of pruning group {group.name!r} keeps {kept} unit(s); it must "
                    f"keep at least {group.min_keep}."
                )
        example = move_to_device(self._example, next(model.parameters()).device)
        remove_units(model, example, self.unit_groups, full)


def model_pruning_groups(
    model: nn.Module,
    example_inputs: Any,
    *,
    layers: Sequence[str] | None = None,
    min_keep: int = 1,
    owner: str = "model_pruning_groups",
) -> ModelPruningGroups:
    """The groups of units structured pruning can remove, and the exact cost of any selection.

    Traces ``model`` with Torch-Pruning's dependency graph (Fang et al., "DepGraph: towards
    any structural pruning", CVPR 2023). Each Linear/Conv2d whose outputs feed another
    Linear/Conv2d is a group of channels or neurons (layers coupled by a residual addition
    or concatenation form one group); the final layer is never one. The experts of each
    :class:`qopt.moe.MoE` layer form a group whose units are whole experts (its router rows
    go with them); a layer whose outputs are an MoE's ``d_model`` is not a group. These are
    the groups :class:`~qopt.integrations.lightning.QuboPruningCallback` prunes.

    Use it to select units with your own criterion under the same exact budget the callback
    uses, and to remove them: ``groups.cost(counts, "macs")`` and ``groups.prune(model,
    masks)``.

    Args:
        model: The network (any ``nn.Module``; a LightningModule works).
        example_inputs: An input ``model.forward`` accepts (a tensor, a tuple of positional
            arguments or a dict of keyword arguments), for tracing and counting.
        layers: Restrict the groups to these module names (Linear/Conv2d whose outputs are
            the units, or MoE layers); a listed layer that cannot be pruned is an error.
        min_keep: The fewest units any group keeps (experts: at least ``top_k``).
        owner: Who is asking, for messages.

    Returns:
        A :class:`ModelPruningGroups` (a sequence of :class:`PrunableGroup`).

    Raises:
        InvalidProblemError: The model cannot be traced, has no prunable group, or a group
            couples a module that cannot be costed; the message names the module.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis import count_params_and_macs, model_pruning_groups
        >>> from qopt.moe import MoE
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
        ...                             torch.nn.Linear(16, 8), MoE(8, 4, d_hidden=8, top_k=2))
        >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
        >>> [(g.name, g.size, g.kind, g.min_keep) for g in groups]
        [('0', 16, 'channels', 1), ('3.experts', 4, 'experts', 2)]
        >>> groups.prune(model, {"0": [True] * 12 + [False] * 4, "3.experts": [True, False] * 2})
        >>> count_params_and_macs(model, torch.zeros(1, 8))[0] == groups.cost(
        ...     {"0": 12, "3.experts": 2}, "params")
        True
    """
    min_keep = check_int(min_keep, "min_keep", owner, low=1)
    unit_groups = trace_unit_groups(model, example_inputs, layers, owner=owner)
    cost = ModelCost(model, example_inputs, unit_groups)
    return ModelPruningGroups(unit_groups, cost, example_inputs, min_keep)
