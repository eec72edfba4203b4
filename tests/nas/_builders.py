"""Model builders of the derived-budget tests, as ``tests.nas._builders:<name>``.

Each returns a torch module with an ``example_input_array`` (so MACs can be counted), with a
parameter count of a known form in its architecture's choices.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: How many models each builder built (the tests count probe builds with it).
BUILDS: dict[str, int] = {}


def _counted(name: str) -> None:
    BUILDS[name] = BUILDS.get(name, 0) + 1


class TwoBranches(nn.Module):
    """Two independent branches: params ``6a + 1 + 4b + 1`` plus a fixed head, exactly linear."""

    def __init__(self, a: int, b: int, act: str) -> None:
        super().__init__()
        activation = nn.ReLU if act == "relu" else nn.Tanh
        self.left = nn.Sequential(nn.Linear(4, a), activation(), nn.Linear(a, 1))
        self.right = nn.Sequential(nn.Linear(3, b), activation(), nn.Linear(b, 1))
        self.head = nn.Linear(2, 2)
        self.example_input_array = (torch.zeros(1, 4), torch.zeros(1, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.left(x), self.right(y)], dim=1))


def linear(architecture: dict[str, Any]) -> nn.Module:
    """Params exactly linear in the choices ``a``, ``b`` (``act`` costs nothing)."""
    _counted("linear")
    return TwoBranches(int(architecture["a"]), int(architecture["b"]), str(architecture["act"]))


class Tower(nn.Module):
    """``depth`` hidden layers of ``width``: the ``(depth - 1) * width**2`` weights couple the
    two choices (a bilinear pair), ``act`` costs nothing."""

    def __init__(self, width: int, depth: int, act: str) -> None:
        super().__init__()
        activation = nn.ReLU if act == "relu" else nn.GELU
        layers: list[nn.Module] = [nn.Linear(8, width), activation()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), activation()]
        self.net = nn.Sequential(*layers, nn.Linear(width, 3))
        self.example_input_array = torch.zeros(1, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def tower(architecture: dict[str, Any]) -> nn.Module:
    """Params with a bilinear pair (width x depth)."""
    _counted("tower")
    return Tower(int(architecture["width"]), int(architecture["depth"]), str(architecture["act"]))


class ConvStack(nn.Module):
    """Two convolutions whose weights multiply three choices (``c1 * c2 * k * k``): no sum of
    single-choice and pair costs gives the parameter count."""

    def __init__(self, c1: int, c2: int, k: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, c1, k, padding=k // 2), nn.ReLU(), nn.Conv2d(c1, c2, k, padding=k // 2)
        )
        self.example_input_array = torch.zeros(1, 3, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def convs(architecture: dict[str, Any]) -> nn.Module:
    """Params not of low order in the choices (three choices multiply)."""
    _counted("convs")
    return ConvStack(int(architecture["c1"]), int(architecture["c2"]), int(architecture["k"]))


def fails_at_depth_3(architecture: dict[str, Any]) -> nn.Module:
    """``tower``, except that depth 3 raises (a builder that fails on a probe)."""
    if architecture["depth"] == 3:
        raise RuntimeError("depth 3 is not implemented")
    return tower(architecture)


def no_example(architecture: dict[str, Any]) -> nn.Module:
    """A model without ``example_input_array``: its MACs cannot be counted."""
    return nn.Linear(int(architecture["width"]), 2)


def size_loss(architecture: dict[str, Any]) -> float:
    """A loss that falls as the tower grows: the best architectures press on the budget."""
    return -float(sum(p.numel() for p in tower(architecture).parameters()))
