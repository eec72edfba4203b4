"""QuboRoutingCallback and QuboPruningCallback on the same MoE layer: no token reaches a
pruned expert, and the routing objective keeps its scale."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from qopt.integrations.lightning import (
    QoptPruningWarning,
    QuboPruningCallback,
    QuboRoutingCallback,
)

from qopt.moe import MoE
from qopt.solvers import QoptFallbackWarning

ROUTING_OPTIONS = {"seed": 0, "num_reads": 2}
PRUNING_OPTIONS = {"seed": 0, "num_reads": 20}


class Model(pl.LightningModule):
    """Linear -> MoE (8 experts) -> Linear, recording the layer's routing and the logs."""

    def __init__(self, top_k: int = 1, routing: str = "topk") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Linear(8, 8)
        self.moe = MoE(
            8,
            8,
            d_hidden=8,
            top_k=top_k,
            capacity_factor=1.0,
            aux_loss_weight=0.0,
            routing=routing,  # type: ignore[arg-type]
        )
        self.head = torch.nn.Linear(8, 1)
        self.example_input_array = torch.zeros(4, 8)
        self.loads: list[tuple[int, tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.moe(self.stem(x))).squeeze(-1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y) + self.moe.aux_loss
        assert self.moe.last_stats is not None
        self.loads.append((self.current_epoch, self.moe.last_stats.load))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Objectives(pl.Callback):
    """The logged routing objective of every step, by epoch (after the routing callback)."""

    def __init__(self) -> None:
        self.values: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        value = trainer.callback_metrics.get("routing/objective")
        if value is not None:
            self.values.append((trainer.current_epoch, float(value)))


def _data(num: int = 256, batch_size: int = 64) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(num, 8, generator=generator)
    y = x.sum(dim=1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _fit(model: Model, mode: str | None = "assign") -> tuple[Any, Any, Objectives]:
    routing = QuboRoutingCallback(
        solver_options=ROUTING_OPTIONS, mode=mode or "assign", group_size=16
    )
    pruning = QuboPruningCallback(
        target_ratio=0.7, budget="params", layers=["moe"], solver_options=PRUNING_OPTIONS
    )
    objectives = Objectives()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[routing, pruning, objectives] if mode else [pruning],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", QoptFallbackWarning)  # no silent fallback either
        warnings.simplefilter("ignore", QoptPruningWarning)
        trainer.fit(model, _data())
    return routing, pruning, objectives


@pytest.mark.parametrize(("mode", "top_k"), [("assign", 1), ("assign", 2), ("bias", 1)])
def test_masked_experts_get_no_token_and_the_objective_keeps_its_scale(
    mode: str, top_k: int
) -> None:
    model = Model(top_k=top_k)
    routing, pruning, objectives = _fit(model, mode)
    keep = pruning.masks["moe.experts"].numpy()
    assert 0 < int(keep.sum()) < 8  # experts were masked after epoch 0
    assert routing.num_fallbacks == 0
    fine_tuning = [np.array(load) for epoch, load in model.loads if epoch == 1]
    assert fine_tuning
    for load in fine_tuning:
        assert load[~keep].sum() == 0  # no token on a pruned expert
        assert load.sum() == 64 * top_k  # every slot asked of the kept experts
    before = [v for epoch, v in objectives.values if epoch == 0]
    after = [v for epoch, v in objectives.values if epoch == 1]
    assert before and after
    # Sum of log-probabilities of 64 x k routes: fewer experts make each a little more
    # likely, never 1e4 times less (a token on a masked expert costs -1e4).
    assert min(after) > 2 * min(before)
    # The pruned layer itself: the kept experts only.
    assert model.moe.num_experts == int(keep.sum())


@pytest.mark.parametrize("routing", ["sinkhorn", "assignment"])
def test_batch_wide_routing_fine_tunes_without_the_masked_experts(routing: str) -> None:
    model = Model(top_k=2, routing=routing)
    _, pruning, _ = _fit(model, mode=None)
    keep = pruning.masks["moe.experts"].numpy()
    assert 0 < int(keep.sum()) < 8
    fine_tuning = [np.array(load) for epoch, load in model.loads if epoch == 1]
    assert fine_tuning and all(load[~keep].sum() == 0 for load in fine_tuning)
