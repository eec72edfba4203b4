"""Budgets derived from the spec's model builder (``budgets: [{kind: params, max: ...}]``)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

from qopt.exceptions import BuilderError, InvalidProblemError
from qopt.model_analysis import count_params_and_macs
from qopt.nas import QoptBudgetWarning, SearchSpace, load_spec, run_search
from qopt.nas._runner import load_run
from qopt.nas._samplers import trial_architecture
from qopt.nas.cli import add_nas_parser
from tests.nas import _builders

LINEAR = """\
name: linear
choices:
  - {name: a, type: ordinal, values: [2, 4, 8, 16]}
  - {name: b, type: ordinal, values: [1, 3, 5]}
  - {name: act, type: categorical, values: [relu, tanh]}
budgets:
  - {kind: params, max: 90}
build: tests.nas._builders:linear
"""

TOWER = """\
name: tower
choices:
  - {name: width, type: ordinal, values: [4, 8, 16, 32]}
  - {name: depth, type: ordinal, values: [1, 2, 3, 4]}
  - {name: act, type: categorical, values: [relu, gelu]}
budgets:
  - {kind: params, max: 1500}
objectives: [{name: loss}]
evaluate: tests.nas._builders:size_loss
build: tests.nas._builders:tower
"""

CONVS = """\
name: convs
choices:
  - {name: c1, type: ordinal, values: [4, 8, 16]}
  - {name: c2, type: ordinal, values: [4, 8, 16]}
  - {name: k, type: ordinal, values: [1, 3, 5]}
budgets:
  - {kind: params, max: 2000}
build: tests.nas._builders:convs
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def measured(space: SearchSpace, builder: str, arch: dict, kind: str = "params") -> float:
    model = getattr(_builders, builder)(arch)
    params, macs = count_params_and_macs(model, model.example_input_array)
    return float(params if kind == "params" else 2 * macs)


def test_a_linear_cost_is_derived_exactly_from_max_alone(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, LINEAR))
    budget = space.budgets[0]
    assert budget.name == "params" and budget.probed and budget.is_linear
    assert space.probes["params"].exact
    for arch in space.iter_architectures():
        assert space.cost(arch, "params") == measured(space, "linear", arch)
    # 24 architectures, each known exactly; the QUBO gets per-value costs only
    assert space.within_budget({"a": 8, "b": 5, "act": "relu"})
    assert not space.within_budget({"a": 16, "b": 1, "act": "relu"})


def test_a_width_by_depth_pair_becomes_a_pair_table(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, TOWER))
    budget = space.budgets[0]
    assert [(p.first, p.second) for p in budget.pairs] == [("width", "depth")]
    assert budget.exact is None and space.probes["params"].exact
    for arch in space.iter_architectures():
        assert space.cost(arch, "params") == measured(space, "tower", arch)


def test_flops_are_twice_the_counted_macs(tmp_path: Path) -> None:
    space = load_spec(
        write(tmp_path, TOWER.replace("kind: params, max: 1500", "kind: flops, max: 3000"))
    )
    assert space.budgets[0].name == "flops"
    for arch in space.iter_architectures():
        assert space.cost(arch, "flops") == measured(space, "tower", arch, "flops")


def test_a_cost_of_no_low_order_is_checked_by_building_each_candidate(tmp_path: Path) -> None:
    with pytest.warns(QoptBudgetWarning, match="not a sum of single-choice and pair costs"):
        space = load_spec(write(tmp_path, CONVS))
    budget = space.budgets[0]
    assert budget.exact == "builder" and not space.probes["params"].exact
    fit = space.probes["params"]
    misjudged = 0
    for arch in space.iter_architectures():
        real = measured(space, "convs", arch)
        assert space.within_budget(arch) == (real <= 2000)
        assert space.cost(arch, "params") == real
        misjudged += (fit.predict(space.positions(arch)) <= 2000) != (real <= 2000)
    assert misjudged > 0  # the fit alone would misjudge: the measured check is what holds
    # the QUBO's relaxation is below every architecture probed
    assert all(
        fit.predict(dict(zip(space.choices, k, strict=True))) <= v for k, v in fit.measured.items()
    )
    # repair lands within the measured budget
    repaired = space.repair({"c1": 16, "c2": 16, "k": 5}, rng=np.random.default_rng(0))
    assert measured(space, "convs", repaired) <= 2000


