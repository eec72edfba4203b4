from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import dimod
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from qopt.integrations.lightning import QoptRoutingWarning, QuboRoutingCallback

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.moe import MoE
from qopt.solvers import QoptFallbackWarning

SOLVER_OPTIONS = {"seed": 0, "num_reads": 4, "num_sweeps": 300}


class TinyMoEModel(pl.LightningModule):
    def __init__(self, capacity_factor: float = 1.0, top_k: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.moe = MoE(
            8, 4, d_hidden=8, top_k=top_k, capacity_factor=capacity_factor, aux_loss_weight=0.0
        )
        self.head = torch.nn.Linear(8, 1)
        self.stats: list[Any] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.head(self.moe(x)).squeeze(-1), y)
        self.stats.append(self.moe.last_stats)
        return loss + self.moe.aux_loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.head(self.moe(x)).squeeze(-1), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class NoMoEModel(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _data(num: int = 96, batch_size: int = 16) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(num, 8, generator=generator) + torch.tensor([2.0] + [0.0] * 7)
    y = x.sum(dim=1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _trainer(callbacks: list[Any], max_steps: int = 3, **options: Any) -> pl.Trainer:
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **options,
    )


def test_assign_mode_routes_every_batch_balanced_and_logs() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS, group_size=16)
    model = TinyMoEModel(capacity_factor=1.0)
    trainer = _trainer([callback])
    trainer.fit(model, _data())
    assert callback.num_solves == 3 and callback.num_fallbacks == 0
    # The layer dispatched by the solved assignment: balanced, nothing dropped, although
    # the inputs push the router toward one expert (greedy top-1 would drop tokens).
    for stats in model.stats:
        assert stats.dropped == 0 and stats.load == (4, 4, 4, 4)
    metrics = trainer.callback_metrics
    assert float(metrics["routing/max_violation"]) == 0.0
    assert float(metrics["routing/dropped"]) == 0.0
    assert float(metrics["routing/dead_experts"]) == 0.0
    assert float(metrics["routing/fallbacks"]) == 0.0
    # The goal: within 1 % of the exact optimum (the polish gets there).
    assert 0.0 <= float(metrics["routing/optimality_gap"]) <= 0.01
    assert float(metrics["routing/objective"]) <= float(metrics["routing/exact_objective"]) + 1e-6
    # Every statistic is logged.
    for key in ("polish_gain", "infeasible_fraction", "route_s"):
        assert f"routing/{key}" in metrics
    assert float(metrics["routing/solver_s"]) > 0.0


def test_default_effort_with_several_groups_is_within_one_percent_of_exact() -> None:
    # The callback's default solver effort (one read of 20 sweeps from Sinkhorn) on batches
    # of 64 tokens cut into groups of 16: the polish carries the route to the optimum (top-1,
    # linear: cycle canceling stops only there). Without it this run is 0.47 % off.
    callback = QuboRoutingCallback(group_size=16, sample_params={"seed": 0})
    model = TinyMoEModel(capacity_factor=1.0)
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(model, _data(num=128, batch_size=64))
    assert callback.num_solves == 2 and callback.num_fallbacks == 0
    metrics = trainer.callback_metrics
    assert 0.0 <= float(metrics["routing/optimality_gap"]) <= 1e-9
    assert float(metrics["routing/polish_gain"]) > 0.0
    assert float(metrics["routing/dropped"]) == 0.0
    assert float(metrics["routing/max_violation"]) <= 0.05


def test_greedy_without_callback_would_drop() -> None:
    model = TinyMoEModel(capacity_factor=1.0)
    _trainer([], max_steps=1).fit(model, _data())
    assert model.stats[0].dropped > 0  # the baseline the previous test is measured against


def test_every_n_steps_and_eval_routing() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS, every_n_steps=2, group_size=16)
    model = TinyMoEModel()
    trainer = _trainer([callback], max_steps=4, val_check_interval=2, limit_val_batches=1)
    trainer.fit(model, _data())
    assert callback.num_solves == 2  # steps 0 and 2
    assert [s.dropped == 0 for s in model.stats] == [True, False, True, False]


def test_bias_mode_moves_biases_toward_solved_load() -> None:
    callback = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, mode="bias", bias_update_rate=0.5, group_size=16
    )
    model = TinyMoEModel()
    _trainer([callback], max_steps=1).fit(model, _data())
    bias = np.array(callback.state_dict()["biases"]["moe"])
    load = np.array(model.stats[0].load)  # biased top-1 (zero bias at step 0)
    assert load.max() > 4  # the router is unbalanced, so the update has work to do
    # Solved load is 4 per expert (capacity factor 1.0): over-loaded experts go down.
    assert np.array_equal(np.sign(bias), np.sign(4 - load) * (load != 4))
    assert np.abs(bias[load != 4]).tolist() == [0.5] * int((load != 4).sum())


