"""The spec schema: every malformed spec is an InvalidProblemError naming the key and line."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError
from qopt.nas import Budget, Choice, Objective, PairCost, SearchSpace, Training
from qopt.nas._schema import (
    BudgetSection,
    ChoiceSection,
    ObjectiveSection,
    PairSection,
    TrainSection,
    key_path,
)

VALID: dict[str, Any] = {
    "name": "toy",
    "choices": [
        {"name": "w1", "type": "int", "low": 16, "high": 64, "step": 16},
        {"name": "act", "type": "categorical", "values": ["relu", "gelu"]},
    ],
    "budgets": [
        {
            "name": "params",
            "max": 3000,
            "costs": {"act": {"gelu": 5}},
            "pairs": [{"between": ["w1", "w1"], "coefficient": 1.0}],
        }
    ],
    "objectives": [{"name": "loss"}],
    "train": {"max_epochs": 2},
}


def test_objects_built_in_python_are_checked_by_the_same_sections() -> None:
    with pytest.raises(InvalidProblemError, match=r"Budget 'b' \(costs\.op\.a\).*finite"):
        Budget("b", 1.0, costs={"op": {"a": float("nan")}})
    with pytest.raises(InvalidProblemError, match=r"^PairCost between 'a' and 'b': give exactly"):
        PairCost("a", "b", coefficient=1.0, table=((1.0,),))
    with pytest.raises(InvalidProblemError, match=r"^Choice 'op' \(type\): unknown choice type"):
        Choice("op", "conv", ("a",))
    with pytest.raises(InvalidProblemError, match=r"^Training \(pruner\): unknown pruner"):
        Training(pruner="hyperband")
    # What each object writes is what its section reads.
    objects = [
        (Choice.integers("w", 1, 3), ChoiceSection),
        (PairCost("w", "v", table=((1, 2), (3, 4))), PairSection),
        (
            Budget("b", 2, costs={"w": {1: 0.5}}, constant=1, exact="benchmark:x:params"),
            BudgetSection,
        ),
        (Training(max_time_s=3.5, data="m:f"), TrainSection),
    ]
    for thing, section in objects:
        assert section.model_validate(thing.to_dict())  # type: ignore[attr-defined]
    assert ObjectiveSection.model_validate({"name": "acc", "direction": "maximize"})
    assert Objective("acc", "maximize").direction == "maximize"


def test_key_path() -> None:
    assert key_path(("budgets", 0, "pairs", 1, "table")) == "budgets[0].pairs[1].table"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*path, i))
    return found


@settings(max_examples=150, deadline=None)
@given(data=st.data(), value=JSON)
def test_any_mutated_spec_loads_or_raises_invalid_problem_error(data: Any, value: Any) -> None:
    spec = copy.deepcopy(VALID)
    path = data.draw(st.sampled_from(_paths(spec)[1:]))
    target = spec
    for part in path[:-1]:
        target = target[part]
    if data.draw(st.booleans()):
        target[path[-1]] = value
    elif isinstance(target, dict):
        del target[path[-1]]
    try:
        space = SearchSpace.from_dict(spec)
    except InvalidProblemError as error:
        assert str(error)
    else:
        assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()
