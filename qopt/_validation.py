"""Argument checks shared by every public constructor and function.

Messages follow one shape: "The 'num_reads' parameter of SimulatedAnnealingSolver must be an
int in [1, inf). Got 0 instead."
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import dimod
import numpy as np

from qopt.exceptions import InvalidProblemError, SolverConfigurationError


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"  # ints exactly: 4294967295


def _interval(low: float | None, high: float | None) -> str:
    lo = "-inf" if low is None else _bound(low)
    hi = "inf" if high is None else _bound(high)
    return f"[{lo}, {hi}{']' if high is not None else ')'}"


def check_int(
    value: Any, name: str, owner: str, *, low: int | None = None, high: int | None = None
) -> int:
    """Return ``value`` as an int if it is an integer within [low, high]; raise otherwise."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    raise SolverConfigurationError(
        f"The '{name}' parameter of {owner} must be an int in {_interval(low, high)}. "
        f"Got {value!r} instead."
    )


def check_float(
    value: Any,
    name: str,
    owner: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float within the bounds; raise otherwise."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        above = low is None or (value >= low if low_inclusive else value > low)
        if above and (high is None or value <= high):
            return float(value)
    bracket = "[" if low_inclusive else "("
    where = "" if low is None and high is None else f" in {bracket}{_interval(low, high)[1:]}"
    raise SolverConfigurationError(
        f"The '{name}' parameter of {owner} must be a finite float{where}. Got {value!r} instead."
    )


#: The largest sum of absolute biases (offset included) a BQM may have: sums of energies, and
#: the temperatures annealers derive from them, stay far inside double precision.
MAX_TOTAL_BIAS = 1e300


def check_bqm(bqm: Any, owner: str, *, allow_empty: bool = False) -> dimod.BinaryQuadraticModel:
    """Check that ``bqm`` is a BQM with finite biases whose magnitudes sum to at most
    :data:`MAX_TOTAL_BIAS`; return it unchanged.

    Solvers pass ``allow_empty=True``: dimod's sampler contract answers an empty BQM with an
    empty sample set. Entry points that take a user's problem (files, formulations) refuse it.
    """
    if not isinstance(bqm, dimod.BinaryQuadraticModel):
        raise InvalidProblemError(
            f"{owner} expects a dimod.BinaryQuadraticModel. Got {type(bqm).__name__} instead; "
            "build one with dimod.BinaryQuadraticModel.from_qubo(Q) or from_ising(h, J)."
        )
    if bqm.num_variables == 0 and not allow_empty:
        raise InvalidProblemError(
            f"{owner} was given an empty BQM (no variables): there is nothing to solve."
        )
    vectors = bqm.to_numpy_vectors()  # vectorised: iterating dimod's views costs ms per solve
    linear, quadratic, offset = vectors[0], vectors[1][2], float(vectors[2])
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.abs(linear).sum() + np.abs(quadratic).sum() + abs(offset))
    if math.isfinite(total) and total <= MAX_TOTAL_BIAS:
        return bqm
    if not (np.isfinite(linear).all() and np.isfinite(quadratic).all() and math.isfinite(offset)):
        bad = [v for v, b in bqm.linear.items() if not math.isfinite(b)][:3]
        bad_q = [uv for uv, b in bqm.quadratic.items() if not math.isfinite(b)][:3]
        where = ", ".join([f"linear {v!r}" for v in bad] + [f"quadratic {uv!r}" for uv in bad_q])
        raise InvalidProblemError(
            f"{owner} was given a BQM with non-finite (NaN or inf) biases ({where or 'offset'}). "
            "Check the inputs that built it; scale or clip them to finite values."
        )
    raise InvalidProblemError(
        f"{owner} was given a BQM whose biases sum to {total:.3g} in magnitude, beyond "
        f"{MAX_TOTAL_BIAS:g}: energies and annealing temperatures would overflow double "
        "precision (a native solver can crash on it). Divide every bias by one constant; the "
        "minimizer does not change."
    )


def check_no_unknown_keywords(
    owner: str, unknown: Iterable[str], signature_of: Callable[..., Any]
) -> None:
    """Raise for keywords a constructor does not take, naming a close match and the valid ones.

    For constructors that collect stray keywords in ``**unknown`` so a misspelling gets a
    :class:`SolverConfigurationError` instead of Python's bare ``TypeError``.
    """
    unknown = sorted(unknown)
    if not unknown:
        return
    valid = [
        name
        for name, p in inspect.signature(signature_of).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    hints = {n: difflib.get_close_matches(n, valid, n=1) for n in unknown}
    meant = "".join(f" Did you mean '{h[0]}' for '{n}'?" for n, h in hints.items() if h)
    raise SolverConfigurationError(
        f"{owner} got unknown keyword(s) {unknown}.{meant} Its keywords are: {', '.join(valid)}."
    )