def test_distill_mode_adds_a_loss_and_keeps_layer_routing() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS, mode="distill", group_size=16)
    model = TinyMoEModel()
    seen: list[float] = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
            seen.append(float(pl_module.moe.aux_loss.detach()))

    _trainer([callback, Spy()], max_steps=2).fit(model, _data())
    assert callback.num_solves == 2
    assert all(v > 0 for v in seen)
    assert model.stats[0].dropped > 0  # the layer still routed greedily itself


def test_pairwise_similarity_mode_runs() -> None:
    callback = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, pairwise="similarity", group_size=16
    )
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(TinyMoEModel(), _data())
    assert callback.num_solves == 2
    assert "routing/optimality_gap" not in trainer.callback_metrics  # not linear


def test_no_routable_module_is_a_clear_error() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS)
    with pytest.raises(InvalidProblemError, match="no routable module in NoMoEModel"):
        _trainer([callback]).fit(NoMoEModel(), _data())


class BrokenSolver(dimod.Sampler):
    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        raise ConnectionError("network unreachable")


def test_remote_solver_without_a_token_falls_back_and_every_fallback_is_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("dwave.system")
    for name in ("DWAVE_API_TOKEN", "DWAVE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "nowhere" / "dwave.conf"))
    callback = QuboRoutingCallback(solver="dwave", group_size=16)
    model = TinyMoEModel()
    trainer = _trainer([callback], max_steps=3)
    with pytest.warns(QoptFallbackWarning, match="Solver 'dwave' failed"):
        trainer.fit(model, _data())
    assert trainer.global_step == 3
    # Every solve fell back to the local annealer, and routed the batch.
    assert callback.num_solves == 3 and callback.num_fallbacks == 3
    assert float(trainer.callback_metrics["routing/fallbacks"]) == 1.0
    assert all(s.dropped == 0 for s in model.stats)  # routed by the fallback, not by the layer


def test_failing_solver_instance_is_not_hidden() -> None:
    # An instance is used as given: no fallback of the callback's own hides its failure.
    callback = QuboRoutingCallback(solver=BrokenSolver(), group_size=16)
    with pytest.raises(ConnectionError, match="network unreachable"):
        _trainer([callback], max_steps=1).fit(TinyMoEModel(), _data())


def test_capacity_too_small_for_k_falls_back_with_reason() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS)
    model = TinyMoEModel(capacity_factor=0.5)
    with pytest.warns(QoptFallbackWarning, match="Capacity too small for k"):
        _trainer([callback], max_steps=1).fit(model, _data())
    assert callback.num_fallbacks == 1


def test_nonfinite_scores_fall_back() -> None:
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS)
    model = TinyMoEModel()
    callback.setup(_trainer([]), model, "fit")
    hook = model.moe._hook
    assert hook is not None
    with pytest.warns(QoptFallbackWarning, match="non-finite"):
        decision = hook(torch.full((8, 4), float("nan")), None)
    assert decision is None and callback.num_fallbacks == 1
    callback.teardown(_trainer([]), model, "fit")
    assert model.moe._hook is None


def test_state_dict_round_trip_and_checkpoint_resume(tmp_path: Path) -> None:
    callback = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, mode="bias", bias_update_rate=0.25, group_size=16
    )
    model = TinyMoEModel()
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(model, _data())
    saved = callback.state_dict()
    assert saved["num_solves"] == 2 and any(b != 0 for b in saved["biases"]["moe"])
    path = tmp_path / "routing.ckpt"
    trainer.save_checkpoint(path)

    resumed = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, mode="bias", bias_update_rate=0.25, group_size=16
    )
    restored: list[list[float]] = []

    class Probe(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
            restored.append(resumed.state_dict()["biases"]["moe"])

    trainer = _trainer([resumed, Probe()], max_steps=4)
    trainer.fit(TinyMoEModel(), _data(), ckpt_path=path)
    assert restored == [saved["biases"]["moe"]]
    assert resumed.num_solves == 4

    fresh = QuboRoutingCallback(solver_options=SOLVER_OPTIONS, mode="bias")
    fresh.load_state_dict(saved)
    assert fresh.state_dict() == saved
    assert fresh.state_key != QuboRoutingCallback(solver_options=SOLVER_OPTIONS).state_key


def test_configuration_errors() -> None:
    with pytest.raises(SolverConfigurationError, match="'mode' parameter"):
        QuboRoutingCallback(mode="route")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match="'every_n_steps' parameter"):
        QuboRoutingCallback(every_n_steps=0)
    with pytest.raises(SolverConfigurationError, match="solver_options"):
        QuboRoutingCallback(solver=BrokenSolver(), solver_options={"seed": 1})
    with pytest.raises(SolverConfigurationError, match="'pairwise' parameter"):
        QuboRoutingCallback(pairwise="dense")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match=r"unknown solver_options \['num_shots'\]"):
        QuboRoutingCallback(solver="sa", solver_options={"num_shots": 3})
    with pytest.raises(SolverConfigurationError, match="'polish' parameter"):
        QuboRoutingCallback(polish="local")  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QuboRoutingCallback()  # valid defaults warn about nothing


