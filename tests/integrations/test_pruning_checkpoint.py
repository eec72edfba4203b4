"""Lightning checkpoints of QuboPruningCallback runs: the pruned model loads back, fits resume.

One seeded run on scikit-learn's digits writes a checkpoint at every validation (before,
between and after the pruning steps, some within the epoch a step collects its statistics)
and one after ``fit``; every test reads those.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from qopt.integrations.lightning import QuboPruningCallback
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qopt.exceptions import InvalidInputError
from qopt.model_analysis import PruningHooks, count_params_and_macs, load_pruned
from qopt.model_analysis.tracing import trace_unit_groups

EPOCHS = 4  # pruning at the end of epochs 1 and 2, fine-tuning in epoch 3


class DigitsMLP(LightningModule):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 16), nn.ReLU(), nn.Linear(16, 10)
        )
        self.example_input_array = torch.zeros(1, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.02)


class PrunedOnLoad(DigitsMLP):
    """Opts in: ``load_from_checkpoint`` returns the pruned model (and resuming still works)."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        load_pruned(self, checkpoint)


def _digits() -> tuple[DataLoader, DataLoader, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=50)
    val = DataLoader(TensorDataset(x[1200:], y[1200:]), batch_size=len(x))
    return train, val, x[1200:], y[1200:]


def _callback() -> QuboPruningCallback:
    return QuboPruningCallback(
        target_ratio=0.3, epochs=[1, 2], solver_options={"num_reads": 8, "seed": 0}
    )


def _fit(
    root: Path,
    *,
    ckpt_path: Path | None = None,
    model_class: type = DigitsMLP,
    **checkpointing: Any,
) -> Any:
    seed_everything(0, verbose=False)
    model, callback = model_class(), _callback()
    callbacks: list[Any] = [callback]
    if checkpointing:
        callbacks.append(ModelCheckpoint(dirpath=root, **checkpointing))
    trainer = Trainer(
        max_epochs=EPOCHS,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(checkpointing),
        deterministic=True,
        default_root_dir=root,
    )
    train, val, _, _ = _digits()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, train, val, ckpt_path=ckpt_path)
    return trainer, model, callback


