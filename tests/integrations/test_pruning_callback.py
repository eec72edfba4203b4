"""Tests for QuboPruningCallback: exact budgets, a physically smaller model, resume, errors."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import dimod
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from qopt.integrations.lightning import QoptPruningWarning, QuboPruningCallback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError
from qopt.model_analysis import count_params_and_macs, model_pruning_groups
from qopt.model_analysis.hooks import PruningHooks
from qopt.solvers import SolverSpec, _registry
from qopt.solvers.composites import QoptFallbackWarning
from tests.model_analysis.models import tiny_cnn, tiny_moe

SOLVE = {"num_reads": 8, "seed": 0}


class TinyCNN(LightningModule):
    """BoringModel-style: a conv + batch-norm + flatten + MLP chain on 8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_cnn()
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


def test_magnitude_of_a_batch_normalized_layer_uses_the_folded_weights() -> None:
    torch.manual_seed(0)
    model = TinyCNN()
    with torch.no_grad():  # channel 0: the largest conv weights, but a BatchNorm gain of ~0
        model.net[0].weight[0] *= 10.0
        model.net[1].weight[0] = 1e-4
    callback = QuboPruningCallback(
        target_ratio=0.8,
        layers=["net.0"],
        importance="l1",
        alpha=1.0,
        remove=False,
        solver_options=SOLVE,
    )
    _trainer([callback], max_epochs=1).fit(model, _data())
    kept = callback.masks["net.0"]
    assert not bool(kept.all())
    # The conv's own weights rank channel 0 first; what conv + BatchNorm apply ranks it last.
    assert not bool(kept[0])


class _FrozenMLP(LightningModule):
    """16 -> 12 -> 3 with ReLU, trained at learning rate 0: the weights stay as set."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
        self.example_input_array = torch.zeros(1, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_path_norm_scores_a_unit_by_the_weights_that_read_it_too(importance: str) -> None:
    def prune(path_norm: bool) -> tuple[torch.Tensor, _FrozenMLP, torch.Tensor]:
        torch.manual_seed(5)
        model = _FrozenMLP()
        with torch.no_grad():
            # Units 0-3 have the largest incoming weights, but nothing reads them: the
            # network computes the same function without them. Units 4-11 are all read.
            model.net[0].weight[:4] *= 20.0
            model.net[2].weight[:, :4] = 0.0
        x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
        before = model(x)
        callback = QuboPruningCallback(
            target_ratio=152 / 228,  # MACs 16 k + 3 k: keep 8 of the 12 units
            importance=importance,
            alpha=1.0,
            path_norm=path_norm,
            solver_options=SOLVE,
        )
        data = DataLoader(TensorDataset(x, torch.arange(32) % 3), batch_size=16)
        _trainer([callback], max_epochs=1).fit(model, data)
        assert callback.report["kept"] == {"net.0": 8}
        return callback.masks["net.0"], model, before - model(x)

    kept, _, change = prune(path_norm=True)
    # The unit's incoming times outgoing norm: exactly the units nothing reads are dropped,
    # and the pruned network computes what the full one did.
    assert kept.tolist() == [False] * 4 + [True] * 8
    torch.testing.assert_close(change, torch.zeros_like(change))
    kept, _, change = prune(path_norm=False)
    # The incoming norm alone keeps the four unread units and drops four that mattered.
    assert bool(kept[:4].all())
    assert float(change.abs().max()) > 1e-3


def _masked_output(model: LightningModule, masks: dict, x: torch.Tensor) -> torch.Tensor:
    """What ``model`` computes with the callback's masks applied, as while fine-tuning."""
    groups = model_pruning_groups(model, model.example_input_array)
    hooks = PruningHooks([g for g in groups.unit_groups if g.name in masks], masks)
    hooks.install()
    try:
        return model(x)
    finally:
        hooks.remove()


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
    masked = _masked_output(model, callback.masks, x)
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


def test_a_remote_solver_that_fails_falls_back_through_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = SolverSpec("broken-remote", _BrokenSolver, "always fails", remote=True)
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    model = TinyCNN()
    callback = QuboPruningCallback(target_ratio=0.5, importance="l1", solver="broken-remote")
    with pytest.warns(QoptFallbackWarning, match="network unreachable"):
        _trainer([callback]).fit(model, _data())
    assert callback.report["fallbacks"] == 1
    assert callback.last_selection is not None
    assert callback.last_selection.solution.record.solved_by == "sa"
    assert callback.report["macs_after"] <= callback.report["budget"]


