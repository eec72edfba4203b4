"""How a search encodes its space: the encoding options, checked once, and the size limit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qopt._validation import check_int
from qopt.encoding import Parameter, ParameterConstraint, SpaceEncoding
from qopt.exceptions import InvalidProblemError, ProblemTooLargeError, SolverConfigurationError

__all__ = [
    "ENCODINGS",
    "EncodingOptions",
    "check_constraint_names",
    "check_constraints",
    "share_violations",
    "too_large_message",
]

#: The encodings a search takes for its parameters (:class:`qopt.encoding.SpaceEncoding`).
ENCODINGS = ("auto", "one-hot", "domain-wall")


@dataclass(frozen=True)
class EncodingOptions:
    """The options that turn parameters into bits, checked at construction.

    Args:
        encoding: ``"auto"``, ``"one-hot"`` or ``"domain-wall"`` for every parameter.
        encodings: Per-parameter overrides of ``encoding``.
        n_bins: Grid points for each continuous float parameter.
        max_values: Integer and stepped-float ranges with more values are thinned to this many.
        max_bits: Refuse spaces that encode to more bits (``None``: no limit here).
        owner: Who took the options, for error messages.

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> options = EncodingOptions(encodings={"x": "one-hot"})
        >>> options.encode({"x": IntParameter(0, 3)}).n_bits
        4
    """

    encoding: str = "auto"
    encodings: Mapping[str, str] = field(default_factory=dict)
    n_bins: int = 16
    max_values: int = 32
    max_bits: int | None = None
    owner: str = "EncodingOptions"

    def __post_init__(self) -> None:
        owner = self.owner
        if self.encoding not in ENCODINGS:
            raise SolverConfigurationError(
                f"The 'encoding' parameter of {owner} must be a str among {list(ENCODINGS)}. "
                f"Got {self.encoding!r} instead."
            )
        for name, scheme in (self.encodings or {}).items():
            if scheme not in ENCODINGS:
                raise SolverConfigurationError(
                    f"The 'encodings' parameter of {owner} gives parameter '{name}' the "
                    f"encoding {scheme!r}; use 'auto', 'one-hot' or 'domain-wall'."
                )
        object.__setattr__(self, "encodings", dict(self.encodings or {}))
        object.__setattr__(self, "n_bins", check_int(self.n_bins, "n_bins", owner, low=2))
        object.__setattr__(
            self, "max_values", check_int(self.max_values, "max_values", owner, low=2)
        )
        if self.max_bits is not None:
            object.__setattr__(self, "max_bits", check_int(self.max_bits, "max_bits", owner, low=1))

    def encode(
        self,
        parameters: Mapping[str, Parameter],
        constraints: Sequence[ParameterConstraint] = (),
    ) -> SpaceEncoding:
        """The :class:`~qopt.encoding.SpaceEncoding` of ``parameters`` under these options.

        Raises:
            ProblemTooLargeError: The space encodes to more than ``max_bits`` bits.
        """
        space = SpaceEncoding(
            parameters,
            scheme=self.encoding,
            schemes={n: s for n, s in self.encodings.items() if n in parameters},
            n_bins=self.n_bins,
            max_values=self.max_values,
            constraints=constraints,
        )
        if self.max_bits is not None and space.n_bits > self.max_bits:
            raise ProblemTooLargeError(too_large_message(space, f"max_bits={self.max_bits}"))
        return space


def too_large_message(space: SpaceEncoding, limit: str) -> str:
    """Why a space is too large for ``limit``, naming its largest parameters and the way out."""
    largest = sorted(space.parameters.values(), key=lambda p: -p.n_bits)[:3]
    names = ", ".join(f"'{p.name}' ({p.n_bits} bits)" for p in largest)
    return (
        f"The search space encodes to {space.n_bits} bits, over the limit ({limit}). "
        f"The largest parameters: {names}. Coarsen them (n_bins, max_values, or "
        "encodings={name: 'domain-wall'}), or use a solver that takes larger QUBOs "
        "(solver='sa')."
    )


def check_constraint_names(
    constraints: Sequence[ParameterConstraint], names: Sequence[str], owner: str
) -> None:
    """Raise if a constraint names a parameter outside ``names``, listing the valid ones.

    Examples:
        >>> check_constraint_names([ParameterConstraint({"widht": 1}, ub=3)], ["width"], "me")
        Traceback (most recent call last):
        ...
        qopt.exceptions.InvalidProblemError: The 'constraints' parameter of me: constraint '1*widht' names unknown parameter(s) ['widht']. The parameters are: ['width'].
    """
    for constraint in constraints:
        unknown = sorted(set(constraint.terms) - set(names))
        if unknown:
            raise InvalidProblemError(
                f"The 'constraints' parameter of {owner}: constraint {constraint.name} names "
                f"unknown parameter(s) {unknown}. The parameters are: {sorted(names)}."
            )


def check_constraints(
    constraints: Sequence[ParameterConstraint] | None, owner: str
) -> list[ParameterConstraint]:
    """``constraints`` as a list, each checked to be a :class:`ParameterConstraint`."""
    result = list(constraints or [])
    for c in result:
        if not isinstance(c, ParameterConstraint):
            raise SolverConfigurationError(
                f"The 'constraints' parameter of {owner} must be a list of "
                f"qopt.encoding.ParameterConstraint. Got {type(c).__name__} instead."
            )
    return result


def share_violations(
    name: str,
    values: Sequence[Any],
    constraints: Sequence[ParameterConstraint],
    known: Mapping[str, Any],
    contribution: Callable[[ParameterConstraint, str, Any], float],
) -> np.ndarray:
    """How far each value of parameter ``name`` overruns its share of the constraints, when
    only the parameters in ``known`` are set (the first point of a search, sampled one
    parameter at a time).

    Each unset parameter of a constraint is allotted an equal share of what the set ones
    leave: the constraint holds whenever every unset parameter fits within its share (true of
    budgets over non-negative sizes). ``contribution(constraint, parameter, value)`` is what a
    parameter at a value adds to a constraint's left-hand side.

    Examples:
        >>> budget = ParameterConstraint({"a": 1, "b": 1}, ub=6)
        >>> share_violations("a", [0, 2, 4], [budget], {}, lambda c, n, v: float(v)).tolist()
        [0.0, 0.0, 1.0]
    """
    violations = np.zeros(len(values))
    for c in constraints:
        if name not in c.terms:
            continue
        fixed = sum(contribution(c, n, known[n]) for n in c.terms if n in known and n != name)
        unset = sum(1 for n in c.terms if n not in known)
        lb = None if c.lb is None else (c.lb - fixed) / unset
        ub = None if c.ub is None else (c.ub - fixed) / unset
        for k, v in enumerate(values):
            share = contribution(c, name, v)
            violations[k] += (0.0 if lb is None else max(0.0, lb - share)) + (
                0.0 if ub is None else max(0.0, share - ub)
            )
    return violations
