from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

import dimod
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qopt.constraints import ConstrainedQUBO
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError
from qopt.metering import SolveRecord
from qopt.pipeline import Formulation, QoptInfeasibleWarning, Solution, solve, solve_batch
from qopt.solvers import MeteredComposite

FAST = settings(max_examples=50, deadline=None)


class FixedSampler(dimod.Sampler):
    """Returns the given rows over the decision variables (slack bits 0), whatever the BQM."""

    parameters: ClassVar[dict[str, Any]] = {}
    properties: ClassVar[dict[str, Any]] = {}

    def __init__(self, rows: list[dict[Hashable, int]]) -> None:
        self.rows = rows

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        samples = [{v: row.get(v, 0) for v in bqm.variables} for row in self.rows]
        return dimod.SampleSet.from_samples_bqm(samples, bqm)


def choose_one(values: list[float]) -> ConstrainedQUBO:
    """Pick one of len(values) options; option i costs values[i]."""
    model = ConstrainedQUBO(
        dimod.BinaryQuadraticModel({f"x{i}": v for i, v in enumerate(values)}, {}, 0.0, "BINARY")
    )
    model.add_one_hot([f"x{i}" for i in range(len(values))], label="choose one")
    return model


def keep_first_on(sample: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """A one-hot repair: keep the first variable that is on (x0 if none is)."""
    names = sorted(sample)
    first = next((v for v in names if sample[v]), names[0])
    return {v: int(v == first) for v in names}


def group_repair(group: list[Hashable]) -> Any:
    """A one-hot repair over ``group`` only; other variables keep their values."""

    def repair(sample: Mapping[Hashable, int]) -> dict[Hashable, int]:
        return {**sample, **keep_first_on({v: sample[v] for v in group})}

    return repair


# --------------------------------------------------------------------------- solve


def test_solve_with_sa_returns_a_feasible_decoded_answer() -> None:
    formulation = Formulation(choose_one([3.0, -1.0, 2.0, 0.5]), decode=lambda s: max(s, key=s.get))
    solution = solve(formulation, "sa", num_reads=8, seed=3)
    assert solution.value == "x1"
    assert solution.feasible and not solution.repaired
    assert solution.objective == -1.0
    assert solution.sample == {"x0": 0, "x1": 1, "x2": 0, "x3": 0}
    assert solution.num_samples == 8
    assert isinstance(solution.record, SolveRecord) and solution.record.solver == "sa"
    assert solution.record.num_variables == 4


def test_too_small_penalty_gives_infeasible_raw_samples_that_repair_fixes() -> None:
    # Every option pays -10, so with penalty 0.5 all four on is the BQM's minimum (-35.5).
    model = choose_one([-10.0, -10.0, -10.0, -10.0])
    formulation = Formulation(model, repair=keep_first_on, penalty=0.5)
    solution = solve(formulation, "sa", num_reads=10, seed=0)
    assert solution.num_samples == 10
    assert solution.num_infeasible == 10  # SA finds the penalized minimum, which is infeasible
    assert solution.repaired and solution.feasible
    assert model.is_feasible(solution.sample)
    assert solution.objective == -10.0
    assert solution.value == solution.sample  # no decoder: the sample itself


def test_no_repair_and_no_feasible_sample_warns_and_returns_best_infeasible() -> None:
    model = choose_one([-10.0, -10.0, -10.0, -10.0])
    with pytest.warns(QoptInfeasibleWarning, match="violates constraint.*'choose one'") as caught:
        solution = solve(Formulation(model, penalty=0.5), "sa", num_reads=5, seed=0)
    assert caught[0].filename == __file__  # points at the caller
    assert not solution.feasible and not solution.repaired
    assert solution.sample == {"x0": 1, "x1": 1, "x2": 1, "x3": 1}
    assert solution.objective == -40.0
    assert solution.num_infeasible == solution.num_samples == 5


def test_auto_penalty_needs_no_repair_on_the_same_problem() -> None:
    solution = solve(choose_one([-10.0, -10.0, -10.0, -10.0]), "sa", num_reads=10, seed=0)
    assert solution.feasible and not solution.repaired and solution.objective == -10.0
    assert solution.num_infeasible < solution.num_samples


@FAST
@given(
    values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=5),
    data=st.data(),
)
def test_selection_repairs_and_picks_the_best_candidate(
    values: list[float], data: st.DataObject
) -> None:
    model = choose_one(values)
    names = list(model.variables)
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({v: st.integers(0, 1) for v in names}), min_size=1, max_size=8
        )
    )
    solution = solve(Formulation(model, repair=keep_first_on), FixedSampler(rows))

    # Every repaired sample, and every returned sample, is feasible.
    assert all(model.is_feasible(keep_first_on(row)) for row in rows)
    assert solution.feasible and model.is_feasible(solution.sample)
    # Counts and the winner, computed independently.
    infeasible = [row for row in rows if sum(row.values()) != 1]
    assert solution.num_samples == len(rows)
    assert solution.num_infeasible == len(infeasible)
    candidates = [row for row in rows if sum(row.values()) == 1]
    candidates += [keep_first_on(row) for row in infeasible]
    best = min(model.objective_energy(c) for c in candidates)
    assert solution.objective == best
    assert model.objective_energy(solution.sample) == pytest.approx(solution.objective)
    assert solution.repaired == (
        not any(sum(r.values()) == 1 and model.objective_energy(r) == best for r in rows)
    )


