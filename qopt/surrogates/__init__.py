"""Quadratic surrogates: observations over bits in, a QUBO out.

Both models are framework-free (numpy), expose ``fit(X, y)``, ``predict(X)`` and ``to_bqm()``
(a BINARY :class:`dimod.BinaryQuadraticModel` over the bit indices), and treat ``y`` as a value to
minimize. :func:`transform_targets` tames failed or extreme observations first, and
:func:`fit_diagnostics` (in sample) and :func:`prediction_diagnostics` (out of sample: predictions
made before the points were evaluated) say how well a model ranks the best observations.

Examples:
    >>> import numpy as np
    >>> from qopt.surrogates import FactorizationMachine, transform_targets
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 2, size=(30, 6))
    >>> y = transform_targets(X @ np.array([-3.0, 1.0, 0.0, 2.0, -1.0, 0.5]), "rank")
    >>> bqm = FactorizationMachine(n_factors=2, seed=0).fit(X, y).to_bqm()
    >>> min(bqm.linear, key=bqm.linear.get)  # the bit the model most wants on
    0
"""

from __future__ import annotations

from qopt.surrogates._base import QuadraticSurrogate
from qopt.surrogates._diagnostics import (
    fit_diagnostics,
    predicted_quantile,
    prediction_diagnostics,
)
from qopt.surrogates._transforms import TargetTransform, transform_targets
from qopt.surrogates.bocs import SparseBayesianQuadraticRegression
from qopt.surrogates.factorization_machine import FactorizationMachine

__all__ = [
    "FactorizationMachine",
    "QuadraticSurrogate",
    "SparseBayesianQuadraticRegression",
    "TargetTransform",
    "fit_diagnostics",
    "predicted_quantile",
    "prediction_diagnostics",
    "transform_targets",
]
