"""How much each unit of a traced group is worth, and how much two units duplicate each other.

The formulas (magnitude, Taylor, Fisher, activation redundancy) live in
:mod:`qopt.problems.pruning` and take plain tensors; this module reads the right tensors off a
:class:`~qopt.model_analysis.tracing.UnitGroup`: the layers that produce the units, the
BatchNorm after them, the layers that read them, an MoE layer's experts.
"""

from __future__ import annotations

import numpy as np
import torch

from qopt.model_analysis.layers import NORM_LAYERS, expert_parameters
from qopt.model_analysis.tracing import UnitGroup
from qopt.problems.pruning import activation_redundancy, magnitude_importance, taylor_importance

__all__ = ["magnitude_scores", "outgoing_norm", "redundancy_scores", "taylor_scores"]


def outgoing_norm(group: UnitGroup, p: int) -> np.ndarray:
    """Lp norm of the weights that read each unit: its columns in every consumer layer.

    A ReLU unit computes the same function when its incoming weights are scaled by ``c > 0``
    and its outgoing ones by ``1 / c``; the product of the two norms does not change, and
    for ``p = 1`` it is the unit's share of the two layers' l1 path norm (Neyshabur,
    Tomioka and Srebro, "Norm-based capacity control in neural networks", COLT 2015).
    """
    total = np.zeros(group.size)
    for module, positions, units in group.consumers:
        parameter = module.weight
        assert isinstance(parameter, torch.Tensor)  # consumers are Linear/Conv2d layers
        # Input positions are dimension 1 of both (out, in) and (out, in, kh, kw) weights.
        columns = parameter.detach()[:, positions.to(parameter.device)].float()
        others = tuple(d for d in range(columns.dim()) if d != 1)
        per_position = columns.abs().sum(dim=others) if p == 1 else columns.pow(2).sum(dim=others)
        np.add.at(total, units.cpu().numpy(), per_position.cpu().numpy().astype(float))
    return total if p == 1 else np.sqrt(total)


def _expert_weights(group: UnitGroup) -> torch.Tensor:
    """All of each expert's own parameters, one row per expert."""
    assert group.moe is not None
    return torch.cat(
        [t.detach().reshape(group.size, -1) for t in expert_parameters(group.moe)], dim=1
    )


def magnitude_scores(group: UnitGroup, p: int, *, path_norm: bool = False) -> np.ndarray:
    """The Lp magnitude of each unit's weights.

    For channels and neurons: the weights that produce the unit, folded with the BatchNorm
    that reads it directly (``gamma / sqrt(running_var + eps) * W``: the normalization makes
    the layer's output independent of its own weights' scale), times :func:`outgoing_norm`
    with ``path_norm``. For experts: all of the expert's own parameters.
    """
    if group.moe is not None:
        return magnitude_importance(_expert_weights(group), p=p)
    total = np.zeros(group.size)
    for name, root in group.roots:
        parameter = root.weight
        assert isinstance(parameter, torch.Tensor)  # roots are Linear/Conv2d layers
        weight = parameter.detach()
        norm = group.norms.get(name)
        if isinstance(norm, NORM_LAYERS):
            scale = torch.ones(weight.shape[0], device=weight.device, dtype=weight.dtype)
            if isinstance(norm.weight, torch.Tensor):
                scale = scale * norm.weight.detach().abs()
            if isinstance(norm.running_var, torch.Tensor):
                scale = scale / torch.sqrt(norm.running_var.detach() + norm.eps)
            weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
        total = total + magnitude_importance(weight, p=p)
    if path_norm:
        total = total * outgoing_norm(group, p)
    return total


def taylor_scores(group: UnitGroup) -> np.ndarray | None:
    """First-order Taylor scores from the gradients now held by the group's parameters
    (Molchanov et al., CVPR 2019); ``None`` when there are none (no backward yet).

    Channels and neurons: the weights (and bias) that produce them. Experts: all of an
    expert's own parameters; its router row is left out, since the router's gradient says how
    routing matters, not how the expert does.
    """
    if group.moe is not None:
        params = expert_parameters(group.moe)
        if any(p.grad is None for p in params):
            return None
        grad = torch.cat(
            [p.grad.reshape(group.size, -1) for p in params if p.grad is not None], dim=1
        )
        return taylor_importance(_expert_weights(group), grad)
    score = np.zeros(group.size)
    for _, root in group.roots:
        if root.weight.grad is None:
            continue
        bias = root.bias
        score = score + taylor_importance(
            root.weight,
            root.weight.grad,
            bias=bias,
            bias_grad=None if bias is None else bias.grad,
        )
    return score


def redundancy_scores(group: UnitGroup, samples: torch.Tensor) -> np.ndarray:
    """Pairwise redundancy of the group's units on calibration samples.

    Channels and neurons: ``samples`` are their activations, shape ``(n, units, ...)``.
    Experts: ``samples`` are tokens entering the MoE layer, shape ``(n, d_model)``; experts are
    redundant when they compute the same function, so every expert runs on every token,
    whichever experts the router chose, and their outputs are compared.
    """
    if group.moe is None:
        return activation_redundancy(samples)
    moe = group.moe
    with torch.no_grad():
        x = samples.to(moe.w_in.device, moe.w_in.dtype)
        hidden = torch.nn.functional.gelu(torch.einsum("td,edh->teh", x, moe.w_in) + moe.b_in[None])
        outputs = torch.einsum("teh,ehd->ted", hidden, moe.w_out) + moe.b_out[None]
    return activation_redundancy(outputs)
