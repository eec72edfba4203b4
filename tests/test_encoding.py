"""qopt.encoding: round trips, repair, constraints into the QUBO, start designs."""

from __future__ import annotations

import itertools
import math
from typing import Any

import dimod
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.encoding import (
    CategoricalParameter,
    DenseEnergy,
    FloatParameter,
    IntParameter,
    Parameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.pipeline import solve

SCHEMES = st.sampled_from(["auto", "one-hot", "domain-wall"])


@st.composite
def parameters(draw: st.DrawFn) -> Parameter:
    kind = draw(
        st.sampled_from(["categorical", "int", "int-log", "float", "float-step", "float-log"])
    )
    if kind == "categorical":
        n = draw(st.integers(1, 6))
        return CategoricalParameter(
            tuple(draw(st.permutations(["a", 1, 2.5, None, True, "z"])))[:n]
        )
    if kind == "int":
        low = draw(st.integers(-20, 20))
        return IntParameter(low, low + draw(st.integers(0, 60)), step=draw(st.integers(1, 4)))
    if kind == "int-log":
        low = draw(st.integers(1, 10))
        return IntParameter(low, low + draw(st.integers(0, 500)), log=True)
    if kind == "float":
        low = draw(st.floats(-100, 100))
        return FloatParameter(low, low + draw(st.floats(0, 50)))
    if kind == "float-step":
        low = draw(st.integers(-50, 50)) / 10
        step = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
        return FloatParameter(low, low + step * draw(st.integers(0, 80)), step=step)
    low = draw(st.floats(1e-6, 10))
    return FloatParameter(low, low * draw(st.floats(1, 1e4)), log=True)


@st.composite
def spaces(draw: st.DrawFn) -> SpaceEncoding:
    params = draw(st.lists(parameters(), min_size=1, max_size=4))
    names = [f"p{i}" for i in range(len(params))]
    return SpaceEncoding(
        dict(zip(names, params, strict=True)),
        scheme=draw(SCHEMES),
        n_bins=draw(st.integers(2, 12)),
        max_values=draw(st.integers(2, 40)),
    )


@settings(max_examples=150, deadline=None)
@given(space=spaces(), data=st.data())
def test_decode_encode_round_trip(space: SpaceEncoding, data: st.DataObject) -> None:
    indices = {n: data.draw(st.integers(0, p.n_values - 1)) for n, p in space.parameters.items()}
    values = space.values_of(indices)
    bits = space.encode(values)
    assert bits.shape == (space.n_bits,) and space.is_valid(bits)
    decoded = space.decode(bits)
    for name, value in values.items():
        assert decoded[name] is value or decoded[name] == value
        assert type(decoded[name]) is type(value)
    assert space.decode_indices(bits) == indices


@settings(max_examples=150, deadline=None)
@given(space=spaces(), data=st.data())
def test_every_bit_pattern_repairs_to_a_valid_point(
    space: SpaceEncoding, data: st.DataObject
) -> None:
    bits = np.array(
        data.draw(st.lists(st.integers(0, 1), min_size=space.n_bits, max_size=space.n_bits))
    )
    repaired = space.repair(bits)
    assert space.is_valid(repaired)
    point = space.decode(repaired)
    for name, p in space.parameters.items():
        assert point[name] in p.values
        if not isinstance(p.parameter, CategoricalParameter):
            assert p.parameter.low <= point[name] <= p.parameter.high
    if space.is_valid(bits):
        assert (repaired == bits).all()  # repair leaves valid patterns alone


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    budget=st.integers(4, 20),
    data=st.data(),
)
def test_repair_satisfies_linear_constraints(
    widths: list[int], budget: int, data: st.DataObject
) -> None:
    params = {f"w{i}": IntParameter(1, 8) for i in range(len(widths))}
    constraint = ParameterConstraint({f"w{i}": c for i, c in enumerate(widths)}, ub=budget)
    if sum(widths) > budget:  # even all-ones exceeds the budget
        with pytest.raises(InvalidProblemError, match="smallest possible value"):
            SpaceEncoding(params, constraints=[constraint])
        return
    space = SpaceEncoding(params, constraints=[constraint])
    bits = np.array(
        data.draw(st.lists(st.integers(0, 1), min_size=space.n_bits, max_size=space.n_bits))
    )
    point = space.decode(space.repair(bits))
    assert sum(c * point[n] for n, c in constraint.terms.items()) <= budget
    assert space.is_feasible(point)


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=3),
    scheme=SCHEMES,
    data=st.data(),
)
def test_feasible_rows_are_exactly_the_rows_repair_leaves_alone(
    widths: list[int], scheme: str, data: st.DataObject
) -> None:
    params: dict[str, Parameter] = {f"w{i}": IntParameter(1, 5) for i in range(len(widths))}
    params["op"] = CategoricalParameter(("a", "b", "c"))
    budget = ParameterConstraint(
        {**{f"w{i}": c for i, c in enumerate(widths)}, "op": {"a": 2}}, ub=3 * sum(widths)
    )
    space = SpaceEncoding(params, scheme=scheme, constraints=[budget])
    rows = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(0, 1), min_size=space.n_bits, max_size=space.n_bits),
                min_size=1,
                max_size=8,
            )
        ),
        dtype=np.int8,
    )
    feasible = space.feasible_rows(rows)
    for row, ok in zip(rows, feasible, strict=True):
        repaired = space.repair(row)
        assert space.feasible_rows(repaired[None, :])[0]  # every repaired sample is feasible
        assert ok == bool((repaired == row).all())
        assert ok == (space.is_valid(row) and space.is_feasible(space.decode(row)))


