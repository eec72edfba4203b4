"""A two-hidden-layer MLP on scikit-learn's digits (ships offline), built from an architecture.

Entry points of ``examples/nas/digits.yaml``: ``build(architecture)`` returns the
LightningModule; it brings its own data loaders (a fixed 80/20 split of the 1797 images).
The parameter count is ``65*w1 + w1*w2 + 11*w2 + 10`` (weights and biases of the three
linear layers): the spec's ``params`` budget writes exactly that, and qopt checks it against
the built model.

    qopt nas examples/nas/digits.yaml --trials 20 --run-dir runs/digits
"""

from __future__ import annotations

from typing import Any

import lightning
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _split() -> tuple[TensorDataset, TensorDataset]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(x))
    train, val = order[:cut], order[cut:]
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])


class DigitsMLP(lightning.LightningModule):
    """64 -> w1 -> w2 -> 10 with a chosen activation and dropout."""

    def __init__(self, w1: int, w2: int, act: str, dropout: float, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        activation = ACTIVATIONS[act]
        self.net = nn.Sequential(
            nn.Linear(64, w1),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(w1, w2),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(w2, 10),
        )
        self.example_input_array = torch.zeros(1, 64)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_split()[0], batch_size=64, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_split()[1], batch_size=512)


def build(architecture: dict[str, Any]) -> DigitsMLP:
    """The LightningModule of an architecture dict (keys w1, w2, act, dropout)."""
    # Models this small train fastest on one thread; more threads only add overhead.
    torch.set_num_threads(1)
    return DigitsMLP(
        int(architecture["w1"]),
        int(architecture["w2"]),
        str(architecture["act"]),
        float(architecture["dropout"]),
    )
