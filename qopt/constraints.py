"""Linear constraints on binary variables, turned into QUBO penalties with a provable strength.

A :class:`ConstrainedQUBO` holds an objective (a BINARY :class:`dimod.BinaryQuadraticModel`)
and hard linear constraints on its binary variables: one-hot, k-of-n, equalities and
inequalities. :meth:`ConstrainedQUBO.to_bqm` adds each constraint to the objective as a
quadratic penalty ``weight * (a . x + s - b)**2`` (Glover, Kochenberger & Du, "Quantum Bridge
Analytics I: a tutorial on formulating and using QUBO models", 4OR 17 (2019); Lucas, "Ising
formulations of many NP problems", Front. Phys. 2, 5 (2014)); inequalities get binary slack
variables ``s`` through dimod's :meth:`~dimod.BinaryQuadraticModel.add_linear_inequality_constraint`.

Exact integer form. Every constraint is stored with its coefficients and right-hand side on a
common grid: multiplied by the smallest integer ``m <= 10**6`` they become integers (``0.25``,
``1/3`` and decimals with up to six places all qualify). The integer form is what makes slack
encoding exact and the smallest violation known: an integer left side that misses its target
misses it by at least 1, so a penalty ``weight * residual**2`` costs at least ``weight``.

Automatic penalty (``penalty="auto"``), one weight per constraint, in integer units. Let
``R = sum_i |h_i| + sum_ij |J_ij|`` (an upper bound on ``max f - min f`` for the objective
``f``) and ``D_i = max(|h_i + sum_j max(J_ij, 0)|, |h_i + sum_j min(J_ij, 0)|)`` (the most
``f`` can change when variable ``i`` flips, in any state).

* **local rule** for a cardinality constraint (every coefficient +1 or -1 after dividing by
  their gcd: one-hot, k-of-n, at-most-k) whose variables appear in no other constraint:
  ``weight = 2 * max_i D_i + 1e-6 * R`` over its variables. From any state that violates the
  constraint, one flip of one of its variables moves the left side one step toward the bounds
  (slack included) and lowers the penalty by at least ``weight > D_i``, while no other penalty
  changes, so the energy strictly drops: no violating state is a minimum, not even a local one.
  The factor 2 makes that drop at least ``max_i D_i``, a step as large as the objective's own,
  which heuristic solvers resolve at their final temperature: on a 4-variable one-hot problem
  (all ``h_i = -10``), qopt's simulated annealing returned 48.5% infeasible reads with factor
  1.1, 7% with 2 and 1% with 3 (medians, 5 seeds x 200 reads; printed by
  ``python benchmarks/constraints/penalty_factor.py``).
* **global rule** otherwise: ``weight = 1.1 * R + 1e-6 * R``. A violating state has energy at
  least ``min f + weight > max f >= f(x*)`` for any feasible ``x*``.

Both rules make any violation cost more than the best objective improvement it could buy,
so every minimum-energy state of ``to_bqm()`` is feasible and its energy is the constrained
optimum (for the global rule, provided some assignment satisfies all constraints at once).
The ``1e-6 * R`` term keeps the margin above floating-point rounding of energies of size
``R``; a weight of 1.0 is used when ``R`` is 0. Large weights make the landscape harder for
heuristic solvers; an explicit ``penalty=`` (in the constraint's own units) with a repair step
(:class:`qopt.pipeline.Formulation`) is the way out.

Examples:
    >>> import dimod
    >>> from qopt.constraints import ConstrainedQUBO
    >>> objective = dimod.BinaryQuadraticModel({"a": -1.0, "b": -2.0, "c": 0.5}, {}, 0.0, "BINARY")
    >>> model = ConstrainedQUBO(objective)
    >>> model.add_one_hot(["a", "b", "c"], label="pick one")
    'pick one'
    >>> best = dimod.ExactSolver().sample(model.to_bqm()).first.sample
    >>> {v: int(best[v]) for v in model.variables}, model.is_feasible(best)
    ({'a': 0, 'b': 1, 'c': 0}, True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

import dimod
import numpy as np

from qopt._validation import check_bqm
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = ["ConstrainedQUBO", "LinearConstraint", "Sense", "check_penalty"]

Sense = Literal["==", "<=", ">="]
_SENSES: tuple[str, ...] = ("==", "<=", ">=")

#: Largest scale ``m`` that turns a constraint's numbers into integers (step 1e-6 and up).
_MAX_SCALE = 10**6
#: Relative tolerance for reading a float as a fraction with a denominator up to ``_MAX_SCALE``.
_SNAP_RTOL = 1e-9
#: Factors over the proven bounds (the weight must be strictly above them); see the docstring.
_LOCAL_FACTOR = 2.0
_GLOBAL_FACTOR = 1.1
#: Share of the objective's range added to every weight, far above float64 rounding.
_ROUNDING_GUARD = 1e-6
#: Integers up to this size are exact in float64, so matrix products on them stay exact.
_EXACT_FLOAT_INT = 2**53


def _describe_variable(v: Hashable) -> str:
    return v if isinstance(v, str) else repr(v)


def _integer_form(values: Sequence[float]) -> tuple[int, list[int]] | None:
    """The smallest ``m <= 10**6`` with ``m * values`` all integers, and those integers.

    ``None`` when some value is not within 1e-9 (relative) of a fraction with a small enough
    denominator. Floats such as ``0.1`` or ``1/3`` are read as the fraction they stand for.
    """
    fractions = []
    for value in values:
        fraction = Fraction(value).limit_denominator(_MAX_SCALE)
        if abs(float(fraction) - value) > _SNAP_RTOL * max(1.0, abs(value)):
            return None
        fractions.append(fraction)
    scale = math.lcm(*(f.denominator for f in fractions)) if fractions else 1
    if scale > _MAX_SCALE:
        return None
    return scale, [int(f * scale) for f in fractions]


def _binary(sample: Mapping[Hashable, Any], v: Hashable, what: str) -> int:
    try:
        value = sample[v]
    except KeyError:
        raise InvalidProblemError(
            f"The sample has no value for variable {v!r} of {what}. "
            "Give a 0/1 value for every decision variable (ConstrainedQUBO.variables)."
        ) from None
    if isinstance(value, bool | numbers.Real) and value in (0, 1):
        return 1 if value == 1 else 0
    raise InvalidProblemError(
        f"The sample gives variable {v!r} of {what} the value {value!r}; "
        "samples must be binary (0 or 1)."
    )


@dataclass(frozen=True)
class LinearConstraint:
    """A linear constraint on binary variables: ``sum(coef * x) <sense> rhs``.

    Attributes:
        terms: ``(variable, coefficient)`` pairs. A mapping or any iterable of pairs is accepted
            and stored as a tuple of pairs with float coefficients.
        sense: ``"=="``, ``"<="`` or ``">="``.
        rhs: The right-hand side.
        label: The constraint's name, used in every message about it.

    Raises:
        InvalidProblemError: No terms, a repeated variable, a non-finite coefficient or
            right-hand side, an unknown sense, or an empty label.

    Examples:
        >>> c = LinearConstraint({"x": 2, "y": 1}, "<=", 2, "budget")
        >>> str(c), c.violation({"x": 1, "y": 1}), c.violation({"x": 1, "y": 0})
        ('2*x + y <= 2', 1.0, 0.0)
    """

    terms: tuple[tuple[Hashable, float], ...]
    sense: Sense
    rhs: float
    label: str

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise InvalidProblemError(
                f"A constraint label must be a non-empty str. Got {self.label!r} instead."
            )
        raw = self.terms.items() if isinstance(self.terms, Mapping) else self.terms
        terms: list[tuple[Hashable, float]] = []
        seen: set[Hashable] = set()
        for pair in raw:
            try:
                v, coefficient = pair
            except (TypeError, ValueError):
                raise InvalidProblemError(
                    f"Constraint '{self.label}': terms must be a mapping variable -> coefficient "
                    f"or (variable, coefficient) pairs. Got the item {pair!r}."
                ) from None
            if v in seen:
                raise InvalidProblemError(
                    f"Constraint '{self.label}' lists variable {v!r} twice; "
                    "give each variable once with the sum of its coefficients."
                )
            seen.add(v)
            terms.append((v, self._finite(coefficient, f"the coefficient of {v!r}")))
        if not terms:
            raise InvalidProblemError(
                f"Constraint '{self.label}' has no variables; a constraint needs at least one."
            )
        if self.sense not in _SENSES:
            raise InvalidProblemError(
                f"Constraint '{self.label}': sense must be one of '==', '<=', '>='. "
                f"Got {self.sense!r} instead."
            )
        object.__setattr__(self, "terms", tuple(terms))
        object.__setattr__(self, "rhs", self._finite(self.rhs, "the right-hand side"))

    def _finite(self, value: Any, what: str) -> float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise InvalidProblemError(
            f"Constraint '{self.label}': {what} must be a finite number. Got {value!r} instead. "
            "Check the inputs that built the constraint (NaN or inf upstream)."
        )

    @property
    def variables(self) -> tuple[Hashable, ...]:
        """The constraint's variables, in the order given."""
        return tuple(v for v, _ in self.terms)

    @cached_property
    def _exact(self) -> tuple[int, list[int]] | None:
        # (m, [m*a_1, ..., m*a_n, m*rhs]) when the numbers sit on a grid; None otherwise.
        return _integer_form([c for _, c in self.terms] + [self.rhs])

    def activity(self, sample: Mapping[Hashable, Any]) -> float:
        """The left-hand side ``sum(coef * x)`` at ``sample`` (0/1 values)."""
        what = f"constraint '{self.label}'"
        return math.fsum(c * _binary(sample, v, what) for v, c in self.terms)

    def violation(self, sample: Mapping[Hashable, Any]) -> float:
        """How far ``sample`` misses the constraint, in its own units; 0.0 when satisfied.

        Computed exactly on the constraint's integer form when it has one (so ``0.1 + 0.2 ==
        0.3`` holds), otherwise in floating point.

        Raises:
            InvalidProblemError: ``sample`` lacks one of the constraint's variables or gives it
                a value other than 0 or 1.
        """
        exact = self._exact
        if exact is None:
            residual = self.activity(sample) - self.rhs
            scale = 1
        else:
            scale, integers = exact
            what = f"constraint '{self.label}'"
            left = sum(
                n * _binary(sample, v, what)
                for (v, _), n in zip(self.terms, integers[:-1], strict=True)
            )
            residual = left - integers[-1]
        if self.sense == "==":
            return abs(residual) / scale
        if self.sense == "<=":
            return max(residual, 0) / scale
        return max(-residual, 0) / scale

    def is_satisfied(self, sample: Mapping[Hashable, Any]) -> bool:
        """Whether ``sample`` satisfies the constraint."""
        return self.violation(sample) == 0

    def __str__(self) -> str:
        return f"{self._left_text()} {self.sense} {self.rhs:g}"

    def _left_text(self) -> str:
        text = ""
        for i, (v, c) in enumerate(self.terms[:6]):
            term = ("" if abs(c) == 1 else f"{abs(c):g}*") + _describe_variable(v)
            if i == 0:
                text = ("-" if c < 0 else "") + term
            else:
                text += (" - " if c < 0 else " + ") + term
        if len(self.terms) > 6:
            text += f" + ... ({len(self.terms) - 6} more terms)"
        return text


