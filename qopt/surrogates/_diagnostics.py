"""How well a fitted surrogate predicts the best observations."""

from __future__ import annotations

import math

import numpy as np

from qopt.surrogates._base import QuadraticSurrogate
from qopt.surrogates._transforms import rank_average

__all__ = ["fit_diagnostics"]


def fit_diagnostics(
    model: QuadraticSurrogate, X: np.ndarray, y: np.ndarray, *, top_fraction: float = 0.25
) -> dict[str, float]:
    """Rank agreement of a fitted model with the observations, where it matters: the best ones.

    A surrogate that drives a search only needs to order the good region correctly, so the
    figures look at the ``top_fraction`` best observations (at least 5) rather than an overall
    error. They are in-sample (the model saw these points), hence optimistic: a low value is a
    clear warning, a high one is necessary, not sufficient.

    Args:
        model: A fitted surrogate.
        X: Observed bit rows.
        y: Observed targets (lower is better), on the scale the model was fitted to.
        top_fraction: Share of the best observations to look at.

    Returns:
        ``top_spearman``: Spearman correlation of prediction and observation over the best
        observations (NaN when fewer than 3); ``best_rank``: the observed rank (0 = best) of the
        observation the model predicts best; ``top_rmse``: RMS error over the best observations.

    Example:
        >>> import numpy as np
        >>> from qopt.surrogates import SparseBayesianQuadraticRegression, fit_diagnostics
        >>> rng = np.random.default_rng(1)
        >>> X = rng.integers(0, 2, size=(30, 4))
        >>> y = X @ np.array([1.0, -2.0, 0.5, 3.0])
        >>> model = SparseBayesianQuadraticRegression(seed=0).fit(X, y)
        >>> fit_diagnostics(model, X, y)["best_rank"]
        0
    """
    X_ = np.asarray(X, dtype=float)
    y_ = np.asarray(y, dtype=float).reshape(-1)
    predicted = np.asarray(model.predict(X_), dtype=float)
    order = np.argsort(y_, kind="stable")
    k = min(y_.size, max(5, math.ceil(top_fraction * y_.size)))
    top = order[:k]
    rank_of = np.empty(y_.size, dtype=np.int64)
    rank_of[order] = np.arange(y_.size)
    spearman = math.nan
    if k >= 3 and np.ptp(y_[top]) > 0 and np.ptp(predicted[top]) > 0:
        spearman = float(np.corrcoef(rank_average(predicted[top]), rank_average(y_[top]))[0, 1])
    return {
        "top_spearman": spearman,
        "best_rank": int(rank_of[int(np.argmin(predicted))]),
        "top_rmse": float(np.sqrt(np.mean((predicted[top] - y_[top]) ** 2))),
    }