class BiasRecorder(pl.Callback):
    """The routing callback's biases at the end of each training step (runs after it)."""

    def __init__(self, routing: QuboRoutingCallback) -> None:
        self.routing = routing
        self.biases: list[list[float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        self.biases.append(self.routing.state_dict()["biases"]["moe"])


def test_asynchronous_bias_answer_is_applied_one_step_later() -> None:
    options: dict[str, Any] = {
        "solver_options": SOLVER_OPTIONS,
        "mode": "bias",
        "bias_update_rate": 0.5,
        "group_size": 16,
    }
    sync = QuboRoutingCallback(**options)
    sync_biases = BiasRecorder(sync)
    _trainer([sync, sync_biases], max_steps=2).fit(TinyMoEModel(), _data())

    lagged = QuboRoutingCallback(**options, asynchronous=True)
    lagged_biases = BiasRecorder(lagged)
    _trainer([lagged, lagged_biases], max_steps=2).fit(TinyMoEModel(), _data())

    assert any(b != 0 for b in sync_biases.biases[0])  # step 0's answer moved the biases
    # Asynchronous: nothing applied at the end of step 0; step 0's answer (the same solve,
    # same logits) at the end of step 1; step 1's answer when training ends.
    assert lagged_biases.biases[0] == [0.0] * 4
    assert lagged_biases.biases[1] == sync_biases.biases[0]
    assert lagged.num_solves == 2 and lagged._executor is None  # pool shut down at teardown
    assert lagged.state_dict()["biases"]["moe"] != lagged_biases.biases[1]


def test_bias_mode_every_n_steps_solves_on_schedule_only() -> None:
    callback = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, mode="bias", every_n_steps=3, group_size=16
    )
    recorder = BiasRecorder(callback)
    _trainer([callback, recorder], max_steps=4).fit(TinyMoEModel(), _data())
    assert callback.num_solves == 2  # steps 0 and 3
    assert recorder.biases[1] == recorder.biases[0] == recorder.biases[2]
    assert recorder.biases[3] != recorder.biases[2]


def test_asynchronous_needs_bias_mode() -> None:
    with pytest.raises(SolverConfigurationError, match="'asynchronous' parameter"):
        QuboRoutingCallback(asynchronous=True)
    with pytest.raises(SolverConfigurationError, match="'penalty' parameter"):
        QuboRoutingCallback(penalty=-1.0)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread niceness is a POSIX feature")
@pytest.mark.parametrize("mode", ["bias", "distill"])
def test_logged_balance_and_drops_are_the_layers_in_every_mode(mode: str) -> None:
    # At step 0 the router sends most tokens to one expert: the layer's own (biased) top-1
    # drops slots, while the solver's answer is balanced and drops none.
    callback = QuboRoutingCallback(solver_options=SOLVER_OPTIONS, mode=mode, group_size=16)
    model = TinyMoEModel(capacity_factor=1.0)
    trainer = _trainer([callback], max_steps=1)
    trainer.fit(model, _data())
    layer = model.stats[-1]
    assert layer.dropped > 0
    metrics = trainer.callback_metrics
    assert float(metrics["routing/dropped"]) == layer.dropped
    assert float(metrics["routing/max_violation"]) == pytest.approx(layer.max_violation)
    assert float(metrics["routing/dead_experts"]) == layer.dead_experts
    assert float(metrics["routing/solver_max_violation"]) == 0.0  # the balanced answer


def test_a_pruned_layer_is_noticed_once_and_routed_over_its_experts() -> None:
    callback = QuboRoutingCallback(
        solver_options=SOLVER_OPTIONS, mode="bias", bias_update_rate=0.5, group_size=16
    )
    model = TinyMoEModel(capacity_factor=1.0)
    _trainer([callback], max_steps=1).fit(model, _data())
    assert len(callback.state_dict()["biases"]["moe"]) == 4
    model.moe.keep_experts([0, 2, 3])
    with pytest.warns(QoptRoutingWarning, match=r"'moe' now has 3 experts \(it had 4\)") as caught:
        _trainer([callback], max_steps=3).fit(model, _data())
    assert sum(issubclass(w.category, QoptRoutingWarning) for w in caught) == 1
    bias = callback.state_dict()["biases"]["moe"]
    assert len(bias) == 3 and any(b != 0 for b in bias)
    assert callback.num_fallbacks == 0
