"""When a search has tried every point of its (gridded) space, and how to make it finer."""

from __future__ import annotations

import itertools
import math

from qopt.encoding import FloatParameter, IntParameter, ParameterEncoding, SpaceEncoding

__all__ = ["ENUMERATION_LIMIT", "exhaustion_message", "feasible_points", "is_exhausted"]

#: Constrained spaces up to this many grid points are enumerated to find their feasible points;
#: larger ones are never called exhausted (no search tries that many points anyway).
ENUMERATION_LIMIT = 4096


def feasible_points(space: SpaceEncoding) -> frozenset[tuple[int, ...]] | None:
    """The keys (value indices, :func:`qopt.search.point_key`) of every point of ``space`` that
    satisfies its constraints; None when it has constraints and more than
    :data:`ENUMERATION_LIMIT` points.

    Examples:
        >>> from qopt.encoding import IntParameter, ParameterConstraint
        >>> space = SpaceEncoding(
        ...     {"x": IntParameter(0, 2), "y": IntParameter(0, 2)},
        ...     constraints=[ParameterConstraint({"x": 1, "y": 1}, ub=1)],
        ... )
        >>> sorted(feasible_points(space))
        [(0, 0), (0, 1), (1, 0)]
    """
    ranges = [range(p.n_values) for p in space.parameters.values()]
    if space.constraints and space.size > ENUMERATION_LIMIT:
        return None
    names = list(space.parameters)
    return frozenset(
        key
        for key in itertools.product(*ranges)
        if not space.constraints
        or space.constraint_violation(dict(zip(names, key, strict=True))) <= 1e-9
    )


def is_exhausted(
    space: SpaceEncoding,
    taken: set[tuple[int, ...]],
    feasible: frozenset[tuple[int, ...]] | None = None,
) -> bool:
    """Whether every feasible point of ``space`` is in ``taken`` (keys of tried points).

    ``feasible`` is :func:`feasible_points` of a constrained space, computed once by the
    caller; without it a constrained space is never exhausted.

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> space = SpaceEncoding({"x": IntParameter(0, 2)})
        >>> is_exhausted(space, {(0,), (1,)}), is_exhausted(space, {(0,), (1,), (2,)})
        (False, True)
    """
    if not space.constraints:
        return len(taken) >= space.size
    return feasible is not None and feasible <= taken


def exhaustion_message(space: SpaceEncoding, owner: str, n_points: int) -> str:
    """What a search that tried all ``n_points`` points of ``space`` says, naming the grid and
    how to refine it.

    Examples:
        >>> from qopt.encoding import FloatParameter
        >>> space = SpaceEncoding({"lr": FloatParameter(1e-5, 1e-1, log=True)}, n_bins=16)
        >>> print(exhaustion_message(space, "QuboSampler", 16))
        QuboSampler has tried all 16 points of the search space (float 'lr' on a grid of n_bins=16 points) and stops the study. For a finer search raise n_bins, or give 'lr' a step.
    """
    binned = [
        p.name
        for p in space.parameters.values()
        if isinstance(p.parameter, FloatParameter)
        and p.parameter.step is None
        and p.parameter.low < p.parameter.high
    ]
    thinned = [
        p.name
        for p in space.parameters.values()
        if p.name not in binned and p.n_values < _declared_count(p)
    ]
    grids = [f"float '{n}' on a grid of n_bins={space.n_bins} points" for n in binned] + [
        f"'{n}' thinned to max_values={space.max_values} values" for n in thinned
    ]
    ways = []
    if binned:
        ways.append("raise n_bins, or give " + ", ".join(f"'{n}'" for n in binned) + " a step")
    if thinned:
        ways.append("raise max_values")
    text = f"{owner} has tried all {n_points} points of the search space"
    if grids:
        text += f" ({'; '.join(grids)})"
    text += " and stops the study."
    if ways:
        text += f" For a finer search {'; '.join(ways)}."
    return text


def _declared_count(encoded: ParameterEncoding) -> float:
    """How many values a parameter declares (infinite for a continuous float)."""
    parameter = encoded.parameter
    if isinstance(parameter, IntParameter):
        return (int(parameter.high) - int(parameter.low)) // int(parameter.step) + 1
    if isinstance(parameter, FloatParameter) and parameter.step is not None:
        return math.floor((parameter.high - parameter.low) / parameter.step + 1e-8) + 1
    if isinstance(parameter, FloatParameter) and parameter.low < parameter.high:
        return math.inf
    return encoded.n_values