def test_the_warning_is_said_once(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        space = load_spec(write(tmp_path, CONVS))
        for arch in space.iter_architectures():
            space.within_budget(arch)
    assert sum(issubclass(w.category, QoptBudgetWarning) for w in caught) == 1


def test_a_saved_spec_is_not_probed_again(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, TOWER))
    saved = json.loads(json.dumps(space.to_dict()))
    assert saved["budgets"][0]["probed"] is True and saved["build"] == "tests.nas._builders:tower"
    before = _builders.BUILDS.get("tower", 0)
    again = SearchSpace.from_dict(saved)
    assert _builders.BUILDS.get("tower", 0) == before
    assert again.to_dict() == space.to_dict()
    assert all(
        again.cost(a, "params") == space.cost(a, "params") for a in space.iter_architectures()
    )


def test_probe_builds_are_bounded(tmp_path: Path) -> None:
    before = _builders.BUILDS.get("linear", 0)
    space = load_spec(write(tmp_path, LINEAR))
    builds = _builders.BUILDS["linear"] - before
    # base + single changes (3 + 2 + 1) + one screen per pair (3) + at most 20 checks
    assert builds == space.probes["params"].builds <= 1 + 6 + 3 + 20


def test_hand_written_costs_that_disagree_say_where(tmp_path: Path) -> None:
    # The tower's params without the width x depth weights: right at depth 1, wrong beyond.
    text = TOWER.replace(
        "  - {kind: params, max: 1500}\n",
        "  - name: params\n    kind: params\n    max: 1500\n    constant: 3\n"
        "    costs: {width: {4: 48, 8: 96, 16: 192, 32: 384}}\n",
    )
    with pytest.raises(InvalidProblemError) as error:
        load_spec(write(tmp_path, text))
    message = str(error.value)
    assert "spec key 'budgets[0]'" in message and "disagree" in message
    assert "'depth' = 2" in message and "the costs say 51" in message and "has 71" in message
    assert "Leave out 'costs'" in message


def test_hand_written_costs_that_agree_are_kept(tmp_path: Path) -> None:
    derived = load_spec(write(tmp_path, TOWER)).budgets[0].to_dict()
    derived.pop("probed")
    text = TOWER.replace("  - {kind: params, max: 1500}\n", f"  - {json.dumps(derived)}\n")
    space = load_spec(write(tmp_path, text))
    assert space.probes["params"].builds > 0
    # kept as written: the saved spec is the spec (a resume compares the two)
    assert "probed" not in space.to_dict()["budgets"][0]
    # a saved spec is read as it is: no probe builds (workers, status, resume)
    before = _builders.BUILDS.get("tower", 0)
    SearchSpace.from_dict(space.to_dict())
    assert _builders.BUILDS.get("tower", 0) == before


def test_a_builder_that_fails_on_a_probe_names_the_architecture(tmp_path: Path) -> None:
    text = TOWER.replace("_builders:tower", "_builders:fails_at_depth_3")
    with pytest.raises(BuilderError, match=r"budgets\[0\].*depth': 3.*depth 3 is not implemented"):
        load_spec(write(tmp_path, text))


def test_flops_of_a_model_without_an_example_input_say_what_to_add(tmp_path: Path) -> None:
    text = (
        "choices:\n  - {name: width, type: ordinal, values: [4, 8]}\n"
        "budgets:\n  - {kind: flops, max: 100}\nbuild: tests.nas._builders:no_example\n"
    )
    with pytest.raises(BuilderError, match="example_input_array"):
        load_spec(write(tmp_path, text))


def test_max_only_without_a_builder_says_what_to_add(tmp_path: Path) -> None:
    text = LINEAR.replace("build: tests.nas._builders:linear\n", "")
    with pytest.raises(InvalidProblemError, match=r"add 'build: package\.module:function'"):
        load_spec(write(tmp_path, text))
    with pytest.raises(InvalidProblemError, match="neither per-choice 'costs' nor 'pairs'"):
        load_spec(write(tmp_path, LINEAR.replace("kind: params", "kind: latency")))