def test_a_failing_solver_instance_is_reported_not_replaced() -> None:
    callback = QuboPruningCallback(target_ratio=0.5, importance="l1", solver=_BrokenSolver())
    with pytest.raises(ConnectionError, match="network unreachable"):
        _trainer([callback]).fit(TinyCNN(), _data())


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
        ({"target_ratio": 0.5, "balance": -1.0}, ValueError, "'balance'"),
        ({"target_ratio": 0.5, "solver": "nope"}, UnknownSolverError, "Known solvers"),
        ({"target_ratio": 0.5, "solver": 3}, SolverConfigurationError, "'solver'"),
        (
            {"target_ratio": 0.5, "solver_options": {"num_sweep": 10}},
            SolverConfigurationError,
            r"unknown solver_options \['num_sweep'\].*num_sweeps",
        ),
        (
            {"target_ratio": 0.5, "solver": dimod.ExactSolver(), "solver_options": {"seed": 0}},
            SolverConfigurationError,
            "with a solver instance",
        ),
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


def test_selection_settings_do_not_change_the_state_key(tmp_path: Path) -> None:
    # The key names what the saved masks mean (target, budget, schedule, importance, layers),
    # as ModelCheckpoint's names its monitor and schedule; how later steps select (alpha,
    # balance, polish, solver) is not part of it. So a checkpoint written with balance=0
    # (the default before it became 3) resumes under the new default.
    old = {"target_ratio": 0.4, "epochs": [0, 2], "importance": "l2", "solver_options": SOLVE}
    first = QuboPruningCallback(**old, balance=0.0, alpha=0.75, polish=False)
    assert first.state_key == QuboPruningCallback(**old).state_key
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    with pytest.warns(QoptPruningWarning, match="1 of 2 pruning steps"):
        _trainer([first, checkpoint], max_epochs=2, enable_checkpointing=True).fit(
            TinyCNN(), _data()
        )
    resumed = QuboPruningCallback(**old)  # balance=3, alpha=0.5, polish=True: the defaults
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer([resumed], max_epochs=2).fit(TinyCNN(), _data(), ckpt_path=tmp_path / "last.ckpt")
    # Lightning names each checkpointed callback state that finds no callback with its key.
    missing = [str(w.message) for w in caught if "used to create the checkpoint" in str(w.message)]
    assert not [m for m in missing if "QuboPruningCallback" in m]
    assert resumed.steps_done == 1  # restored, not pruned again (epoch 2 is never reached)
    assert resumed.report["kept"] == first.report["kept"]
    for name, mask in resumed.masks.items():
        assert torch.equal(mask, first.masks[name])


# -- MoE experts as a prunable group ----------------------------------------------------------


class TinyMoE(LightningModule):
    """Linear -> Linear -> MoE -> Linear; only the first layer and the experts are prunable."""

    def __init__(self, num_experts: int = 6, top_k: int = 2, lr: float = 0.05) -> None:
        super().__init__()
        self.net = tiny_moe(num_experts, top_k, aux_loss_weight=0.01)
        self.lr = lr
        self.example_input_array = torch.zeros(4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y) + self.net[3].aux_loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _moe_data() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_moe_experts_are_a_group_and_the_pruned_model_matches_the_report() -> None:
    torch.manual_seed(4)
    model = TinyMoE()
    groups = model_pruning_groups(model, model.example_input_array)
    # net.2 feeds the MoE's d_model: not a group; the experts are one, keeping >= top_k.
    assert [(g.name, g.kind, g.min_keep) for g in groups] == [
        ("net.0", "channels", 1),
        ("net.3.experts", "experts", 2),
    ]
    callback = QuboPruningCallback(target_ratio=0.5, budget="params", solver_options=SOLVE)
    _trainer([callback]).fit(model, _moe_data())
    report = callback.report
    moe = model.net[3]
    kept = report["kept"]["net.3.experts"]
    assert 2 <= kept < 6 and moe.num_experts == kept
    assert tuple(moe.router.weight.shape) == (kept, 8) and moe.w_in.shape[0] == kept
    assert moe.expert_bias.shape == (kept,)
    params, macs = count_params_and_macs(model, model.example_input_array)
    assert (params, macs) == (report["params_after"], report["macs_after"])
    assert (report["params_predicted"], report["macs_predicted"]) == (params, macs)
    assert params <= report["budget"] < report["params_before"]
    # The smaller model still trains and routes over its remaining experts.
    model.train()
    x, y = next(iter(_moe_data()))
    loss = nn.functional.cross_entropy(model(x), y) + moe.aux_loss
    loss.backward()
    assert moe.w_in.grad is not None and moe.router.weight.grad is not None
    assert len(moe.last_stats.load) == kept and sum(moe.last_stats.load) == 2 * len(x)