def _accuracy(model: nn.Module) -> float:
    _, _, x, y = _digits()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run: its checkpoints, its model and callback, its val_acc per epoch."""
    root = tmp_path_factory.mktemp("pruning-checkpoints")
    # Written at validation end, before the epoch's pruning step: the checkpoints of epochs
    # 1 and 2 are taken within the epoch whose statistics the next step scores.
    trainer, model, callback = _fit(
        root,
        save_top_k=-1,
        monitor="val_acc",
        mode="max",
        filename="{epoch}",
        save_on_train_epoch_end=False,
    )
    final = root / "final.ckpt"
    trainer.save_checkpoint(final)
    return {"root": root, "final": final, "trainer": trainer, "model": model, "callback": callback}


def _during_fit(run: dict[str, Any]) -> list[Path]:
    return [run["root"] / f"epoch={epoch}.ckpt" for epoch in range(EPOCHS)]


def test_the_final_checkpoint_loads_the_pruned_model_with_its_weights(run) -> None:
    fitted, callback = run["model"], run["callback"]
    assert callback.report["macs_after"] <= 0.3 * callback.report["macs_before"]
    with pytest.raises(RuntimeError, match="size mismatch"):  # the class builds full layers
        DigitsMLP.load_from_checkpoint(run["final"])
    for loaded in (
        load_pruned(DigitsMLP(), run["final"]),
        PrunedOnLoad.load_from_checkpoint(run["final"]),
    ):
        assert loaded.state_dict().keys() == fitted.state_dict().keys()
        for name, value in fitted.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], value), name
        macs = count_params_and_macs(loaded, torch.zeros(1, 64))[1]
        assert macs == callback.report["macs_after"]
        assert _accuracy(loaded) == _accuracy(fitted) > 0.8


def test_every_checkpoint_written_during_fit_loads_the_network_it_validated(run) -> None:
    plain_accuracies = []
    for path in _during_fit(run):
        checkpoint = torch.load(path, weights_only=True)
        # ModelCheckpoint keeps the val_acc the network scored when it was written.
        (state,) = [v for k, v in checkpoint["callbacks"].items() if "ModelCheckpoint" in k]
        validated = float(state["current_score"])
        loaded = load_pruned(DigitsMLP(), path)
        assert _accuracy(loaded) == pytest.approx(validated, abs=1e-6), path.name
        on_load = PrunedOnLoad.load_from_checkpoint(path)
        for name, value in loaded.state_dict().items():
            assert torch.equal(on_load.state_dict()[name], value), name
        kept = {
            name: sum(mask)
            for name, mask in checkpoint["callbacks"][run["callback"].state_key]["masks"].items()
        }
        assert [m.out_features for m in loaded.net if isinstance(m, nn.Linear)][:2] == [
            kept["net.0"],
            kept["net.2"],
        ]
        plain_accuracies.append(_accuracy(DigitsMLP.load_from_checkpoint(path)) - validated)
    # Without the cut, the full weights lose what masking had removed (after pruning).
    assert plain_accuracies[0] == pytest.approx(0.0, abs=1e-6)
    assert min(plain_accuracies[2:]) < -0.1


def test_a_loaded_masked_checkpoint_computes_what_the_masked_network_did(run) -> None:
    path = _during_fit(run)[2]  # after the first pruning step
    checkpoint = torch.load(path, weights_only=True)
    masks = {
        name: torch.tensor(mask)
        for name, mask in checkpoint["callbacks"][run["callback"].state_key]["masks"].items()
    }
    assert not all(bool(mask.all()) for mask in masks.values())
    full = DigitsMLP()
    full.load_state_dict(checkpoint["state_dict"])
    _, _, x, _ = _digits()
    loaded = load_pruned(DigitsMLP(), path).eval()
    with torch.no_grad():
        expected = _masked(full.eval(), masks, x)
        torch.testing.assert_close(loaded(x), expected)


def _masked(model: DigitsMLP, masks: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    hooks = PruningHooks(trace_unit_groups(model, torch.zeros(1, 64)), masks)
    hooks.install()
    try:
        return model(x)
    finally:
        hooks.remove()


@pytest.mark.parametrize(
    ("epoch", "model_class"), [(1, DigitsMLP), (2, DigitsMLP), (2, PrunedOnLoad)]
)
def test_a_fit_resumed_mid_pruning_ends_as_the_uninterrupted_one(
    run, epoch, model_class, tmp_path
) -> None:
    # epoch 1: before the first step, with that epoch's statistics; epoch 2: between steps.
    # A module whose on_load_checkpoint calls load_pruned keeps its full size while resuming.
    path = run["root"] / f"epoch={epoch}.ckpt"
    _, model, callback = _fit(tmp_path, ckpt_path=path, model_class=model_class)
    uninterrupted = run["callback"]
    assert callback.steps_done == uninterrupted.steps_done == 2
    assert callback.report["kept"] == uninterrupted.report["kept"]
    for name, mask in uninterrupted.masks.items():
        assert torch.equal(callback.masks[name], mask), name
    fitted = run["model"].state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, fitted[name]), name


def test_a_checkpoint_written_during_fit_does_not_load_into_the_model_fit_cut(run) -> None:
    trainer, model = run["trainer"], run["model"]
    _, val, _, _ = _digits()
    with pytest.raises(InvalidInputError, match=r"(?s)cut DigitsMLP when fit ended.*load_pruned"):
        trainer.validate(model, val, ckpt_path=run["root"] / "epoch=3.ckpt", verbose=False)
    (metrics,) = trainer.validate(model, val, ckpt_path=run["final"], verbose=False)
    assert metrics["val_acc"] == pytest.approx(_accuracy(model), abs=1e-6)


def test_pruning_does_not_resume_from_a_cut_model(run, tmp_path) -> None:
    with pytest.raises(InvalidInputError, match=r"(?s)is being pruned.*without the pruning"):
        _fit(tmp_path, ckpt_path=run["final"], model_class=PrunedOnLoad)