def test_ties_prefer_a_raw_feasible_sample_over_a_repaired_one() -> None:
    model = choose_one([1.0, 1.0])
    rows = [{"x0": 1, "x1": 1}, {"x0": 0, "x1": 1}]  # the first repairs to x0: same objective
    solution = solve(Formulation(model, repair=keep_first_on), FixedSampler(rows))
    assert solution.sample == {"x0": 0, "x1": 1} and not solution.repaired
    assert solution.num_infeasible == 1


def test_repeated_samples_are_counted_with_their_occurrences() -> None:
    model = choose_one([1.0, 2.0])
    rows = [{"x0": 1, "x1": 1}] * 3 + [{"x0": 0, "x1": 1}] * 2
    solution = solve(Formulation(model, repair=keep_first_on), FixedSampler(rows))
    assert (solution.num_samples, solution.num_infeasible) == (5, 3)
    assert solution.sample == {"x0": 1, "x1": 0} and solution.repaired


def test_slack_variables_are_stripped_from_the_solution() -> None:
    model = ConstrainedQUBO(
        dimod.BinaryQuadraticModel({"a": -1, "b": -1, "c": -1}, {}, 0.0, "BINARY")
    )
    model.add_inequality({"a": 1, "b": 1, "c": 1}, ub=2, label="cap")
    solution = solve(model, "exact")
    assert set(solution.sample) == {"a", "b", "c"}
    assert any(str(v).startswith("slack[cap]") for v in solution.sampleset.variables)
    assert solution.objective == -2.0 and solution.feasible


def test_solve_accepts_a_bare_bqm() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -1.0}, {("a", "b"): -3.0}, 0.0, "BINARY")
    solution = solve(bqm, "exact")
    assert solution.value == solution.sample == {"a": 1, "b": 1}
    assert solution.objective == -3.0 and solution.num_infeasible == 0


def test_unmetered_sampler_is_wrapped_and_metered_one_kept() -> None:
    model = choose_one([1.0, 0.0])
    plain = solve(model, dimod.ExactSolver())
    assert plain.record.solver == "ExactSolver"
    named = solve(model, MeteredComposite(dimod.ExactSolver(), name="mine"))
    assert named.record.solver == "mine"
    assert plain.sample == named.sample == {"x0": 0, "x1": 1}


def test_sample_parameters_reach_the_solver() -> None:
    solution = solve(choose_one([1.0, 0.0, 2.0]), "sa", num_reads=3, seed=1)
    assert solution.num_samples == 3
    with pytest.raises(SolverConfigurationError, match="unknown parameter"):
        solve(choose_one([1.0, 0.0]), "sa", bogus=1)


# ---------------------------------------------------------------------- bad inputs


