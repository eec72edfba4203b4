"""qopt.surrogates.SparseBayesianQuadraticRegression (BOCS): recovery, Thompson draws, QUBO."""

from __future__ import annotations

import dimod
import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.surrogates import SparseBayesianQuadraticRegression


def sparse_problem(n: int, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, d)).astype(float)
    y = (
        1.5
        + 2.0 * X[:, 0]
        - 3.0 * X[:, 1] * X[:, 2]
        + 1.0 * X[:, 3] * X[:, 5]
        + 0.05 * rng.normal(size=n)
    )
    return X, y


@pytest.mark.parametrize("n", [25, 60])  # 25 < p = 36 features: the fast sampler; 60: Cholesky
def test_recovers_a_sparse_quadratic(n: int) -> None:
    X, y = sparse_problem(n)
    model = SparseBayesianQuadraticRegression(n_burn_in=200, n_samples=100, seed=0).fit(X, y)
    bqm = model.to_bqm(thompson=False)
    assert bqm.linear[0] == pytest.approx(2.0, abs=0.3)
    assert bqm.quadratic[1, 2] == pytest.approx(-3.0, abs=0.3)
    assert bqm.quadratic[3, 5] == pytest.approx(1.0, abs=0.3)
    others = [abs(b) for (u, v), b in bqm.quadratic.items() if {u, v} not in ({1, 2}, {3, 5})]
    assert max(others) < 0.3  # the horseshoe shrinks absent interactions
    assert bqm.offset == pytest.approx(1.5, abs=0.3)
    assert model.predict(X) == pytest.approx(y, abs=0.5)


def test_thompson_draws_vary_around_the_mean_and_warm_start_continues() -> None:
    X, y = sparse_problem(20)
    model = SparseBayesianQuadraticRegression(n_burn_in=50, n_samples=10, seed=1).fit(X, y)
    draws = [model.to_bqm() for _ in range(1)]
    model.fit(X, y)  # warm: continues the chain, 10 sweeps
    draws.append(model.to_bqm())
    assert draws[0] != draws[1]
    assert model.coef_samples_ is not None and model.coef_samples_.shape[0] == 10
    ground = dimod.ExactSolver().sample(model.to_bqm(thompson=False)).first.sample
    assert ground[1] == ground[2] == 1 and ground[0] == 0


def test_groups_remove_within_group_interactions() -> None:
    X, y = sparse_problem(30, d=6)
    groups = [0, 0, 1, 1, 2, 2]
    model = SparseBayesianQuadraticRegression(n_burn_in=5, n_samples=2, groups=groups, seed=0)
    bqm = model.fit(X[:, :6], y).to_bqm()
    pairs = {frozenset(uv) for uv in bqm.quadratic}
    assert len(pairs) == 12  # 15 pairs minus the 3 within groups
    assert not pairs & {frozenset((0, 1)), frozenset((2, 3)), frozenset((4, 5))}


def test_bad_input() -> None:
    with pytest.raises(SolverConfigurationError, match="'n_samples' parameter"):
        SparseBayesianQuadraticRegression(n_samples=0)
    with pytest.raises(SolverConfigurationError, match="'n_warm_burn_in' parameter"):
        SparseBayesianQuadraticRegression(n_warm_burn_in=-1)
    with pytest.raises(InvalidProblemError, match="not fitted"):
        SparseBayesianQuadraticRegression().to_bqm()


def test_cold_burn_in_stops_once_the_chain_is_stationary() -> None:
    X, y = sparse_problem(40)
    model = SparseBayesianQuadraticRegression(n_burn_in=500, n_samples=2, seed=0).fit(X, y)
    # The Geweke-style check ends the burn-in long before the cap, after its 3 blocks minimum.
    assert 30 <= model.n_burn_in_used_ < 500
    # A warm refit runs exactly n_warm_burn_in discarded sweeps.
    model.fit(X, y)
    assert model.n_burn_in_used_ == model.n_warm_burn_in == 1
    cold = SparseBayesianQuadraticRegression(n_burn_in=500, warm_start=False, seed=0)
    cold.fit(X, y).fit(X, y)
    assert cold.n_burn_in_used_ >= 30  # without warm start every fit burns in again


def test_warm_refits_stay_on_the_posterior() -> None:
    """Short warm refits, one observation at a time, still recover the sparse model."""
    X, y = sparse_problem(60)
    model = SparseBayesianQuadraticRegression(seed=0).fit(X[:40], y[:40])
    for n in range(41, 61):
        model.fit(X[:n], y[:n])
    assert model.coef_samples_ is not None and model.coef_samples_.shape[0] == 3
    bqm = model.to_bqm(thompson=False)
    assert bqm.quadratic[1, 2] == pytest.approx(-3.0, abs=0.4)
    assert bqm.linear[0] == pytest.approx(2.0, abs=0.4)