def test_the_pipeline_never_selects_a_broken_domain_wall() -> None:
    """Domain walls are penalties in the QUBO; the formulation's feasibility check makes a
    read that breaks one infeasible, so the pipeline repairs it before selecting."""
    space = SpaceEncoding({"x": IntParameter(0, 3), "y": IntParameter(0, 3)})
    # The objective rewards x's pattern 0 1 1 (broken) more than the wall penalty costs.
    objective = dimod.BinaryQuadraticModel({1: -50.0, 2: -50.0, 3: 1.0}, {}, 0.0, "BINARY")
    formulation = space.formulation(objective, penalty=1.0)
    # A tiny penalty makes the broken pattern the lowest-energy read of the penalized BQM.
    solution = solve(formulation, "exact")
    assert solution.feasible and space.is_valid(list(solution.sample.values()))
    assert solution.value == space.decode(space.encode(solution.value))


@settings(max_examples=60, deadline=None)
@given(value=st.floats(1e-7, 1.0), n_bins=st.integers(2, 20))
def test_off_grid_values_snap_to_the_nearest_point_on_the_log_scale(
    value: float, n_bins: int
) -> None:
    space = SpaceEncoding({"lr": FloatParameter(1e-7, 1.0, log=True)}, n_bins=n_bins)
    grid = np.array(space.parameters["lr"].values)
    snapped = space.decode(space.encode({"lr": value}))["lr"]
    assert np.abs(np.log(grid) - math.log(value)).min() == pytest.approx(
        abs(math.log(snapped) - math.log(value))
    )


def test_auto_scheme_and_bit_counts() -> None:
    space = SpaceEncoding(
        {
            "opt": CategoricalParameter(("adam", "sgd", "rmsprop")),
            "flag": CategoricalParameter((True, False)),
            "layers": IntParameter(1, 8),
            "lr": FloatParameter(1e-4, 1e-1, log=True),
            "fixed": IntParameter(3, 3),
        },
        n_bins=5,
    )
    schemes = {n: (p.scheme, p.n_bits) for n, p in space.parameters.items()}
    assert schemes == {
        "opt": ("one-hot", 3),
        "flag": ("domain-wall", 1),
        "layers": ("domain-wall", 7),
        "lr": ("domain-wall", 4),
        "fixed": ("domain-wall", 0),
    }
    assert space.n_bits == 15 and space.size == 3 * 2 * 8 * 5
    assert space.parameters["lr"].values == (
        1e-4,
        0.000562341325190,
        0.00316227766017,
        0.0177827941004,
        0.1,
    )
    assert space.bit_labels[:5] == [
        "opt='adam'",
        "opt='sgd'",
        "opt='rmsprop'",
        "flag>=False",
        "layers>=2",
    ]