def infeasible_repair(sample: Mapping[Hashable, int]) -> dict[Hashable, int]:
    return {v: 1 for v in sample}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: solve(ConstrainedQUBO()), InvalidProblemError, "empty model"),
        (
            lambda: solve(dimod.BinaryQuadraticModel("BINARY")),
            InvalidProblemError,
            "empty model",
        ),
        (
            lambda: solve(dimod.BinaryQuadraticModel({"a": np.nan}, {}, 0, "BINARY")),
            InvalidProblemError,
            "non-finite",
        ),
        (
            lambda: solve(dimod.BinaryQuadraticModel({"a": 1.0}, {}, np.inf, "BINARY")),
            InvalidProblemError,
            "non-finite",
        ),
        (lambda: solve({"a": 1}), InvalidProblemError, "expects a Formulation"),
        (lambda: solve(choose_one([1.0, 2.0]), 42), SolverConfigurationError, "'solver'"),
        (lambda: solve(choose_one([1.0, 2.0]), "annealer"), UnknownSolverError, "Known"),
        (
            lambda: Formulation(choose_one([1.0]), decode="argmax"),
            SolverConfigurationError,
            "'decode' parameter of Formulation",
        ),
        (
            lambda: Formulation(choose_one([1.0]), repair=3),
            SolverConfigurationError,
            "'repair' parameter of Formulation",
        ),
        (
            lambda: Formulation(choose_one([1.0]), penalty=-2.0),
            SolverConfigurationError,
            "'penalty' parameter of Formulation",
        ),
        (
            lambda: Formulation("x0 + x1"),
            InvalidProblemError,
            "expects a ConstrainedQUBO or a dimod.BinaryQuadraticModel",
        ),
        (
            lambda: solve(
                Formulation(choose_one([-1.0, -1.0]), repair=infeasible_repair, penalty=0.1),
                "exact",
            ),
            InvalidProblemError,
            "violates constraint(s) ['choose one']",
        ),
        (
            lambda: solve(
                Formulation(choose_one([-1.0, -1.0]), repair=lambda s: {"x0": 1}, penalty=0.1),
                "exact",
            ),
            InvalidProblemError,
            "no value for variable(s) ['x1']",
        ),
        (
            lambda: solve(
                Formulation(
                    choose_one([-1.0, -1.0]),
                    repair=lambda s: {"x0": 1, "x1": 0, "y": 0},
                    penalty=0.1,
                ),
                "exact",
            ),
            InvalidProblemError,
            "variables the model does not have: ['y']",
        ),
        (
            lambda: solve(
                Formulation(
                    choose_one([-1.0, -1.0]), repair=lambda s: {"x0": 1, "x1": 2}, penalty=0.1
                ),
                "exact",
            ),
            InvalidProblemError,
            "non-binary values",
        ),
        (
            lambda: solve(
                Formulation(choose_one([-1.0, -1.0]), repair=lambda s: [1, 0], penalty=0.1),
                "exact",
            ),
            InvalidProblemError,
            "must return a mapping",
        ),
        (
            lambda: solve_batch([choose_one([1.0]), ConstrainedQUBO()], "exact"),
            InvalidProblemError,
            "solve_batch() (problem 1) was given an empty model",
        ),
        (
            lambda: solve_batch([choose_one([1.0]), "model"], "exact"),
            InvalidProblemError,
            "solve_batch() (problem 1) expects",
        ),
        (
            lambda: solve_batch(choose_one([1.0]), "exact"),
            InvalidProblemError,
            "sequence of problems",
        ),
    ],
)
def test_bad_inputs_raise_documented_errors(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


# --------------------------------------------------------------------------- batches


@st.composite
def small_formulations(draw: st.DrawFn) -> Formulation[Any]:
    n = draw(st.integers(2, 4))
    bias = st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 3))
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i in range(n):
        bqm.add_variable(f"x{i}", draw(bias))
    for i, j in itertools.combinations(range(n), 2):
        if draw(st.booleans()):
            bqm.add_quadratic(f"x{i}", f"x{j}", draw(bias))
    model = ConstrainedQUBO(bqm)
    names = list(bqm.variables)
    kind = draw(st.sampled_from(["none", "one-hot", "at-most"]))
    group = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    if kind == "one-hot":
        model.add_one_hot(group)
    elif kind == "at-most":
        model.add_inequality({v: 1 for v in names}, ub=draw(st.integers(0, n - 1)))
    penalty = draw(st.sampled_from(["auto", 0.1]))
    repair = group_repair(group) if kind == "one-hot" and penalty == 0.1 else None
    return Formulation(
        model, decode=lambda s: sorted(v for v in s if s[v]), repair=repair, penalty=penalty
    )