@dataclass(frozen=True)
class _Encoded:
    """A constraint (or a two-sided pair) in primitive integer form: ``lo <= c . x <= hi``."""

    labels: tuple[str, ...]
    variables: tuple[Hashable, ...]
    coefficients: tuple[int, ...]
    lo: int
    hi: int
    unit: float  # one integer step, in the constraint's own units (gcd / scale)

    @property
    def low(self) -> int:
        return sum(c for c in self.coefficients if c < 0)

    @property
    def high(self) -> int:
        return sum(c for c in self.coefficients if c > 0)

    @property
    def always_satisfied(self) -> bool:
        return self.lo <= self.low and self.hi >= self.high

    @property
    def is_cardinality(self) -> bool:
        return all(abs(c) == 1 for c in self.coefficients)

    @property
    def key(self) -> str:
        return self.labels[0].removesuffix("[lb]") if len(self.labels) == 2 else self.labels[0]


def check_penalty(penalty: Any, owner: str) -> float | Literal["auto"]:
    """``"auto"`` or a finite float > 0; raise :class:`SolverConfigurationError` otherwise.

    Examples:
        >>> check_penalty(2, "me"), check_penalty("auto", "me")
        (2.0, 'auto')
    """
    if penalty == "auto" and isinstance(penalty, str):
        return "auto"
    if isinstance(penalty, numbers.Real) and not isinstance(penalty, bool):
        value = float(penalty)
        if math.isfinite(value) and value > 0:
            return value
    raise SolverConfigurationError(
        f"The 'penalty' parameter of {owner} must be 'auto' or a finite float in (0, inf). "
        f"Got {penalty!r} instead."
    )


