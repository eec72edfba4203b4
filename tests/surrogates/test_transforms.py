"""qopt.surrogates.transform_targets and fit_diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.surrogates import FactorizationMachine, fit_diagnostics, transform_targets

finite = st.floats(-1e12, 1e12, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(finite, st.just(math.inf)), min_size=1, max_size=30),
    method=st.sampled_from(["rank", "exp", "standardize", "robust"]),
)
def test_transforms_keep_the_order_and_put_failures_last(values: list[float], method: str) -> None:
    y = np.array(values)
    t = transform_targets(y, method)
    assert t.shape == y.shape and np.isfinite(t).all()
    order = np.argsort(y, kind="stable")
    assert (np.diff(t[order]) >= -1e-9).all()  # monotone non-decreasing
    if np.isinf(y).any() and np.isfinite(y).any():
        assert t[np.isinf(y)].min() >= t[np.isfinite(y)].max() - 1e-9


def test_rank_tames_an_extreme_value() -> None:
    plain = transform_targets([1.0, 2.0, 3.0, 1e9], "standardize")
    ranked = transform_targets([1.0, 2.0, 3.0, 1e9], "rank")
    assert np.ptp(plain[:3]) < 1e-6  # one huge loss flattens the rest
    assert np.ptp(ranked[:3]) > 1.0
    exp = transform_targets([1.0, 2.0, 3.0, 1e9], "exp")
    assert np.ptp(exp[:3]) > 0.5


def test_robust_keeps_the_bulk_affine_and_clips_outliers() -> None:
    bulk = np.array([1.0, 2.0, 4.0, 3.0, 2.5, 1.5])
    robust = transform_targets([*bulk, 1e9, np.inf], "robust")
    # Inside the fence the values are an affine map of the raw ones: a quadratic objective
    # stays quadratic for the surrogate.
    slope = np.polyfit(bulk, robust[:6], 1)[0]
    assert np.allclose(robust[:6], np.polyval(np.polyfit(bulk, robust[:6], 1), bulk))
    assert slope > 0
    # The diverged value and the failure sit at the fence, not a billion away.
    assert robust[6] == robust[7] > robust[:6].max()
    assert np.ptp(robust[:6]) > 0.5
    assert np.allclose(transform_targets(bulk, "robust"), transform_targets(bulk, "standardize"))


def test_bad_input() -> None:
    with pytest.raises(InvalidProblemError, match=r"\+inf"):
        transform_targets([1.0, np.nan])
    with pytest.raises(SolverConfigurationError, match="'method' parameter"):
        transform_targets([1.0], "log")


def test_diagnostics_tell_a_good_fit_from_a_bad_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(40, 6))
    y = X @ np.array([3.0, -2.0, 1.0, 0.5, -1.0, 2.0])
    good = FactorizationMachine(n_factors=2, n_epochs=500, seed=0).fit(X, y)
    bad = FactorizationMachine(n_factors=2, n_epochs=500, seed=0).fit(X, rng.permutation(y))
    good_diag, bad_diag = fit_diagnostics(good, X, y), fit_diagnostics(bad, X, y)
    assert good_diag["best_rank"] == 0 and good_diag["top_spearman"] > 0.8
    assert good_diag["top_rmse"] < bad_diag["top_rmse"]