@FAST
@given(formulations=st.lists(small_formulations(), min_size=1, max_size=3))
def test_solve_batch_equals_solving_each_separately(formulations: list[Formulation[Any]]) -> None:
    total = sum(len(f.model.to_bqm(f.penalty).variables) for f in formulations)
    assume(total <= 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QoptInfeasibleWarning)
        batch = solve_batch(formulations, "exact")
        alone = [solve(f, "exact") for f in formulations]
    assert len(batch) == len(formulations)
    for i, (together, single, f) in enumerate(zip(batch, alone, formulations, strict=True)):
        assert together.objective == pytest.approx(single.objective)
        assert together.feasible == single.feasible
        assert together.repaired == single.repaired
        assert together.num_infeasible * single.num_samples == (
            single.num_infeasible * together.num_samples
        )  # same share: every state of the problem appears equally often in the product
        assert together.record is batch[0].record
        assert together.sampleset.info["qopt_batch"] == {"index": i, "size": len(formulations)}
        assert set(together.sampleset.variables) == set(f.model.to_bqm(f.penalty).variables)
        if together.feasible:
            assert f.model.is_feasible(together.sample)


def test_solve_batch_shares_one_solver_call() -> None:
    calls = []

    class Counting(dimod.ExactSolver):
        def sample(self, bqm: dimod.BinaryQuadraticModel, **kw: Any) -> dimod.SampleSet:
            calls.append(bqm.num_variables)
            return super().sample(bqm, **kw)

    problems = [choose_one([1.0, -1.0]), choose_one([-2.0, 0.0, 1.0])]
    solutions = solve_batch(problems, Counting())
    assert calls == [5]
    assert [s.sample for s in solutions] == [{"x0": 0, "x1": 1}, {"x0": 1, "x1": 0, "x2": 0}]
    assert solutions[0].record.solver == "Counting"
    assert isinstance(solutions[0], Solution)


def test_solve_batch_of_nothing_is_empty() -> None:
    assert solve_batch([], "exact") == []


def test_solve_batch_warns_with_the_problem_index() -> None:
    weak = Formulation(choose_one([-10.0, -10.0, -10.0]), penalty=0.5)
    with pytest.warns(QoptInfeasibleWarning, match=r"\(batch problem 1\)"):
        solutions = solve_batch([choose_one([1.0, 2.0]), weak], "sa", num_reads=5, seed=0)
    assert solutions[0].feasible and not solutions[1].feasible


# ----------------------------------------------------------------------- array-level formulations


def one_hot_rows(rows: np.ndarray) -> np.ndarray:
    """The ``choose one`` constraint on a sample array."""
    return np.asarray(rows).sum(axis=1) == 1


def keep_first_on_rows(rows: np.ndarray) -> np.ndarray:
    """:func:`keep_first_on` on a sample array (columns x0, x1, ... in order)."""
    first = np.where(rows.any(axis=1), rows.argmax(axis=1), 0)
    out = np.zeros_like(rows)
    out[np.arange(rows.shape[0]), first] = 1
    return out


@FAST
@given(
    values=st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=5),
    data=st.data(),
)
def test_array_repair_selects_exactly_as_the_dict_repair(
    values: list[float], data: st.DataObject
) -> None:
    model = choose_one(values)
    names = list(model.variables)
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries({v: st.integers(0, 1) for v in names}), min_size=1, max_size=8
        )
    )
    by_dict = solve(Formulation(model, repair=keep_first_on), FixedSampler(rows))
    # The objective alone as the model: feasibility and repair come from the array callables.
    arrays = Formulation(
        model.objective,
        feasible_rows=one_hot_rows,
        repair_rows=keep_first_on_rows,
        bqm=model.to_bqm(),
    )
    by_array = solve(arrays, FixedSampler(rows))
    assert by_array.sample == by_dict.sample
    assert by_array.objective == by_dict.objective
    assert (by_array.repaired, by_array.feasible) == (by_dict.repaired, by_dict.feasible)
    assert (by_array.num_samples, by_array.num_infeasible) == (
        by_dict.num_samples,
        by_dict.num_infeasible,
    )


