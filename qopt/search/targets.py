"""Observations to the values a surrogate minimizes: scalarization and constraint ranking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PAREGO_RHO", "rank_infeasible", "scalarize", "targets"]

#: ParEGO's augmentation weight (Knowles 2006).
PAREGO_RHO = 0.05


def scalarize(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Several objectives (columns, each minimized) -> one, with random weights (ParEGO).

    Knowles, "ParEGO: a hybrid algorithm with on-line landscape approximation for expensive
    multiobjective optimization problems", IEEE Trans. Evol. Comput. 10(1), 2006: each
    objective is normalized to ``[0, 1]`` over the finite rows, weighted by a uniform draw
    from the simplex, and combined as the augmented Chebyshev function
    ``max_i w_i f_i + rho sum_i w_i f_i``. Rows with a non-finite value get ``+inf``.

    Examples:
        >>> import numpy as np
        >>> y = scalarize(np.array([[0.0, 1.0], [1.0, 0.0], [np.nan, 0.0]]),
        ...               np.random.default_rng(0))
        >>> bool(np.isinf(y[2])), y.shape
        (True, (3,))
    """
    finite_rows = np.isfinite(values).all(axis=1)
    lo = values[finite_rows].min(axis=0)
    span = np.maximum(values[finite_rows].max(axis=0) - lo, 1e-12)
    normalized = (values - lo) / span
    weights = rng.dirichlet(np.ones(values.shape[1]))
    weighted = normalized * weights
    with np.errstate(invalid="ignore"):
        y = weighted.max(axis=1) + PAREGO_RHO * weighted.sum(axis=1)
    y[~finite_rows] = np.inf
    return np.asarray(y)


def rank_infeasible(y: np.ndarray, violations: Sequence[float]) -> np.ndarray:
    """Rank points that violate black-box constraints after every feasible one.

    An infeasible point's target becomes the worst feasible target plus the feasible spread
    times ``1 + violation / max violation``: ordered by violation, all behind the feasible
    points; ``+inf`` (failures) stays.

    Examples:
        >>> rank_infeasible(np.array([1.0, 3.0, 0.0]), [0.0, 0.0, 2.0]).tolist()
        [1.0, 3.0, 7.0]
    """
    violation = np.asarray(violations, dtype=float)
    infeasible = violation > 0
    if not infeasible.any():
        return y
    feasible = np.isfinite(y) & ~infeasible
    base = y[feasible] if feasible.any() else y[np.isfinite(y)]
    worst = float(base.max()) if base.size else 0.0
    spread = float(np.ptp(base)) if base.size > 1 else 1.0
    spread = spread or 1.0
    scaled = violation / violation.max()
    return np.where(infeasible & np.isfinite(y), worst + spread * (1.0 + scaled), y)


def targets(
    values: Sequence[Sequence[float]],
    violations: Sequence[float],
    signs: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Values to minimize, one per observation: scalarized, failures worst, infeasible last.

    Args:
        values: Each observation's objective values (NaN for a failure).
        violations: Each observation's black-box constraint violation (0: feasible).
        signs: Per objective, ``1.0`` to minimize it, ``-1.0`` to maximize it.
        rng: Draws ParEGO's weights when there are several objectives.

    Examples:
        >>> import math, numpy as np
        >>> targets([(2.0,), (math.nan,), (1.0,)], [0.0, 0.0, 0.0], [-1.0],
        ...         np.random.default_rng(0)).tolist()
        [-2.0, inf, -1.0]
    """
    array = np.array(values, dtype=float).reshape(len(values), -1)
    array = array * np.asarray(signs, dtype=float)
    y = scalarize(array, rng) if array.shape[1] > 1 else array[:, 0].copy()
    y[np.isnan(y)] = np.inf
    return rank_infeasible(y, violations)
