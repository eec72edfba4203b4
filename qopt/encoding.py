"""Parameter spaces to bits and back: one-hot and domain-wall encodings with repair.

A search space (categorical, integer and float parameters) becomes a vector of bits that a
QUBO can range over, and every bit pattern a solver returns becomes a valid point again:

* categorical parameters with three or more choices are **one-hot** encoded: one bit per choice,
  exactly one on (a constraint handed to :class:`qopt.constraints.ConstrainedQUBO`);
* ordered parameters (integers, stepped or gridded floats) and two-valued parameters are
  **domain-wall** encoded (Chancellor, "Domain wall encoding of discrete variables for quantum
  annealing and QAOA", Quantum Sci. Technol. 4, 045004 (2019)): ``n - 1`` bits for ``n`` values,
  bit ``j`` on when the value index exceeds ``j`` (a run of ones, then zeros);
* continuous floats are first put on a grid of ``n_bins`` points (geometric when ``log``), and
  integer or stepped ranges with more than ``max_values`` values are thinned to that many.

Why domain-wall for ordered parameters: it needs one bit fewer than one-hot, a step to the
neighbouring value is a single bit flip (one-hot needs two), and it loses nothing: linear terms
over the ``n - 1`` bits represent any function of the value and pairwise terms any function of
two values, exactly as one-hot does. The wall constraint ``b[j + 1] <= b[j]`` is added to the
objective as the exact quadratic penalty ``P * b[j + 1] * (1 - b[j])``: it is zero on every valid
pattern (so a feasible point's objective is unchanged), needs no slack bits, and its weight
``P`` is scaled from the objective's coefficients.

Known linear constraints on parameter values (``2 * width_1 + width_2 <= 64``) and budgets
given as per-value costs (``{"op": {"conv3x3": 0.12, "skip": 0.0}}``, the parameters each
choice adds) are linear in the bits under both encodings, so they go into the QUBO exactly,
through :class:`qopt.constraints.ConstrainedQUBO`, and :meth:`SpaceEncoding.repair` makes any
bit pattern valid and feasible.

Examples:
    >>> from qopt.encoding import CategoricalParameter, FloatParameter, IntParameter, SpaceEncoding
    >>> space = SpaceEncoding({
    ...     "optimizer": CategoricalParameter(("adam", "sgd", "rmsprop")),
    ...     "layers": IntParameter(1, 4),
    ...     "lr": FloatParameter(1e-4, 1e-1, log=True),
    ... }, n_bins=4)
    >>> space.n_bits, space.size
    (9, 48)
    >>> bits = space.encode({"optimizer": "sgd", "layers": 3, "lr": 1e-3})
    >>> bits.tolist()
    [0, 1, 0, 1, 1, 0, 1, 0, 0]
    >>> space.decode(bits)
    {'optimizer': 'sgd', 'layers': 3, 'lr': 0.001}
    >>> space.decode(space.repair([1, 1, 0, 0, 1, 1, 0, 1, 1]))  # nearest valid pattern
    {'optimizer': 'adam', 'layers': 4, 'lr': 0.1}
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import dimod
import numpy as np

from qopt import moves
from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

if TYPE_CHECKING:
    from qopt.constraints import ConstrainedQUBO
    from qopt.pipeline import Formulation

__all__ = [
    "CategoricalParameter",
    "DenseEnergy",
    "FloatParameter",
    "IntParameter",
    "Parameter",
    "ParameterConstraint",
    "ParameterEncoding",
    "Scheme",
    "SpaceEncoding",
    "Term",
]

Scheme: TypeAlias = Literal["one-hot", "domain-wall"]
_SCHEMES = ("auto", "one-hot", "domain-wall")


@dataclass(frozen=True)
class CategoricalParameter:
    """Unordered choices; encoded one-hot (one bit when there are only two).

    Examples:
        >>> CategoricalParameter(("relu", "gelu")).choices
        ('relu', 'gelu')
    """

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) == 0:
            raise InvalidProblemError("A CategoricalParameter needs at least one choice.")


@dataclass(frozen=True)
class IntParameter:
    """Integers ``low, low + step, ..., high``; ``log`` places a thinned grid geometrically.

    Examples:
        >>> IntParameter(2, 10, step=2)
        IntParameter(low=2, high=10, step=2, log=False)
    """

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if not all(isinstance(v, numbers.Integral) for v in (self.low, self.high, self.step)):
            raise InvalidProblemError(
                f"IntParameter bounds and step must be ints. Got low={self.low!r}, "
                f"high={self.high!r}, step={self.step!r} instead."
            )
        if self.step < 1 or self.low > self.high:
            raise InvalidProblemError(
                f"IntParameter needs low <= high and step >= 1. Got low={self.low}, "
                f"high={self.high}, step={self.step} instead."
            )
        if self.log and (self.low < 1 or self.step != 1):
            raise InvalidProblemError(
                f"A log-scaled IntParameter needs low >= 1 and step == 1. Got low={self.low}, "
                f"step={self.step} instead."
            )


@dataclass(frozen=True)
class FloatParameter:
    """Floats in ``[low, high]``: on the ``step`` lattice if given, else on a grid of bins.

    Examples:
        >>> FloatParameter(0.0, 1.0, step=0.25)
        FloatParameter(low=0.0, high=1.0, step=0.25, log=False)
    """

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        finite = all(math.isfinite(v) for v in (self.low, self.high))
        if not finite or self.low > self.high:
            raise InvalidProblemError(
                f"FloatParameter needs finite low <= high. Got low={self.low!r}, "
                f"high={self.high!r} instead."
            )
        if self.step is not None and not (math.isfinite(self.step) and self.step > 0):
            raise InvalidProblemError(
                f"FloatParameter step must be a positive float. Got {self.step!r} instead."
            )
        if self.log and (self.low <= 0 or self.step is not None):
            raise InvalidProblemError(
                f"A log-scaled FloatParameter needs low > 0 and no step. Got low={self.low}, "
                f"step={self.step} instead."
            )


Parameter: TypeAlias = CategoricalParameter | IntParameter | FloatParameter


#: A term of a :class:`ParameterConstraint`: a coefficient on a numeric value, costs by value
#: (``{"conv3x3": 0.12, "skip": 0.0}``) or costs by value position (``(0.12, 0.0)``).
Term: TypeAlias = float | Mapping[Any, float] | Sequence[float]


@dataclass(frozen=True)
class ParameterConstraint:
    """A known linear constraint on a point: ``lb <= sum(term(value)) <= ub``.

    Each term is a function of one parameter's value, given in one of three forms:

    * a number ``c``: ``c * value`` (int and float parameters);
    * costs by value, ``{"conv3x3": 0.12, "skip": 0.0}``: the cost of each value (categorical
      and int parameters; values left out cost 0), e.g. the parameters each operation adds;
    * costs by value position, ``[0.12, 0.0]``: the same for the parameter's declared values
      in order (the choices of a categorical, ``low, low + step, ..., high`` of an int).

    Every form is linear in the bits under both encodings (a one-hot bit carries its value's
    cost, a domain-wall bit the difference between neighbouring values' costs), so the
    constraint enters the QUBO exactly as a penalty and no infeasible point is ever proposed.

    Examples:
        >>> ParameterConstraint({"width_1": 1, "width_2": 1}, ub=96, label="budget").ub
        96.0
        >>> c = ParameterConstraint({"op": {"conv3x3": 0.12, "skip": 0.0}, "width": 0.01}, ub=0.5)
        >>> c.contribution("op", "conv3x3") + c.contribution("width", 16)
        0.28
    """

    terms: Mapping[str, Term]
    lb: float | None = None
    ub: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "terms", {str(k): self._term(str(k), v) for k, v in self.terms.items()}
        )
        if not self.terms:
            raise InvalidProblemError("A ParameterConstraint needs at least one term.")
        if self.lb is None and self.ub is None:
            raise InvalidProblemError(
                f"ParameterConstraint {self.name} needs a lower bound (lb), an upper bound (ub) "
                "or both."
            )
        for bound in ("lb", "ub"):
            value = getattr(self, bound)
            if value is not None:
                object.__setattr__(self, bound, float(value))
                if math.isnan(float(value)):
                    raise InvalidProblemError(
                        f"ParameterConstraint {self.name} has {bound}=nan: no point could be "
                        f"compared with it. Give a number, or leave {bound} out."
                    )
        if self.lb is not None and self.ub is not None and self.lb > self.ub:
            raise InvalidProblemError(
                f"ParameterConstraint {self.name} has lb={self.lb} > ub={self.ub}: no point "
                "satisfies it."
            )

    def _term(self, name: str, term: Any) -> Term:
        if isinstance(term, numbers.Real) and not isinstance(term, bool):
            return _finite(float(term), name, self.label)
        if isinstance(term, Mapping):
            if not term:
                raise InvalidProblemError(
                    f"ParameterConstraint {self.label or ''!r} gives parameter '{name}' an empty "
                    "table of per-value costs; give at least one {value: cost}."
                )
            return {
                v: _finite(_real(c, name, self.label), name, self.label) for v, c in term.items()
            }
        if isinstance(term, Sequence) and not isinstance(term, str | bytes) and term:
            return tuple(_finite(_real(c, name, self.label), name, self.label) for c in term)
        raise InvalidProblemError(
            f"ParameterConstraint {self.label or ''!r} has term {term!r} for parameter '{name}'; "
            "give a number (coefficient on the value), a {value: cost} mapping or a list of "
            "costs by value position."
        )

    @property
    def name(self) -> str:
        """The label, or the constraint written out."""
        if self.label is not None:
            return repr(self.label)
        lhs = " + ".join(
            f"{c:g}*{p}" if isinstance(c, float) else f"cost({p})" for p, c in self.terms.items()
        )
        return f"'{lhs}'"

    def contribution(self, name: str, value: Any) -> float:
        """What parameter ``name`` at ``value`` adds to the left-hand side.

        Per-value costs by position need the declared values: use
        :meth:`SpaceEncoding.is_feasible` for those.
        """
        term = self.terms[name]
        if isinstance(term, float):
            return term * float(value)
        if isinstance(term, Mapping):
            return _lookup(term, value)
        raise InvalidProblemError(
            f"Parameter '{name}' of constraint {self.name} has costs by value position; its "
            "contribution needs the parameter's values (SpaceEncoding.is_feasible)."
        )

    def with_positions(self, choices: Mapping[str, Sequence[Any]]) -> ParameterConstraint:
        """The constraint with per-value cost tables of the named parameters made positional.

        For a caller that encodes a categorical by the positions of its choices (as Optuna
        samplers do): ``choices`` maps a parameter name to its choices in order.

        Examples:
            >>> c = ParameterConstraint({"op": {"conv": 3.0}}, ub=2)
            >>> c.with_positions({"op": ["skip", "conv"]}).terms
            {'op': (0.0, 3.0)}
        """
        terms: dict[str, Term] = {}
        for name, term in self.terms.items():
            if isinstance(term, Mapping) and name in choices:
                values = list(choices[name])
                for key in term:
                    if _position(values, key) is None:
                        raise InvalidProblemError(
                            f"Constraint {self.name} gives a cost to {key!r}, which is not a "
                            f"choice of parameter '{name}'; its choices are {values}."
                        )
                terms[name] = tuple(_lookup(term, v) for v in values)
            else:
                terms[name] = term
        return ParameterConstraint(terms, lb=self.lb, ub=self.ub, label=self.label)

    def with_fixed(self, contributions: Mapping[str, float]) -> ParameterConstraint | None:
        """The constraint on the other parameters when the named ones are fixed.

        ``contributions`` maps each fixed parameter to what its value adds to the left-hand
        side; the sum moves into the bounds. ``None`` when no parameter is left (check the
        fixed total with :meth:`violation` instead).

        Examples:
            >>> c = ParameterConstraint({"a": 1, "b": 2}, ub=10, label="size")
            >>> c.with_fixed({"b": 6.0})
            ParameterConstraint(terms={'a': 1.0}, lb=None, ub=4.0, label='size')
        """
        fixed = sum(float(v) for n, v in contributions.items() if n in self.terms)
        terms = {n: t for n, t in self.terms.items() if n not in contributions}
        if not terms:
            return None
        return ParameterConstraint(
            terms,
            lb=None if self.lb is None else self.lb - fixed,
            ub=None if self.ub is None else self.ub - fixed,
            label=self.label,
        )

    def violation(self, total: float) -> float:
        """How far ``total`` (the left-hand side) lies outside ``[lb, ub]``; 0 when satisfied."""
        below = 0.0 if self.lb is None else max(0.0, self.lb - total)
        above = 0.0 if self.ub is None else max(0.0, total - self.ub)
        return below + above


def _real(value: Any, name: str, label: str | None) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise InvalidProblemError(
        f"ParameterConstraint {label or ''!r} gives parameter '{name}' the cost {value!r}; "
        "costs must be numbers."
    )


def _finite(value: float, name: str, label: str | None) -> float:
    if not math.isfinite(value):
        raise InvalidProblemError(
            f"ParameterConstraint {label or ''!r} gives parameter '{name}' the non-finite "
            f"coefficient {value!r}; use finite numbers."
        )
    return value


def _same(a: Any, b: Any) -> bool:
    """Type-aware equality: ``1`` and ``True`` (or ``1.0``) are different choices."""
    return a is b or (type(a) is type(b) and a == b)


def _position(values: Sequence[Any], value: Any) -> int | None:
    """Position of ``value`` in ``values``: a type-aware match first, then plain equality."""
    for k, v in enumerate(values):
        if _same(v, value):
            return k
    for k, v in enumerate(values):
        if v == value:
            return k
    return None


def _lookup(table: Mapping[Any, float], value: Any) -> float:
    """The cost of ``value`` in a per-value table (type-aware; absent values cost 0)."""
    keys = list(table)
    k = _position(keys, value)
    return 0.0 if k is None else table[keys[k]]


@dataclass(frozen=True)
class ParameterEncoding:
    """How one parameter occupies ``n_bits`` bits starting at ``offset``.

    Attributes:
        name: Parameter name.
        parameter: The parameter as given.
        values: The finite grid of values, in order (choices for a categorical).
        scheme: ``"one-hot"`` or ``"domain-wall"``.
        offset: Index of the first bit in the space's bit vector.
    """

    name: str
    parameter: Parameter
    values: tuple[Any, ...]
    scheme: Scheme
    offset: int
    _keys: np.ndarray = field(repr=False, compare=False)

    @property
    def n_values(self) -> int:
        """Number of grid values."""
        return len(self.values)

    @property
    def n_bits(self) -> int:
        """Bits this parameter uses: ``n`` for one-hot, ``n - 1`` for domain-wall."""
        if self.n_values <= 1:
            return 0
        return self.n_values if self.scheme == "one-hot" else self.n_values - 1

    @property
    def bit_slice(self) -> slice:
        """Where this parameter's bits sit in the space's bit vector."""
        return slice(self.offset, self.offset + self.n_bits)

    @property
    def is_numeric(self) -> bool:
        """Whether the parameter is an int or float (may appear in linear constraints)."""
        return not isinstance(self.parameter, CategoricalParameter)

    def patterns(self) -> np.ndarray:
        """Every valid bit pattern, row ``k`` encoding value index ``k`` (read-only)."""
        return _patterns(self.scheme, self.n_values)

    def bits_of_index(self, index: int) -> np.ndarray:
        """The bit pattern of value index ``index``."""
        return self.patterns()[index]

    def index_of_bits(self, bits: Sequence[int] | np.ndarray) -> int:
        """Value index of a *valid* bit pattern; raise :class:`InvalidProblemError` otherwise."""
        row = np.asarray(bits, dtype=np.int8).reshape(-1)
        if row.size != self.n_bits:
            raise InvalidProblemError(
                f"Parameter '{self.name}' takes {self.n_bits} bits; got {row.size}."
            )
        if self.n_bits == 0:
            return 0
        matches = np.flatnonzero((self.patterns() == row).all(axis=1))
        if matches.size == 0:
            raise InvalidProblemError(
                f"Bits {row.tolist()} are not a valid {self.scheme} pattern for parameter "
                f"'{self.name}'; call SpaceEncoding.repair() first."
            )
        return int(matches[0])

    def value_coefficients(self) -> tuple[float, np.ndarray]:
        """``(c0, c)`` with value ``= c0 + c @ bits`` on every valid pattern (numeric only)."""
        return self.function_coefficients(np.asarray(self.values, dtype=float))

    def function_coefficients(
        self, costs: Sequence[float] | np.ndarray
    ) -> tuple[float, np.ndarray]:
        """``(c0, c)`` with ``costs[k] = c0 + c @ bits`` on the valid pattern of value ``k``.

        Any function of the value is linear in the bits: a one-hot bit carries its value's
        cost; domain-wall bit ``j`` (on when the index exceeds ``j``) carries the step
        ``costs[j + 1] - costs[j]``, and the steps telescope to ``costs[k] - costs[0]``.

        Examples:
            >>> space = SpaceEncoding({"w": IntParameter(1, 3)})
            >>> space.parameters["w"].function_coefficients([5.0, 2.0, 7.0])
            (5.0, array([-3.,  5.]))
        """
        costs = np.asarray(costs, dtype=float)
        if costs.shape != (self.n_values,):
            raise InvalidProblemError(
                f"Parameter '{self.name}' has {self.n_values} values; got {costs.size} costs."
            )
        if self.n_bits == 0:
            return float(costs[0]), np.zeros(0)
        if self.scheme == "one-hot":
            return 0.0, costs
        return float(costs[0]), np.diff(costs)

    def nearest_index(self, value: Any) -> int:
        """Index of the grid value nearest ``value`` (on the log scale when the grid is)."""
        if isinstance(self.parameter, CategoricalParameter):
            k = _position(self.values, value)
            if k is not None:
                return k
            raise InvalidProblemError(
                f"{value!r} is not a choice of parameter '{self.name}'; its choices are "
                f"{list(self.values)}."
            )
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise InvalidProblemError(
                f"Parameter '{self.name}' takes finite numbers. Got {value!r} instead."
            )
        key = _key(float(value), self.parameter.log)
        return int(np.argmin(np.abs(self._keys - key)))


@functools.lru_cache(maxsize=256)
def _patterns(scheme: str, n: int) -> np.ndarray:
    if n <= 1:
        table = np.zeros((n, 0), dtype=np.int8)
    elif scheme == "one-hot":
        table = np.eye(n, dtype=np.int8)
    else:
        table = (np.arange(n - 1)[None, :] < np.arange(n)[:, None]).astype(np.int8)
    table.flags.writeable = False
    return table


def _key(value: float, log: bool) -> float:
    return math.log(value) if log and value > 0 else (-math.inf if log else value)


def _grid(parameter: Parameter, n_bins: int, max_values: int) -> tuple[Any, ...]:
    """The finite values a parameter takes in the encoding, in increasing order."""
    if isinstance(parameter, CategoricalParameter):
        return parameter.choices
    low, high, log = parameter.low, parameter.high, parameter.log
    if isinstance(parameter, IntParameter):
        int_low, int_step = int(parameter.low), int(parameter.step)
        n_ints = (int(parameter.high) - int_low) // int_step + 1
        if n_ints <= max_values:
            return tuple(int_low + k * int_step for k in range(n_ints))
        points = np.geomspace(low, high, max_values) if log else np.linspace(low, high, max_values)
        picks = np.unique(np.clip(np.round((points - int_low) / int_step), 0, n_ints - 1))
        return tuple(int_low + int(k) * int_step for k in picks)
    if low == high:
        return (float(low),)
    if parameter.step is not None:
        step = parameter.step
        count = math.floor((high - low) / step + 1e-8) + 1
        ks: Iterable[int] = range(count)
        if count > max_values:
            ks = [int(k) for k in np.unique(np.round(np.linspace(0, count - 1, max_values)))]
        # Round off the float noise of low + k * step so values sit on the lattice.
        decimals = max(0, -math.floor(math.log10(step))) + 8
        return tuple(min(float(round(low + k * step, decimals)), high) for k in ks)
    points = np.geomspace(low, high, n_bins) if log else np.linspace(low, high, n_bins)
    # 12 significant digits: 0.001 rather than 0.0009999999999999998 from geomspace.
    values = [float(min(max(float(f"{v:.12g}"), low), high)) for v in points]
    values[0], values[-1] = float(low), float(high)
    distinct = list(dict.fromkeys(values))
    # Values one float apart can share a log key: keep one, or encode could not tell them apart.
    return tuple(
        [distinct[0]] + [v for u, v in itertools.pairwise(distinct) if _key(v, log) != _key(u, log)]
    )


class SpaceEncoding:
    """A search space as a bit vector: encode, decode, repair, constraints, start designs.

    Bits are the integers ``0 .. n_bits - 1``, the variable labels of every BQM built here.

    Args:
        parameters: Parameter name to :class:`CategoricalParameter`, :class:`IntParameter` or
            :class:`FloatParameter`, in the order the bits are laid out.
        scheme: ``"auto"`` (one-hot for categoricals with three or more choices, domain-wall
            otherwise), ``"one-hot"`` or ``"domain-wall"`` for every parameter.
        schemes: Per-parameter overrides of ``scheme``.
        n_bins: Grid points for a continuous float (geometric when log-scaled).
        max_values: Integer and stepped-float ranges with more values are thinned to this many.
        constraints: Known linear constraints: coefficients on numeric parameters and
            per-value costs on categorical and int parameters (:class:`ParameterConstraint`).

    Raises:
        InvalidProblemError: A constraint names an unknown parameter, gives a categorical a
            coefficient, costs a value the parameter does not have, or no point of the space
            satisfies the constraints.
        SolverConfigurationError: An unknown scheme or an out-of-range option.

    Examples:
        >>> from qopt.encoding import IntParameter, ParameterConstraint, SpaceEncoding
        >>> space = SpaceEncoding(
        ...     {"a": IntParameter(0, 3), "b": IntParameter(0, 3)},
        ...     constraints=[ParameterConstraint({"a": 1, "b": 1}, ub=2)],
        ... )
        >>> space.decode(space.repair([1, 1, 1, 1, 1, 1]))  # a = b = 3 violates a + b <= 2
        {'a': 0, 'b': 2}
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        *,
        scheme: str = "auto",
        schemes: Mapping[str, str] | None = None,
        n_bins: int = 16,
        max_values: int = 32,
        constraints: Sequence[ParameterConstraint] = (),
    ) -> None:
        owner = type(self).__name__
        self.n_bins = check_int(n_bins, "n_bins", owner, low=2)
        self.max_values = check_int(max_values, "max_values", owner, low=2)
        self.scheme = _check_scheme(scheme, "scheme", owner)
        schemes = dict(schemes or {})
        unknown = sorted(set(schemes) - set(parameters))
        if unknown:
            raise SolverConfigurationError(
                f"The 'schemes' parameter of {owner} names unknown parameter(s) {unknown}. "
                f"The parameters are: {sorted(parameters)}."
            )
        self.parameters: dict[str, ParameterEncoding] = {}
        offset = 0
        for name, parameter in parameters.items():
            if not isinstance(parameter, CategoricalParameter | IntParameter | FloatParameter):
                raise InvalidProblemError(
                    f"Parameter '{name}' is a {type(parameter).__name__}; the encoding supports "
                    "CategoricalParameter, IntParameter and FloatParameter."
                )
            chosen = _check_scheme(schemes.get(name, self.scheme), f"schemes[{name!r}]", owner)
            values = _grid(parameter, self.n_bins, self.max_values)
            if chosen == "auto":
                chosen = (
                    "one-hot"
                    if isinstance(parameter, CategoricalParameter) and len(values) > 2
                    else "domain-wall"
                )
            log = getattr(parameter, "log", False)
            keys = (
                np.zeros(0)
                if isinstance(parameter, CategoricalParameter)
                else np.array([_key(float(v), log) for v in values])
            )
            encoding = ParameterEncoding(name, parameter, values, chosen, offset, keys)  # type: ignore[arg-type]
            self.parameters[name] = encoding
            offset += encoding.n_bits
        self.n_bits = offset
        #: The number of values of each parameter, by name (the moves of :mod:`qopt.moves`).
        self.sizes = {n: p.n_values for n, p in self.parameters.items()}
        self.groups = np.concatenate(
            [np.full(p.n_bits, g, dtype=np.int64) for g, p in enumerate(self.parameters.values())]
            or [np.zeros(0, dtype=np.int64)]
        )
        self.constraints = tuple(constraints)
        self._constraint_rows = [self._constraint_row(c) for c in self.constraints]
        self._anchor: dict[str, int] | None = None
        if self.constraints:
            self._anchor = self._find_feasible_anchor()

    # ----------------------------------------------------------------- basic properties
    @property
    def size(self) -> int:
        """Number of distinct points of the (gridded) space, constraints ignored."""
        return math.prod(p.n_values for p in self.parameters.values())

    @property
    def bit_labels(self) -> list[str]:
        """A readable name for each bit: ``"opt=adam"`` (one-hot), ``"layers>=3"`` (domain-wall)."""
        labels = []
        for p in self.parameters.values():
            if p.scheme == "one-hot":
                labels += [f"{p.name}={v!r}" for v in p.values[: p.n_bits]]
            else:
                labels += [f"{p.name}>={v!r}" for v in p.values[1 : p.n_bits + 1]]
        return labels

    def coverage_size(self) -> int:
        """Points a start design needs so that every bit is on at least once (and off once)."""
        sizes = [p.n_values if p.scheme == "one-hot" else 2 for p in self.parameters.values()]
        return max(
            [1, *[s for s, p in zip(sizes, self.parameters.values(), strict=True) if p.n_bits]]
        )

    # ----------------------------------------------------------------- encode / decode
    def encode_indices(self, indices: Mapping[str, int]) -> np.ndarray:
        """Bits of the point with the given value index for each parameter."""
        bits = np.zeros(self.n_bits, dtype=np.int8)
        for name, p in self.parameters.items():
            index = indices[name]
            if not 0 <= index < p.n_values:
                raise InvalidProblemError(
                    f"Index {index} is out of range for parameter '{name}' ({p.n_values} values)."
                )
            bits[p.bit_slice] = p.bits_of_index(index)
        return bits

    def indices_of(self, params: Mapping[str, Any]) -> dict[str, int]:
        """Value index of each parameter (off-grid numbers go to the nearest grid value)."""
        missing = sorted(set(self.parameters) - set(params))
        if missing:
            raise InvalidProblemError(f"Values are missing for parameter(s) {missing}.")
        return {name: p.nearest_index(params[name]) for name, p in self.parameters.items()}

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Bits of a point given as parameter values; off-grid numbers snap to the grid."""
        return self.encode_indices(self.indices_of(params))

    def decode_indices(self, bits: Sequence[int] | np.ndarray) -> dict[str, int]:
        """Value index of each parameter from *valid* bits (see :meth:`repair`)."""
        row = self._as_bits(bits)
        return {name: p.index_of_bits(row[p.bit_slice]) for name, p in self.parameters.items()}

    def values_of(self, indices: Mapping[str, int]) -> dict[str, Any]:
        """Parameter values (Python ``int``/``float``/choice) of value indices."""
        return {name: p.values[indices[name]] for name, p in self.parameters.items()}

    def decode(self, bits: Sequence[int] | np.ndarray | Mapping[Any, int]) -> dict[str, Any]:
        """Parameter values from *valid* bits (a vector or a sample dict over bit labels)."""
        return self.values_of(self.decode_indices(self._as_bits(bits)))

    def _as_bits(self, bits: Sequence[int] | np.ndarray | Mapping[Any, int]) -> np.ndarray:
        if isinstance(bits, Mapping):
            row = np.array([bits[i] for i in range(self.n_bits)], dtype=np.int8)
        else:
            row = np.asarray(bits, dtype=np.int8).reshape(-1)
        if row.size != self.n_bits:
            raise InvalidProblemError(f"Expected {self.n_bits} bits; got {row.size}.")
        return row

    def valid_rows(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row of a 0/1 array (columns: the bits) is a valid pattern throughout.

        Examples:
            >>> space = SpaceEncoding({"x": IntParameter(0, 2)})  # domain wall: 2 bits
            >>> space.valid_rows(np.array([[1, 0], [0, 1], [1, 1]])).tolist()
            [True, False, True]
        """
        rows = np.asarray(rows, dtype=np.int8).reshape(-1, self.n_bits)
        ok = np.ones(rows.shape[0], dtype=bool)
        for p in self.parameters.values():
            if p.n_bits:
                block = rows[:, p.bit_slice]
                ok &= (block[:, None, :] == p.patterns()[None, :, :]).all(axis=2).any(axis=1)
        return ok

    def feasible_rows(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row is a valid pattern that satisfies every known constraint: the
        samples :meth:`repair` leaves unchanged.

        Examples:
            >>> space = SpaceEncoding(
            ...     {"x": IntParameter(0, 2)}, constraints=[ParameterConstraint({"x": 1}, ub=1)]
            ... )
            >>> space.feasible_rows(np.array([[1, 0], [1, 1], [0, 1]])).tolist()
            [True, False, False]
        """
        rows = np.asarray(rows, dtype=np.int8).reshape(-1, self.n_bits)
        ok = self.valid_rows(rows)
        if self._constraint_rows:
            for i in np.flatnonzero(ok):
                ok[i] = self.constraint_violation(self.decode_indices(rows[i])) <= 1e-9
        return ok

    def is_valid(self, bits: Sequence[int] | np.ndarray) -> bool:
        """Whether every parameter's bits are a valid pattern (constraints not checked)."""
        row = self._as_bits(bits)
        for p in self.parameters.values():
            if p.n_bits and not (p.patterns() == row[p.bit_slice]).all(axis=1).any():
                return False
        return True

    # ----------------------------------------------------------------- constraints
    def _constraint_row(
        self, constraint: ParameterConstraint
    ) -> tuple[ParameterConstraint, dict[str, np.ndarray]]:
        """The constraint as the cost of each grid value of each of its parameters."""
        row: dict[str, np.ndarray] = {}
        for name, term in constraint.terms.items():
            if name not in self.parameters:
                raise InvalidProblemError(
                    f"Constraint {constraint.name} names parameter '{name}', which is not in "
                    f"the search space {sorted(self.parameters)}."
                )
            p = self.parameters[name]
            if isinstance(term, float):
                if not p.is_numeric:
                    raise InvalidProblemError(
                        f"Constraint {constraint.name} gives categorical parameter '{name}' a "
                        "coefficient; give its per-value costs instead ({choice: cost})."
                    )
                row[name] = term * np.asarray(p.values, dtype=float)
                continue
            if isinstance(p.parameter, FloatParameter):
                raise InvalidProblemError(
                    f"Constraint {constraint.name} gives float parameter '{name}' per-value "
                    "costs; per-value costs take categorical and int parameters, a float takes "
                    "a coefficient."
                )
            declared = _declared_values(p.parameter)
            if not isinstance(term, Mapping):
                if len(term) != len(declared):
                    raise InvalidProblemError(
                        f"Constraint {constraint.name} gives parameter '{name}' {len(term)} "
                        f"costs by position; it has {len(declared)} values."
                    )
                costs = list(term)
            else:
                costs = [0.0] * len(declared)
                for key, cost in term.items():
                    k = _declared_position(p.parameter, declared, key)
                    if k is None:
                        raise InvalidProblemError(
                            f"Constraint {constraint.name} gives a cost to {key!r}, which is not "
                            f"a value of parameter '{name}' ({_describe_values(declared)})."
                        )
                    costs[k] = cost
            row[name] = np.array(
                [costs[_declared_position(p.parameter, declared, v)] for v in p.values],  # type: ignore[index]
                dtype=float,
            )
        return constraint, row

    def constraint_violation(self, indices: Mapping[str, int]) -> float:
        """Total violation of the linear constraints at a point given by value indices."""
        total = 0.0
        for constraint, row in self._constraint_rows:
            lhs = sum(float(costs[indices[n]]) for n, costs in row.items())
            total += constraint.violation(lhs)
        return total

    def constraint_totals(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The left-hand side of each constraint (by :attr:`ParameterConstraint.name`) at a point.

        Examples:
            >>> space = SpaceEncoding(
            ...     {"op": CategoricalParameter(("conv", "skip")), "w": IntParameter(8, 32, step=8)},
            ...     constraints=[ParameterConstraint({"op": {"conv": 9}, "w": 1}, ub=40, label="size")],
            ... )
            >>> space.constraint_totals({"op": "conv", "w": 24})
            {"'size'": 33.0}
        """
        totals = {}
        for constraint, row in self._constraint_rows:
            lhs = 0.0
            for name, term in constraint.terms.items():
                value = params[name]
                p = self.parameters[name]
                if isinstance(term, float):
                    lhs += term * float(value)
                    continue
                declared = _declared_values(p.parameter)
                k = _declared_position(p.parameter, declared, value)
                if k is None:  # not a declared value: the nearest grid value's cost
                    lhs += float(row[name][p.nearest_index(value)])
                elif isinstance(term, Mapping):
                    lhs += _lookup(term, declared[k])
                else:
                    lhs += term[k]
            totals[constraint.name] = lhs
        return totals

    def is_feasible(self, params: Mapping[str, Any]) -> bool:
        """Whether a point (parameter values) satisfies every linear constraint (1e-9 slack)."""
        totals = self.constraint_totals(params)
        for constraint, _ in self._constraint_rows:
            lhs = totals[constraint.name]
            if constraint.violation(lhs) > 1e-9 * max(1.0, abs(lhs)):
                return False
        return True

    def _find_feasible_anchor(self) -> dict[str, int]:
        """A feasible point, by greedy descent on the violation from a few starts."""
        rng = np.random.default_rng(0)
        starts = [
            {n: 0 for n in self.parameters},
            {n: p.n_values - 1 for n, p in self.parameters.items()},
        ]
        starts += [moves.random_point(self.sizes, rng) for _ in range(8)]
        found = moves.first_feasible(starts, self.sizes, self.constraint_violation, **self._descent)
        if found is None:
            raise InvalidProblemError(self._infeasible_message())
        return found

    def _infeasible_message(self) -> str:
        for constraint, row in self._constraint_rows:
            lo = sum(float(costs.min()) for costs in row.values())
            hi = sum(float(costs.max()) for costs in row.values())
            params = ", ".join(f"'{n}'" for n in row)
            if constraint.ub is not None and lo > constraint.ub + 1e-9:
                return (
                    f"No point satisfies constraint {constraint.name} on parameter(s) {params}: "
                    f"its smallest possible value is {lo:g} > ub={constraint.ub:g}. Loosen the "
                    "bound or widen the parameters' ranges."
                )
            if constraint.lb is not None and hi < constraint.lb - 1e-9:
                return (
                    f"No point satisfies constraint {constraint.name} on parameter(s) {params}: "
                    f"its largest possible value is {hi:g} < lb={constraint.lb:g}. Loosen the "
                    "bound or widen the parameters' ranges."
                )
        names = ", ".join(c.name for c in self.constraints)
        return (
            f"No point satisfying every constraint ({names}) was found on the parameters' grids "
            "(each constraint alone can be met, together they seem not to be, or the grid is too "
            "coarse: raise n_bins / max_values). Loosen the bounds or widen the ranges."
        )

    @property
    def _descent(self) -> dict[str, Any]:
        """The options of :func:`qopt.moves.descend` towards the constraints: only the
        parameters they name move, each step gains over 1e-12, in a bounded number of steps,
        until the violation is within 1e-9."""
        names = sorted({n for _, terms in self._constraint_rows for n in terms})
        return {
            "names": names,
            "tolerance": 1e-9,
            "min_gain": 1e-12,
            "max_steps": 4 * sum(self.sizes[n] for n in names) + 4,
        }

    def constrained_qubo(self, objective: dimod.BinaryQuadraticModel) -> ConstrainedQUBO:
        """The objective over the bits with the encoding's and the user's constraints.

        One-hot groups become ``add_one_hot``; linear constraints on values become
        ``add_inequality``/``add_equality`` over bits; domain walls become the exact quadratic
        penalty described in the module docstring, added to the objective.

        Args:
            objective: A BINARY BQM over (a subset of) the bits ``0 .. n_bits - 1``.
        """
        from qopt.constraints import ConstrainedQUBO

        bqm = self._with_walls(objective)
        model = ConstrainedQUBO(bqm)
        for p in self.parameters.values():
            if p.scheme == "one-hot" and p.n_bits > 1:
                model.add_one_hot(
                    list(range(p.offset, p.offset + p.n_bits)), label=f"one-hot {p.name}"
                )
        for constraint, row in self._constraint_rows:
            bit_terms: dict[Hashable, float] = {}
            constant = 0.0
            for name, costs in row.items():
                p = self.parameters[name]
                c0, coefficients = p.function_coefficients(costs)
                constant += c0
                for j, cj in enumerate(coefficients):
                    if cj != 0:
                        bit_terms[p.offset + j] = bit_terms.get(p.offset + j, 0.0) + float(cj)
            # ConstrainedQUBO needs numbers on a common 1e-6 grid; gridded floats (geomspace)
            # are not. Rounding only shapes the penalty: repair() checks the exact values.
            rounded = {b: round(c, 6) for b, c in bit_terms.items()}
            lb = None if constraint.lb is None else constraint.lb - constant
            ub = None if constraint.ub is None else constraint.ub - constant
            # Widen the bounds by the rounding error so that every exactly feasible point stays
            # feasible for the model (the pipeline checks repaired samples against it).
            error = sum(abs(c - rounded[b]) for b, c in bit_terms.items())
            error += sum(abs(v - round(v, 6)) for v in (lb, ub) if v is not None)
            margin = math.ceil(error * 1e6 + 1) / 1e6 if error > 1e-12 else 0.0
            lb = None if lb is None else round(lb, 6) - margin
            ub = None if ub is None else round(ub, 6) + margin
            bit_terms = {b: c for b, c in rounded.items() if c != 0}
            label = constraint.label or constraint.name.strip("'")
            if not bit_terms:
                continue  # every term is a fixed (single-valued) parameter; checked by the anchor
            if lb is not None and ub is not None and lb == ub:
                model.add_equality(bit_terms, lb, label=label)
            else:
                model.add_inequality(bit_terms, lb=lb, ub=ub, label=label)
        return model

    def wall_penalty_strength(self, objective: dimod.BinaryQuadraticModel) -> float:
        """Weight of the domain-wall penalty: above any single bit's reach in the objective.

        Twice the largest sum of absolute biases on one bit, read from the BQM's numpy
        vectors (a Python loop over the terms of a dense 100-bit surrogate was a quarter of a
        suggest's time).
        """
        reach = np.zeros(self.n_bits)
        index, linear, (rows, cols, biases) = _bit_vectors(objective, self.n_bits)
        size = len(index)
        reach_of = (
            np.abs(linear)
            + np.bincount(rows, np.abs(biases), minlength=size)
            + np.bincount(cols, np.abs(biases), minlength=size)
        )
        mine = index >= 0
        np.add.at(reach, index[mine], reach_of[mine])
        return float(max(1.0, 2.0 * reach.max(initial=0.0)))

    def _with_walls(self, objective: dimod.BinaryQuadraticModel) -> dimod.BinaryQuadraticModel:
        bqm = objective.change_vartype(dimod.BINARY, inplace=False)
        bqm.add_variables_from((i, 0.0) for i in range(self.n_bits))
        strength = self.wall_penalty_strength(objective)
        for p in self.parameters.values():
            if p.scheme != "domain-wall":
                continue
            for j in range(p.offset, p.offset + p.n_bits - 1):
                # P * b[j+1] * (1 - b[j]): forbids a one after a zero, zero on valid patterns.
                bqm.add_linear(j + 1, strength)
                bqm.add_quadratic(j, j + 1, -strength)
        return bqm

    def formulation(
        self,
        objective: dimod.BinaryQuadraticModel,
        *,
        energy: DenseEnergy | None = None,
        model: ConstrainedQUBO | None = None,
        repair: Callable[[np.ndarray], np.ndarray] | None = None,
        within: Callable[[Mapping[str, int]], bool] | None = None,
        **options: Any,
    ) -> Formulation:
        """A :class:`qopt.pipeline.Formulation` whose feasible samples are valid points.

        The pipeline's feasibility check is the encoding's validity (one-hot and domain-wall
        patterns: the walls are penalties in the QUBO, so a low-energy read can break one)
        plus the exact known constraints, so every sample the pipeline selects is a valid,
        feasible point; decode needs no repair of its own. Repair is objective-aware
        (:meth:`repair` with the objective), so a broken pattern becomes the best valid one
        nearby rather than an arbitrary one.

        Args:
            objective: A BINARY BQM over the bits.
            energy: The objective as a :class:`DenseEnergy`, when the caller has built one.
            model: The constrained QUBO to solve (default :meth:`constrained_qubo` of the
                objective), e.g. with more inequalities over the bits.
            repair: Bits -> bits landing every vector on a feasible point (default the
                objective-aware :meth:`repair`); with ``within``, inside it too.
            within: A further condition on feasible points (value indices -> bool) that
                ``model`` expresses as inequalities, e.g. a trust region.
            **options: Further :class:`~qopt.pipeline.Formulation` options (``penalty``).

        Examples:
            >>> import dimod
            >>> from qopt.pipeline import solve
            >>> space = SpaceEncoding({"x": IntParameter(0, 3)})
            >>> objective = dimod.BQM({0: 1.0, 1: 1.0, 2: -5.0}, {}, 0.0, "BINARY")
            >>> solve(space.formulation(objective), "exact").value
            {'x': 3}
        """
        from qopt.pipeline import Formulation

        if model is None:
            model = self.constrained_qubo(objective)
        if repair is None:
            dense = DenseEnergy(objective, self.n_bits) if energy is None else energy

            def repair(bits: np.ndarray) -> np.ndarray:
                return self.repair(bits, energy=dense)

        order = {v: k for k, v in enumerate(model.variables)}
        columns = np.array([order[i] for i in range(self.n_bits)], dtype=np.int64)
        fix = repair

        def feasible_rows(rows: np.ndarray) -> np.ndarray:
            bits = np.asarray(rows)[:, columns]
            ok = self.feasible_rows(bits)
            if within is not None:
                for i in np.flatnonzero(ok):
                    ok[i] = within(self.decode_indices(bits[i]))
            return ok

        def repair_rows(rows: np.ndarray) -> np.ndarray:
            fixed = np.array(rows, dtype=np.int8, copy=True)
            for i in range(fixed.shape[0]):
                fixed[i, columns] = fix(fixed[i, columns])
            return fixed

        def decode(sample: Mapping[Any, int]) -> dict[str, Any]:
            return self.decode(self._as_bits(sample))

        return Formulation(
            model,
            decode=decode,
            feasible_rows=feasible_rows,
            repair_rows=repair_rows,
            **options,
        )

    # ----------------------------------------------------------------- repair
    def repair(
        self,
        bits: Sequence[int] | np.ndarray,
        *,
        objective: dimod.BinaryQuadraticModel | None = None,
        rng: np.random.Generator | None = None,
        energy: DenseEnergy | None = None,
    ) -> np.ndarray:
        """Make any bit pattern valid and feasible.

        Each parameter's bits become the nearest valid pattern (Hamming distance); with an
        ``objective``, the valid pattern of lowest objective given the other bits instead.
        Then, if a linear constraint is violated, single-parameter moves reduce the violation
        (ties broken by the objective), and a known feasible point is the last resort.

        Args:
            bits: A 0/1 vector of length ``n_bits``.
            objective: Optional BQM over the bits to break ties and choose patterns.
            rng: Breaks Hamming ties at random (otherwise the lowest index wins).
            energy: The objective as a :class:`DenseEnergy` (instead of ``objective``).

        Returns:
            A valid, feasible bit vector (``int8``).
        """
        row = self._as_bits(bits).copy()
        if energy is None and objective is not None:
            energy = DenseEnergy(objective, self.n_bits)
        for p in self.parameters.values():
            if p.n_bits == 0:
                continue
            current = row[p.bit_slice]
            patterns = p.patterns()
            distance = np.abs(patterns - current).sum(axis=1)
            if distance.min() == 0:
                continue  # repair fixes broken patterns, it does not optimize valid ones
            if energy is not None:
                scores = energy.group_scores(row, p.bit_slice, patterns)
                choice = int(np.lexsort((distance, scores))[0])
            else:
                best = np.flatnonzero(distance == distance.min())
                choice = int(best[0] if rng is None else rng.choice(best))
            row[p.bit_slice] = patterns[choice]
        if self._constraint_rows:
            indices = self.decode_indices(row)
            if self.constraint_violation(indices) > 1e-9:
                indices = moves.descend(
                    indices,
                    self.sizes,
                    self.constraint_violation,
                    tie=None
                    if energy is None
                    else lambda trial, _, __: energy.of(self.encode_indices(trial)),
                    **self._descent,
                )
                if self.constraint_violation(indices) > 1e-9:
                    assert self._anchor is not None
                    indices = dict(self._anchor)
                row = self.encode_indices(indices)
        return row

    # ----------------------------------------------------------------- designs
    def random_point(self, rng: np.random.Generator) -> dict[str, int]:
        """Value indices of a uniformly random grid point, repaired to feasibility."""
        indices = moves.random_point(self.sizes, rng)
        if self._constraint_rows and self.constraint_violation(indices) > 1e-9:
            indices = self.decode_indices(self.repair(self.encode_indices(indices), rng=rng))
        return indices

    def space_filling(self, n: int, rng: np.random.Generator) -> list[dict[str, int]]:
        """A start design of ``n`` points (value indices) that spreads over every parameter.

        Each parameter's column is a Latin-hypercube-style stratification of its value
        indices (concatenated random permutations), so with ``n >= coverage_size()`` every
        one-hot bit is on at least once and every domain-wall parameter takes its lowest and
        highest value, turning each of its bits on and off. Points are repaired to satisfy the
        constraints, and duplicates are replaced by random distinct points while any remain.
        """
        n = check_int(n, "n", "SpaceEncoding.space_filling", low=0)
        columns: dict[str, np.ndarray] = {}
        for name, p in self.parameters.items():
            m = p.n_values
            if n >= m:
                reps = -(-n // m)
                column = np.concatenate([rng.permutation(m) for _ in range(reps)])[:n]
            else:
                column = rng.permutation(np.round(np.linspace(0, m - 1, n)).astype(np.int64))
            columns[name] = column
        points: list[dict[str, int]] = []
        seen: set[tuple[int, ...]] = set()
        for i in range(n):
            indices = {name: int(columns[name][i]) for name in self.parameters}
            if self._constraint_rows and self.constraint_violation(indices) > 1e-9:
                indices = self.decode_indices(self.repair(self.encode_indices(indices), rng=rng))
            key = tuple(indices.values())
            tries = 0
            while key in seen and len(seen) < self.size and tries < 100:
                indices = self.random_point(rng)
                key, tries = tuple(indices.values()), tries + 1
            seen.add(key)
            points.append(indices)
        return points

    def neighbours(self, indices: Mapping[str, int]) -> list[dict[str, int]]:
        """Points one step away: an ordered parameter +-1, a categorical to any other choice."""
        ordered = {
            n for n, p in self.parameters.items() if p.scheme == "domain-wall" and p.is_numeric
        }
        return moves.neighbours(indices, self.sizes, ordered=ordered)


def _declared_values(parameter: Parameter) -> Sequence[Any]:
    """The values a per-value cost table refers to: the choices, or ``low..high`` by step."""
    if isinstance(parameter, CategoricalParameter):
        return parameter.choices
    assert isinstance(parameter, IntParameter)
    return range(int(parameter.low), int(parameter.high) + 1, int(parameter.step))


def _declared_position(parameter: Parameter, declared: Sequence[Any], value: Any) -> int | None:
    if isinstance(parameter, CategoricalParameter):
        return _position(declared, value)
    assert isinstance(parameter, IntParameter)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    if not number.is_integer():
        return None
    k, rest = divmod(int(number) - int(parameter.low), int(parameter.step))
    return k if rest == 0 and 0 <= k < len(declared) else None


def _describe_values(values: Sequence[Any]) -> str:
    if isinstance(values, range):
        return f"{values.start}..{values.stop - 1} by {values.step}"
    return f"its choices are {list(values)}"


def _bit_vectors(
    bqm: dimod.BinaryQuadraticModel, n: int
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(index, linear, (rows, cols, biases))`` of a BINARY copy of ``bqm``; ``index[k]`` is
    variable ``k``'s bit, or -1 for a label that is not a bit ``0 .. n - 1`` (a slack)."""
    bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
    labels = list(bqm.variables)
    index = np.array(
        [int(v) if isinstance(v, numbers.Integral) and 0 <= int(v) < n else -1 for v in labels],
        dtype=np.int64,
    )
    linear, quadratic = bqm.to_numpy_vectors(variable_order=labels)[:2]
    return index, np.asarray(linear, dtype=float), quadratic


class DenseEnergy:
    """A BQM over bits ``0 .. n - 1`` as dense arrays, ``E = h.x + x.J.x / 2``, for fast energies
    of candidate patterns (repair, ranking). Other labels (slack bits) are left out.

    Examples:
        >>> import dimod, numpy as np
        >>> energy = DenseEnergy(dimod.BQM({0: 1.0, 1: -2.0}, {(0, 1): 3.0}, 0.0, "BINARY"), 2)
        >>> energy.of(np.array([1, 1]))
        2.0
    """

    def __init__(self, bqm: dimod.BinaryQuadraticModel, n: int) -> None:
        index, linear, (rows, cols, biases) = _bit_vectors(bqm, n)
        self.h = np.zeros(n)
        mine = index >= 0
        np.add.at(self.h, index[mine], linear[mine])
        self.J = np.zeros((n, n))  # symmetric, zero diagonal
        u, v = index[rows], index[cols]
        both = (u >= 0) & (v >= 0)
        np.add.at(self.J, (u[both], v[both]), biases[both])
        np.add.at(self.J, (v[both], u[both]), biases[both])

    def of(self, bits: np.ndarray) -> float:
        """Energy of one 0/1 vector."""
        x = np.asarray(bits, dtype=float)
        return float(self.h @ x + 0.5 * x @ self.J @ x)

    def group_scores(self, row: np.ndarray, where: slice, patterns: np.ndarray) -> np.ndarray:
        """Energy of each candidate pattern for ``row[where]``, the other bits fixed."""
        x = row.astype(float).copy()
        x[where] = 0.0
        field_ = self.J[where] @ x + self.h[where]
        p = patterns.astype(float)
        inner = self.J[where, where]
        return np.asarray(p @ field_ + 0.5 * np.einsum("ki,ij,kj->k", p, inner, p))


def _check_scheme(value: Any, name: str, owner: str) -> str:
    if value not in _SCHEMES:
        raise SolverConfigurationError(
            f"The '{name}' parameter of {owner} must be a str among {list(_SCHEMES)}. "
            f"Got {value!r} instead."
        )
    return str(value)
