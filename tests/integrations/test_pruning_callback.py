"""Tests for QuboPruningCallback: exact budgets, a physically smaller model, resume, errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import dimod
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from qopt.integrations.lightning import QuboPruningCallback, count_params_and_macs
from qopt.integrations.lightning._pruning import QoptPruningWarning
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError

SOLVE = {"num_reads": 8, "seed": 0}


class TinyCNN(LightningModule):
    """BoringModel-style: a conv + batch-norm + flatten + MLP chain on 8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
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
        self.example_input_array = torch.zeros(1, 1, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _data() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=generator)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _trainer(callbacks: list[Any], max_epochs: int = 2, **kwargs: Any) -> Trainer:
    return Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=kwargs.pop("enable_checkpointing", False),
        num_sanity_val_steps=0,
        **kwargs,
    )


@pytest.mark.parametrize(("importance", "budget"), [("taylor", "macs"), ("fisher", "params")])
def test_pruned_model_matches_the_reported_budget(importance: str, budget: str) -> None:
    torch.manual_seed(0)
    model = TinyCNN()
    callback = QuboPruningCallback(
        target_ratio=0.5,
        budget=budget,
        importance=importance,
        monitor="val_acc",
        solver_options=SOLVE,
    )
    trainer = _trainer([callback])
    trainer.fit(model, _data(), _data())
    report = callback.report
    params, macs = count_params_and_macs(model, torch.zeros(1, 1, 8, 8))
    # Physically smaller, and exactly what the callback predicted and reported.
    assert (params, macs) == (report["params_after"], report["macs_after"])
    assert (report["params_predicted"], report["macs_predicted"]) == (params, macs)
    assert report[f"{budget}_after"] <= report["budget"] == 0.5 * report[f"{budget}_before"]
    assert report[f"{budget}_after"] < report[f"{budget}_before"]
    assert {"metric_before", "metric_after"} <= set(report)
    # The budget is used: the selection is not far below it.
    assert report[f"{budget}_after"] >= 0.3 * report[f"{budget}_before"]
    assert model.net[0].out_channels == report["kept"]["net.0"]
    assert "pruning/macs" in trainer.callback_metrics
    assert not any(m._forward_pre_hooks for m in model.modules())  # removed in teardown


def test_masked_network_equals_the_physically_pruned_one() -> None:
    torch.manual_seed(1)
    model = TinyCNN()
    callback = QuboPruningCallback(
        target_ratio=0.4, importance="l1", remove=False, solver_options=SOLVE
    )
    _trainer([callback], max_epochs=1).fit(model, _data())
    assert not all(bool(mask.all()) for mask in callback.masks.values())
    model.eval()
    x = torch.randn(5, 1, 8, 8)
    callback._install_hooks()
    masked = model(x)
    callback._remove_hooks()
    callback.prune_model(model)
    torch.testing.assert_close(model(x), masked)
    assert count_params_and_macs(model, x[:1])[1] <= 0.4 * callback.report["macs_before"]


def test_resume_from_checkpoint_continues_the_schedule(tmp_path: Path) -> None:
    torch.manual_seed(2)
    config = {"target_ratio": 0.4, "epochs": [0, 2], "importance": "l2", "solver_options": SOLVE}
    first = QuboPruningCallback(**config)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    with pytest.warns(QoptPruningWarning, match="1 of 2 pruning steps"):
        _trainer([first, checkpoint], max_epochs=2, enable_checkpointing=True).fit(
            TinyCNN(), _data()
        )
    halfway = {name: mask.clone() for name, mask in first.masks.items()}
    assert first.steps_done == 1

    resumed = QuboPruningCallback(**config)
    model = TinyCNN()
    _trainer([resumed], max_epochs=3).fit(model, _data(), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.steps_done == 2
    assert resumed.report["macs_before"] == first.report["macs_before"]
    for name, mask in resumed.masks.items():
        assert not bool((mask & ~halfway[name]).any())  # pruned units stay pruned
    assert resumed.report["macs_after"] == count_params_and_macs(model, torch.zeros(1, 1, 8, 8))[1]
    assert resumed.report["macs_after"] <= 0.4 * resumed.report["macs_before"]


class _BrokenSolver(dimod.Sampler):
    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        raise ConnectionError("network unreachable")


def test_solver_failure_falls_back_and_training_goes_on() -> None:
    model = TinyCNN()
    callback = QuboPruningCallback(target_ratio=0.5, importance="l1", solver=_BrokenSolver())
    with pytest.warns(QoptPruningWarning, match="network unreachable"):
        _trainer([callback]).fit(model, _data())
    assert callback.report["fallbacks"] == 1
    assert callback.report["macs_after"] <= callback.report["budget"]


def test_clear_errors_name_the_module() -> None:
    with pytest.raises(InvalidProblemError, match=r"'net.8'.*no prunable units"):
        _trainer([QuboPruningCallback(target_ratio=0.5, layers=["net.8"])]).fit(TinyCNN(), _data())
    with pytest.raises(InvalidProblemError, match="below the cost of the minimum keeps"):
        _trainer([QuboPruningCallback(target_ratio=0.01, importance="l1")], max_epochs=1).fit(
            TinyCNN(), _data()
        )
    with pytest.raises(InvalidProblemError, match=r"'net.0' has no prunable units"):
        _trainer([QuboPruningCallback(target_ratio=0.5, min_keep=6, layers=["net.0"])]).fit(
            TinyCNN(), _data()
        )
    wrong_input = QuboPruningCallback(target_ratio=0.5, example_input=torch.zeros(1, 3, 5))
    with pytest.raises(InvalidProblemError, match="could not trace TinyCNN"):
        _trainer([wrong_input]).fit(TinyCNN(), _data())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target_ratio": 1.0}, SolverConfigurationError, "'target_ratio'"),
        ({"target_ratio": 0.5, "budget": "flops"}, SolverConfigurationError, "'budget'"),
        ({"target_ratio": 0.5, "epochs": []}, SolverConfigurationError, "'epochs'"),
        ({"target_ratio": 0.5, "epochs": [1, 1]}, SolverConfigurationError, "'epochs'"),
        ({"target_ratio": 0.5, "importance": "random"}, SolverConfigurationError, "'importance'"),
        ({"target_ratio": 0.5, "min_keep": 0}, SolverConfigurationError, "'min_keep'"),
        ({"target_ratio": 0.5, "solver": "nope"}, UnknownSolverError, "Known solvers"),
        ({"target_ratio": 0.5, "solver": 3}, SolverConfigurationError, "'solver'"),
    ],
)
def test_configuration_is_checked_in_init(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        QuboPruningCallback(**kwargs)


def test_state_key_tells_configurations_apart() -> None:
    a = QuboPruningCallback(target_ratio=0.5)
    b = QuboPruningCallback(target_ratio=0.25)
    assert a.state_key != b.state_key
    assert a.state_key == QuboPruningCallback(target_ratio=0.5).state_key
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a.load_state_dict(b.state_dict())