class ConstrainedQUBO:
    """A QUBO objective with hard linear constraints on its binary variables.

    Constraint variables that the objective does not mention are added to the model as new
    binary variables with no objective bias. Every ``add_*`` method checks its inputs now and
    raises :class:`~qopt.exceptions.InvalidProblemError` naming the constraint for non-finite
    numbers, empty variable lists, out-of-range ``k``, ``lb > ub``, coefficients off a common
    grid (see the module docstring), or a constraint no binary assignment can satisfy.

    Args:
        objective: A BINARY :class:`dimod.BinaryQuadraticModel` with finite biases, copied;
            ``None`` for an empty objective (a pure feasibility problem).

    Raises:
        InvalidProblemError: ``objective`` is not a BQM, is SPIN, or has non-finite biases.

    Examples:
        >>> import dimod
        >>> model = ConstrainedQUBO(dimod.BinaryQuadraticModel({0: -1, 1: -1, 2: -1}, {}, 0,
        ...                                                    "BINARY"))
        >>> model.add_inequality({0: 2, 1: 1, 2: 1}, ub=2, label="budget")
        'budget'
        >>> sample = dimod.ExactSolver().sample(model.to_bqm()).first.sample
        >>> {v: int(sample[v]) for v in model.variables}, model.is_feasible(sample)
        ({0: 0, 1: 1, 2: 1}, True)
    """

    def __init__(self, objective: dimod.BinaryQuadraticModel | None = None) -> None:
        owner = "ConstrainedQUBO"
        if objective is None:
            objective = dimod.BinaryQuadraticModel(dimod.BINARY)
        check_bqm(objective, owner, allow_empty=True)
        if objective.vartype is not dimod.BINARY:
            raise InvalidProblemError(
                f"{owner} needs a BINARY objective (0/1 variables); this one is "
                f"{objective.vartype.name}. Convert it with "
                "bqm.change_vartype('BINARY', inplace=False)."
            )
        self._objective = objective.copy()
        self._constraints: dict[str, LinearConstraint] = {}
        self._exact: dict[str, tuple[int, list[int]]] = {}
        self._pairs: dict[str, str] = {}  # lower-bound label -> upper-bound label

    # ------------------------------------------------------------------ views
    @property
    def objective(self) -> dimod.BinaryQuadraticModel:
        """The objective over every decision variable (treat as read-only)."""
        return self._objective

    @property
    def constraints(self) -> Mapping[str, LinearConstraint]:
        """The constraints by label, in the order added (read-only)."""
        return MappingProxyType(self._constraints)

    @property
    def variables(self) -> tuple[Hashable, ...]:
        """The decision variables: the objective's, then new ones from constraints."""
        return tuple(self._objective.variables)

    @property
    def num_variables(self) -> int:
        """Number of decision variables (slack variables excluded)."""
        return self._objective.num_variables

    def __repr__(self) -> str:
        return (
            f"ConstrainedQUBO({self.num_variables} variables, {len(self._constraints)} constraints)"
        )

    # ------------------------------------------------------------ constraints
    def _new_label(self, label: str | None, stem: str) -> str:
        if label is None:
            n = len(self._constraints)
            while f"{stem}_{n}" in self._constraints:
                n += 1
            return f"{stem}_{n}"
        if not isinstance(label, str) or not label:
            raise InvalidProblemError(
                f"A constraint label must be a non-empty str. Got {label!r} instead."
            )
        return label

    def add_constraint(self, constraint: LinearConstraint) -> str:
        """Add a :class:`LinearConstraint` and return its label.

        Unknown variables become new binary decision variables.

        Raises:
            InvalidProblemError: The label is taken, the coefficients are off a common grid,
                or no binary assignment satisfies the constraint.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_constraint(LinearConstraint({"x": 1, "y": 1}, ">=", 1, "cover"))
            'cover'
            >>> model.variables
            ('x', 'y')
        """
        if not isinstance(constraint, LinearConstraint):
            raise InvalidProblemError(
                f"add_constraint() expects a LinearConstraint. Got {type(constraint).__name__} "
                "instead."
            )
        label = constraint.label
        if label in self._constraints:
            raise InvalidProblemError(
                f"A constraint labelled '{label}' already exists; give each constraint a "
                "distinct label (or label=None for an automatic one)."
            )
        exact = constraint._exact
        if exact is None:
            raise InvalidProblemError(
                f"Constraint '{label}' ({constraint}) has coefficients or a right-hand side that "
                "are not multiples of a common step of at least 1e-6, so it has no exact integer "
                "form for slack bits and penalty bounds. Round its numbers to at most 6 decimals "
                "or rescale the constraint."
            )
        self._check_satisfiable(constraint, exact)
        self._register(constraint, exact)
        return label

    def _register(self, constraint: LinearConstraint, exact: tuple[int, list[int]]) -> None:
        for v in constraint.variables:
            if v not in self._objective.variables:
                self._objective.add_variable(v)
        self._constraints[constraint.label] = constraint
        self._exact[constraint.label] = exact

    @staticmethod
    def _check_satisfiable(constraint: LinearConstraint, exact: tuple[int, list[int]]) -> None:
        _, integers = exact
        *coefficients, target = integers
        low = sum(c for c in coefficients if c < 0)
        high = sum(c for c in coefficients if c > 0)
        step = math.gcd(*coefficients)
        if constraint.sense == "==":
            ok = low <= target <= high and (target % step == 0 if step else target == 0)
        elif constraint.sense == "<=":
            ok = low <= target
        else:
            ok = high >= target
        if not ok:
            scale = exact[0]
            raise InvalidProblemError(
                f"Constraint '{constraint.label}' ({constraint}) cannot be satisfied by any "
                f"binary assignment: its left side takes values in [{low / scale:g}, "
                f"{high / scale:g}]"
                + (f" in steps of {step / scale:g}" if constraint.sense == "==" else "")
                + ". Check the right-hand side and the signs of the coefficients."
            )

    @staticmethod
    def _variable_list(variables: Iterable[Hashable], label: str, owner: str) -> list[Hashable]:
        if isinstance(variables, str | bytes) or not isinstance(variables, Iterable):
            raise InvalidProblemError(
                f"{owner} (constraint '{label}') expects a list of variable labels. "
                f"Got {variables!r} instead."
            )
        listed = list(variables)
        if not listed:
            raise InvalidProblemError(
                f"{owner} (constraint '{label}') was given no variables; pass at least one."
            )
        if len(set(listed)) != len(listed):
            repeated = next(v for v in listed if listed.count(v) > 1)
            raise InvalidProblemError(
                f"{owner} (constraint '{label}') lists variable {repeated!r} "
                "more than once; each variable may appear once."
            )
        return listed

    def add_one_hot(self, variables: Iterable[Hashable], label: str | None = None) -> str:
        """Exactly one of ``variables`` is 1. Returns the constraint's label.

        Variables the model does not have yet are added as new binaries.

        Raises:
            InvalidProblemError: No variables, a repeated variable, or a taken label.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_one_hot(["red", "green", "blue"])
            'one_hot_0'
            >>> model.is_feasible({"red": 0, "green": 1, "blue": 0})
            True
        """
        label = self._new_label(label, "one_hot")
        listed = self._variable_list(variables, label, "add_one_hot()")
        return self.add_constraint(LinearConstraint(_unit_terms(listed), "==", 1.0, label))

    def add_k_of_n(self, variables: Iterable[Hashable], k: int, label: str | None = None) -> str:
        """Exactly ``k`` of ``variables`` are 1. Returns the constraint's label.

        Variables the model does not have yet are added as new binaries.

        Raises:
            InvalidProblemError: No variables, a repeated variable, ``k`` not an int in
                ``[0, len(variables)]``, or a taken label.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_k_of_n(["a", "b", "c", "d"], 2, label="two experts")
            'two experts'
            >>> model.violations({"a": 1, "b": 1, "c": 1, "d": 0})
            {'two experts': 1.0}
        """
        label = self._new_label(label, "k_of_n")
        listed = self._variable_list(variables, label, "add_k_of_n()")
        if not (isinstance(k, numbers.Integral) and not isinstance(k, bool)) or not (
            0 <= k <= len(listed)
        ):
            raise InvalidProblemError(
                f"The 'k' parameter of add_k_of_n() (constraint '{label}') must be an int in "
                f"[0, {len(listed)}], the number of variables. Got {k!r} instead."
            )
        return self.add_constraint(LinearConstraint(_unit_terms(listed), "==", float(k), label))

    def add_equality(
        self, terms: Mapping[Hashable, float], rhs: float, label: str | None = None
    ) -> str:
        """``sum(terms[v] * v) == rhs``. Returns the constraint's label.

        Variables the model does not have yet are added as new binaries.

        Raises:
            InvalidProblemError: No terms, a non-finite number, numbers off a common grid of
                step 1e-6 or more, a right-hand side no assignment reaches, or a taken label.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_equality({"x": 0.5, "y": 0.25, "z": 0.25}, 0.5, label="half")
            'half'
            >>> model.is_feasible({"x": 0, "y": 1, "z": 1})
            True
        """
        label = self._new_label(label, "equality")
        return self.add_constraint(LinearConstraint(_terms(terms, label), "==", rhs, label))

    def add_inequality(
        self,
        terms: Mapping[Hashable, float],
        lb: float | None = None,
        ub: float | None = None,
        label: str | None = None,
    ) -> str:
        """``lb <= sum(terms[v] * v) <= ub``, either bound optional. Returns the label.

        Slack variables are added at :meth:`to_bqm` time, only for a bound that can bind. With
        both bounds (``lb < ub``) the model holds two constraints, ``"<label>[lb]"`` (``>=``)
        and ``"<label>[ub]"`` (``<=``), encoded together with one set of slack bits;
        ``lb == ub`` is stored as an equality. Variables the model does not have yet are added
        as new binaries.

        Raises:
            InvalidProblemError: No terms, no bound, a non-finite number, ``lb > ub``, numbers
                off a common grid, bounds no assignment can meet, or a taken label.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_inequality({"a": 1, "b": 1, "c": 1}, lb=1, ub=2, label="some")
            'some'
            >>> list(model.constraints)
            ['some[lb]', 'some[ub]']
            >>> model.violations({"a": 1, "b": 1, "c": 1})
            {'some[lb]': 0.0, 'some[ub]': 1.0}
        """
        label = self._new_label(label, "inequality")
        owner = f"add_inequality() (constraint '{label}')"
        pairs = _terms(terms, label)
        bounds: dict[str, float] = {}
        for name, bound in (("lb", lb), ("ub", ub)):
            if bound is None:
                continue
            if not (isinstance(bound, numbers.Real) and not isinstance(bound, bool)) or not (
                math.isfinite(bound)
            ):
                raise InvalidProblemError(
                    f"The '{name}' parameter of {owner} must be a finite float or None (no "
                    f"bound). Got {bound!r} instead."
                )
            bounds[name] = float(bound)
        if not bounds:
            raise InvalidProblemError(
                f"{owner} needs a lower bound (lb), an upper bound (ub) or both; got neither."
            )
        if "lb" in bounds and "ub" in bounds:
            if bounds["lb"] > bounds["ub"]:
                raise InvalidProblemError(
                    f"{owner} has lb={bounds['lb']:g} > ub={bounds['ub']:g}: no assignment "
                    "satisfies it. Swap or correct the bounds."
                )
            if bounds["lb"] == bounds["ub"]:
                return self.add_constraint(LinearConstraint(pairs, "==", bounds["lb"], label))
            lower = LinearConstraint(pairs, ">=", bounds["lb"], f"{label}[lb]")
            upper = LinearConstraint(pairs, "<=", bounds["ub"], f"{label}[ub]")
            self._add_range(lower, upper, label)
            return label
        sense: Sense = ">=" if "lb" in bounds else "<="
        return self.add_constraint(
            LinearConstraint(pairs, sense, next(iter(bounds.values())), label)
        )

    def _add_range(self, lower: LinearConstraint, upper: LinearConstraint, label: str) -> None:
        for c in (lower, upper):
            if c.label in self._constraints:
                raise InvalidProblemError(
                    f"A constraint labelled '{c.label}' already exists; give add_inequality() "
                    f"another label than '{label}'."
                )
        joint = _integer_form([c for _, c in lower.terms] + [lower.rhs, upper.rhs])
        if joint is None or lower._exact is None or upper._exact is None:
            raise InvalidProblemError(
                f"Constraint '{label}' has coefficients or bounds that are not multiples of a "
                "common step of at least 1e-6, so it has no exact integer form for slack bits "
                "and penalty bounds. Round its numbers to at most 6 decimals or rescale."
            )
        scale, integers = joint
        *coefficients, lo, hi = integers
        step = math.gcd(*coefficients) or 1
        low = sum(c for c in coefficients if c < 0)
        high = sum(c for c in coefficients if c > 0)
        # The left side moves in steps of gcd from `low`; some value must land in [lo, hi].
        first = low + -((low - lo) // step) * step if lo > low else low
        if first > min(hi, high):
            raise InvalidProblemError(
                f"Constraint '{label}' ({lower.rhs:g} <= {lower._left_text()} <= "
                f"{upper.rhs:g}) cannot be satisfied by any binary assignment: its left side "
                f"takes values in [{low / scale:g}, {high / scale:g}] in steps of "
                f"{step / scale:g}. Check the bounds and the signs of the coefficients."
            )
        self._register(lower, lower._exact)
        self._register(upper, upper._exact)
        self._pairs[lower.label] = upper.label

    # --------------------------------------------------------------- CQM I/O
    @classmethod
    def from_cqm(cls, cqm: dimod.ConstrainedQuadraticModel) -> ConstrainedQUBO:
        """Build a model from a dimod CQM with binary variables and linear hard constraints.

        Constraint labels become ``str(label)``; a constant on a constraint's left side moves
        to its right side.

        Raises:
            InvalidProblemError: ``cqm`` is not a CQM, has a non-binary variable, a quadratic or
                soft constraint, or a constraint that fails the checks of :meth:`add_constraint`.

        Examples:
            >>> import dimod
            >>> x, y, z = dimod.Binaries(["x", "y", "z"])
            >>> cqm = dimod.ConstrainedQuadraticModel()
            >>> cqm.set_objective(-x - 2 * y + x * z)
            >>> _ = cqm.add_constraint(x + y + z <= 2, label="at most two")
            >>> model = ConstrainedQUBO.from_cqm(cqm)
            >>> model.constraints["at most two"].sense, model.num_variables
            ('<=', 3)
        """
        if not isinstance(cqm, dimod.ConstrainedQuadraticModel):
            raise InvalidProblemError(
                "ConstrainedQUBO.from_cqm() expects a dimod.ConstrainedQuadraticModel. Got "
                f"{type(cqm).__name__} instead."
            )
        for v in cqm.variables:
            vartype = cqm.vartype(v)
            if vartype is not dimod.BINARY:
                raise InvalidProblemError(
                    f"ConstrainedQUBO.from_cqm() supports binary variables only; variable "
                    f"{v!r} is {vartype.name}. Encode integers in binary "
                    "variables first (or use a CQM solver such as Leap hybrid)."
                )
        objective = dimod.BinaryQuadraticModel(dimod.BINARY)
        objective.add_variables_from((v, 0.0) for v in cqm.variables)
        source = cqm.objective
        objective.add_linear_from(source.linear.items())
        objective.add_quadratic_from(dict(source.quadratic))
        objective.offset = source.offset
        model = cls(objective)
        soft = getattr(cqm, "_soft", {})  # dimod keeps soft-constraint weights here
        for label, comparison in cqm.constraints.items():
            name = str(label)
            if label in soft:
                raise InvalidProblemError(
                    f"ConstrainedQUBO.from_cqm(): constraint '{name}' is soft (weighted); only "
                    "hard constraints are supported. Make it hard, or add its penalty to the "
                    "objective yourself."
                )
            lhs = comparison.lhs
            if not lhs.is_linear():
                raise InvalidProblemError(
                    f"ConstrainedQUBO.from_cqm(): constraint '{name}' is quadratic; only linear "
                    "constraints are supported. Linearize it (e.g. a product x*y becomes a new "
                    "binary z with z <= x, z <= y, z >= x + y - 1)."
                )
            terms = [(v, float(b)) for v, b in lhs.linear.items()]
            rhs = float(comparison.rhs) - float(lhs.offset)
            model.add_constraint(LinearConstraint(tuple(terms), comparison.sense.value, rhs, name))
        return model

    def to_cqm(self) -> dimod.ConstrainedQuadraticModel:
        """The model as a dimod CQM (hard linear constraints), e.g. for a CQM solver.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_one_hot(["a", "b"], label="one")
            'one'
            >>> ConstrainedQUBO.from_cqm(model.to_cqm()).constraints["one"].rhs
            1.0
        """
        cqm = dimod.ConstrainedQuadraticModel()
        cqm.set_objective(self._objective)
        for c in self._constraints.values():
            cqm.add_constraint_from_iterable(list(c.terms), c.sense, rhs=c.rhs, label=c.label)
        return cqm

    # ------------------------------------------------------------- penalties
    def _encoded(self) -> list[_Encoded]:
        """Each constraint (two-sided pairs merged) in primitive integer form."""
        paired = set(self._pairs.values())
        encoded = []
        for label, c in self._constraints.items():
            if label in paired:
                continue
            values = [b for _, b in c.terms] + [c.rhs]
            labels: tuple[str, ...] = (label,)
            if label in self._pairs:
                upper = self._constraints[self._pairs[label]]
                values.append(upper.rhs)
                labels = (label, upper.label)
            exact = _integer_form(values)
            assert exact is not None  # checked when the constraint was added
            scale, integers = exact
            nonzero = [
                (v, n) for (v, _), n in zip(c.terms, integers[: len(c.terms)], strict=True) if n
            ]
            step = math.gcd(*(n for _, n in nonzero)) if nonzero else 1
            coefficients = tuple(n // step for _, n in nonzero)
            low = sum(n for n in coefficients if n < 0)
            high = sum(n for n in coefficients if n > 0)
            target = integers[len(c.terms)]
            # The left side moves in multiples of `step`: round bounds inward (floor / ceil).
            if c.sense == "==":
                lo = hi = target // step
            elif c.sense == "<=":
                lo, hi = low, target // step
            else:
                lo = -(-target // step)
                hi = integers[-1] // step if len(labels) == 2 else high
            encoded.append(
                _Encoded(
                    labels,
                    tuple(v for v, _ in nonzero),
                    coefficients,
                    max(lo, low),
                    min(hi, high),
                    step / scale,
                )
            )
        return encoded

    def _weights(self, encoded: list[_Encoded], penalty: float | Literal["auto"]) -> list[float]:
        """The weight of each encoded constraint, in integer units (see the module docstring)."""
        if penalty != "auto":
            return [float(penalty) * e.unit**2 for e in encoded]
        variables = self.variables
        index = {v: i for i, v in enumerate(variables)}
        linear, (row, col, quadratic), _ = self._objective.to_numpy_vectors(variables)
        linear = np.asarray(linear, dtype=float)
        quadratic = np.asarray(quadratic, dtype=float)
        up = np.zeros(len(variables))
        down = np.zeros(len(variables))
        for ends in (row, col):
            np.add.at(up, ends, np.maximum(quadratic, 0.0))
            np.add.at(down, ends, np.minimum(quadratic, 0.0))
        flip = np.maximum(np.abs(linear + up), np.abs(linear + down))
        objective_range = float(np.abs(linear).sum() + np.abs(quadratic).sum())

        uses: dict[Hashable, int] = {}
        for e in encoded:
            if not e.always_satisfied:
                for v in e.variables:
                    uses[v] = uses.get(v, 0) + 1
        weights = []
        for e in encoded:
            local = e.is_cardinality and all(uses.get(v, 0) == 1 for v in e.variables)
            if local:
                weight = _LOCAL_FACTOR * float(flip[[index[v] for v in e.variables]].max())
            else:
                weight = _GLOBAL_FACTOR * objective_range
            weight += _ROUNDING_GUARD * objective_range
            weights.append(weight if weight > 0 else 1.0)
        return weights

    def penalty_weights(self, penalty: float | Literal["auto"] = "auto") -> dict[str, float]:
        """The weight on each constraint's squared residual, in the constraint's own units.

        ``to_bqm(penalty)`` adds ``weight * (a . x + s - b)**2`` per constraint (``s`` the
        slack, 0 for equalities); this returns each ``weight``. With a float ``penalty`` every
        weight equals it; with ``"auto"`` they follow the rules of the module docstring.
        Constraints that no assignment can violate get 0.0 (they are left out of the BQM).

        Examples:
            >>> import dimod
            >>> objective = dimod.BinaryQuadraticModel({"a": 3.0, "b": -1.0}, {}, 0, "BINARY")
            >>> model = ConstrainedQUBO(objective)
            >>> model.add_one_hot(["a", "b"], label="one")
            'one'
            >>> model.penalty_weights()  # local rule: 2 * max(|3|, |-1|) + 1e-6 * (3 + 1)
            {'one': 6.000004}
        """
        penalty = check_penalty(penalty, "ConstrainedQUBO.penalty_weights()")
        encoded = self._encoded()
        weights = {label: 0.0 for label in self._constraints}
        for e, w in zip(encoded, self._weights(encoded, penalty), strict=True):
            if not e.always_satisfied:
                for label in e.labels:
                    weights[label] = w / e.unit**2
        return weights

    def to_bqm(self, penalty: float | Literal["auto"] = "auto") -> dimod.BinaryQuadraticModel:
        """The objective plus one quadratic penalty per constraint, as a BINARY BQM.

        Inequalities get binary slack variables (dimod's
        :meth:`~dimod.BinaryQuadraticModel.add_linear_inequality_constraint`), labelled
        ``"slack[<label>][<j>]"`` (with leading underscores added until no label collides with a
        decision variable). Constraints no assignment can violate add nothing.

        Args:
            penalty: ``"auto"`` for the provable weights of the module docstring, or a float
                ``P > 0``: each constraint then adds ``P * (a . x + s - b)**2`` in its own
                units.

        Raises:
            SolverConfigurationError: ``penalty`` is neither ``"auto"`` nor a finite float > 0.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_inequality({"a": 1, "b": 1, "c": 1}, ub=2, label="cap")
            'cap'
            >>> sorted(v for v in model.to_bqm().variables if v not in model.variables)
            ['slack[cap][0]', 'slack[cap][1]']
        """
        penalty = check_penalty(penalty, "ConstrainedQUBO.to_bqm()")
        encoded = [e for e in self._encoded() if not e.always_satisfied]
        weights = self._weights(encoded, penalty)
        bqm = self._objective.copy()
        slacked = []
        for e, weight in zip(encoded, weights, strict=True):
            terms = list(zip(e.variables, e.coefficients, strict=True))
            if e.lo == e.hi:
                bqm.add_linear_equality_constraint(terms, weight, -e.lo)
                continue
            # A scratch model over integer stand-ins keeps dimod's own slack labels apart from
            # the user's variables; they are renamed to collision-free labels below.
            scratch = dimod.BinaryQuadraticModel(dimod.BINARY)
            slack = scratch.add_linear_inequality_constraint(
                [(i, c) for i, (_, c) in enumerate(terms)], weight, "s", lb=e.lo, ub=e.hi
            )
            slacked.append((e, scratch, [s for s, _ in slack]))
        prefix = "slack"
        decision = self._objective.variables
        while any(
            f"{prefix}[{e.key}][{j}]" in decision
            for e, _, names in slacked
            for j in range(len(names))
        ):
            prefix = "_" + prefix
        for e, scratch, names in slacked:
            mapping: dict[Hashable, Hashable] = dict(enumerate(e.variables))
            mapping.update({s: f"{prefix}[{e.key}][{j}]" for j, s in enumerate(names)})
            bqm.update(scratch.relabel_variables(mapping, inplace=False))
        return bqm

    # -------------------------------------------------------------- samples
    def objective_energy(self, sample: Mapping[Hashable, Any]) -> float:
        """The objective's energy at ``sample`` (no penalty); extra keys are ignored.

        Examples:
            >>> import dimod
            >>> model = ConstrainedQUBO(dimod.BinaryQuadraticModel({"a": -1}, {}, 0.5, "BINARY"))
            >>> model.objective_energy({"a": 1, "slack[x][0]": 1})
            -0.5
        """
        values = [_binary(sample, v, "the model") for v in self.variables]
        return float(
            self._objective.energy((np.array([values], dtype=np.int8), list(self.variables)))
        )

    def violations(self, sample: Mapping[Hashable, Any]) -> dict[str, float]:
        """Each constraint's violation at ``sample`` (0.0 when satisfied), by label.

        ``sample`` maps decision variables to 0/1; extra keys (slack variables) are ignored.

        Raises:
            InvalidProblemError: A constraint variable is missing or not 0/1.

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_k_of_n(["a", "b", "c"], 2, label="two")
            'two'
            >>> model.violations({"a": 1, "b": 0, "c": 0})
            {'two': 1.0}
        """
        return {label: c.violation(sample) for label, c in self._constraints.items()}

    def is_feasible(self, sample: Mapping[Hashable, Any]) -> bool:
        """Whether ``sample`` satisfies every constraint exactly (on the integer form).

        Examples:
            >>> model = ConstrainedQUBO()
            >>> model.add_one_hot(["a", "b"])
            'one_hot_0'
            >>> model.is_feasible({"a": 1, "b": 1})
            False
        """
        return all(c.is_satisfied(sample) for c in self._constraints.values())

    def _feasible_rows(self, rows: np.ndarray) -> np.ndarray:
        """Feasibility of each row of a 0/1 matrix whose columns follow :attr:`variables`."""
        rows = np.asarray(rows)
        feasible = np.ones(rows.shape[0], dtype=bool)
        if not self._constraints or rows.shape[0] == 0:
            return feasible
        index = {v: i for i, v in enumerate(self.variables)}
        for label, c in self._constraints.items():
            _, integers = self._exact[label]
            *coefficients, target = integers
            columns = [index[v] for v in c.variables]
            if sum(abs(n) for n in coefficients) + abs(target) < _EXACT_FLOAT_INT:
                left = rows[:, columns].astype(np.float64) @ np.array(coefficients, np.float64)
            else:  # beyond float64's exact integers: Python ints, row by row
                left = np.array(
                    [
                        sum(n * int(x) for n, x in zip(coefficients, row, strict=True))
                        for row in rows[:, columns].tolist()
                    ],
                    dtype=object,
                )
            if c.sense == "==":
                feasible &= left == target
            elif c.sense == "<=":
                feasible &= left <= target
            else:
                feasible &= left >= target
        return feasible


def _terms(terms: Any, label: str) -> tuple[tuple[Hashable, float], ...]:
    """Check that ``terms`` is a mapping variable -> coefficient and return its pairs."""
    if not isinstance(terms, Mapping):
        raise InvalidProblemError(
            f"Constraint '{label}': terms must be a mapping variable -> coefficient. Got "
            f"{type(terms).__name__} instead."
        )
    return tuple(terms.items())


def _unit_terms(variables: list[Hashable]) -> tuple[tuple[Hashable, float], ...]:
    return tuple((v, 1.0) for v in variables)
