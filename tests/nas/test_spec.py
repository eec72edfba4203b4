from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import FileFormatError, InvalidProblemError
from qopt.nas import Budget, Choice, Objective, PairCost, SearchSpace, load_spec, resolve_evaluator

SPEC = """\
name: toy
choices:
  - {name: w1, type: int, low: 16, high: 64, step: 16}
  - {name: w2, type: ordinal, values: [16, 32, 48, 64]}
  - {name: act, type: categorical, values: [relu, gelu, tanh]}
budgets:
  - name: params
    kind: params
    max: 3000
    constant: 10
    costs: {act: {gelu: 5}}
    pairs:
      - {between: [w1, w2], coefficient: 1.0}
objectives:
  - {name: loss, direction: minimize}
evaluate: tests.nas._entry:build
"""


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_spec_builds_the_object_model(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, SPEC))
    assert space.name == "toy"
    assert space.choices["w1"] == Choice("w1", "int", (16, 32, 48, 64))
    assert space.choices["w2"].kind == "ordinal"
    assert space.objectives == (Objective("loss", "minimize"),)
    assert not space.budgets[0].is_linear
    arch = {"w1": 48, "w2": 64, "act": "gelu"}
    assert space.cost(arch, "params") == 10 + 5 + 48 * 64
    assert not space.within_budget(arch)
    assert space.within_budget({"w1": 32, "w2": 64, "act": "gelu"})
    assert resolve_evaluator(space)({"w1": 48, "w2": 32, "act": "relu"}) == {"loss": 0.0}


def test_json_spec_and_round_trip(tmp_path: Path) -> None:
    space = load_spec(write(tmp_path, SPEC))
    again = load_spec(write(tmp_path, json.dumps(space.to_dict()), "space.json"))
    assert again.to_dict() == space.to_dict()
    for arch in again.iter_architectures():
        assert again.cost(arch) == space.cost(arch)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("type: ordinal", "type: ordinl", "choices[1].type' (line 4)"),
        ("values: [relu, gelu, tanh]", "values: []", "(line 5)"),
        ("max: 3000", "max: 100", "budgets[0].max' (line 9)"),
        ("tests.nas._entry:build", "tests.nas.no_such_module:build", "'evaluate' (line 16)"),
        ("tests.nas._entry:build", "tests.nas._entry:nope", "no callable 'nope'"),
        ("tests.nas._entry:build", "just_a_name", "'evaluate' (line 16)"),
        ("costs: {act: {gelu: 5}}", "costs: {act: {swish: 5}}", "'swish' is not a value"),
        ("between: [w1, w2]", "between: [w1, depth]", "choice 'depth', which is not defined"),
        # Checked by the schema (accepted, or a raw ValueError, before it).
        ("costs: {act: {gelu: 5}}", "costs: {act: {gelu: .nan}}", "costs.act.gelu' (line 11)"),
        ("costs: {act: {gelu: 5}}", "costs: {act: {gelu: five}}", "must be a valid number"),
        ("costs: {act: {gelu: 5}}", "cost: {act: {gelu: 5}}", "unknown key 'cost'"),
        ("coefficient: 1.0", "factor: 1.0", "pairs[0].factor' (line 13)"),
        ("step: 16", "step: 0", "'choices[0].step' (line 3)"),
        ("max: 3000", "max: .inf", "'budgets[0].max' (line 9): 'max' must be a finite number"),
        ("kind: params", "kind: memory", "'budgets[0].kind' (line 8): unknown budget kind"),
        ("direction: minimize", "direction: down", "use one of ['minimize', 'maximize']"),
    ],
)
def test_spec_errors_name_the_key_and_line(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in SPEC
    path = write(tmp_path, SPEC.replace(old, new))
    with pytest.raises(InvalidProblemError) as info:
        resolve_evaluator(load_spec(path))
    assert needle in str(info.value)
    assert str(path) in str(info.value) or "evaluate" in needle or "nope" in needle


def test_unknown_choice_type_says_what_to_use(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidProblemError, match=r"use one of \['categorical', 'int', 'ordinal'\]"
    ):
        load_spec(write(tmp_path, SPEC.replace("type: ordinal", "type: float")))


def test_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="not valid YAML"):
        load_spec(write(tmp_path, "choices: [a, {b"))
    with pytest.raises(FileFormatError, match="Cannot read"):
        load_spec(tmp_path / "missing.yaml")


