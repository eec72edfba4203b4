"""qopt.surrogates.prediction_diagnostics and predicted_quantile: out-of-sample figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.surrogates import (
    FactorizationMachine,
    fit_diagnostics,
    predicted_quantile,
    prediction_diagnostics,
)

values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(observed=values, prediction=st.floats(-1e6, 1e6, allow_nan=False))
def test_predicted_quantile_is_the_share_not_beaten(
    observed: list[float], prediction: float
) -> None:
    q = predicted_quantile(prediction, np.array(observed))
    assert 0.0 <= q <= 1.0
    below = sum(v < prediction for v in observed)
    ties = sum(v == prediction for v in observed)
    assert q == pytest.approx((below + 0.5 * ties) / len(observed))
    # Monotone: a better prediction never gets a worse quantile.
    assert predicted_quantile(prediction - 1.0, np.array(observed)) <= q


def test_predicted_quantile_of_nothing_is_the_middle() -> None:
    assert predicted_quantile(3.0, np.array([])) == 0.5


def test_prediction_diagnostics_rank_agreement_and_the_top() -> None:
    rng = np.random.default_rng(0)
    observed = rng.normal(size=40)
    perfect = prediction_diagnostics(2 * observed + 1, observed)
    assert perfect["oos_spearman"] == pytest.approx(1.0)
    assert perfect["oos_top_spearman"] == pytest.approx(1.0)
    assert perfect["oos_n"] == 40
    reversed_ = prediction_diagnostics(-observed, observed)
    assert reversed_["oos_spearman"] == pytest.approx(-1.0)
    # Right on the bad half, shuffled on the best quarter: the top figure says so.
    predicted = observed.copy()
    top = np.argsort(observed)[:10]
    predicted[top] = rng.permutation(predicted[top])
    mixed = prediction_diagnostics(predicted, observed)
    assert mixed["oos_spearman"] > 0.8
    assert mixed["oos_top_spearman"] < 0.8


def test_prediction_diagnostics_with_too_few_pairs_or_no_spread_is_nan() -> None:
    assert math.isnan(prediction_diagnostics([0.1, 0.2], [1.0, 2.0])["oos_spearman"])
    assert math.isnan(prediction_diagnostics([0.5] * 6, [1, 2, 3, 4, 5, 6])["oos_spearman"])
    d = prediction_diagnostics([0.1, np.nan, 0.3, 0.2], [1.0, 2.0, np.inf, 0.5])
    assert d["oos_n"] == 2  # non-finite pairs are left out


def test_out_of_sample_is_less_optimistic_than_in_sample_on_noise() -> None:
    """On pure noise an over-flexible model fits the data (in sample) but predicts nothing."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 2, size=(60, 10)).astype(float)
    y = rng.normal(size=60)
    model = FactorizationMachine(n_factors=8, n_epochs=400, l2=0.0, seed=0).fit(X[:40], y[:40])
    in_sample = fit_diagnostics(model, X[:40], y[:40], top_fraction=1.0)["top_spearman"]
    out = prediction_diagnostics(model.predict(X[40:]), y[40:])["oos_spearman"]
    assert in_sample > 0.8
    assert abs(out) < 0.5
