"""Solution quality and time-to-solution, as the quantum-optimization literature reports them.

Examples:
    >>> from qopt.quality import approximation_ratio, tts
    >>> approximation_ratio(11612, 11624, sense="max")
    0.9989676531314522
    >>> round(tts(0.5, 0.5), 3)  # 0.5 s per run, half the runs succeed -> TTS99
    3.322
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = [
    "Sense",
    "approximation_ratio",
    "gap_to_best_known",
    "reaches_target",
    "success_probability",
    "tts",
]

Sense = Literal["min", "max"]


def _check_sense(sense: str) -> None:
    if sense not in ("min", "max"):
        raise SolverConfigurationError(f"sense must be 'min' or 'max'. Got {sense!r} instead.")


def approximation_ratio(value: float, reference: float, *, sense: Sense) -> float:
    """``value / reference``: 1.0 at the reference, below 1.0 when worse.

    For maximisation (MaxCut) the reference is the best-known cut; for minimisation the
    reference must be negative (a QUBO minimum below zero), so that the ratio of two negative
    numbers again falls below 1.0 as the value gets worse.

    Raises:
        InvalidProblemError: A zero reference, or a minimisation reference that is not
            negative (a ``ValueError``).
    """
    _check_sense(sense)
    if reference == 0 or (sense == "min" and reference > 0):
        raise InvalidProblemError(
            f"An approximation ratio needs a {'negative' if sense == 'min' else 'non-zero'} "
            f"reference; got {reference!r}. Use gap_to_best_known for this problem."
        )
    return value / reference


def gap_to_best_known(value: float, best_known: float, *, sense: Sense) -> float:
    """Relative gap to the best known value: 0.0 when reached, positive when worse.

    Negative when ``value`` beats the best known (a new record, or a wrong reference).

    Raises:
        InvalidProblemError: ``best_known`` is zero or not finite: no relative gap exists (a
            ``ValueError``).
    """
    _check_sense(sense)
    if not (math.isfinite(best_known) and best_known != 0):
        raise InvalidProblemError(
            f"A relative gap needs a finite, non-zero best-known value; got {best_known!r}. "
            "Compare the objectives directly."
        )
    worse_by = (best_known - value) if sense == "max" else (value - best_known)
    return worse_by / abs(best_known)


def reaches_target(value: float, target: float, *, sense: Sense, rel_tol: float = 1e-9) -> bool:
    """Whether ``value`` is at least as good as ``target`` (with a tiny float tolerance)."""
    _check_sense(sense)
    slack = rel_tol * max(abs(target), 1.0)
    return value >= target - slack if sense == "max" else value <= target + slack


def success_probability(values: Iterable[float], target: float, *, sense: Sense) -> float:
    """Fraction of independent runs whose best value reaches ``target``."""
    values = list(values)
    if not values:
        raise InvalidProblemError("success_probability needs at least one run; got none.")
    return sum(reaches_target(v, target, sense=sense) for v in values) / len(values)


def tts(run_time_s: float, success: float, *, confidence: float = 0.99) -> float:
    """Time to solution: expected time to reach the target at least once with ``confidence``.

    ``TTS = t * ln(1 - confidence) / ln(1 - p)`` for a run of ``t`` seconds that succeeds with
    probability ``p`` (Ronnow et al., "Defining and detecting quantum speedup", Science 345,
    2014). ``t`` when ``p == 1``; infinite when ``p == 0``.
    """
    if not 0.0 <= success <= 1.0:
        raise SolverConfigurationError(
            f"success must be a probability in [0, 1]. Got {success!r} instead."
        )
    if not 0.0 < confidence < 1.0:
        raise SolverConfigurationError(f"confidence must be in (0, 1). Got {confidence!r} instead.")
    if success >= 1.0:
        return run_time_s
    if success <= 0.0:
        return math.inf
    return run_time_s * math.log(1.0 - confidence) / math.log(1.0 - success)
