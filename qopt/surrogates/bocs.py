"""Sparse Bayesian quadratic regression with a horseshoe prior (BOCS).

References:
    Baptista & Poloczek, "Bayesian Optimization of Combinatorial Structures", ICML 2018 (BOCS:
    the model, the horseshoe prior and Thompson sampling of its coefficients).
    Makalic & Schmidt, "A simple sampler for the horseshoe estimator", IEEE Signal Processing
    Letters 23 (2016) (the auxiliary-variable Gibbs sampler used here).
    Bhattacharya, Chakraborty & Mallick, "Fast sampling with Gaussian scale mixture priors in
    high-dimensional regression", Biometrika 103 (2016) (the O(n^2 p) coefficient draw when
    there are more features than observations).
    Geweke, "Evaluating the accuracy of sampling-based approaches to the calculation of
    posterior moments", Bayesian Statistics 4 (1992) (the burn-in convergence check).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dimod
import numpy as np
from scipy import linalg

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError
from qopt.surrogates._base import check_training_data, group_ids, pair_mask

__all__ = ["SparseBayesianQuadraticRegression"]

_CLIP = (1e-10, 1e10)


class SparseBayesianQuadraticRegression:
    """BOCS: ``y = a0 + sum_i a_i x_i + sum_{i<j} a_ij x_i x_j + noise``, horseshoe prior on ``a``.

    Every coefficient has its own half-Cauchy scale, so a few strong effects stand out while
    the many absent interactions shrink to zero. The posterior is explored by Gibbs sampling
    (Makalic & Schmidt's auxiliary-variable scheme). :meth:`to_bqm` returns the *last* draw of the
    coefficients by default: a Thompson sample, BOCS's exploration rule; ``thompson=False``
    gives the posterior mean over the kept draws.

    Approximation, stated plainly: the chain is short. A cold fit runs at most ``n_burn_in``
    discarded sweeps, stopping early once a Geweke-style check (Geweke 1992) finds the noise
    variance's trace stationary over the last two blocks of 10 sweeps, then ``n_samples`` kept
    sweeps. With ``warm_start`` (the default) a refit on grown data of the same width continues
    the previous chain: ``n_warm_burn_in`` discarded sweeps, then ``n_samples`` kept ones. BOCS
    itself restarts each fit with a long burn-in; continuing the chain (the posterior moves
    little when one observation is added) is what makes a refit cheap enough to run every
    trial, at the price of draws that are correlated across trials.

    Args:
        n_samples: Kept Gibbs sweeps per fit (the posterior mean averages them).
        n_burn_in: Most discarded sweeps of a cold fit.
        n_warm_burn_in: Discarded sweeps of a warm refit.
        groups: Optional group id per bit; bits of one group get no interaction term.
        warm_start: Continue the previous chain when the feature count is unchanged.
        seed: Seed of the chain.

    Examples:
        >>> import numpy as np
        >>> from qopt.surrogates import SparseBayesianQuadraticRegression
        >>> rng = np.random.default_rng(0)
        >>> X = rng.integers(0, 2, size=(40, 5))
        >>> y = 2 * X[:, 0] - 3 * X[:, 1] * X[:, 2] + 0.01 * rng.normal(size=40)
        >>> model = SparseBayesianQuadraticRegression(seed=0).fit(X, y)
        >>> bqm = model.to_bqm(thompson=False)
        >>> round(float(bqm.linear[0]), 1), round(float(bqm.quadratic[1, 2]), 1)
        (2.0, -3.0)
    """

    def __init__(
        self,
        *,
        n_samples: int = 3,
        n_burn_in: int = 100,
        n_warm_burn_in: int = 1,
        groups: Sequence[int] | np.ndarray | None = None,
        warm_start: bool = True,
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        self.n_samples = check_int(n_samples, "n_samples", owner, low=1)
        self.n_burn_in = check_int(n_burn_in, "n_burn_in", owner, low=0)
        self.n_warm_burn_in = check_int(n_warm_burn_in, "n_warm_burn_in", owner, low=0)
        self.groups = groups
        self.warm_start = bool(warm_start)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._state: dict[str, np.ndarray | float] | None = None
        self.coef_samples_: np.ndarray | None = None

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([X, X[:, self._pairs[0]] * X[:, self._pairs[1]]])

    def fit(
        self, X: np.ndarray | list[list[int]], y: np.ndarray | Sequence[float]
    ) -> SparseBayesianQuadraticRegression:
        """Run the Gibbs sampler on bit rows ``X`` (n, d) and targets ``y``; returns ``self``."""
        X_, y_ = check_training_data(X, y, type(self).__name__)
        d = X_.shape[1]
        ids = group_ids(self.groups, d, type(self).__name__)
        self._d = d
        self._pairs = np.nonzero(pair_mask(ids))
        F = self._features(X_)
        p = F.shape[1]
        # Centre features and targets so the unpenalized intercept drops out of the sampler.
        self._feature_mean = F.mean(axis=0)
        F = F - self._feature_mean
        self._mean, self._scale = float(y_.mean()), float(y_.std()) or 1.0
        t = (y_ - self._mean) / self._scale

        state = self._state
        cold = not (self.warm_start and state is not None and np.size(state["beta"]) == p)
        if cold:
            state = {
                "beta": np.zeros(p),
                "sigma2": 1.0,
                "lambda2": np.ones(p),
                "tau2": 1.0,
                "nu": np.ones(p),
                "xi": 1.0,
            }
        assert state is not None
        trace: list[float] = []
        burn_in = self.n_burn_in if cold else self.n_warm_burn_in
        for _ in range(burn_in):
            self._gibbs_sweep(F, t, state)
            trace.append(math.log(float(state["sigma2"])))
            if cold and _stationary(trace):
                break
        self.n_burn_in_used_ = len(trace)
        kept = []
        for _ in range(self.n_samples):
            self._gibbs_sweep(F, t, state)
            kept.append(np.asarray(state["beta"]).copy())
        self._state = state
        self.coef_samples_ = np.array(kept) * self._scale
        return self

    def _gibbs_sweep(
        self,
        F: np.ndarray,
        t: np.ndarray,
        s: dict[str, np.ndarray | float],
    ) -> None:
        rng = self._rng
        n, p = F.shape
        sigma2, tau2 = float(s["sigma2"]), float(s["tau2"])
        lambda2 = np.asarray(s["lambda2"])
        prior_var = np.clip(tau2 * lambda2, *_CLIP)
        beta = self._draw_beta(F, t, sigma2, prior_var)
        residual = t - F @ beta
        shrunk = float((beta**2 / prior_var).sum())
        sigma2 = float(
            np.clip(_inverse_gamma(rng, (n + p) / 2, 0.5 * (residual @ residual + shrunk)), *_CLIP)
        )
        nu = np.asarray(s["nu"])
        lambda2 = _inverse_gamma(rng, 1.0, 1.0 / nu + beta**2 / (2 * tau2 * sigma2))
        lambda2 = np.clip(lambda2, *_CLIP)
        xi = float(s["xi"])
        tau2_draw = _inverse_gamma(
            rng, (p + 1) / 2, 1.0 / xi + (beta**2 / lambda2).sum() / (2 * sigma2)
        )
        tau2 = float(np.clip(tau2_draw, *_CLIP))
        s["nu"] = _inverse_gamma(rng, 1.0, 1.0 + 1.0 / lambda2)
        s["xi"] = float(_inverse_gamma(rng, 1.0, 1.0 + 1.0 / tau2))
        s.update(beta=beta, sigma2=sigma2, lambda2=lambda2, tau2=tau2)

    def _draw_beta(
        self,
        F: np.ndarray,
        t: np.ndarray,
        sigma2: float,
        prior_var: np.ndarray,
    ) -> np.ndarray:
        """One draw of N(A^-1 F^T t, sigma2 A^-1), A = F^T F + diag(1 / prior_var)."""
        rng = self._rng
        n, p = F.shape
        if p > n:
            # Bhattacharya et al. (2016): O(n^2 p) instead of O(p^3) when p > n. With
            # Phi = F / sigma and D = sigma2 * prior_var, Phi D Phi^T = F diag(prior_var) F^T.
            sigma = np.sqrt(sigma2)
            Phi, alpha = F / sigma, t / sigma
            D = sigma2 * prior_var
            u = rng.normal(size=p) * np.sqrt(D)
            v = Phi @ u + rng.normal(size=n)
            M = (F * prior_var) @ F.T
            M[np.diag_indices(n)] += 1.0
            w = linalg.solve(M, alpha - v, assume_a="pos")
            return np.asarray(u + D * (Phi.T @ w))
        A = F.T @ F + np.diag(1.0 / prior_var)
        L = linalg.cholesky(A, lower=True)
        mean = linalg.cho_solve((L, True), F.T @ t)
        z = linalg.solve_triangular(L.T, rng.normal(size=p), lower=False)
        return np.asarray(mean + np.sqrt(sigma2) * z)

    def _coefficients(self, thompson: bool) -> np.ndarray:
        if self.coef_samples_ is None:
            raise InvalidProblemError(
                "This SparseBayesianQuadraticRegression is not fitted yet; call fit()."
            )
        return self.coef_samples_[-1] if thompson else self.coef_samples_.mean(axis=0)

    def predict(self, X: np.ndarray | list[list[int]], *, thompson: bool = False) -> np.ndarray:
        """Posterior-mean (or last-draw) predictions for bit rows ``X``."""
        beta = self._coefficients(thompson)
        X_ = np.atleast_2d(np.asarray(X, dtype=float))
        return self._intercept(beta) + self._features(X_) @ beta

    def _intercept(self, beta: np.ndarray) -> float:
        return float(self._mean - self._feature_mean @ beta)

    def to_bqm(self, *, thompson: bool = True) -> dimod.BinaryQuadraticModel:
        """The model as a BINARY BQM over ``0 .. d - 1``: a Thompson draw, or the posterior mean."""
        beta = self._coefficients(thompson)
        d = self._d
        return dimod.BinaryQuadraticModel.from_numpy_vectors(
            beta[:d],
            (self._pairs[0], self._pairs[1], beta[d:]),
            self._intercept(beta),
            dimod.BINARY,
            variable_order=range(d),
        )


def _stationary(trace: list[float], block: int = 10) -> bool:
    """Geweke-style check: the last two blocks of the trace agree within their noise."""
    if len(trace) < 3 * block:
        return False
    a, b = np.asarray(trace[-2 * block : -block]), np.asarray(trace[-block:])
    spread = math.sqrt((a.var() + b.var()) / block) + 1e-12
    return bool(abs(a.mean() - b.mean()) < 2.0 * spread)


def _inverse_gamma(
    rng: np.random.Generator, shape: float | np.ndarray, scale: float | np.ndarray
) -> np.ndarray:
    return np.asarray(scale) / rng.gamma(shape, 1.0, size=np.shape(scale) or None)
