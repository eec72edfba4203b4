"""How well a fitted surrogate predicts the best observations."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from qopt.surrogates._base import QuadraticSurrogate

__all__ = ["fit_diagnostics", "predicted_quantile", "prediction_diagnostics"]


def fit_diagnostics(
    model: QuadraticSurrogate, X: np.ndarray, y: np.ndarray, *, top_fraction: float = 0.25
) -> dict[str, float]:
    """In-sample rank agreement of a fitted model with the observations, on the best ones.

    A surrogate that drives a search only needs to order the good region correctly, so the
    figures look at the ``top_fraction`` best observations (at least 5) rather than an overall
    error. They are in-sample (the model saw these points), hence optimistic: a low value is a
    clear warning, a high one is necessary, not sufficient. :func:`prediction_diagnostics` is
    the out-of-sample counterpart.

    Args:
        model: A fitted surrogate.
        X: Observed bit rows.
        y: Observed targets (lower is better), on the scale the model was fitted to.
        top_fraction: Share of the best observations to look at.

    Returns:
        ``top_spearman``: Spearman correlation of prediction and observation over the best
        observations (NaN when fewer than 3); ``best_rank``: the observed rank (0 = best) of the
        observation the model predicts best; ``top_rmse``: RMS error over the best observations.

    Examples:
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
        spearman = float(spearmanr(predicted[top], y_[top]).statistic)
    return {
        "top_spearman": spearman,
        "best_rank": int(rank_of[int(np.argmin(predicted))]),
        "top_rmse": float(np.sqrt(np.mean((predicted[top] - y_[top]) ** 2))),
    }


def predicted_quantile(prediction: float, y: np.ndarray) -> float:
    """Where a prediction falls among observed targets: the share of them it does not beat.

    0 means predicted better than every observation, 1 worse than all (ties count half). It is
    scale-free, so predictions made at different times (different fits, different target
    transforms) can be compared with the quantile the point's observed value later takes.

    Examples:
        >>> from qopt.surrogates import predicted_quantile
        >>> predicted_quantile(0.5, [0.0, 1.0, 2.0, 3.0])
        0.25
    """
    y_ = np.asarray(y, dtype=float).reshape(-1)
    if y_.size == 0:
        return 0.5
    return float((np.sum(y_ < prediction) + 0.5 * np.sum(y_ == prediction)) / y_.size)


def prediction_diagnostics(
    predicted: np.ndarray | list[float],
    observed: np.ndarray | list[float],
    *,
    top_fraction: float = 0.25,
) -> dict[str, float | int]:
    """Out-of-sample rank agreement: predictions made *before* points were evaluated.

    Each pair is one proposal: what the surrogate predicted for the point when it proposed it
    (a model that had not seen it) and what the point turned out to be, both on a scale that
    only has to be monotone (for instance :func:`predicted_quantile` of each against the
    observations known at proposal time). This is the honest counterpart of
    :func:`fit_diagnostics`: no refit is needed, and it measures exactly what drives the search.

    Args:
        predicted: Predictions, one per evaluated proposal (lower is better).
        observed: The observations they became, same order.
        top_fraction: Share of the best observations for ``oos_top_spearman`` (at least 5).

    Returns:
        ``oos_spearman``: Spearman correlation over all pairs (NaN below 3 pairs or without
        spread); ``oos_top_spearman``: the same over the best observations only;
        ``oos_n``: the number of pairs.

    Examples:
        >>> from qopt.surrogates import prediction_diagnostics
        >>> d = prediction_diagnostics([0.1, 0.4, 0.2, 0.9, 0.5, 0.7], [1, 3, 2, 6, 4, 5])
        >>> d["oos_spearman"], d["oos_n"]
        (1.0, 6)
    """
    p = np.asarray(predicted, dtype=float).reshape(-1)
    o = np.asarray(observed, dtype=float).reshape(-1)
    keep = np.isfinite(p) & np.isfinite(o)
    p, o = p[keep], o[keep]

    def spearman(a: np.ndarray, b: np.ndarray) -> float:
        if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return math.nan
        return float(spearmanr(a, b).statistic)

    top = np.argsort(o, kind="stable")[: min(o.size, max(5, math.ceil(top_fraction * o.size)))]
    return {
        "oos_spearman": spearman(p, o),
        "oos_top_spearman": spearman(p[top], o[top]),
        "oos_n": int(o.size),
    }
