"""Target transforms that keep failed or extreme observations from wrecking a surrogate fit."""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal, TypeAlias

import numpy as np
from scipy.stats import rankdata

from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = ["TargetTransform", "transform_targets"]

TargetTransform: TypeAlias = Literal["rank", "exp", "standardize", "robust"]
_TRANSFORMS = ("rank", "exp", "standardize", "robust")
#: Tukey's "far out" fence: values beyond Q3 + 3 IQR are outliers (Tukey, EDA, 1977).
_FENCE = 3.0


def transform_targets(y: np.ndarray | list[float], method: str = "rank") -> np.ndarray:
    """Map values to be minimized onto a tame scale, keeping their order.

    ``+inf`` marks an observation worse than any other (a failed trial): it gets the worst
    transformed value. Methods:

    * ``"rank"``: Gaussian rank scores ``Phi^-1((rank - 1/2) / n)`` (ties share a rank). Only
      the order survives, so one huge loss cannot flatten every other difference.
    * ``"exp"``: ``1 - exp(-(y - min) / s)`` with ``s`` the median distance to the best value,
      then standardized: resolution near the best values is kept, bad values saturate.
    * ``"standardize"``: ``(y - mean) / std`` with ``+inf`` replaced by the worst finite value.
    * ``"robust"``: ``"standardize"`` after clipping values worse than Tukey's far-out fence
      ``Q3 + 3 IQR`` (Tukey, *Exploratory Data Analysis*, 1977) to it, ``+inf`` included. In the
      bulk the values keep their scale, so a quadratic objective stays exactly quadratic for
      the surrogate (which ``"rank"`` breaks), while one diverged run cannot flatten the rest.

    Args:
        y: Values to minimize, finite or ``+inf``; NaN and ``-inf`` are refused.
        method: ``"rank"``, ``"exp"``, ``"standardize"`` or ``"robust"``.

    Returns:
        Transformed values with mean 0 and unit variance (all zero when they are all equal).

    Examples:
        >>> import numpy as np
        >>> from qopt.surrogates import transform_targets
        >>> transform_targets([1.0, 2.0, 1e9, np.inf], "rank").round(2).tolist()
        [-1.36, -0.38, 0.38, 1.36]
    """
    if method not in _TRANSFORMS:
        raise SolverConfigurationError(
            f"The 'method' parameter of transform_targets must be a str among "
            f"{list(_TRANSFORMS)}. Got {method!r} instead."
        )
    values = np.asarray(y, dtype=float).reshape(-1)
    if np.isnan(values).any() or np.isneginf(values).any():
        raise InvalidProblemError(
            "transform_targets got NaN or -inf values; mark failed observations with +inf."
        )
    if values.size == 0:
        return values
    finite = values[np.isfinite(values)]
    if method == "rank":
        ranks = rankdata(values)
        inverse_cdf = np.vectorize(NormalDist().inv_cdf, otypes=[float])
        out = inverse_cdf((ranks - 0.5) / values.size)
    elif finite.size == 0:
        out = np.zeros_like(values)
    elif method == "exp":
        gap = finite - finite.min()
        scale = float(np.median(gap[gap > 0])) if (gap > 0).any() else 1.0
        out = np.where(np.isfinite(values), 1.0 - np.exp(-(values - finite.min()) / scale), 1.0)
    elif method == "robust":
        q1, q3 = np.percentile(finite, [25, 75])
        fence = q3 + _FENCE * (q3 - q1)
        worst = min(float(finite.max()), fence) if q3 > q1 else float(finite.max())
        out = np.minimum(np.where(np.isfinite(values), values, worst), worst)
    else:
        out = np.where(np.isfinite(values), values, finite.max())
    std = float(out.std())
    return (out - out.mean()) / std if std > 0 else np.zeros_like(out)
