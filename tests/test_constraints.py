from __future__ import annotations

import itertools
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qopt.constraints import ConstrainedQUBO, LinearConstraint
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

FAST = settings(max_examples=50, deadline=None)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "constraints.md"


# ----------------------------------------------------------------------------- helpers


def all_samples(variables: list[Hashable]) -> list[dict[Hashable, int]]:
    return [
        dict(zip(variables, bits, strict=True))
        for bits in itertools.product((0, 1), repeat=len(variables))
    ]


def brute_force_optimum(model: ConstrainedQUBO) -> float | None:
    """Lowest objective over feasible assignments, by enumeration; None if none is feasible."""
    energies = [
        model.objective_energy(s)
        for s in all_samples(list(model.variables))
        if model.is_feasible(s)
    ]
    return min(energies) if energies else None


def exact_minimum(
    model: ConstrainedQUBO, penalty: Any = "auto"
) -> tuple[dict[Hashable, int], float]:
    first = dimod.ExactSolver().sample(model.to_bqm(penalty)).first
    return {v: int(first.sample[v]) for v in model.variables}, float(first.energy)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@st.composite
def objectives(draw: st.DrawFn, max_variables: int = 6, scales: tuple[float, ...] = (1.0, 1e3)):
    n = draw(st.integers(2, max_variables))
    scale = draw(st.sampled_from(scales))
    bias = st.floats(-1.0, 1.0, allow_nan=False)
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i in range(n):
        bqm.add_variable(f"x{i}", scale * draw(bias))
    for i, j in itertools.combinations(range(n), 2):
        if draw(st.booleans()):
            bqm.add_quadratic(f"x{i}", f"x{j}", scale * draw(bias))
    return bqm


# ------------------------------------------------------------------- LinearConstraint


@FAST
@given(
    coefficients=st.lists(st.integers(-3, 3), min_size=1, max_size=5),
    rhs=st.integers(-4, 4),
    sense=st.sampled_from(["==", "<=", ">="]),
    data=st.data(),
)
def test_violation_is_nonnegative_and_zero_exactly_when_satisfied(
    coefficients: list[int], rhs: int, sense: str, data: st.DataObject
) -> None:
    terms = {f"v{i}": c for i, c in enumerate(coefficients)}
    constraint = LinearConstraint(tuple(terms.items()), sense, rhs, "c")  # type: ignore[arg-type]
    sample = {v: data.draw(st.integers(0, 1)) for v in terms}
    left = sum(c * sample[v] for v, c in terms.items())
    expected = {"==": abs(left - rhs), "<=": max(left - rhs, 0), ">=": max(rhs - left, 0)}[sense]
    assert constraint.violation(sample) == expected >= 0
    assert constraint.is_satisfied(sample) == (expected == 0)


def test_violation_is_exact_for_decimal_coefficients() -> None:
    constraint = LinearConstraint((("a", 0.1), ("b", 0.2)), "==", 0.3, "decimals")
    assert constraint.violation({"a": 1, "b": 1}) == 0.0  # 0.1 + 0.2 != 0.3 in floating point
    assert constraint.violation({"a": 1, "b": 0}) == pytest.approx(0.2)


def test_linear_constraint_str_names_terms() -> None:
    constraint = LinearConstraint((("x", 2.0), ("y", -1.0)), ">=", 1, "c")
    assert str(constraint) == "2*x - y >= 1"


# ------------------------------------------------------------- penalties: exact minima


@FAST
@given(objective=objectives(), data=st.data())
def test_one_hot_and_k_of_n_minimum_is_the_constrained_optimum(
    objective: dimod.BinaryQuadraticModel, data: st.DataObject
) -> None:
    model = ConstrainedQUBO(objective)
    names = list(objective.variables)
    for _ in range(data.draw(st.integers(1, 3))):
        group = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        if data.draw(st.booleans()):
            model.add_one_hot(group)
        else:
            model.add_k_of_n(group, data.draw(st.integers(0, len(group))))
    optimum = brute_force_optimum(model)
    assume(optimum is not None)
    sample, energy = exact_minimum(model)
    assert model.is_feasible(sample)
    assert close(energy, optimum)
    assert close(model.objective_energy(sample), optimum)