def test_array_repair_sees_each_distinct_sample_once_and_a_single_read_as_is() -> None:
    model = choose_one([1.0, 2.0, 3.0])
    seen: list[int] = []

    def repair_rows(rows: np.ndarray) -> np.ndarray:
        seen.append(rows.shape[0])
        assert rows.dtype == np.int8
        return keep_first_on_rows(rows)

    formulation = Formulation(
        model.objective, feasible_rows=one_hot_rows, repair_rows=repair_rows, bqm=model.to_bqm()
    )
    rows = [{"x0": 0, "x1": 1, "x2": 1}] * 3 + [{"x0": 0, "x1": 0, "x2": 0}] * 2
    solution = solve(formulation, FixedSampler(rows))
    assert seen == [2]  # five infeasible reads, two distinct ones, one call
    assert (solution.num_samples, solution.num_infeasible) == (5, 5)
    assert solution.sample == {"x0": 1, "x1": 0, "x2": 0} and solution.repaired
    single = solve(formulation, FixedSampler([{"x0": 0, "x1": 0, "x2": 1}]))
    assert single.sample == {"x0": 0, "x1": 0, "x2": 1} and not single.repaired
    assert (single.num_samples, single.num_infeasible) == (1, 0)


def test_a_given_bqm_is_solved_instead_of_the_models() -> None:
    model = choose_one([1.0, 2.0])
    # A BQM that prefers x1: the solver sees it, the objective (x0 cheaper) judges.
    custom = dimod.BinaryQuadraticModel({"x0": 5.0, "x1": -1.0}, {}, 0.0, "BINARY")
    solution = solve(Formulation(model, bqm=custom), "exact")
    assert solution.sampleset.first.sample == {"x0": 0, "x1": 1}
    assert solution.sample == {"x0": 1, "x1": 0}  # the exact solver's feasible rows include it
    assert solution.objective == 1.0


def test_feasible_rows_replaces_the_models_constraints() -> None:
    model = choose_one([1.0, 2.0])

    def never(rows: np.ndarray) -> np.ndarray:
        return np.zeros(rows.shape[0], dtype=bool)

    with pytest.warns(QoptInfeasibleWarning):
        solution = solve(Formulation(model, feasible_rows=never), "exact")
    assert not solution.feasible


@pytest.mark.parametrize(
    ("repair_rows", "message"),
    [
        (lambda rows: rows[:, :1], "shape"),
        (lambda rows: np.full_like(rows, 2), "non-binary"),
        (lambda rows: np.zeros_like(rows), "infeasible"),
    ],
)
def test_bad_array_repairs_raise(repair_rows: Any, message: str) -> None:
    model = choose_one([1.0, 2.0])
    formulation = Formulation(model, repair_rows=repair_rows)
    with pytest.raises(InvalidProblemError, match=message):
        solve(formulation, FixedSampler([{"x0": 1, "x1": 1}]))


def test_bad_array_options_raise() -> None:
    model = choose_one([1.0, 2.0])
    with pytest.raises(SolverConfigurationError, match="not both"):
        Formulation(model, repair=keep_first_on, repair_rows=keep_first_on_rows)
    with pytest.raises(SolverConfigurationError, match="feasible_rows"):
        Formulation(model, feasible_rows=3)  # type: ignore[call-overload]
    lacking = dimod.BinaryQuadraticModel({"x0": 1.0}, {}, 0.0, "BINARY")
    with pytest.raises(InvalidProblemError, match="lacks decision variable"):
        solve(Formulation(model, bqm=lacking), "exact")
    with pytest.raises(InvalidProblemError, match="one boolean per sample"):
        solve(Formulation(model, feasible_rows=lambda rows: np.ones(7, bool)), "exact")
