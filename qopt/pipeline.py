"""The one path every integration takes: formulation -> BQM -> solver -> decode/repair.

A :class:`Formulation` bundles a :class:`~qopt.constraints.ConstrainedQUBO` with a decoder (the
caller's terms) and a repair step (any sample -> a feasible one). :func:`solve` turns it into a
BQM, sends it to a metered solver, picks the best candidate and decodes it;
:func:`solve_batch` serves several small independent formulations with one solver call.

Candidate selection: every raw sample that satisfies the constraints is a candidate; every
infeasible one is repaired (when a repair is given) and the repaired sample is a candidate too.
The candidate with the lowest *objective* energy (no penalty) wins; ties go to a raw sample over
a repaired one, then to the lower penalized energy. Selection works on the sample array:
feasibility and objective are evaluated on all rows at once, repeated samples are repaired
once, and a single read is taken as it is.

Large formulations (thousands of variables, solved in a training loop) can bring their own
array-level pieces: a prebuilt penalized ``bqm`` (instead of ``model.to_bqm(penalty)``), a
``feasible_rows`` check and a ``repair_rows`` step over 0/1 sample arrays (instead of the
model's constraints and a dict-per-sample ``repair``); :mod:`qopt.problems.routing` does.

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
from qopt.constraints import ConstrainedQUBO, check_penalty
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
        bqm: The penalized BQM to solve, when the caller builds it faster than
            ``model.to_bqm(penalty)`` (e.g. from numpy arrays); it must contain every decision
            variable, and any other variable counts as slack. ``penalty`` is then unused.
        feasible_rows: Feasibility of many samples at once, replacing the model's constraints:
            takes a 0/1 array of shape ``(n, len(model.variables))`` (columns in the order of
            ``model.variables``) and returns ``n`` booleans. For models whose constraints are
            cheaper to check in bulk than to register one by one on a ConstrainedQUBO.
        repair_rows: The array form of ``repair`` (give one or the other): takes the
            infeasible samples as a 0/1 ``int8`` array of shape ``(n, len(model.variables))``
            and returns an array of the same shape whose every row is feasible.

    Raises:
        InvalidProblemError: ``model`` is neither a ConstrainedQUBO nor a valid BINARY BQM,
            or ``bqm`` is not a valid BQM.
        SolverConfigurationError: ``decode``, ``repair``, ``feasible_rows`` or ``repair_rows``
            is not callable, both ``repair`` and ``repair_rows`` are given, or ``penalty`` is
            neither ``"auto"`` nor a finite float > 0.

    Examples:
        >>> import dimod
        >>> from qopt.constraints import ConstrainedQUBO
        >>> model = ConstrainedQUBO()
        >>> model.add_one_hot(["a", "b"])
        'one_hot_0'
        >>> Formulation(model, decode=lambda s: s["a"], penalty=2.0).penalty
        2.0

        The array forms: feasibility and repair over many samples at once.

        >>> import numpy as np
        >>> objective = dimod.BinaryQuadraticModel({"a": 1.0, "b": 2.0}, {}, 0.0, "BINARY")
        >>> def one_hot(rows):
        ...     return rows.sum(axis=1) == 1
        >>> def first_only(rows):
        ...     return np.tile(np.array([1, 0], dtype=np.int8), (rows.shape[0], 1))
        >>> fast = Formulation(objective, feasible_rows=one_hot, repair_rows=first_only,
        ...                    bqm=objective)
        >>> solve(fast, "exact").sample
        {'a': 1, 'b': 0}
    """

    @overload
    def __init__(
        self: Formulation[Sample],
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: None = None,
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
        bqm: dimod.BinaryQuadraticModel | None = None,
        feasible_rows: Callable[[np.ndarray], np.ndarray] | None = None,
        repair_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: Callable[[Sample], T],
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
        bqm: dimod.BinaryQuadraticModel | None = None,
        feasible_rows: Callable[[np.ndarray], np.ndarray] | None = None,
        repair_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None: ...

    def __init__(
        self,
        model: ConstrainedQUBO | dimod.BinaryQuadraticModel,
        *,
        decode: Callable[[Sample], T] | None = None,
        repair: Callable[[Sample], Mapping[Hashable, int]] | None = None,
        penalty: float | Literal["auto"] = "auto",
        bqm: dimod.BinaryQuadraticModel | None = None,
        feasible_rows: Callable[[np.ndarray], np.ndarray] | None = None,
        repair_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        owner = "Formulation"
        if isinstance(model, dimod.BinaryQuadraticModel):
            model = ConstrainedQUBO(model)
        if not isinstance(model, ConstrainedQUBO):
            raise InvalidProblemError(
                f"{owner} expects a ConstrainedQUBO or a dimod.BinaryQuadraticModel. Got "
                f"{type(model).__name__} instead."
            )
        functions = (
            ("decode", decode),
            ("repair", repair),
            ("feasible_rows", feasible_rows),
            ("repair_rows", repair_rows),
        )
        for name, function in functions:
            if function is not None and not callable(function):
                raise SolverConfigurationError(
                    f"The '{name}' parameter of {owner} must be a callable or None. Got "
                    f"{function!r} instead."
                )
        if repair is not None and repair_rows is not None:
            raise SolverConfigurationError(
                f"{owner} takes 'repair' (one sample as a dict) or 'repair_rows' (many samples "
                "as an array), not both."
            )
        if bqm is not None:
            check_bqm(bqm, f"{owner} (the 'bqm' parameter)")
            if bqm.vartype is not dimod.BINARY:
                raise InvalidProblemError(
                    f"The 'bqm' parameter of {owner} must be a BINARY BQM. Got "
                    f"{bqm.vartype.name} instead."
                )
        self.model = model
        self.decode = decode
        self.repair = repair
        self.penalty = check_penalty(penalty, owner)
        self.bqm = bqm
        self.feasible_rows = feasible_rows
        self.repair_rows = repair_rows

    def __repr__(self) -> str:
        described = {
            # A routing BQM has thousands of variables: name its size, not its biases.
            "bqm": None
            if self.bqm is None
            else f"<BinaryQuadraticModel, {self.bqm.num_variables} variables>",
            "feasible_rows": None if self.feasible_rows is None else repr(self.feasible_rows),
            "repair_rows": None if self.repair_rows is None else repr(self.repair_rows),
        }
        extras = "".join(f", {name}={text}" for name, text in described.items() if text)
        return (
            f"Formulation({self.model!r}, decode={self.decode!r}, repair={self.repair!r}, "
            f"penalty={self.penalty!r}{extras})"
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
    if formulation.bqm is None:
        return check_bqm(formulation.model.to_bqm(formulation.penalty), owner)
    labels = formulation.bqm.variables  # one lookup: the property is not free
    missing = [v for v in formulation.model.variables if v not in labels]
    if missing:
        raise InvalidProblemError(
            f"{owner}: the Formulation's 'bqm' lacks decision variable(s) {missing[:3]!r} of "
            "its model; the penalized BQM must contain every decision variable."
        )
    return formulation.bqm


def _feasible(formulation: Formulation[Any], rows: np.ndarray) -> np.ndarray:
    """Feasibility of each row (columns in the order of ``model.variables``)."""
    if formulation.feasible_rows is None:
        return np.asarray(formulation.model._feasible_rows(rows), dtype=bool)
    result = np.asarray(formulation.feasible_rows(rows))
    if result.shape != (rows.shape[0],):
        raise InvalidProblemError(
            f"The feasible_rows function must return one boolean per sample: shape "
            f"({rows.shape[0]},). Got shape {result.shape} instead."
        )
    return result.astype(bool)


def _violated(formulation: Formulation[Any], sample: Sample) -> list[str]:
    """Labels of the constraints ``sample`` breaks (``[]`` when ``feasible_rows`` decides)."""
    if formulation.feasible_rows is not None:
        return []
    return sorted(label for label, amount in formulation.model.violations(sample).items() if amount)


def _checked_repair(
    formulation: Formulation[Any], sample: Sample, variables: Sequence[Hashable]
) -> np.ndarray:
    """``repair(sample)`` as a row over ``variables``, checked to be binary and feasible."""
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
    row = np.array([1 if result[v] == 1 else 0 for v in variables], dtype=np.int8)
    if not _feasible(formulation, row[None, :])[0]:
        violated = _violated(
            formulation, {v: int(x) for v, x in zip(variables, row.tolist(), strict=True)}
        )
        raise InvalidProblemError(
            f"The repair function returned a sample that violates constraint(s) "
            f"{violated[:3]!r}; repair must return a feasible sample for any input. "
            f"Input: {sample!r}."
        )
    return row


def _repaired_rows(formulation: Formulation[Any], rows: np.ndarray) -> np.ndarray:
    """``repair_rows(rows)``, checked: same shape, 0/1 entries, every row feasible."""
    assert formulation.repair_rows is not None
    fixed = np.asarray(formulation.repair_rows(rows.astype(np.int8, copy=True)))
    if fixed.shape != rows.shape:
        raise InvalidProblemError(
            f"The repair_rows function must return an array of the shape it was given, "
            f"{rows.shape}. Got shape {fixed.shape} instead."
        )
    if not np.isin(fixed, (0, 1)).all():
        raise InvalidProblemError(
            "The repair_rows function returned non-binary values; samples must be 0 or 1."
        )
    fixed = fixed.astype(np.int8)
    bad = np.flatnonzero(~_feasible(formulation, fixed))
    if bad.size:
        raise InvalidProblemError(
            f"The repair_rows function returned {bad.size} infeasible sample(s) (row "
            f"{int(bad[0])} of {rows.shape[0]} first); repair must return a feasible sample for "
            "any input."
        )
    return fixed


def _columns(sampleset: dimod.SampleSet, variables: Sequence[Hashable], where: str) -> np.ndarray:
    """Positions of ``variables`` among the sample set's columns, looked up in one pass."""
    labels = sampleset.variables  # one lookup: the property resolves the sample set each time
    if list(labels)[: len(variables)] == list(variables):
        return np.arange(len(variables))  # the usual layout: decision variables first, in order
    missing = [v for v in variables if v not in labels]
    if missing:
        raise SolverUnavailableError(
            f"The solver's samples{where} lack variable(s) {missing[:3]!r} of the model."
        )
    return np.fromiter((labels.index(v) for v in variables), dtype=np.int64, count=len(variables))


def _unique_rows(samples: np.ndarray, occurrences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First occurrence of each distinct row, in order, and the occurrences summed per row.

    What ``SampleSet.aggregate()`` does, without building a new sample set or sorting whole
    rows as structured values (the cost of ``np.unique(axis=0)`` on wide samples).
    """
    packed = np.packbits(samples.astype(bool), axis=1)
    first: dict[bytes, int] = {}
    inverse = np.fromiter(
        (first.setdefault(row.tobytes(), i) for i, row in enumerate(packed)),
        dtype=np.int64,
        count=packed.shape[0],
    )
    keep = np.flatnonzero(inverse == np.arange(inverse.size))
    totals = np.zeros(samples.shape[0], dtype=np.int64)
    np.add.at(totals, inverse, occurrences)
    return keep, totals[keep]


def _select(
    formulation: Formulation[T], sampleset: dimod.SampleSet, record: SolveRecord, where: str
) -> Solution[T]:
    """Pick the best candidate of ``sampleset`` (see the module docstring)."""
    model = formulation.model
    variables = list(model.variables)
    if len(sampleset) == 0:
        raise SolverUnavailableError(
            f"The solver returned no samples{where}; ask for at least one read (num_reads >= 1)."
        )
    columns = _columns(sampleset, variables, where)
    samples = np.asarray(sampleset.record.sample)
    occurrences = np.asarray(sampleset.record.num_occurrences, dtype=np.int64)
    energies = np.asarray(sampleset.record.energy, dtype=float)
    if samples.shape[0] > 1:
        # Repeated samples (slack included) are selected and repaired once.
        keep, occurrences = _unique_rows(samples, occurrences)
        samples, energies = samples[keep], energies[keep]
    rows = samples[:, columns]
    feasible = _feasible(formulation, rows)
    objectives = np.asarray(model.objective.energies((rows, variables)), dtype=float)

    def as_sample(row: np.ndarray) -> Sample:
        return {v: int(x) for v, x in zip(variables, row.tolist(), strict=True)}

    # (objective, repaired?, penalized energy, row): the smallest tuple wins.
    best: tuple[float, int, float, int] | None = None
    best_row: np.ndarray | None = None
    candidates = np.flatnonzero(feasible)
    if candidates.size:
        first = candidates[np.lexsort((energies[candidates], objectives[candidates]))[0]]
        best = (float(objectives[first]), 0, float(energies[first]), int(first))
        best_row = rows[first]
    broken = np.flatnonzero(~feasible)
    if broken.size and (formulation.repair is not None or formulation.repair_rows is not None):
        if formulation.repair_rows is not None:
            fixed = _repaired_rows(formulation, rows[broken])
        else:
            fixed = np.stack(
                [_checked_repair(formulation, as_sample(rows[i]), variables) for i in broken]
            )
        fixed_objectives = np.asarray(
            model.objective.energies((fixed, variables)), dtype=float
        ).reshape(-1)
        # Ties between repaired samples go to the lower penalized energy, then the earlier row.
        j = int(np.lexsort((broken, energies[broken], fixed_objectives))[0])
        key = (float(fixed_objectives[j]), 1, float(energies[broken[j]]), int(broken[j]))
        if best is None or key < best:
            best, best_row = key, fixed[j]

    is_feasible = best_row is not None
    if best_row is None:
        lowest = int(np.argmin(energies))
        best_row = rows[lowest]
        best = (float(objectives[lowest]), 0, float(energies[lowest]), lowest)
        violated = _violated(formulation, as_sample(best_row))
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
    best_sample = as_sample(best_row)
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
    columns = sampleset.variables  # one lookup: the property resolves the sample set each time
    solutions: list[Solution[Any]] = []
    for i, (formulation, bqm) in enumerate(zip(items, bqms, strict=True)):
        labels = list(bqm.variables)
        rows = raw[:, [columns.index((i, v)) for v in labels]]
        own = dimod.SampleSet.from_samples(
            (rows, labels),
            dimod.BINARY,
            energy=bqm.energies((rows, labels)),
            num_occurrences=occurrences,
            info={**sampleset.info, "qopt_batch": {"index": i, "size": len(items)}},
        )
        solutions.append(_select(formulation, own, record, f" (batch problem {i})"))
    return solutions