@FAST
@given(objective=objectives(max_variables=5), data=st.data())
def test_inequalities_with_slack_minimum_is_the_constrained_optimum(
    objective: dimod.BinaryQuadraticModel, data: st.DataObject
) -> None:
    model = ConstrainedQUBO(objective)
    names = list(objective.variables)
    coefficient = st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 1.5, 3.0])
    for _ in range(data.draw(st.integers(1, 2))):
        group = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
        terms = {v: data.draw(coefficient) for v in group}
        lb = data.draw(st.none() | st.sampled_from([-1.0, 0.0, 0.5, 1.0]))
        ub = data.draw(st.none() | st.sampled_from([0.0, 1.0, 1.5, 2.0, 3.0]))
        assume(lb is not None or ub is not None)
        try:
            model.add_inequality(terms, lb=lb, ub=ub)
        except InvalidProblemError:
            assume(False)  # unsatisfiable draw: its error is tested on its own below
    optimum = brute_force_optimum(model)
    assume(optimum is not None)
    bqm = model.to_bqm()
    assert set(model.variables) <= set(bqm.variables)
    sample, energy = exact_minimum(model)
    assert model.is_feasible(sample)
    assert close(energy, optimum)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_auto_penalty_holds_against_large_objective_biases(scale: float) -> None:
    # Every variable wants to be on, strongly; only one may be, and the capacity allows two.
    objective = dimod.BinaryQuadraticModel(
        {f"x{i}": -scale * (i + 1) for i in range(5)}, {}, 0.0, "BINARY"
    )
    objective.add_quadratic("x0", "x4", -scale)
    model = ConstrainedQUBO(objective)
    model.add_one_hot(["x0", "x1", "x2"], label="pick one")
    model.add_inequality({"x2": 1, "x3": 1, "x4": 1}, ub=2, label="capacity")
    sample, energy = exact_minimum(model)
    assert model.is_feasible(sample)
    assert close(energy, brute_force_optimum(model))  # type: ignore[arg-type]


def test_penalty_weights_local_rule_for_disjoint_cardinality_constraints() -> None:
    objective = dimod.BinaryQuadraticModel(
        {"a": 2.0, "b": -1.0, "c": 0.5, "d": 0.0}, {("a", "c"): -4.0}, 0.0, "BINARY"
    )
    model = ConstrainedQUBO(objective)
    model.add_one_hot(["a", "b"], label="ab")
    model.add_k_of_n(["c", "d"], 1, label="cd")
    weights = model.penalty_weights()
    guard = 1e-6 * (2.0 + 1.0 + 0.5 + 4.0)
    # Flipping a changes the objective by 2 (c=0) or 2 - 4 = -2 (c=1): at most 2; b by 1.
    assert weights["ab"] == pytest.approx(2 * 2.0 + guard)
    # Flipping c changes it by 0.5 or 0.5 - 4 = -3.5.
    assert weights["cd"] == pytest.approx(2 * 3.5 + guard)


def test_penalty_weights_global_rule_for_overlapping_constraints() -> None:
    objective = dimod.BinaryQuadraticModel(
        {"a": 2.0, "b": -1.0, "c": 0.5}, {("a", "c"): -4.0}, 0.0, "BINARY"
    )
    model = ConstrainedQUBO(objective)
    model.add_one_hot(["a", "b"], label="ab")
    model.add_inequality({"b": 1, "c": 1}, ub=1, label="bc")
    weights = model.penalty_weights()
    objective_range = 2.0 + 1.0 + 0.5 + 4.0
    assert weights == {
        "ab": pytest.approx((1.1 + 1e-6) * objective_range),
        "bc": pytest.approx((1.1 + 1e-6) * objective_range),
    }
    assert model.penalty_weights(3.0) == {"ab": 3.0, "bc": 3.0}


@FAST
@given(objective=objectives(max_variables=6), data=st.data())
def test_local_rule_leaves_no_violating_local_minimum(
    objective: dimod.BinaryQuadraticModel, data: st.DataObject
) -> None:
    # Disjoint cardinality constraints get the local rule; its proof says more than that the
    # minimum is feasible: from every violating state (slack included) one flip goes downhill.
    model = ConstrainedQUBO(objective)
    names = list(objective.variables)
    cut = data.draw(st.integers(1, len(names) - 1))
    for group in (names[:cut], names[cut:]):
        k = data.draw(st.integers(0, len(group)))
        if data.draw(st.booleans()):
            model.add_k_of_n(group, k)
        else:
            model.add_inequality({v: 1 for v in group}, ub=k)
    states = dimod.ExactSolver().sample(model.to_bqm())
    order = list(states.variables)
    energy = {
        tuple(row): e
        for row, e in zip(states.record.sample.tolist(), states.record.energy.tolist(), strict=True)
    }
    decision = [order.index(v) for v in model.variables]
    for state, e in energy.items():
        if model.is_feasible(dict(zip(model.variables, (state[i] for i in decision), strict=True))):
            continue
        neighbours = [
            energy[(*state[:i], 1 - state[i], *state[i + 1 :])] for i in range(len(state))
        ]
        assert min(neighbours) < e


