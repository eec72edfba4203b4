"""Tests of QuboAttentionCallback: schedule, installation, fallback, state, DDP structure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dimod
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from qopt.integrations.lightning import QuboAttentionCallback

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.attention import check_selection, even_share
from qopt.solvers import QoptFallbackWarning
from qopt.sparse_attention import BlockSparseAttention, TopKSelector

OPTIONS = {"seed": 0, "num_reads": 2, "num_sweeps": 50}


class TinyAttentionModel(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attention = BlockSparseAttention(8, num_heads=2, block_size=4)
        self.head = torch.nn.Linear(8, 1)
        self.seen: list[torch.Tensor | None] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        selection = self.attention.selection
        self.seen.append(None if selection is None else selection.clone())
        return self.head(self.attention(batch[0])).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class NoAttentionModel(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class FailingSampler(dimod.Sampler):
    calls = 0

    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        type(self).calls += 1
        raise ConnectionError("the annealer is unreachable")


def _data(num: int = 32, batch_size: int = 4) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(num, 32, 8, generator=generator)  # 32 tokens: 8 blocks of 4
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=batch_size)


def _trainer(callbacks: list[Any], max_steps: int = 4, **options: Any) -> pl.Trainer:
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


def test_selects_on_schedule_within_budget_and_installs() -> None:
    callback = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS)
    model = TinyAttentionModel()
    trainer = _trainer([callback], max_steps=5)
    trainer.fit(model, _data())
    assert callback.num_solves == 2 and callback.num_fallbacks == 0  # after steps 2 and 4
    selection = callback.selections["attention"]
    budget = callback.budget(2, 8)
    assert budget == 28  # floor(0.4 x 2 x 36)
    check_selection(selection, budget=budget)
    # Dense for steps 1-2, then the first selection for steps 3-4, the second for step 5.
    assert model.seen[0] is None and model.seen[1] is None
    assert model.seen[2] is not None and model.seen[4] is not None
    assert np.array_equal(model.seen[4].numpy(), selection)
    assert model.attention.last_attended_fraction <= 0.4
    metrics = trainer.callback_metrics
    assert float(metrics["attention/attended_fraction"]) <= 0.4
    assert float(metrics["attention/fallbacks"]) == 0.0
    assert float(metrics["attention/objective"]) > 0
    # Warm-started from greedy: never below it on the objective.
    assert float(metrics["attention/objective"]) >= float(metrics["attention/greedy_objective"])
    assert 0 <= callback.num_above_greedy <= callback.num_solves


def test_greedy_method_is_the_control_on_the_same_objective() -> None:
    callback = QuboAttentionCallback(attended_fraction=0.3, every_n_steps=1, method="greedy")
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(TinyAttentionModel(), _data())
    metrics = trainer.callback_metrics
    assert float(metrics["attention/objective"]) == float(metrics["attention/greedy_objective"])
    assert callback.num_solves == 2 and callback.num_above_greedy == 0
    check_selection(callback.selections["attention"], budget=callback.budget(2, 8))


def test_even_minimum_gives_every_query_block_the_topk_share() -> None:
    callback = QuboAttentionCallback(
        attended_fraction=0.6, every_n_steps=1, solver_options=OPTIONS, min_blocks="even"
    )
    trainer = _trainer([callback], max_steps=1)
    trainer.fit(TinyAttentionModel(), _data())
    budget = callback.budget(2, 8)
    share = even_share(2, 8, budget)
    assert (budget, share) == (43, 3)  # three blocks per query block take 2 x (1 + 2 + 3 x 6)
    check_selection(callback.selections["attention"], budget=budget, min_blocks=share)


@pytest.mark.parametrize("method", ["qubo", "greedy"])
def test_window_blocks_are_always_attended(method: str) -> None:
    callback = QuboAttentionCallback(
        attended_fraction=0.6,
        every_n_steps=1,
        method=method,  # type: ignore[arg-type]
        solver_options=OPTIONS,
        min_blocks="even",
        window=2,
    )
    trainer = _trainer([callback], max_steps=1)
    trainer.fit(TinyAttentionModel(), _data())
    budget = callback.budget(2, 8)
    selection = callback.selections["attention"]
    check_selection(selection, budget=budget, min_blocks=3, window=2)
    assert int(selection.sum()) == budget  # the rest of the budget is chosen beyond the window


@pytest.mark.parametrize("method", ["qubo", "greedy"])
def test_with_a_topk_selector_the_callback_places_only_the_rest_of_the_budget(method: str) -> None:
    """Top-k's share per sequence, the fixed part on the mass it leaves: never over budget."""
    model = TinyAttentionModel()
    model.attention.selector = TopKSelector(2, block_size=4)  # 2 x 15 of 72 pairs
    callback = QuboAttentionCallback(
        attended_fraction=0.5,
        every_n_steps=2,
        method=method,  # type: ignore[arg-type]
        solver_options=OPTIONS,
    )
    attended: list[torch.Tensor] = []
    model.attention.register_forward_hook(
        lambda module, inputs, output: attended.append(
            (module.covered_blocks() | module.selection).sum(dim=(1, 2, 3))
            if module.selection is not None
            else module.covered_blocks().sum(dim=(1, 2, 3))
        )
    )
    trainer = _trainer([callback], max_steps=5)
    trainer.fit(model, _data())
    budget = callback.budget(2, 8)
    assert budget == 36 and callback.num_solves == 2
    fixed = callback.selections["attention"]
    # The own blocks and the 6 pairs top-k leaves: more would go over budget in some sequence.
    check_selection(fixed, budget=16 + 36 - 30)
    assert int(fixed.sum()) == 22
    spent = torch.stack(attended)
    assert int(spent.max()) <= budget and int(spent[-1].min()) > 30  # the rest is used
    assert int(spent[0].max()) == 30  # top-k alone until the first selection
    assert float(trainer.callback_metrics["attention/attended_fraction"]) == 36 / 72


