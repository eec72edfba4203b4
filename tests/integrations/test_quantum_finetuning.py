from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from qopt.integrations.lightning import QuantumHeadFinetuning, restore_quantum_head
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qopt.circuits import QuantumHead
from qopt.exceptions import InvalidInputError, SolverConfigurationError


def digits_0_vs_1() -> tuple[torch.Tensor, torch.Tensor]:
    digits = load_digits()
    keep = digits.target < 2
    x = torch.tensor(digits.data[keep] / 16.0, dtype=torch.float32)
    return x, torch.tensor(digits.target[keep], dtype=torch.long)


class Classifier(LightningModule):
    """A small pretrained-style model: a backbone to 8 features, a linear classifier."""

    def __init__(self, quantum_qubits: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(64, 8), nn.Tanh())
        self.classifier: nn.Module = (
            nn.Linear(8, 2)
            if quantum_qubits is None
            else QuantumHead(8, 2, num_qubits=quantum_qubits, layers=2, seed=0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.05)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_quantum_head(self, checkpoint)


def fit(model: LightningModule, callback: QuantumHeadFinetuning, epochs: int = 4) -> Trainer:
    x, y = digits_0_vs_1()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    trainer = Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    return trainer


def accuracy(model: LightningModule) -> float:
    x, y = digits_0_vs_1()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def test_the_head_is_replaced_trained_and_the_backbone_stays_frozen(tmp_path: Path) -> None:
    model = Classifier()
    backbone_before = [p.detach().clone() for p in model.backbone.parameters()]
    callback = QuantumHeadFinetuning(head_attr="classifier", num_qubits=4, layers=2, seed=0)
    trainer = fit(model, callback)
    assert isinstance(model.classifier, QuantumHead)
    assert model.classifier.in_features == 8 and model.classifier.num_classes == 2
    for before, after in zip(backbone_before, model.backbone.parameters(), strict=True):
        assert torch.equal(before, after) and not after.requires_grad
    assert accuracy(model) >= 0.95
    # The checkpoint round trip: plain load_from_checkpoint, the same scores.
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    loaded = Classifier.load_from_checkpoint(path)
    assert isinstance(loaded.classifier, QuantumHead)
    x, _ = digits_0_vs_1()
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_a_head_built_in_init_is_kept_and_loads_back_without_rebuilding(tmp_path: Path) -> None:
    model = Classifier(quantum_qubits=3)
    head = model.classifier
    trainer = fit(model, QuantumHeadFinetuning(head_attr="classifier"), epochs=2)
    assert model.classifier is head
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    loaded = Classifier.load_from_checkpoint(path)
    x, _ = digits_0_vs_1()
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_the_backbone_unfreezes_on_schedule_into_its_own_param_group() -> None:
    model = Classifier()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    callback = QuantumHeadFinetuning(
        unfreeze_backbone_at_epoch=1, backbone_learning_rate=0.01, num_qubits=3, layers=1, seed=0
    )
    trainer = fit(model, callback, epochs=2)
    groups = trainer.optimizers[0].param_groups
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    in_own_group = [g for g in groups if {id(p) for p in g["params"]} & backbone_ids]
    assert len(in_own_group) == 1 and in_own_group[0]["lr"] == 0.01
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert any(
        not torch.equal(b, a) for b, a in zip(before, model.backbone.parameters(), strict=True)
    )


class MapBackbone(Classifier):
    """A backbone that yields a feature map (batch, 2, 4), not a feature vector."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 8), nn.Unflatten(1, (2, 4)))
        self.classifier = nn.Linear(4, 2)


def test_a_backbone_without_a_feature_vector_is_told_to_pool_or_flatten() -> None:
    with pytest.raises(InvalidInputError, match=r"shape \(64, 2, 4\).*nn.Flatten\(\)"):
        fit(MapBackbone(), QuantumHeadFinetuning(num_qubits=2), epochs=1)


def test_a_run_resumes_from_its_checkpoint_with_the_quantum_head(tmp_path: Path) -> None:
    model = Classifier()
    trainer = fit(model, QuantumHeadFinetuning(num_qubits=3, layers=1, seed=0), epochs=1)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    resumed = Classifier()  # a plain linear head again: the callback replaces it before
    x, y = digits_0_vs_1()  # the checkpoint's weights are restored
    trainer = Trainer(
        max_epochs=3,
        accelerator="cpu",
        callbacks=[QuantumHeadFinetuning(num_qubits=3, layers=1, seed=0)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(resumed, DataLoader(TensorDataset(x, y), batch_size=64), ckpt_path=path)
    assert isinstance(resumed.classifier, QuantumHead) and trainer.current_epoch == 3
    assert not any(p.requires_grad for p in resumed.backbone.parameters())
    assert accuracy(resumed) >= 0.9


class NoLinearHead(Classifier):
    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Identity()


def test_a_head_without_a_readable_width_asks_for_in_features() -> None:
    with pytest.raises(InvalidInputError, match=r"in_features=\.\.\."):
        fit(NoLinearHead(), QuantumHeadFinetuning(num_qubits=2), epochs=1)


def test_a_missing_submodule_is_named_with_the_ones_that_exist() -> None:
    with pytest.raises(SolverConfigurationError, match=r"no head 'fc'.*backbone, classifier"):
        fit(Classifier(), QuantumHeadFinetuning(head_attr="fc", num_qubits=2), epochs=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"qubits": 4}, "not QuantumHead options"),
        ({"unfreeze_backbone_at_epoch": -1}, "'unfreeze_backbone_at_epoch' parameter"),
        ({"head_attr": ""}, "'head_attr' parameter"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], match: str) -> None:
    with pytest.raises(SolverConfigurationError, match=match):
        QuantumHeadFinetuning(**options)