def test_kept_experts_compute_what_they_did_for_tokens_routed_to_them() -> None:
    torch.manual_seed(5)
    model = TinyMoE(num_experts=8, lr=0.0)  # lr 0: the weights stay those of `original`
    original = copy.deepcopy(model)
    callback = QuboPruningCallback(
        target_ratio=0.6, budget="params", layers=["net.3"], remove=False, solver_options=SOLVE
    )
    _trainer([callback], max_epochs=1).fit(model, _moe_data())
    keep = callback.masks["net.3.experts"]
    assert 2 <= int(keep.sum()) < 8
    model.eval()
    original.eval()
    x = torch.randn(256, 16)
    masked = _masked_output(model, callback.masks, x)  # dropped experts masked at the router
    callback.prune_model(model)
    assert model.net[3].num_experts == int(keep.sum())
    pruned = model(x)
    torch.testing.assert_close(pruned, masked)
    # Tokens whose two chosen experts both survive get exactly the output they had.
    with torch.no_grad():
        hidden = original.net[:3](x)
        chosen = original.net[3].router(hidden).topk(2, dim=-1).indices
    survived = keep[chosen].all(dim=1)
    assert 0 < int(survived.sum()) < len(x)
    with torch.no_grad():
        torch.testing.assert_close(pruned[survived], original(x)[survived])


def test_too_few_experts_for_the_budget_names_the_module() -> None:
    # Three experts, top-2: at least 2 stay, which a 40% parameter budget cannot hold.
    callback = QuboPruningCallback(target_ratio=0.4, budget="params", layers=["net.3"])
    with pytest.raises(InvalidProblemError, match=r"below the cost of the minimum keeps.*'net\.3'"):
        _trainer([callback], max_epochs=1).fit(TinyMoE(num_experts=3), _moe_data())
    with pytest.raises(
        InvalidProblemError, match=r"'net\.3\.experts' has no prunable units.*'net\.3'"
    ):
        _trainer([QuboPruningCallback(target_ratio=0.5, layers=["net.3"])], max_epochs=1).fit(
            TinyMoE(num_experts=2), _moe_data()
        )


def test_batch_wide_moe_routing_prunes_experts_without_a_warning() -> None:
    # Sinkhorn and assignment routing balance over the active experts only, so masking an
    # expert is exact while fine-tuning and nothing needs saying.
    model = TinyMoE()
    model.net[3].routing = "sinkhorn"
    callback = QuboPruningCallback(target_ratio=0.8, budget="params", solver_options=SOLVE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QoptPruningWarning)
        _trainer([callback], max_epochs=1, limit_train_batches=1).fit(model, _moe_data())
    assert model.net[3].num_experts == callback.report["kept"]["net.3.experts"] < 6


def test_balance_keeps_every_group_near_the_uniform_split() -> None:
    def kept_fractions(balance: float) -> list[float]:
        torch.manual_seed(4)
        model = TinyCNN()
        callback = QuboPruningCallback(
            target_ratio=0.4, importance="l1", balance=balance, solver_options=SOLVE
        )
        _trainer([callback], max_epochs=1).fit(model, _data())
        # The pruned model is the one reported, whatever the balance.
        macs = count_params_and_macs(model, torch.zeros(1, 1, 8, 8))[1]
        assert macs == callback.report["macs_after"] <= callback.report["budget"]
        sizes = {"net.0": 6, "net.3": 8, "net.6": 12}
        return [callback.report["kept"][name] / size for name, size in sizes.items()]

    free, balanced = kept_fractions(0.0), kept_fractions(1000.0)
    # Without balance the scores split the budget unevenly between the two convolutions,
    # which hold most MACs (here 4 of 6 and 3 of 8 channels). With a strong pull they keep the
    # same fraction up to one unit of the smaller one; budget the rounding leaves goes to the
    # cheap units of the linear layer (fill="budget"), which stays fuller either way.
    assert abs(free[0] - free[1]) > 1 / 6
    assert abs(balanced[0] - balanced[1]) <= 1 / 6 + 1e-9