def test_a_binary_spec_file_is_a_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(FileFormatError, match="not UTF-8 text"):
        load_spec(path)


def test_budget_infeasible_together_is_refused() -> None:
    # Each budget alone can be met, not both: w small for one, large for the other.
    w = Choice.integers("w", 1, 4)
    with pytest.raises(InvalidProblemError, match="no architecture meets every budget"):
        SearchSpace(
            [w],
            budgets=[
                Budget("a", 2, costs={"w": {v: v for v in w.values}}),
                Budget("b", -3, costs={"w": {v: -v for v in w.values}}),
            ],
        )


def test_pair_table_cost_and_wrong_shape() -> None:
    a = Choice("a", "categorical", ("x", "y"))
    b = Choice("b", "categorical", ("p", "q", "r"))
    table = ((1, 2, 3), (4, 5, 6))
    space = SearchSpace([a, b], budgets=[Budget("c", 4, pairs=(PairCost("a", "b", table=table),))])
    assert space.cost({"a": "y", "b": "q"}) == 5.0
    assert [space.within_budget(x) for x in space.iter_architectures()] == [1, 1, 1, 1, 0, 0]
    with pytest.raises(InvalidProblemError, match=r"shape \(2, 2\)"):
        SearchSpace(
            [a, b], budgets=[Budget("c", 4, pairs=(PairCost("a", "b", table=((1, 2), (3, 4))),))]
        )


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    scale=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**16),
)
def test_repair_and_random_architectures_are_within_budget(
    widths: list[int], scale: float, seed: int
) -> None:
    choices = [Choice.integers(f"w{i}", 1, n) for i, n in enumerate(widths)]
    pairs = tuple(PairCost(f"w{i}", f"w{i + 1}", coefficient=1.0) for i in range(len(widths) - 1))
    worst = sum(widths[i] * widths[i + 1] for i in range(len(widths) - 1))
    space = SearchSpace(
        choices, budgets=[Budget("params", max(len(pairs), scale * worst), pairs=pairs)]
    )
    rng = np.random.default_rng(seed)
    for arch in itertools.islice(space.iter_architectures(), 0, None, 3):
        assert space.within_budget(space.repair(arch, rng=rng))
    assert space.within_budget(space.random_architecture(rng))
    assert all(space.within_budget(n) for n in space.neighbours(space.anchor))


@pytest.mark.parametrize(
    ("train", "needle"),
    [
        ("train: {max_epochs: 0}", "spec key 'train.max_epochs' (line 17)"),
        ("train: {pruner: hyperband}", "unknown pruner 'hyperband'"),
        ("train: {epochs: 3}", "unknown key 'epochs'"),
        ("train: {data: nocolon}", "is not an entry point"),
        ("train: 3", "'train' must be a mapping"),
    ],
)
def test_train_section_errors(tmp_path: Path, train: str, needle: str) -> None:
    with pytest.raises(InvalidProblemError, match=re.escape(needle)):
        load_spec(write(tmp_path, SPEC + train + "\n"))


def test_train_section_round_trips(tmp_path: Path) -> None:
    space = load_spec(
        # kind 'cost': a 'params' budget would be checked against the module evaluate builds
        write(
            tmp_path,
            SPEC.replace("kind: params", "kind: cost")
            + "train: {max_epochs: 2, pruner: successive-halving}\n",
        )
    )
    assert space.train is not None and space.train.max_epochs == 2
    again = SearchSpace.from_dict(space.to_dict())
    assert again.train == space.train
    assert space.base_dir == tmp_path.resolve()