@FAST
@given(
    objective=objectives(max_variables=4, scales=(1.0,)),
    penalty=st.floats(0.01, 100.0),
    data=st.data(),
)
def test_explicit_penalty_adds_penalty_times_squared_residual(
    objective: dimod.BinaryQuadraticModel, penalty: float, data: st.DataObject
) -> None:
    model = ConstrainedQUBO(objective)
    names = list(objective.variables)
    terms = {v: data.draw(st.sampled_from([-1.5, 0.5, 1.0, 2.0])) for v in names}
    rhs = data.draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0]))
    try:
        model.add_equality(terms, rhs, label="eq")
    except InvalidProblemError:
        assume(False)
    bqm = model.to_bqm(penalty)
    for sample in all_samples(names):
        residual = sum(c * sample[v] for v, c in terms.items()) - rhs
        expected = objective.energy(sample) + penalty * residual**2
        assert math.isclose(bqm.energy(sample), expected, rel_tol=1e-9, abs_tol=1e-9)


def test_always_satisfied_constraint_adds_nothing() -> None:
    model = ConstrainedQUBO(dimod.BinaryQuadraticModel({"a": 1.0, "b": 1.0}, {}, 0, "BINARY"))
    model.add_inequality({"a": 1, "b": 1}, ub=5, label="loose")
    assert model.to_bqm() == model.objective
    assert model.penalty_weights() == {"loose": 0.0}


# ------------------------------------------------------------------ slack variables


def test_slack_labels_never_collide_with_user_variables() -> None:
    taken = ["slack[cap][0]", "slack[cap][1]", "_slack[cap][0]"]
    objective = dimod.BinaryQuadraticModel({v: -1.0 for v in [*taken, "z"]}, {}, 0, "BINARY")
    model = ConstrainedQUBO(objective)
    model.add_inequality({v: 1 for v in [*taken, "z"]}, ub=2, label="cap")
    bqm = model.to_bqm()
    slack = [v for v in bqm.variables if v not in model.variables]
    assert slack == ["__slack[cap][0]", "__slack[cap][1]"]
    sample, energy = exact_minimum(model)
    assert sum(sample.values()) == 2 and energy == pytest.approx(-2.0)


def test_two_sided_inequality_uses_one_set_of_slack_bits() -> None:
    model = ConstrainedQUBO()
    model.add_inequality({f"x{i}": 1 for i in range(6)}, lb=2, ub=4, label="band")
    assert list(model.constraints) == ["band[lb]", "band[ub]"]
    bqm = model.to_bqm()
    slack = [v for v in bqm.variables if v not in model.variables]
    assert len(slack) == 2  # one range of width 2, not two one-sided ranges
    ground = dimod.ExactSolver().sample(bqm).lowest()
    counts = {sum(int(row[v]) for v in model.variables) for row in ground.samples()}
    assert counts == {2, 3, 4}


def test_unknown_variables_become_new_binaries() -> None:
    model = ConstrainedQUBO(dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0, "BINARY"))
    model.add_one_hot(["a", "new"])
    assert model.variables == ("a", "new")
    assert model.objective.linear["new"] == 0.0


def test_objective_is_copied() -> None:
    objective = dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0, "BINARY")
    model = ConstrainedQUBO(objective)
    model.add_one_hot(["a", "b"])
    assert list(objective.variables) == ["a"]


# -------------------------------------------------------------------------- CQM I/O