def test_stepped_and_thinned_grids_stay_on_the_lattice() -> None:
    space = SpaceEncoding(
        {"x": FloatParameter(-10.2, 10.2, step=0.1), "n": IntParameter(0, 1000, step=5)},
        max_values=16,
    )
    x = np.array(space.parameters["x"].values)
    assert len(x) == 16 and x[0] == -10.2 and x[-1] == 10.2
    np.testing.assert_allclose((x + 10.2) / 0.1, np.round((x + 10.2) / 0.1), atol=1e-7)
    n = space.parameters["n"].values
    assert n[0] == 0 and n[-1] == 1000 and all(v % 5 == 0 for v in n)


def test_domain_wall_penalty_makes_every_minimum_valid() -> None:
    space = SpaceEncoding({"a": IntParameter(0, 4), "b": IntParameter(0, 3)})
    rng = np.random.default_rng(0)
    objective = dimod.BinaryQuadraticModel(
        rng.normal(size=space.n_bits),
        {(i, j): rng.normal() for i, j in itertools.combinations(range(space.n_bits), 2)},
        0,
        "BINARY",
    )
    bqm = space.constrained_qubo(objective).to_bqm()
    ground = dimod.ExactSolver().sample(bqm).first.sample
    assert space.is_valid([ground[i] for i in range(space.n_bits)])
    # The penalty is zero on valid patterns: energies there equal the objective's.
    for a, b in [(0, 0), (2, 3), (4, 1)]:
        bits = space.encode({"a": a, "b": b})
        sample = {i: int(x) for i, x in enumerate(bits)}
        assert bqm.energy(sample) == pytest.approx(objective.energy(sample))


def test_constraints_go_into_the_qubo_and_the_pipeline_returns_feasible_points() -> None:
    space = SpaceEncoding(
        {
            "w1": IntParameter(8, 64, step=8),
            "w2": IntParameter(8, 64, step=8),
            "act": CategoricalParameter(("relu", "gelu", "tanh")),
        },
        constraints=[ParameterConstraint({"w1": 1, "w2": 2}, ub=96, label="budget")],
    )
    # Reward wide layers: the unconstrained optimum (64, 64) breaks the budget.
    objective = dimod.BinaryQuadraticModel("BINARY")
    for name in ("w1", "w2"):
        p = space.parameters[name]
        _, coefficients = p.value_coefficients()
        for j, c in enumerate(coefficients):
            objective.add_linear(p.offset + j, -c)
    model = space.constrained_qubo(objective)
    assert "budget" in model.constraints and "one-hot act" in model.constraints
    solution = solve(space.formulation(objective), "sa", seed=1, num_reads=20)
    point = solution.value
    assert point["w1"] + 2 * point["w2"] <= 96
    assert point["w1"] + 2 * point["w2"] >= 88  # the budget is used: the QUBO saw it


def test_infeasible_and_bad_constraints_name_the_parameters() -> None:
    params = {
        "a": IntParameter(5, 10),
        "b": IntParameter(5, 10),
        "c": CategoricalParameter(("x", "y")),
    }
    with pytest.raises(
        InvalidProblemError, match=r"'a', 'b'.*smallest possible value is 10 > ub=9"
    ):
        SpaceEncoding(params, constraints=[ParameterConstraint({"a": 1, "b": 1}, ub=9)])
    with pytest.raises(InvalidProblemError, match="largest possible value"):
        SpaceEncoding(params, constraints=[ParameterConstraint({"a": 1}, lb=11)])
    with pytest.raises(InvalidProblemError, match="categorical parameter 'c'"):
        SpaceEncoding(params, constraints=[ParameterConstraint({"c": 1}, ub=1)])
    with pytest.raises(InvalidProblemError, match="parameter 'd'"):
        SpaceEncoding(params, constraints=[ParameterConstraint({"d": 1}, ub=1)])
    with pytest.raises(InvalidProblemError, match=r"lb=3\.0 > ub=1\.0"):
        ParameterConstraint({"a": 1}, lb=3, ub=1)
    with pytest.raises(SolverConfigurationError, match="'scheme' parameter"):
        SpaceEncoding(params, scheme="binary")
    with pytest.raises(SolverConfigurationError, match=r"unknown parameter\(s\) \['z'\]"):
        SpaceEncoding(params, schemes={"z": "one-hot"})
    with pytest.raises(InvalidProblemError, match="not a choice of parameter 'c'"):
        SpaceEncoding(params).encode({"a": 5, "b": 5, "c": "w"})
    with pytest.raises(InvalidProblemError, match="not a valid one-hot pattern"):
        SpaceEncoding(params, scheme="one-hot").decode([0] * 14)
    with pytest.raises(InvalidProblemError, match="log-scaled"):
        FloatParameter(0.0, 1.0, log=True)


