"""The Lightning train-and-evaluate objective end to end on scikit-learn's digits (tiny run)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from qopt.exceptions import InvalidProblemError
from qopt.nas import (
    SearchSpace,
    export_model,
    load_model,
    load_spec,
    report,
    resolve_evaluator,
    run_search,
    status,
)
from qopt.nas._runner import load_run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nas" / "digits.yaml"


def tiny_digits(**train: Any) -> SearchSpace:
    """The example spec with a one-epoch budget and an eager median pruner."""
    data = load_spec(EXAMPLE).to_dict()
    data["name"] = "digits-tiny"
    data["train"].update({"max_epochs": 1, "pruner_options": {"n_startup_trials": 2}, **train})
    space = SearchSpace.from_dict(data)
    space.base_dir = EXAMPLE.parent
    return space


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchSpace]:
    run_dir = tmp_path_factory.mktemp("digits")
    space = tiny_digits()
    run_search(space, run_dir=run_dir, sampler="random", n_trials=3, seed=1)
    before = {t.number: (t.params, t.values, t.state) for t in load_run(run_dir)[0].trials}
    summary = run_search(space, run_dir=run_dir, sampler="random", n_trials=6, seed=1)
    after = {t.number: (t.params, t.values, t.state) for t in load_run(run_dir)[0].trials}
    assert summary.n_evaluated == 6
    assert all(after[n] == before[n] for n in before)  # resumed: nothing lost or changed
    return run_dir, space


def test_trials_are_trained_measured_and_pruned(digits_run: tuple[Path, SearchSpace]) -> None:
    run_dir, space = digits_run
    study, _, _ = load_run(run_dir)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) >= 1
    assert states.count(optuna.trial.TrialState.COMPLETE) >= 2
    summary = status(run_dir)
    assert summary.n_pruned == states.count(optuna.trial.TrialState.PRUNED)
    assert summary.n_over_budget_evaluated == 0
    for t in study.trials:
        arch = json.loads(t.user_attrs["architecture"])
        # The spec's quadratic cost model is exact: the built model has that many parameters.
        assert t.user_attrs["measured:params"] == space.cost(arch, "params") <= 10000
        assert (
            t.user_attrs["measured:macs"]
            == 64 * arch["w1"] + arch["w1"] * arch["w2"] + 10 * arch["w2"]
        )
        assert len(t.intermediate_values) == 1  # val_acc reported once per epoch
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert 0.0 < t.values[0] < 2.5  # val_loss after one epoch (chance: ln 10 = 2.3)
            assert 0.1 < t.user_attrs["metric:val_acc"] <= 1.0
            assert t.values[0] == pytest.approx(t.intermediate_values[0])
        else:
            assert t.user_attrs["qopt_nas:status"] == "pruned"


def test_export_builds_the_best_trained_module(
    digits_run: tuple[Path, SearchSpace], tmp_path: Path
) -> None:
    run_dir, _ = digits_run
    best = status(run_dir).best[0]
    model = export_model(str(run_dir), path=tmp_path / "best.pt")
    assert isinstance(model, torch.nn.Module)
    assert model.net[0].out_features == best["architecture"]["w1"]
    saved = torch.load(run_dir / "weights" / f"trial-{best['trial']}.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    again = load_model(str(tmp_path / "best.pt"))
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    # The exported module reproduces the recorded validation loss (one batch of 360 images).
    x, y = again.val_dataloader().dataset.tensors
    again.eval()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(again(x), y).item()
    assert loss == pytest.approx(best["values"]["val_loss"], rel=1e-5)


def test_report_of_a_trained_run(digits_run: tuple[Path, SearchSpace]) -> None:
    run_dir, _ = digits_run
    table, records = report(str(run_dir), top=3)
    assert "measured params" in table and "params (<= 10000)" in table
    assert records[0]["trial"] == status(run_dir).best[0]["trial"]


def test_a_model_over_its_measured_budget_is_never_trained() -> None:
    data = load_spec(EXAMPLE).to_dict()
    data["budgets"][0]["pairs"] = []  # the cost model forgets the w1 x w2 weights
    space = SearchSpace.from_dict(data)
    space.base_dir = EXAMPLE.parent
    evaluate = resolve_evaluator(space, seed=0)
    arch = {"w1": 128, "w2": 64, "act": "relu", "dropout": 0.0}
    assert space.within_budget(arch)
    with pytest.raises(
        InvalidProblemError, match=r"17226 params \(measured\), over budget .* cost model says 9034"
    ):
        evaluate(arch)


def test_a_monitor_the_module_does_not_log_is_an_error_naming_it() -> None:
    space = tiny_digits(monitor="val_accuracy")
    evaluate = resolve_evaluator(space, seed=0)
    trial = optuna.create_study().ask()
    arch = {"w1": 16, "w2": 16, "act": "relu", "dropout": 0.0}
    with pytest.raises(InvalidProblemError, match=r"logged no 'val_accuracy'.*'val_acc'"):
        evaluate(arch, trial)  # type: ignore[call-arg]


def test_cli_runs_the_example_spec(tmp_path: Path) -> None:
    import argparse

    from qopt.nas.cli import add_nas_parser

    spec = tmp_path / "digits.yaml"
    text = EXAMPLE.read_text().replace("max_epochs: 5", "max_epochs: 1")
    spec.write_text(
        text.replace("evaluate: digits:build", f"evaluate: digits:build  # {EXAMPLE.parent}")
    )
    (tmp_path / "digits.py").write_text((EXAMPLE.parent / "digits.py").read_text())
    parser = argparse.ArgumentParser(prog="qopt")
    add_nas_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    run_dir = tmp_path / "run"
    args = parser.parse_args(
        [
            "nas",
            str(spec),
            "--run-dir",
            str(run_dir),
            "--trials",
            "2",
            "--sampler",
            "qubo",
            "--seed",
            "0",
            "--no-progress",
        ]
    )
    assert args.run(args, out) == 0
    assert "2 evaluated" in out.getvalue() and "0 evaluated over budget" in out.getvalue()
    args = parser.parse_args(["nas", "export", str(run_dir), "--model", str(tmp_path / "m.pt")])
    assert args.run(args, out) == 0
    assert isinstance(load_model(str(tmp_path / "m.pt")), torch.nn.Module)
