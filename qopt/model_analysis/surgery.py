"""Remove pruned units from a torch model for real: smaller layers, not zeroed weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qopt.exceptions import InvalidProblemError
from qopt.model_analysis.tracing import UnitGroup, dependency_graph
from qopt.moe import MoE

__all__ = ["as_keep_mask", "remove_units"]


def as_keep_mask(mask: Any) -> np.ndarray:
    """A flat boolean numpy array from a tensor (any device), an array or a sequence."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, dtype=bool).reshape(-1)


def remove_units(
    model: nn.Module,
    example_input: Any,
    groups: Sequence[UnitGroup],
    masks: Mapping[str, Any],
) -> None:
    """Remove, in place, the units whose ``masks[group.name]`` entry is False.

    Channels and neurons go through Torch-Pruning's dependency graph (the layers that read
    them shrink too), MoE experts through :meth:`qopt.moe.MoE.keep_experts`. Groups are
    matched to ``model``'s modules by name, so ``model`` may be a copy of the one they were
    traced in.

    Args:
        model: The network, with the architecture the groups were traced in.
        example_input: An input ``model.forward`` accepts, on the model's device.
        groups: Its prunable groups.
        masks: Per group name, one keep flag per unit.

    Raises:
        InvalidProblemError: A mask does not have one entry per unit of its group.
    """
    names = dict(model.named_modules())
    graph = dependency_graph(model, example_input)
    for group in groups:
        keep = as_keep_mask(masks[group.name])
        if keep.shape != (group.size,):
            raise InvalidProblemError(
                f"The mask of pruning group {group.name!r} must have shape ({group.size},). "
                f"Got {keep.shape} instead."
            )
        if group.moe is not None or keep.all():
            continue
        root = names[group.roots[0][0]]
        pruner = graph.get_pruner_of_module(root)
        drop = np.flatnonzero(~keep).tolist()
        graph.get_pruning_group(root, pruner.prune_out_channels, drop).prune()
    for group in groups:
        if group.moe is not None:
            moe = names[group.roots[0][0]]
            assert isinstance(moe, MoE)
            keep = as_keep_mask(masks[group.name])
            if not keep.all():
                moe.keep_experts(np.flatnonzero(keep).tolist())