@pytest.mark.parametrize("n", [3, 8, 20])
def test_space_filling_turns_every_bit_on_and_off(n: int) -> None:
    space = SpaceEncoding(
        {
            "opt": CategoricalParameter(tuple("abcdef")),
            "depth": IntParameter(1, 12),
            "lr": FloatParameter(1e-4, 1.0, log=True),
        },
        n_bins=8,
    )
    size = max(n, space.coverage_size())
    design = space.space_filling(size, np.random.default_rng(n))
    bits = np.array([space.encode_indices(p) for p in design])
    assert bits.max(axis=0).all() and not bits.min(axis=0).any()
    assert len({tuple(p.values()) for p in design}) == size  # no duplicates


def test_neighbours_step_ordered_parameters_by_one() -> None:
    space = SpaceEncoding(
        {"depth": IntParameter(1, 5), "opt": CategoricalParameter(("a", "b", "c"))}
    )
    moves = space.neighbours({"depth": 0, "opt": 1})
    assert {"depth": 1, "opt": 1} in moves and {"depth": 0, "opt": 0} in moves
    assert len(moves) == 1 + 2


# ---------------------------------------------------------------- per-value costs (#5)
@st.composite
def costed_spaces(draw: st.DrawFn) -> tuple[SpaceEncoding, ParameterConstraint]:
    """Small spaces with a constraint mixing per-value, positional and coefficient terms."""
    scale = draw(st.sampled_from([1.0, 0.25, 0.01]))
    parameters: dict[str, Parameter] = {}
    terms: dict[str, object] = {}
    for i in range(draw(st.integers(1, 3))):
        name = f"p{i}"
        if draw(st.booleans()):
            choices = ("conv3x3", "conv1x1", "skip", "none")[: draw(st.integers(1, 4))]
            parameters[name] = CategoricalParameter(choices)
            costs = [draw(st.integers(0, 6)) * scale for _ in choices]
            if draw(st.booleans()):
                terms[name] = dict(zip(choices, costs, strict=True))
            else:
                terms[name] = costs
        else:
            low, step = draw(st.integers(-2, 3)), draw(st.integers(1, 2))
            parameter = IntParameter(low, low + step * draw(st.integers(0, 3)), step=step)
            parameters[name] = parameter
            values = list(range(parameter.low, parameter.high + 1, step))
            form = draw(st.sampled_from(["coefficient", "mapping", "positions"]))
            if form == "coefficient":
                terms[name] = draw(st.integers(-3, 3)) * scale
            else:
                costs = [draw(st.integers(-3, 6)) * scale for _ in values]
                terms[name] = (
                    costs if form == "positions" else dict(zip(values, costs, strict=True))
                )
    space = SpaceEncoding(parameters, scheme=draw(SCHEMES))
    # Bounds between the smallest and largest total, so the constraint is satisfiable.
    totals = sorted(
        {
            round(sum(_contribution(space, terms, n, v) for n, v in point.items()), 9)
            for point in _points(space)
        }
    )
    ub = draw(st.sampled_from(totals))
    lb = draw(st.one_of(st.none(), st.sampled_from([t for t in totals if t <= ub])))
    constraint = ParameterConstraint(terms, lb=lb, ub=ub, label="budget")  # type: ignore[arg-type]
    return SpaceEncoding(parameters, scheme=space.scheme, constraints=[constraint]), constraint


def _points(space: SpaceEncoding) -> list[dict[str, object]]:
    names = list(space.parameters)
    grids = [space.parameters[n].values for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grids)]


