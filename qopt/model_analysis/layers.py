"""What model analysis knows about layer types: which are costed, their widths, MoE experts."""

from __future__ import annotations

from torch import nn

from qopt.moe import MoE

__all__ = [
    "COSTED_LAYERS",
    "NORM_LAYERS",
    "expert_parameters",
    "input_width",
    "output_width",
]

#: Layers whose weight multiplications are counted, and whose outputs can be pruning units.
COSTED_LAYERS = (nn.Linear, nn.Conv2d)
#: Normalization layers that follow a costed layer unit for unit.
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


def input_width(module: nn.Module) -> int:
    """Input channels (Conv2d) or features (Linear); 1 for any other module."""
    if isinstance(module, nn.Conv2d):
        return int(module.in_channels)
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    return 1


def output_width(module: nn.Module) -> int:
    """Output channels (Conv2d), features (Linear) or normalized features (BatchNorm)."""
    if isinstance(module, nn.Conv2d):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    assert isinstance(module, NORM_LAYERS)  # the graph couples no other kind into a group
    return int(module.num_features)


def expert_parameters(moe: MoE) -> list[nn.Parameter]:
    """The per-expert parameters of an MoE layer, expert index first."""
    return [moe.w_in, moe.b_in, moe.w_out, moe.b_out]
