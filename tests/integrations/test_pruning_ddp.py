"""QuboPruningCallback under Lightning DDP: two CPU processes (gloo) prune the same units.

Why a script in a subprocess: Lightning's ``strategy="ddp"`` launches the other ranks by
re-running the command that started the program (``sys.argv``); re-running pytest would
collect and run the whole test session again in the child. ``"ddp_spawn"`` would need the
LightningModule importable by the spawned processes and brings back only rank 0's state.
A standalone script under ``"ddp"`` is what users run, and every rank writes what it ended
with (masks, report, the pruned architecture), so the test compares the ranks directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytest.importorskip("torch_pruning")

SCRIPT = textwrap.dedent(
    '''
    import json
    import sys
    from pathlib import Path

    import dimod
    import numpy as np
    import torch
    import torch.distributed as dist
    from lightning.pytorch import LightningModule, Trainer
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from qopt.integrations.lightning import QuboPruningCallback, count_params_and_macs
    from qopt.moe import MoE


    class RankRandomSampler(dimod.Sampler):
        """Random keep bits from a rank-dependent seed: ranks agree only on a broadcast."""

        @property
        def parameters(self):
            return {}

        @property
        def properties(self):
            return {}

        def sample(self, bqm, **kwargs):
            rng = np.random.default_rng(1000 + dist.get_rank())
            samples = rng.integers(0, 2, size=(4, bqm.num_variables))
            return dimod.SampleSet.from_samples((samples, list(bqm.variables)), "BINARY", 0.0)


    class Net(LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8),
                MoE(8, 6, d_hidden=16, top_k=2), nn.ReLU(), nn.Linear(8, 3),
            )
            self.example_input_array = torch.zeros(4, 16)
            self.seen = 0.0

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.seen += float(x.sum())
            return nn.functional.cross_entropy(self(x), y) + self.net[3].aux_loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)


    def main(out):
        torch.set_num_threads(1)
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 16, generator=generator)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
        model = Net()
        callback = QuboPruningCallback(
            target_ratio=0.5, budget="params", epochs=[0, 1], solver=RankRandomSampler()
        )
        trainer = Trainer(
            strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=[callback],
            logger=False, enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, num_sanity_val_steps=0,
        )
        trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=8))
        result = {
            "world_size": trainer.world_size,
            "seen": model.seen,
            "masks": {name: mask.tolist() for name, mask in callback.masks.items()},
            "report": callback.report,
            "shapes": {name: list(p.shape) for name, p in model.named_parameters()},
            "params": count_params_and_macs(model, torch.zeros(4, 16))[0],
        }
        Path(out, f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


    if __name__ == "__main__":
        main(sys.argv[1])
    '''
)


def test_every_rank_prunes_the_same_units(tmp_path: Path) -> None:
    script = tmp_path / "prune_ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # Each rank trained on its own shard, and its solver would have picked other units ...
    assert ranks[0]["seen"] != ranks[1]["seen"]
    # ... yet both hold the same masks and the same, physically smaller, architecture.
    assert ranks[0]["masks"] == ranks[1]["masks"]
    assert ranks[0]["shapes"] == ranks[1]["shapes"]
    assert ranks[0]["report"] == ranks[1]["report"]
    report = ranks[0]["report"]
    assert ranks[0]["params"] == report["params_after"] <= report["budget"]
    assert report["params_after"] < report["params_before"]
    assert ranks[0]["shapes"]["net.3.router.weight"][0] == report["kept"]["net.3.experts"]