def _contribution(
    space: SpaceEncoding, terms: dict[str, object], name: str, value: object
) -> float:
    """A term's value computed independently of the encoding under test."""
    term = terms[name]
    if isinstance(term, float):
        return term * float(value)  # type: ignore[arg-type]
    p = space.parameters[name].parameter
    declared = (
        list(p.choices)
        if isinstance(p, CategoricalParameter)
        else list(range(p.low, p.high + 1, p.step))  # type: ignore[union-attr, arg-type]
    )
    if isinstance(term, dict):
        return float(term.get(value, 0.0))
    return float(term[declared.index(value)])  # type: ignore[index]


@settings(max_examples=60, deadline=None)
@given(case=costed_spaces())
def test_per_value_cost_penalty_is_zero_exactly_on_feasible_assignments(
    case: tuple[SpaceEncoding, ParameterConstraint],
) -> None:
    space, constraint = case
    bqm = space.constrained_qubo(dimod.BinaryQuadraticModel("BINARY")).to_bqm()
    decision = list(range(space.n_bits))
    slack = [v for v in bqm.variables if v not in set(decision)]
    assert len(decision) + len(slack) <= 20
    rows = np.array(list(itertools.product([0, 1], repeat=len(decision))), dtype=np.int8)
    fills = np.array(list(itertools.product([0, 1], repeat=len(slack))), dtype=np.int8)
    full = np.hstack([np.repeat(rows, len(fills), axis=0), np.tile(fills, (len(rows), 1))])
    energies = bqm.energies((full, decision + slack)).reshape(len(rows), len(fills))
    penalty = energies.min(axis=1)  # the best slack setting for each decision pattern
    assert penalty.min() >= -1e-9  # a penalty never rewards
    terms = dict(constraint.terms)
    for bits, p in zip(rows, penalty, strict=True):
        feasible = False
        if space.is_valid(bits):
            point = space.decode(bits)
            total = sum(_contribution(space, terms, n, v) for n, v in point.items())
            feasible = constraint.violation(total) <= 1e-9
            assert feasible == space.is_feasible(point)
            assert space.constraint_totals(point)["'budget'"] == pytest.approx(total)
        assert (abs(p) <= 1e-9) == feasible, (bits.tolist(), p, feasible)


def test_per_value_costs_on_a_categorical_reach_the_solver() -> None:
    # NAS-Bench-201-like: two edges, each op adds parameters; at most one 3x3 convolution.
    ops = ("none", "skip", "conv1x1", "conv3x3")
    costs = {"conv1x1": 0.05, "conv3x3": 0.12}
    space = SpaceEncoding(
        {"op_1": CategoricalParameter(ops), "op_2": CategoricalParameter(ops)},
        constraints=[ParameterConstraint({"op_1": costs, "op_2": costs}, ub=0.17, label="params")],
    )
    # Reward convolutions: the unconstrained optimum (conv3x3, conv3x3) costs 0.24.
    objective = dimod.BinaryQuadraticModel("BINARY")
    for name in ("op_1", "op_2"):
        p = space.parameters[name]
        for k, op in enumerate(p.values):
            objective.add_linear(p.offset + k, -{"conv3x3": 3.0, "conv1x1": 2.0}.get(op, 0.0))
    solution = solve(space.formulation(objective), "sa", seed=0, num_reads=30)
    assert sorted(solution.value.values()) == ["conv1x1", "conv3x3"]
    assert space.is_feasible(solution.value)
    assert not space.is_feasible({"op_1": "conv3x3", "op_2": "conv3x3"})


