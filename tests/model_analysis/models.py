"""Small torch models shared by the model-analysis tests."""

from __future__ import annotations

import torch
from torch import nn

from qopt.moe import MoE


def tiny_cnn() -> nn.Sequential:
    """conv6 + BatchNorm -> conv8 (stride 2) -> fc12 -> fc3 on 1x8x8 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 12),
        nn.ReLU(),
        nn.Linear(12, 3),
    )


def tiny_moe(num_experts: int = 6, top_k: int = 2, aux_loss_weight: float = 0.0) -> nn.Sequential:
    """Linear -> Linear -> MoE -> Linear; only the first layer and the experts are prunable."""
    return nn.Sequential(
        nn.Linear(16, 24),
        nn.ReLU(),
        nn.Linear(24, 8),
        MoE(8, num_experts, d_hidden=32, top_k=top_k, aux_loss_weight=aux_loss_weight),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


class Residual(nn.Module):
    """Two branches added together: their output layers are coupled into one group."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 10)
        self.left = nn.Linear(10, 6)
        self.right = nn.Linear(10, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        return self.head(torch.relu(self.left(h) + self.right(h)))