@FAST
@given(objective=objectives(max_variables=4, scales=(1.0,)), data=st.data())
def test_cqm_round_trip_preserves_objective_and_feasibility(
    objective: dimod.BinaryQuadraticModel, data: st.DataObject
) -> None:
    model = ConstrainedQUBO(objective)
    names = list(objective.variables)
    model.add_one_hot(data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
    terms = {v: data.draw(st.sampled_from([-1.0, 1.0, 2.0])) for v in names}
    try:
        model.add_inequality(terms, lb=data.draw(st.sampled_from([None, 0.0, 1.0])), ub=2.0)
    except InvalidProblemError:
        assume(False)

    cqm = model.to_cqm()
    back = ConstrainedQUBO.from_cqm(cqm)
    assert back.variables == model.variables
    assert back.objective == model.objective
    assert dict(back.constraints) == dict(model.constraints)
    for sample in all_samples(names):
        assert back.is_feasible(sample) == model.is_feasible(sample) == cqm.check_feasible(sample)
        assert back.objective_energy(sample) == pytest.approx(cqm.objective.energy(sample))


def test_from_cqm_moves_the_left_side_constant_to_the_right() -> None:
    x, y = dimod.Binaries(["x", "y"])
    cqm = dimod.ConstrainedQuadraticModel()
    cqm.set_objective(x - y)
    cqm.add_constraint(x + y - 1 == 0, label="one")
    cqm.add_constraint(2 * x - y + 1 >= 1, label=("tuple", 1))
    model = ConstrainedQUBO.from_cqm(cqm)
    assert model.constraints["one"].rhs == 1.0
    assert model.constraints["('tuple', 1)"].rhs == 0.0
    sample, _ = exact_minimum(model)
    assert sample == {"x": 1, "y": 0}  # x=0, y=1 would break 2x - y >= 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: c.add_variable("INTEGER", "i", upper_bound=3), "variable 'i' is INTEGER"),
        (lambda c: c.add_variable("SPIN", "s"), "variable 's' is SPIN"),
        (
            lambda c: c.add_constraint_from_iterable([("a", "b", 1.0)], "<=", 0, label="quad"),
            "'quad' is quadratic",
        ),
        (
            lambda c: c.add_constraint_from_iterable([("a", 1.0)], "<=", 0, label="w", weight=2.0),
            "'w' is soft",
        ),
    ],
)
def test_from_cqm_refuses_what_a_constrained_qubo_cannot_hold(build: Any, message: str) -> None:
    cqm = dimod.ConstrainedQuadraticModel()
    cqm.add_variables("BINARY", ["a", "b"])
    build(cqm)
    with pytest.raises(InvalidProblemError, match=re.escape(message)):
        ConstrainedQUBO.from_cqm(cqm)


