"""qopt.surrogates.FactorizationMachine: the model, its gradient, and its QUBO."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.surrogates import FactorizationMachine


def brute_force_prediction(fm: FactorizationMachine, x: np.ndarray, groups: np.ndarray) -> float:
    total = fm.w0_ + fm.w_ @ x
    for i, j in itertools.combinations(range(x.size), 2):
        if groups[i] != groups[j]:
            total += fm.V_[i] @ fm.V_[j] * x[i] * x[j]
    return float(fm._mean + fm._scale * total)


@pytest.mark.parametrize("groups", [None, [0, 0, 1, 2, 2, 2], [2, 0, 2, 1, 0, 1]])
def test_prediction_and_bqm_match_the_model_with_groups(groups: list[int] | None) -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(20, 6))
    fm = FactorizationMachine(n_factors=3, n_epochs=30, groups=groups, seed=1).fit(
        X, rng.normal(size=20)
    )
    ids = np.arange(6) if groups is None else np.asarray(groups)
    bqm = fm.to_bqm()
    assert set(bqm.variables) == set(range(6)) and bqm.vartype is dimod.BINARY
    for x in itertools.product((0, 1), repeat=6):
        row = np.array(x, dtype=float)
        expected = brute_force_prediction(fm, row, ids)
        assert fm.predict(row[None, :])[0] == pytest.approx(expected)
        assert bqm.energy(dict(enumerate(x))) == pytest.approx(expected)
    for i, j in bqm.quadratic:
        assert ids[i] != ids[j]  # no interaction inside a group


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    X = rng.integers(0, 2, size=(15, 5)).astype(float)
    y = rng.normal(size=15)
    # One Adam step from a known start moves each parameter against its gradient's sign.
    fm = FactorizationMachine(
        n_factors=2, n_epochs=1, learning_rate=1e-3, l2=0.0, groups=[0, 0, 1, 2, 2], seed=0
    )
    fm.fit(X, y)
    start = FactorizationMachine(
        n_factors=2, n_epochs=1, learning_rate=1e-30, l2=0.0, groups=[0, 0, 1, 2, 2], seed=0
    ).fit(X, y)
    t = (y - y.mean()) / y.std()

    def loss(V: np.ndarray) -> float:
        start.V_ = V
        return float(np.mean((((start.predict(X) - start._mean) / start._scale) - t) ** 2))

    V0 = start.V_.copy()
    for i, f in itertools.product(range(5), range(2)):
        bump = np.zeros_like(V0)
        bump[i, f] = 1e-6
        numeric = (loss(V0 + bump) - loss(V0 - bump)) / 2e-6
        if abs(numeric) > 1e-4:
            # Adam's first step is lr * sign(gradient).
            assert np.sign(V0[i, f] - fm.V_[i, f]) == np.sign(numeric)


def test_fits_a_quadratic_function_and_its_qubo_minimum_is_the_true_one() -> None:
    rng = np.random.default_rng(0)
    d = 8
    Q = np.triu(rng.normal(size=(d, d)))
    states = np.array(list(itertools.product((0, 1), repeat=d)), dtype=float)
    energies = np.einsum("si,ij,sj->s", states, Q, states)
    train = rng.choice(len(states), size=120, replace=False)
    fm = FactorizationMachine(n_factors=8, n_epochs=1500, l2=1e-5, seed=0).fit(
        states[train], energies[train]
    )
    predicted = fm.predict(states)
    assert np.corrcoef(predicted, energies)[0, 1] > 0.95
    ground = dimod.ExactSolver().sample(fm.to_bqm()).first.sample
    best = np.array([ground[i] for i in range(d)], dtype=float)
    assert best @ Q @ best <= np.sort(energies)[2]  # among the three best states


def test_seeded_fits_are_reproducible_and_bootstrap_differs() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 2, size=(12, 4)), rng.normal(size=12)
    a = FactorizationMachine(n_epochs=20, seed=5).fit(X, y).to_bqm()
    b = FactorizationMachine(n_epochs=20, seed=5).fit(X, y).to_bqm()
    c = FactorizationMachine(n_epochs=20, seed=5, bootstrap=True).fit(X, y).to_bqm()
    assert a == b and a != c


def test_bad_input() -> None:
    with pytest.raises(
        SolverConfigurationError, match="'n_factors' parameter of FactorizationMachine"
    ):
        FactorizationMachine(n_factors=0)
    fm = FactorizationMachine()
    with pytest.raises(InvalidProblemError, match="not fitted"):
        fm.to_bqm()
    with pytest.raises(InvalidProblemError, match="bits"):
        fm.fit([[0, 2]], [1.0])
    with pytest.raises(InvalidProblemError, match="non-finite"):
        fm.fit([[0, 1]], [np.nan])
    with pytest.raises(InvalidProblemError, match=r"shape \(n, d\)"):
        fm.fit([[0, 1]], [1.0, 2.0])
    with pytest.raises(InvalidProblemError, match="'groups'"):
        FactorizationMachine(groups=[0, 1]).fit([[0, 1, 1]], [1.0])
