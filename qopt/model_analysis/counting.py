"""Parameters and multiply-accumulates (MACs) of a torch model, counted on one forward."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from qopt.model_analysis.layers import COSTED_LAYERS
from qopt.moe import MoE

__all__ = ["count_params_and_macs", "layer_positions", "run_forward"]


def run_forward(model: nn.Module, example_input: Any) -> Any:
    """``model(example_input)``: a tuple or list is positional arguments, a mapping keywords."""
    if isinstance(example_input, tuple | list):
        return model(*example_input)
    if isinstance(example_input, Mapping):
        return model(**example_input)
    return model(example_input)


def layer_positions(model: nn.Module, example_input: Any) -> dict[nn.Module, int]:
    """For every Linear, Conv2d and MoE reached by ``example_input``: rows x spatial positions.

    One forward in evaluation mode without gradients (batch-norm statistics stay untouched);
    the model's training flag is restored.
    """
    positions: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            positions[module] = int(output.shape[0] * output.shape[2] * output.shape[3])
        else:  # Linear rows, or MoE tokens
            positions[module] = int(output.numel() // output.shape[-1])

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (*COSTED_LAYERS, MoE))
    ]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            run_forward(model, example_input)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return positions


def _layer_macs(module: nn.Module, positions: int) -> int:
    if isinstance(module, MoE):
        # The experts' two matrix products for each of a token's top_k choices (at evaluation
        # no token is dropped); the router is an nn.Linear, counted on its own.
        return positions * module.top_k * 2 * module.d_model * module.d_hidden
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return positions * module.out_channels * (module.in_channels // module.groups) * kernel
    assert isinstance(module, nn.Linear)
    return positions * module.out_features * module.in_features


def count_params_and_macs(model: nn.Module, example_input: Any) -> tuple[int, int]:
    """Parameters of ``model`` and multiply-accumulates of one forward of ``example_input``.

    MACs count the weight multiplications of ``nn.Linear`` and ``nn.Conv2d`` layers and of
    the experts of :class:`qopt.moe.MoE` layers (``2 * d_model * d_hidden`` per token and
    choice: a token's MACs depend on ``top_k``, not on how many experts exist), the part
    structured pruning shrinks; element-wise operations, normalisation, gating and bias
    additions are not counted. The pruning callback's budget and report use this same count.

    Args:
        model: Any ``nn.Module``.
        example_input: An input ``model.forward`` accepts (a tensor, a tuple of positional
            arguments or a dict of keyword arguments), on the model's device.

    Returns:
        ``(parameters, macs)``.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis import count_params_and_macs
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> count_params_and_macs(model, torch.zeros(1, 8))
        (46, 40)
    """
    positions = layer_positions(model, example_input)
    macs = sum(_layer_macs(module, rows) for module, rows in positions.items())
    return sum(p.numel() for p in model.parameters()), int(macs)