def test_from_cqm_refuses_a_non_cqm() -> None:
    with pytest.raises(InvalidProblemError, match="ConstrainedQuadraticModel"):
        ConstrainedQUBO.from_cqm(dimod.BinaryQuadraticModel("BINARY"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ bad inputs


def fresh() -> ConstrainedQUBO:
    return ConstrainedQUBO(dimod.BinaryQuadraticModel({"a": 1.0, "b": 1.0}, {}, 0, "BINARY"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.add_equality({"a": float("nan")}, 1, label="L"), "'L': the coefficient"),
        (lambda m: m.add_equality({"a": 1.0}, float("inf"), label="L"), "'L': the right-hand"),
        (lambda m: m.add_inequality({"a": float("inf")}, ub=1, label="L"), "'L': the coeff"),
        (lambda m: m.add_inequality({"a": 1}, ub=float("nan"), label="L"), "'ub' parameter"),
        (lambda m: m.add_inequality({"a": 1}, lb=float("-inf"), label="L"), "'lb' parameter"),
        (lambda m: m.add_one_hot([], label="L"), "constraint 'L') was given no variables"),
        (lambda m: m.add_k_of_n([], 0, label="L"), "constraint 'L') was given no variables"),
        (lambda m: m.add_equality({}, 0, label="L"), "'L' has no variables"),
        (lambda m: m.add_inequality({}, ub=1, label="L"), "'L' has no variables"),
        (lambda m: m.add_one_hot("ab", label="L"), "expects a list of variable labels"),
        (lambda m: m.add_one_hot(["a", "a"], label="L"), "lists variable 'a' more than once"),
        (lambda m: m.add_k_of_n(["a", "b"], 3, label="L"), "must be an int in [0, 2]"),
        (lambda m: m.add_k_of_n(["a", "b"], -1, label="L"), "constraint 'L') must be an int"),
        (lambda m: m.add_k_of_n(["a", "b"], 1.5, label="L"), "Got 1.5 instead"),
        (lambda m: m.add_inequality({"a": 1}, lb=2, ub=1, label="L"), "lb=2 > ub=1"),
        (lambda m: m.add_inequality({"a": 1}, label="L"), "needs a lower bound (lb)"),
        (lambda m: m.add_equality({"a": 1, "b": 1}, 3, label="L"), "'L' (a + b == 3) cannot"),
        (lambda m: m.add_equality({"a": 2, "b": 2}, 1, label="L"), "in steps of 2"),
        (lambda m: m.add_inequality({"a": 1, "b": 1}, ub=-1, label="L"), "'L' (a + b <= -1)"),
        (lambda m: m.add_inequality({"a": 1, "b": -1}, lb=2, label="L"), "values in [-1, 1]"),
        (
            lambda m: m.add_inequality({"a": 2, "b": 2}, lb=1, ub=1.5, label="L"),
            "'L' (1 <= 2*a + 2*b <= 1.5) cannot",
        ),
        (lambda m: m.add_equality({"a": 1 / 7e6}, 0, label="L"), "common step of at least"),
        (lambda m: m.add_equality({"a": 1}, 1, label=""), "non-empty str"),
        (
            lambda m: (m.add_one_hot(["a"], label="L"), m.add_one_hot(["b"], label="L")),
            "labelled 'L' already exists",
        ),
        (
            lambda m: (
                m.add_one_hot(["a"], label="L[ub]"),
                m.add_inequality({"a": 1, "b": 1}, lb=0.5, ub=1.5, label="L"),
            ),
            "labelled 'L[ub]' already exists",
        ),
        (lambda m: m.add_equality([("a", 1)], 1, label="L"), "must be a mapping"),
        (lambda m: m.add_constraint("a + b == 1"), "expects a LinearConstraint"),
        (
            lambda m: (m.add_one_hot(["a", "b"], label="L"), m.violations({"a": 1})),
            "no value for variable 'b' of constraint 'L'",
        ),
        (
            lambda m: (m.add_one_hot(["a", "b"], label="L"), m.is_feasible({"a": 2, "b": 0})),
            "the value 2",
        ),
        (lambda m: m.objective_energy({"a": 1}), "no value for variable 'b'"),
    ],
)
def test_bad_inputs_raise_invalid_problem_error_naming_the_problem(call: Any, message: str) -> None:
    with pytest.raises(InvalidProblemError, match=re.escape(message)):
        call(fresh())


def test_nothing_is_registered_when_a_constraint_is_refused() -> None:
    model = fresh()
    with pytest.raises(InvalidProblemError):
        model.add_equality({"a": 1, "new": 1}, 5, label="L")
    assert model.variables == ("a", "b") and not model.constraints


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0, "SPIN"), "needs a BINARY objective"),
        (dimod.BinaryQuadraticModel({"a": float("nan")}, {}, 0, "BINARY"), "non-finite"),
        ({"a": 1.0}, "expects a dimod.BinaryQuadraticModel"),
    ],
)
def test_bad_objectives_raise(objective: Any, message: str) -> None:
    with pytest.raises(InvalidProblemError, match=message):
        ConstrainedQUBO(objective)


@pytest.mark.parametrize("penalty", ["automatic", 0, -1.0, float("nan"), float("inf"), True, None])
def test_bad_penalty_raises_configuration_error(penalty: Any) -> None:
    model = fresh()
    model.add_one_hot(["a", "b"])
    with pytest.raises(SolverConfigurationError, match="'penalty' parameter"):
        model.to_bqm(penalty)
    with pytest.raises(SolverConfigurationError, match="'penalty' parameter"):
        model.penalty_weights(penalty)


def test_large_integer_coefficients_are_checked_exactly() -> None:
    # 2**60 + 1 rounds to 2**60 in float64; the check must not.
    big = 2**60
    model = ConstrainedQUBO()
    model.add_equality({"a": big, "b": 1}, big, label="big")
    rows = np.array([[1, 0], [1, 1], [0, 1]])
    assert model._feasible_rows(rows).tolist() == [True, False, False]
    assert [model.is_feasible({"a": a, "b": b}) for a, b in rows.tolist()] == [True, False, False]


# ------------------------------------------------------------------------------ docs


def test_docs_page_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