def test_per_value_cost_forms_agree_and_bad_terms_are_named() -> None:
    ops = ("conv", "skip", "none")
    by_value = ParameterConstraint({"op": {"conv": 3.0, "skip": 1.0}}, ub=2, label="c")
    by_position = ParameterConstraint({"op": [3.0, 1.0, 0.0]}, ub=2, label="c")
    assert by_value.with_positions({"op": ops}) == by_position
    a = SpaceEncoding({"op": CategoricalParameter(ops)}, constraints=[by_value])
    b = SpaceEncoding({"op": CategoricalParameter(ops)}, constraints=[by_position])
    assert [a.is_feasible({"op": o}) for o in ops] == [False, True, True]
    assert [b.is_feasible({"op": o}) for o in ops] == [False, True, True]
    # Int parameters: costs keyed by value, off-grid (thinned) values are never proposed.
    width = SpaceEncoding(
        {"w": IntParameter(8, 64, step=8)},
        constraints=[ParameterConstraint({"w": {64: 10.0, 56: 10.0}}, ub=5)],
    )
    assert [width.is_feasible({"w": v}) for v in (48, 56, 64)] == [True, False, False]
    assert ParameterConstraint({"op": {"conv": 2}}, ub=1).contribution("op", "conv") == 2.0
    with pytest.raises(
        InvalidProblemError, match="'swish', which is not a value of parameter 'op'"
    ):
        SpaceEncoding(
            {"op": CategoricalParameter(ops)},
            constraints=[ParameterConstraint({"op": {"swish": 1}}, ub=1)],
        )
    with pytest.raises(InvalidProblemError, match="2 costs by position; it has 3 values"):
        SpaceEncoding(
            {"op": CategoricalParameter(ops)},
            constraints=[ParameterConstraint({"op": [1, 2]}, ub=1)],
        )
    with pytest.raises(InvalidProblemError, match="float parameter 'x' per-value costs"):
        SpaceEncoding(
            {"x": FloatParameter(0, 1)}, constraints=[ParameterConstraint({"x": {0.0: 1}}, ub=1)]
        )
    with pytest.raises(InvalidProblemError, match="65, which is not a value"):
        SpaceEncoding(
            {"w": IntParameter(8, 64, step=8)},
            constraints=[ParameterConstraint({"w": {65: 1}}, ub=1)],
        )
    with pytest.raises(InvalidProblemError, match="non-finite"):
        ParameterConstraint({"op": {"conv": math.inf}}, ub=1)
    with pytest.raises(InvalidProblemError, match="costs must be numbers"):
        ParameterConstraint({"op": {"conv": "big"}}, ub=1)
    with pytest.raises(InvalidProblemError, match="empty table"):
        ParameterConstraint({"op": {}}, ub=1)
    with pytest.raises(InvalidProblemError, match="not a choice of parameter 'op'"):
        by_value.with_positions({"op": ("skip", "none")})


def test_dense_energy_matches_the_bqm_and_leaves_out_slack() -> None:
    rng = np.random.default_rng(0)
    labels: list[Any] = [*range(6), "slack"]
    bqm = dimod.BinaryQuadraticModel(
        {v: rng.normal() for v in labels},
        {
            (u, v): rng.normal()
            for u in labels
            for v in labels
            if str(u) < str(v) and rng.random() < 0.6
        },
        1.5,
        dimod.BINARY,
    )
    energy = DenseEnergy(bqm, 6)
    for _ in range(20):
        x = rng.integers(0, 2, size=6)
        assert energy.of(x) + bqm.offset == pytest.approx(
            bqm.energy({**dict(enumerate(x)), "slack": 0})
        )
    row = rng.integers(0, 2, size=6)
    patterns = np.eye(3, dtype=np.int8)
    scores = energy.group_scores(row, slice(0, 3), patterns)
    for k, p in enumerate(patterns):
        full = row.copy()
        full[:3] = p
        assert scores[k] == pytest.approx(energy.of(full) - energy.of(np.r_[0, 0, 0, row[3:]]))


def test_wall_strength_is_twice_the_largest_reach_of_one_bit() -> None:
    space = SpaceEncoding({"a": IntParameter(0, 4), "b": IntParameter(0, 3)}, scheme="domain-wall")
    rng = np.random.default_rng(2)
    labels: list[Any] = [*range(space.n_bits), "slack", 99]
    bqm = dimod.BinaryQuadraticModel(
        {v: rng.normal() for v in labels},
        {(u, v): rng.normal() for u in labels for v in labels if str(u) < str(v)},
        0.0,
        dimod.BINARY,
    )
    reach = [
        abs(bqm.get_linear(i)) + sum(abs(b) for b in bqm.adj[i].values())
        for i in range(space.n_bits)
    ]
    assert space.wall_penalty_strength(bqm) == pytest.approx(2 * max(reach))
    assert space.wall_penalty_strength(dimod.BinaryQuadraticModel(dimod.BINARY)) == 1.0
