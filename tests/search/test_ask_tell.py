"""QuboSearch: the ask/tell loop without a framework."""

from __future__ import annotations

from typing import Any

import pytest

from qopt.encoding import CategoricalParameter, FloatParameter, IntParameter, ParameterConstraint
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.search import QuboSearch

FAST: dict[str, Any] = {
    "surrogate_options": {"n_epochs": 60, "n_factors": 4},
    "solver_options": {"num_reads": 4, "num_sweeps": 200},
}
PARAMETERS = {
    "x": IntParameter(0, 7),
    "op": CategoricalParameter(("conv", "pool", "skip")),
    "lr": FloatParameter(1e-3, 1.0, log=True),
}


def objective(params: dict[str, Any]) -> float:
    return (params["x"] - 5) ** 2 + (params["op"] != "skip") + abs(params["lr"] - 0.1)


def run(search: QuboSearch, n: int) -> list[dict[str, Any]]:
    asked = []
    for _ in range(n):
        params = search.ask()
        asked.append(params)
        search.tell(params, objective(params))
    return asked


def test_a_seeded_search_is_reproducible_and_finds_the_optimum_region() -> None:
    first = run(QuboSearch(PARAMETERS, seed=1, n_startup_trials=5, **FAST), 25)
    again = QuboSearch(PARAMETERS, seed=1, n_startup_trials=5, **FAST)
    assert run(again, 25) == first
    best = again.best_params()
    assert best is not None and best["x"] == 5 and best["op"] == "skip"
    keys = [tuple(p.values()) for p in first]
    assert len(set(keys)) == len(keys)  # no point asked twice


def test_asked_points_are_pending_until_told() -> None:
    search = QuboSearch({"x": IntParameter(0, 3)}, seed=0, n_startup_trials=0, **FAST)
    asked = [search.ask() for _ in range(4)]
    assert sorted(p["x"] for p in asked) == [0, 1, 2, 3]
    assert len(search.history.pending) == 4
    search.tell(asked[0], 1.0)
    assert len(search.history.pending) == 3 and len(search.history.points) == 1


def test_known_constraints_hold_and_failures_rank_worst() -> None:
    budget = ParameterConstraint({"a": 1, "b": 1}, ub=6, label="budget")
    search = QuboSearch(
        {"a": IntParameter(0, 5), "b": IntParameter(0, 5)},
        directions=["maximize"],
        constraints=[budget],
        seed=0,
        n_startup_trials=4,
        **FAST,
    )
    for _ in range(20):
        params = search.ask()
        assert params["a"] + params["b"] <= 6
        # Evaluations with a == 0 fail; the search keeps going.
        search.tell(params, None if params["a"] == 0 else params["a"] + 2 * params["b"])
    assert search.best_params() == {"a": 1, "b": 5}


def test_black_box_constraints_steer_away() -> None:
    search = QuboSearch({"x": IntParameter(0, 9)}, seed=0, n_startup_trials=3, **FAST)
    for _ in range(10):
        params = search.ask()
        search.tell(params, -params["x"], constraints=[params["x"] - 6])
    assert search.best_params() == {"x": 6}


def test_several_objectives_are_scalarized() -> None:
    search = QuboSearch(
        {"x": IntParameter(0, 7)}, directions=["minimize", "minimize"], seed=0, **FAST
    )
    for _ in range(12):
        params = search.ask()
        search.tell(params, (params["x"], 7 - params["x"]))
    assert {p["x"] for p in search.history.points} == set(range(8))
    with pytest.raises(InvalidProblemError, match="1 value"):
        search.tell({"x": 1}, 1.0)


def test_a_misspelled_keyword_is_named_with_a_close_match() -> None:
    with pytest.raises(SolverConfigurationError, match=r"\['trust_radius'\].*'trust_region'"):
        QuboSearch({"x": IntParameter(0, 3)}, trust_radius=2)


def test_configuration_errors_name_the_argument_and_the_valid_values() -> None:
    typo = ParameterConstraint({"widht": 1}, ub=3)
    with pytest.raises(InvalidProblemError, match=r"\['widht'\].*The parameters are: \['x'\]"):
        QuboSearch({"x": IntParameter(0, 3)}, constraints=[typo])
    with pytest.raises(SolverConfigurationError, match="unknown solver_options"):
        QuboSearch({"x": IntParameter(0, 3)}, solver_options={"sweeps": 3})
    with pytest.raises(SolverConfigurationError, match=r"'encodings'.*unknown parameter"):
        QuboSearch({"x": IntParameter(0, 3)}, encodings={"y": "one-hot"})
    with pytest.raises(SolverConfigurationError, match="'directions'"):
        QuboSearch({"x": IntParameter(0, 3)}, directions=["down"])