def run_cli(*argv: str) -> str:
    parser = argparse.ArgumentParser(prog="qopt")
    add_nas_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nas", *argv])
    out = io.StringIO()
    assert args.run(args, out) == 0, out.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("sampler", ["qubo", "random"])
def test_qopt_nas_with_max_only_never_evaluates_over_budget(tmp_path: Path, sampler: str) -> None:
    spec = write(tmp_path, TOWER)
    run_dir = tmp_path / "run"
    text = run_cli(
        str(spec),
        "--run-dir",
        str(run_dir),
        "--trials",
        "12",
        "--seed",
        "1",
        "--sampler",
        sampler,
        "--no-progress",
    )
    assert "12 evaluated" in text and "0 evaluated over budget" in text
    study, _, _ = load_run(run_dir)
    evaluated = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(evaluated) == 12
    sizes = [measured(None, "tower", trial_architecture(t)) for t in evaluated]
    assert max(sizes) <= 1500
    # the search pressed on the budget: its largest model is close to it
    assert max(sizes) >= 1000


def test_run_search_on_a_linear_derived_budget_rejects_nothing(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, LINEAR + "objectives: [{name: loss}]\n"))
    summary = run_search(
        space,
        sampler="qubo",
        n_trials=10,
        seed=0,
        objective=lambda a: -(a["a"] * 6 + a["b"] * 4),
    )
    # a linear budget is a constraint of the QUBO: no proposal over it, none rejected
    assert summary.n_rejected == 0 and summary.n_over_budget_evaluated == 0


def test_a_measured_budget_holds_in_a_search(tmp_path: Path) -> None:
    with pytest.warns(QoptBudgetWarning):
        space = load_spec(write(tmp_path, CONVS + "objectives: [{name: loss}]\n"))

    def size_loss(arch: dict) -> float:
        return -measured(space, "convs", arch)

    summary = run_search(space, sampler="qubo", n_trials=10, seed=0, objective=size_loss)
    assert summary.n_over_budget_evaluated == 0
    assert -summary.best[0]["values"]["loss"] <= 2000


def test_a_saved_measured_budget_finds_its_builder_once_base_dir_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_convs.py").write_text(
        "from tests.nas._builders import convs as build\n", encoding="utf-8"
    )
    text = CONVS.replace("tests.nas._builders:convs", "my_convs:build")
    with pytest.warns(QoptBudgetWarning):
        saved = load_spec(write(tmp_path, text)).to_dict()
    # a new process: the spec's folder is not on sys.path, its module not imported
    monkeypatch.setattr("sys.path", [p for p in sys.path if p != str(tmp_path)])
    monkeypatch.delitem(sys.modules, "my_convs")
    again = SearchSpace.from_dict(saved)  # builds nothing yet
    again.base_dir = tmp_path
    arch = {"c1": 16, "c2": 16, "k": 5}
    assert again.cost(arch, "params") == measured(again, "convs", arch)
    assert again.within_budget(again.anchor)


def test_a_long_probe_reports_its_progress(tmp_path: Path) -> None:
    # 1 + 99 + 99 + 1 single changes + 3 pair screens + 20 checks: a progress bar's worth
    text = LINEAR.replace("values: [2, 4, 8, 16]", f"values: {list(range(1, 101))}").replace(
        "values: [1, 3, 5]", f"values: {list(range(1, 101))}"
    )
    seen: list[tuple[int, int]] = []
    from qopt.nas import _builder

    original = _builder.fit_choice_cost

    def recording(measure, sizes, *, progress=None, **options):  # type: ignore[no-untyped-def]
        def both(done: int, planned: int) -> None:
            seen.append((done, planned))
            assert progress is not None
            progress(done, planned)

        return original(measure, sizes, progress=both, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_builder, "fit_choice_cost", recording)
        space = load_spec(write(tmp_path, text.replace("max: 90", "max: 2000")))
    assert space.probes["params"].exact
    assert seen[-1][0] == space.probes["params"].builds >= 200
    assert all(done <= planned for done, planned in seen)
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))
