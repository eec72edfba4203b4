"""QuboRoutingCallback under DDP: two CPU processes (gloo), bias mode, asynchronous solves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from qopt.integrations.lightning import QuboRoutingCallback

from qopt.moe import MoE

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with the gloo backend",
)


class TinyMoEModel(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.moe = MoE(8, 4, d_hidden=8, top_k=1, capacity_factor=1.25, aux_loss_weight=0.0)
        self.head = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.head(self.moe(x)).squeeze(-1), y)
        return loss + self.moe.aux_loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class Probe(pl.Callback):
    """Writes what each rank saw: its first routed load, its final callback state."""

    def __init__(self, routing: QuboRoutingCallback, out: Path) -> None:
        self.routing = routing
        self.out = out
        self.first_load: list[int] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if self.first_load is None:
            self.first_load = list(pl_module.moe.last_stats.load)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        trainer.save_checkpoint(self.out / "last.ckpt")  # every rank joins; rank 0 writes
        record = {
            "state": self.routing.state_dict(),
            "state_key": self.routing.state_key,
            "first_load": self.first_load,
            "world_size": trainer.world_size,
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _data() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(128, 8, generator=generator)
    # DistributedSampler (no shuffle) gives rank 0 the even rows, rank 1 the odd ones: skew
    # them in opposite directions so the ranks' routers overload different experts.
    x[0::2, 0] += 3.0
    x[1::2, 0] -= 3.0
    y = x.sum(dim=1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def test_bias_mode_under_ddp_keeps_ranks_identical(tmp_path: Path) -> None:
    routing = QuboRoutingCallback(
        solver_options={"seed": 0},
        mode="bias",
        bias_update_rate=0.25,
        group_size=16,
        asynchronous=True,
    )
    trainer = pl.Trainer(
        strategy="ddp_spawn",
        accelerator="cpu",
        devices=2,
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[routing, Probe(routing, tmp_path)],
    )
    # Without a sampler of its own, each rank gets a DistributedSampler: different tokens.
    trainer.fit(TinyMoEModel(), _data())

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # Each rank routed its own tokens (different loads), yet the biases moved by the
    # loads reduced over both ranks: identical on both after three updates.
    assert ranks[0]["first_load"] != ranks[1]["first_load"]
    biases = [np.array(r["state"]["biases"]["moe"]) for r in ranks]
    assert np.array_equal(biases[0], biases[1])
    assert np.abs(biases[0]).sum() > 0  # the updates happened
    # Three solving steps per rank, every asynchronous answer applied (the last at train end).
    assert ranks[0]["state"] == ranks[1]["state"]
    assert ranks[0]["state"]["num_solves"] == 3 and ranks[0]["state"]["num_fallbacks"] == 0
    # The checkpoint carries that same state.
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert checkpoint["callbacks"][ranks[0]["state_key"]] == ranks[0]["state"]