def test_a_selector_over_the_budget_is_named_and_nothing_is_added() -> None:
    model = TinyAttentionModel()
    model.attention.selector = TopKSelector(4, block_size=4)  # 2 x 26 = 52 of 72 pairs
    callback = QuboAttentionCallback(attended_fraction=0.5, every_n_steps=1, method="greedy")
    with pytest.warns(QoptFallbackWarning, match="attended 52 block pairs.*budget of 36"):
        _trainer([callback], max_steps=2).fit(model, _data())
    fixed = callback.selections["attention"]
    assert np.array_equal(fixed, np.broadcast_to(np.eye(8, dtype=bool), (2, 8, 8)))


def test_asynchronous_answer_is_installed_one_step_later() -> None:
    callback = QuboAttentionCallback(
        attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS, asynchronous=True
    )
    model = TinyAttentionModel()
    trainer = _trainer([callback], max_steps=5)
    trainer.fit(model, _data())
    # Solved after step 2, installed at the end of step 3: step 4 is the first to use it.
    assert [s is None for s in model.seen] == [True, True, True, False, False]
    assert callback.num_solves == 2  # the answer of step 4 was installed at step 5
    check_selection(callback.selections["attention"], budget=callback.budget(2, 8))


def test_asynchronous_answer_still_in_flight_is_installed_when_training_ends() -> None:
    callback = QuboAttentionCallback(
        attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS, asynchronous=True
    )
    model = TinyAttentionModel()
    trainer = _trainer([callback], max_steps=4)
    trainer.fit(model, _data())  # the answer of step 4 arrives in on_train_end (no logging)
    assert callback.num_solves == 2
    assert model.attention.selection is not None
    assert np.array_equal(model.attention.selection.numpy(), callback.selections["attention"])


def test_a_failing_solver_instance_is_not_hidden() -> None:
    # An instance is used as given: no fallback of the callback's own hides its failure.
    callback = QuboAttentionCallback(
        attended_fraction=0.4, every_n_steps=1, solver=FailingSampler()
    )
    with pytest.raises(ConnectionError):
        _trainer([callback], max_steps=3).fit(TinyAttentionModel(), _data())


def test_remote_solver_without_a_token_falls_back_and_every_fallback_is_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("dwave.system")
    for name in ("DWAVE_API_TOKEN", "DWAVE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "nowhere" / "dwave.conf"))
    callback = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=1, solver="dwave")
    trainer = _trainer([callback], max_steps=3)
    with pytest.warns(QoptFallbackWarning, match="Solver 'dwave' failed"):
        trainer.fit(TinyAttentionModel(), _data())
    assert callback.num_solves == 3 and callback.num_fallbacks == 3
    check_selection(callback.selections["attention"], budget=callback.budget(2, 8))
    assert float(trainer.callback_metrics["attention/fallbacks"]) == 1.0


