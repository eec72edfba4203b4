"""The one path every integration takes: formulation -> BQM -> solver -> decode/repair.

A :class:`Formulation` bundles a :class:`~qopt.constraints.ConstrainedQUBO` with a decoder (the
caller's terms) and a repair step (any sample -> a feasible one). :func:`solve` turns it into a
BQM, sends it to a metered solver, picks the best candidate and decodes it;
:func:`solve_batch` serves several small independent formulations with one solver call.

Candidate selection: every raw sample that satisfies the constraints is a candidate; every
infeasible one is repaired (when a repair is given) and the repaired sample is a candidate too.
The candidate with the lowest *objective* energy (no penalty) wins; ties go to a raw sample over
a repaired one, then to the lower penalized energy.

Examples:
    >>> import dimod
    >>> from qopt.constraints import ConstrainedQUBO
    >>> from qopt.pipeline import Formulation, solve
    >>> objective = dimod.BinaryQuadraticModel({"small": 1.0, "medium": 2.0, "large": 3.0}, {},
    ...                                        0.0, "BINARY")
    >>> model = ConstrainedQUBO(objective)
    >>> model.add_one_hot(["small", "medium", "large"], label="size")
    'size'
    >>> formulation = Formulation(model, decode=lambda s: max(s, key=s.get))
    >>> solution = solve(formulation, "sa", num_reads=5, seed=0)
    >>> solution.value, solution.objective, solution.feasible
    ('small', 1.0, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast, overload

import dimod
import numpy as np

from qopt._validation import check_bqm
from qopt.constraints import ConstrainedQUBO, _check_penalty
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, SolverUnavailableError
from qopt.metering import SolveRecord, record_of
from qopt.solvers import DEFAULT_SOLVER, MeteredComposite, get_solver

__all__ = [
    "Formulation",
    "QoptInfeasibleWarning",
    "Sample",
    "Solution",
    "solve",
    "solve_batch",
]

T = TypeVar("T")

#: A sample over the decision variables: variable -> 0 or 1.
Sample = dict[Hashable, int]


class QoptInfeasibleWarning(UserWarning):
    """No feasible sample was found and no repair was given; the solution is infeasible.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptInfeasibleWarning)``, or
    avoid it by giving the :class:`Formulation` a ``repair``.
    """


class Formulation(Generic[T]):
    """A constrained QUBO with the decoder and repair step that bring answers back.

    Args:
        model: The problem: a :class:`~qopt.constraints.ConstrainedQUBO`, or a BINARY
            :class:`dimod.BinaryQuadraticModel` (an unconstrained problem).
        decode: Maps the best sample (decision variables -> 0/1) to the caller's terms; the
            value of the :class:`Solution`. ``None`` keeps the sample dict itself.
        repair: Maps any sample to a feasible one (over the same decision variables). It must
            succeed for every input; :func:`solve` raises if it returns an infeasible sample.
        penalty: ``"auto"`` (provable weights, see :mod:`qopt.constraints`) or a float > 0.

    Raises:
        InvalidProblemError: ``model`` is neither a ConstrainedQUBO nor a valid BINARY BQM.
        SolverConfigurationError: ``decode`` or ``repair`` is not callable, or ``penalty`` is
            neither ``"auto"`` nor a finite float > 0.

    Examples:
        >>> import dimod
        >>> from qopt.constraints import ConstrainedQUBO
        >>> model = ConstrainedQUBO()
        >>> model.add_one_hot(["a", "b"])
        'one_hot_0'
        >>> Formulation(model, decode=lambda s: s["a"], penalty=2.0).penalty
        2.0
    """

    @overload
    def __init__(
        self: Formulation[Sample],
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: None = None,
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
    ) -> None: ...

    @overload
    def __init__(
        self,
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: Callable[[Sample], T],
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
    ) -> None: ...

    def __init__(
        self,
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: Callable[[Sample], T] | None = None,
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
    ) -> None:
        owner = "Formulation"
        if isinstance(model, dimod.BinaryQuadraticModel):
            model = ConstrainedQUBO(model)
        if not isinstance(model, ConstrainedQUBO):
            raise InvalidProblemError(
                f"{owner} expects a ConstrainedQUBO or a dimod.BinaryQuadraticModel. Got "
                f"{type(model).__name__} instead."
            )
        for name, function in (("decode", decode), ("repair", repair)):
            if function is not None and not callable(function):
                raise SolverConfigurationError(
                    f"The '{name}' parameter of {owner} must be a callable or None. Got "
                    f"{function!r} instead."
                )
        self.model = model
        self.decode = decode
        self.repair = repair
        self.penalty = _check_penalty(penalty, owner)

    def __repr__(self) -> str:
        return (
            f"Formulation({self.model!r}, decode={self.decode!r}, repair={self.repair!r}, "
            f"penalty={self.penalty!r})"
        )


@dataclass(frozen=True)
class Solution(Generic[T]):
    """The answer to one formulation, with how it was found and what it cost.

    Attributes:
        value: ``decode(sample)``, or the sample dict itself when the formulation has no
            decoder. Decoded even when ``feasible`` is False.
        sample: The chosen sample over the decision variables (slack variables stripped).
        objective: Objective energy of ``sample``, no penalty.
        feasible: Whether ``sample`` satisfies every constraint; False only when no raw
            sample was feasible and no repair was given (a :class:`QoptInfeasibleWarning` says
            so).
        repaired: Whether ``sample`` came out of the repair step.
        num_samples: Raw samples the solver returned (counting repeats).
        num_infeasible: How many of them violated a constraint, before repair.
        sampleset: The raw samples (over the BQM's variables, slack included) with their
            penalized energies.
        record: The solve's :class:`~qopt.metering.SolveRecord` (shared by a batch).

    Examples:
        >>> import dimod
        >>> bqm = dimod.BinaryQuadraticModel({"x": -1.0}, {}, 0.0, "BINARY")
        >>> solution = solve(bqm, "exact")
        >>> solution.sample, solution.objective, solution.num_samples
        ({'x': 1}, -1.0, 2)
    """

    value: T
    sample: Sample
    objective: float
    feasible: bool
    repaired: bool
    num_samples: int
    num_infeasible: int
    sampleset: dimod.SampleSet = field(repr=False)
    record: SolveRecord = field(repr=False)


def _as_formulation(problem: Any, owner: str) -> Formulation[Any]:
    if isinstance(problem, Formulation):
        return problem
    if isinstance(problem, ConstrainedQUBO | dimod.BinaryQuadraticModel):
        return Formulation(problem)
    raise InvalidProblemError(
        f"{owner} expects a Formulation, a ConstrainedQUBO or a dimod.BinaryQuadraticModel. "
        f"Got {type(problem).__name__} instead."
    )


def _as_metered(solver: Any, owner: str) -> dimod.Sampler:
    if isinstance(solver, str):
        return get_solver(solver)
    if isinstance(solver, MeteredComposite):
        return solver
    if isinstance(solver, dimod.Sampler):
        return MeteredComposite(solver, name=type(solver).__name__)
    raise SolverConfigurationError(
        f"The 'solver' parameter of {owner} must be a registry name (str, e.g. 'sa') or a "
        f"dimod.Sampler. Got {solver!r} instead."
    )


def _bqm_of(formulation: Formulation[Any], owner: str) -> dimod.BinaryQuadraticModel:
    if formulation.model.num_variables == 0:
        raise InvalidProblemError(
            f"{owner} was given an empty model (no variables): there is nothing to solve."
        )
    return check_bqm(formulation.model.to_bqm(formulation.penalty), owner)


def _checked_repair(
    formulation: Formulation[Any], sample: Sample, variables: Sequence[Hashable]
) -> Sample:
    model = formulation.model
    assert formulation.repair is not None
    repaired = formulation.repair(dict(sample))
    if not isinstance(repaired, Mapping):
        raise InvalidProblemError(
            f"The repair function must return a mapping variable -> 0/1. Got "
            f"{type(repaired).__name__} instead."
        )
    unknown = [v for v in repaired if v not in model.objective.variables]
    if unknown:
        raise InvalidProblemError(
            f"The repair function returned variables the model does not have: {unknown[:3]!r}. "
            "Return a sample over the decision variables only."
        )
    result = {v: repaired.get(v) for v in variables}
    missing = [v for v, x in result.items() if x is None]
    if missing:
        raise InvalidProblemError(
            f"The repair function returned no value for variable(s) {missing[:3]!r}; it must "
            "return a value for every decision variable."
        )
    odd = [
        (v, x)
        for v, x in result.items()
        if not (isinstance(x, bool | int | np.integer | float) and x in (0, 1))
    ]
    if odd:
        raise InvalidProblemError(
            f"The repair function returned non-binary values, e.g. {odd[0][0]!r}: {odd[0][1]!r}; "
            "samples must be 0 or 1."
        )
    violated = {label: amount for label, amount in model.violations(result).items() if amount}
    if violated:
        raise InvalidProblemError(
            f"The repair function returned a sample that violates constraint(s) "
            f"{sorted(violated)[:3]!r}; repair must return a feasible sample for any input. "
            f"Input: {sample!r}."
        )
    return {v: 1 if result[v] == 1 else 0 for v in variables}


def _select(
    formulation: Formulation[T], sampleset: dimod.SampleSet, record: SolveRecord, where: str
) -> Solution[T]:
    """Pick the best candidate of ``sampleset`` (see the module docstring)."""
    model = formulation.model
    variables = list(model.variables)
    aggregated = sampleset.aggregate()
    if len(aggregated) == 0:
        raise SolverUnavailableError(
            f"The solver returned no samples{where}; ask for at least one read (num_reads >= 1)."
        )
    missing = [v for v in variables if v not in aggregated.variables]
    if missing:
        raise SolverUnavailableError(
            f"The solver's samples{where} lack variable(s) {missing[:3]!r} of the model."
        )
    columns = [aggregated.variables.index(v) for v in variables]
    rows = np.asarray(aggregated.record.sample)[:, columns]
    occurrences = np.asarray(aggregated.record.num_occurrences)
    energies = np.asarray(aggregated.record.energy, dtype=float)
    feasible = model._feasible_rows(rows)
    objectives = np.asarray(model.objective.energies((rows, variables)), dtype=float)

    # (objective, repaired?, penalized energy, row): the smallest tuple wins.
    best: tuple[float, int, float, int] | None = None
    best_sample: Sample | None = None
    candidates = np.flatnonzero(feasible)
    if candidates.size:
        first = candidates[np.lexsort((energies[candidates], objectives[candidates]))[0]]
        best = (float(objectives[first]), 0, float(energies[first]), int(first))
        best_sample = {v: int(x) for v, x in zip(variables, rows[best[3]].tolist(), strict=True)}
    if formulation.repair is not None:
        for i in np.flatnonzero(~feasible):
            raw = {v: int(x) for v, x in zip(variables, rows[i].tolist(), strict=True)}
            fixed = _checked_repair(formulation, raw, variables)
            key = (model.objective_energy(fixed), 1, float(energies[i]), int(i))
            if best is None or key < best:
                best, best_sample = key, fixed

    is_feasible = best_sample is not None
    if best_sample is None:
        lowest = int(np.argmin(energies))
        best_sample = {v: int(x) for v, x in zip(variables, rows[lowest].tolist(), strict=True)}
        best = (float(objectives[lowest]), 0, float(energies[lowest]), lowest)
        violated = sorted(
            label for label, amount in model.violations(best_sample).items() if amount
        )
        warnings.warn(
            f"No feasible sample among {int(occurrences.sum())} from solver "
            f"'{record.solver}'{where} and no repair was given; returning the lowest-energy "
            f"sample, which violates constraint(s) {violated[:3]!r}. Give the Formulation a "
            "repair, ask for more reads, or raise the penalty. Silence with "
            "warnings.filterwarnings('ignore', category=QoptInfeasibleWarning).",
            QoptInfeasibleWarning,
            stacklevel=3,
        )
    assert best is not None
    value = (
        formulation.decode(dict(best_sample)) if formulation.decode else cast(T, dict(best_sample))
    )
    return Solution(
        value=value,
        sample=best_sample,
        objective=float(best[0]),
        feasible=is_feasible,
        repaired=bool(best[1]),
        num_samples=int(occurrences.sum()),
        num_infeasible=int(occurrences[~feasible].sum()),
        sampleset=sampleset,
        record=record,
    )


@overload
def solve(
    problem: Formulation[T], solver: str | dimod.Sampler = ..., **sample_params: Any
) -> Solution[T]: ...


@overload
def solve(
    problem: ConstrainedQUBO | dimod.BinaryQuadraticModel,
    solver: str | dimod.Sampler = ...,
    **sample_params: Any,
) -> Solution[Sample]: ...


def solve(
    problem: Formulation[Any] | ConstrainedQUBO | dimod.BinaryQuadraticModel,
    solver: str | dimod.Sampler = DEFAULT_SOLVER,
    **sample_params: Any,
) -> Solution[Any]:
    """Solve one problem: build its BQM, sample it, select, repair and decode.

    Args:
        problem: A :class:`Formulation`, a :class:`~qopt.constraints.ConstrainedQUBO` or a
            BINARY :class:`dimod.BinaryQuadraticModel`.
        solver: A registry name (built with :func:`qopt.solvers.get_solver`, metered) or any
            :class:`dimod.Sampler` (wrapped in a :class:`~qopt.solvers.MeteredComposite` named
            after its class unless it is one already).
        **sample_params: Passed to the solver's ``sample`` (``num_reads``, ``seed``, ...).

    Returns:
        The :class:`Solution`; ``feasible`` unless no feasible sample was found and no repair
        was given, in which case a :class:`QoptInfeasibleWarning` is issued.

    Raises:
        InvalidProblemError: An empty model, non-finite biases, or a repair that returned an
            infeasible sample.
        SolverConfigurationError: ``solver`` is neither a name nor a sampler, or a sample
            parameter is unknown to it.
        UnknownSolverError: ``solver`` is a name that is not registered.
        SolverUnavailableError: The solver returned no samples, or samples missing a variable.

    Examples:
        >>> import dimod
        >>> from qopt.constraints import ConstrainedQUBO
        >>> model = ConstrainedQUBO(dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {}, 0,
        ...                                                    "BINARY"))
        >>> model.add_inequality({"a": 1, "b": 1}, ub=1)
        'inequality_0'
        >>> solution = solve(model, "exact")
        >>> solution.objective, solution.feasible, solution.record.solver
        (-1.0, True, 'exact')
    """
    formulation = _as_formulation(problem, "solve()")
    sampler = _as_metered(solver, "solve()")
    bqm = _bqm_of(formulation, "solve()")
    sampleset = sampler.sample(bqm, **sample_params)
    sampleset.resolve()
    return _select(formulation, sampleset, record_of(sampleset), "")


def solve_batch(
    formulations: Sequence[Formulation[Any] | ConstrainedQUBO | dimod.BinaryQuadraticModel],
    solver: str | dimod.Sampler = DEFAULT_SOLVER,
    **sample_params: Any,
) -> list[Solution[Any]]:
    """Solve several independent problems with one solver call.

    Each problem's BQM variables are relabelled ``(index, variable)`` and the BQMs are added
    into one; the solver samples it once, and each problem's columns are split back out and
    selected, repaired and decoded as :func:`solve` does. Small problems thus share one
    solver call (one QPU job, one annealing run) instead of paying for one each.

    Args:
        formulations: The problems, as :func:`solve` accepts them.
        solver: A registry name or a :class:`dimod.Sampler`, as for :func:`solve`.
        **sample_params: Passed to the solver's ``sample``.

    Returns:
        One :class:`Solution` per problem, in order (``[]`` for no problems). They share one
        :class:`~qopt.metering.SolveRecord`; each ``sampleset`` holds that problem's samples
        over its own variables, with energies of its own BQM.

    Raises:
        InvalidProblemError: A problem is empty, has non-finite biases, or its repair returned
            an infeasible sample; the message names the problem's index.

    Examples:
        >>> import dimod
        >>> from qopt.constraints import ConstrainedQUBO
        >>> problems = []
        >>> for scores in ([3.0, 1.0, 2.0], [0.5, 0.2, 0.9]):
        ...     model = ConstrainedQUBO(dimod.BinaryQuadraticModel(
        ...         {i: -s for i, s in enumerate(scores)}, {}, 0.0, "BINARY"))
        ...     _ = model.add_one_hot([0, 1, 2])
        ...     problems.append(Formulation(model, decode=lambda s: max(s, key=s.get)))
        >>> [solution.value for solution in solve_batch(problems, "exact")]
        [0, 2]
    """
    if isinstance(formulations, Formulation | ConstrainedQUBO | dimod.BinaryQuadraticModel):
        raise InvalidProblemError(
            "solve_batch() expects a sequence of problems; for a single one use solve()."
        )
    items = [_as_formulation(p, f"solve_batch() (problem {i})") for i, p in enumerate(formulations)]
    if not items:
        return []
    sampler = _as_metered(solver, "solve_batch()")
    bqms = [_bqm_of(f, f"solve_batch() (problem {i})") for i, f in enumerate(items)]
    combined = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i, bqm in enumerate(bqms):
        combined.update(bqm.relabel_variables({v: (i, v) for v in bqm.variables}, inplace=False))
    sampleset = sampler.sample(combined, **sample_params)
    sampleset.resolve()
    record = record_of(sampleset)
    raw = np.asarray(sampleset.record.sample)
    occurrences = np.asarray(sampleset.record.num_occurrences)
    solutions: list[Solution[Any]] = []
    for i, (formulation, bqm) in enumerate(zip(items, bqms, strict=True)):
        labels = list(bqm.variables)
        rows = raw[:, [sampleset.variables.index((i, v)) for v in labels]]
        own = dimod.SampleSet.from_samples(
            (rows, labels),
            dimod.BINARY,
            energy=bqm.energies((rows, labels)),
            num_occurrences=occurrences,
            info={**sampleset.info, "qopt_batch": {"index": i, "size": len(items)}},
        )
        solutions.append(_select(formulation, own, record, f" (batch problem {i})"))
    return solutions