def test_state_dict_round_trip_and_checkpoint_resume(tmp_path: Path) -> None:
    callback = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS)
    trainer = _trainer([callback], max_steps=2)
    trainer.fit(TinyAttentionModel(), _data())
    saved = callback.state_dict()
    assert saved["num_solves"] == 1
    path = tmp_path / "attention.ckpt"
    trainer.save_checkpoint(path)

    resumed = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS)
    model = TinyAttentionModel()
    trainer = _trainer([resumed], max_steps=3)
    trainer.fit(model, _data(), ckpt_path=path)
    # The first step after resuming already attends the restored selection.
    assert model.seen[0] is not None
    assert model.seen[0].tolist() == saved["selections"]["attention"]
    assert resumed.num_solves == 1  # step 3 is not due

    fresh = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=2, solver_options=OPTIONS)
    fresh.load_state_dict(saved)
    assert fresh.state_dict() == saved
    assert fresh.state_key != QuboAttentionCallback(attended_fraction=0.2).state_key


class _Recorder(torch.nn.Module):
    """A pl_module stand-in: one attention module and a log that records."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attention = BlockSparseAttention(8, num_heads=2, block_size=4)
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs: Any) -> None:
        self.logged[name] = value


def _ddp_trainer(rank: int, broadcast: Any, reduced: list[torch.Tensor]) -> Any:
    def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        reduced.append(tensor)
        return tensor * 2  # two ranks with the same statistics

    strategy = SimpleNamespace(root_device=torch.device("cpu"), reduce=reduce, broadcast=broadcast)
    return SimpleNamespace(world_size=2, is_global_zero=rank == 0, global_step=1, strategy=strategy)


def test_ddp_rank_zero_solves_and_every_rank_installs_its_broadcast() -> None:
    sent: list[tuple[Any, int]] = []

    def broadcast_from_zero(obj: Any, src: int = 0) -> Any:
        sent.append((obj, src))
        return obj

    reduced: list[torch.Tensor] = []
    zero = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=1, solver_options=OPTIONS)
    module = _Recorder()
    trainer = _ddp_trainer(0, broadcast_from_zero, reduced)
    zero.setup(trainer, module, "fit")
    module.attention(torch.randn(4, 32, 8))
    zero.on_train_batch_end(trainer, module, None, None, 0)
    assert len(reduced) == 1 and float(reduced[0][-1]) == 1.0  # one step of statistics
    assert len(sent) == 1 and sent[0][1] == 0
    answers = sent[0][0]
    selection = answers["attention"].selection
    check_selection(selection, budget=zero.budget(2, 8))
    assert module.logged["attention/fallbacks"] == 0.0

    # Rank 1 solves nothing: it sends an empty answer and installs what rank 0 broadcast.
    def broadcast_to_one(obj: Any, src: int = 0) -> Any:
        assert obj == {} and src == 0
        return answers

    one = QuboAttentionCallback(attended_fraction=0.4, every_n_steps=1, solver=FailingSampler())
    FailingSampler.calls = 0
    other = _Recorder()
    trainer = _ddp_trainer(1, broadcast_to_one, [])
    one.setup(trainer, other, "fit")
    other.attention(torch.randn(4, 32, 8))
    one.on_train_batch_end(trainer, other, None, None, 0)
    assert FailingSampler.calls == 0 and one.num_fallbacks == 0
    assert other.attention.selection is not None
    assert np.array_equal(other.attention.selection.numpy(), selection)
    assert np.array_equal(one.selections["attention"], selection)


def test_no_attention_module_is_a_clear_error() -> None:
    trainer = _trainer([QuboAttentionCallback()], max_steps=1)
    with pytest.raises(InvalidProblemError, match="BlockSelectable"):
        trainer.fit(NoAttentionModel(), _data())


def test_configuration_errors() -> None:
    with pytest.raises(SolverConfigurationError, match="'attended_fraction' parameter"):
        QuboAttentionCallback(attended_fraction=0.0)
    with pytest.raises(SolverConfigurationError, match="'method' parameter"):
        QuboAttentionCallback(method="anneal")
    with pytest.raises(SolverConfigurationError, match="'every_n_steps' parameter"):
        QuboAttentionCallback(every_n_steps=0)
    with pytest.raises(SolverConfigurationError, match="solver_options"):
        QuboAttentionCallback(solver_options={"sweeps": 10})
    with pytest.raises(SolverConfigurationError, match="'max_blocks' parameter"):
        QuboAttentionCallback(min_blocks=3, max_blocks=2)
    with pytest.raises(SolverConfigurationError, match="at least window=3"):
        QuboAttentionCallback(window=3, max_blocks=2)
    with pytest.raises(SolverConfigurationError, match="'window' parameter"):
        QuboAttentionCallback(window=0)
    with pytest.raises(SolverConfigurationError, match="'asynchronous' parameter"):
        QuboAttentionCallback(asynchronous="yes")
