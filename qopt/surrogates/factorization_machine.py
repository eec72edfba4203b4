"""Factorization machine surrogate (FMQA).

Reference: Kitai, Guo, Ju, Tanaka, Tsuda, Shiomi & Tamura, "Designing metamaterials with
quantum annealing and factorization machines", Phys. Rev. Research 2, 013319 (2020); the model is
Rendle's factorization machine ("Factorization machines", ICDM 2010).
"""

from __future__ import annotations

from collections.abc import Sequence

import dimod
import numpy as np

from qopt._validation import check_float, check_int
from qopt.surrogates._base import check_training_data, group_ids, pair_mask

__all__ = ["FactorizationMachine"]


class FactorizationMachine:
    """A second-order factorization machine over bits, trained in numpy; a QUBO once fitted.

    ``y(x) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j`` with ``v_i`` in R^k: a rank-k
    quadratic model that needs far fewer observations than a full one. Training is full-batch
    Adam on the mean squared error with an L2 penalty, from a seeded random start (FMQA retrains
    from scratch after each observation; the random start is its source of exploration).
    ``bootstrap=True`` fits a bootstrap resample instead, a cheap stand-in for a posterior draw.

    Args:
        n_factors: Rank ``k`` of the interactions.
        n_epochs: Adam steps per fit.
        learning_rate: Adam step size.
        l2: L2 penalty on ``w`` and ``v``.
        init_scale: Standard deviation of the initial ``v``.
        groups: Optional group id per bit; bits of one group never interact (the bits of one
            encoded parameter: their products are constant or redundant).
        bootstrap: Fit a bootstrap resample of the data.
        seed: Seed of the initialization (and the resample).

    Examples:
        >>> import numpy as np
        >>> from qopt.surrogates import FactorizationMachine
        >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
        >>> fm = FactorizationMachine(n_factors=2, n_epochs=2000, seed=0).fit(X, [0, 1, 1, 3])
        >>> np.round(fm.predict(X), 1).tolist()
        [0.0, 1.0, 1.0, 3.0]
        >>> bqm = fm.to_bqm()
        >>> round(float(bqm.energy({0: 1, 1: 1})), 1)
        3.0
    """

    def __init__(
        self,
        *,
        n_factors: int = 8,
        n_epochs: int = 300,
        learning_rate: float = 0.05,
        l2: float = 1e-3,
        init_scale: float = 0.1,
        groups: Sequence[int] | np.ndarray | None = None,
        bootstrap: bool = False,
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        self.n_factors = check_int(n_factors, "n_factors", owner, low=1)
        self.n_epochs = check_int(n_epochs, "n_epochs", owner, low=1)
        self.learning_rate = check_float(
            learning_rate, "learning_rate", owner, low=0, low_inclusive=False
        )
        self.l2 = check_float(l2, "l2", owner, low=0)
        self.init_scale = check_float(init_scale, "init_scale", owner, low=0)
        self.groups = groups
        self.bootstrap = bool(bootstrap)
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.w0_: float | None = None
        self.w_: np.ndarray = np.zeros(0)
        self.V_: np.ndarray = np.zeros((0, self.n_factors))
        self._ids: np.ndarray = np.zeros(0, dtype=np.int64)

    def _layout(self, d: int) -> None:
        """Order bits so each group is contiguous, and bucket the groups by size.

        Groups of one size form a batch ``(groups, size)`` of bit columns, so the per-group sums
        ``S_g = sum_{i in g} x_i v_i`` of a bucket are one batched matrix product: O(n d k) work
        in a few numpy calls, however many groups there are.
        """
        self._perm = np.argsort(self._ids, kind="stable")
        sorted_ids = self._ids[self._perm]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        sizes = np.diff(np.r_[starts, d])
        self._singletons = starts.size == d
        self._buckets = [
            starts[sizes == size][:, None] + np.arange(size)[None, :] for size in np.unique(sizes)
        ]

    def _grouped(self, X: np.ndarray) -> list[np.ndarray]:
        """``X``'s columns per bucket as ``(groups, n, size)`` arrays (constant during a fit)."""
        return [np.ascontiguousarray(X[:, c].transpose(1, 0, 2)) for c in self._buckets]

    def _forward(
        self,
        X: np.ndarray,
        w0: float,
        w: np.ndarray,
        V: np.ndarray,
        grouped: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """Predictions for bit rows ``X`` (columns in group order), with S and the group sums.

        Subtracting each group's own square from ``|X V|^2`` leaves only cross-group pairs; the
        diagonal ``x_i^2 |v_i|^2`` terms cancel because every bit is in exactly one group.
        """
        S = X @ V  # (n, k)
        if self._singletons:
            own = None
            within = X @ (V**2).sum(axis=1)
        else:
            own = []
            within = np.zeros(X.shape[0])
            grouped = self._grouped(X) if grouped is None else grouped
            for columns, Xg in zip(self._buckets, grouped, strict=True):
                # (groups, n, size) @ (groups, size, k) -> S_g for each group: (groups, n, k)
                Sg = np.matmul(Xg, V[columns])
                within += (Sg**2).sum(axis=(0, 2))
                own.append(Sg)
        pair = 0.5 * ((S**2).sum(axis=1) - within)
        return w0 + X @ w + pair, S, own

    def fit(
        self, X: np.ndarray | list[list[int]], y: np.ndarray | Sequence[float]
    ) -> FactorizationMachine:
        """Fit to bit rows ``X`` (n, d) and targets ``y`` (n,); returns ``self``."""
        X_, y_ = check_training_data(X, y, type(self).__name__)
        n, d = X_.shape
        k = self.n_factors
        self._ids = group_ids(self.groups, d, type(self).__name__)
        self._layout(d)
        X_ = X_[:, self._perm]
        if self.bootstrap and n > 1:
            pick = self._rng.integers(0, n, size=n)
            X_, y_ = X_[pick], y_[pick]
        # Standardize inside so the learning rate and penalty mean the same at any scale.
        self._mean, self._scale = float(y_.mean()), float(y_.std()) or 1.0
        t = (y_ - self._mean) / self._scale
        # One flat parameter vector (w0, w, V as views) keeps each Adam step a few array ops.
        theta = np.zeros(1 + d + d * k)
        w, V = theta[1 : 1 + d], theta[1 + d :].reshape(d, k)
        V[:] = self._rng.normal(0.0, self.init_scale, size=(d, k))
        grad = np.zeros_like(theta)
        g_w, g_V = grad[1 : 1 + d], grad[1 + d :].reshape(d, k)
        decay = np.full_like(theta, 2 * self.l2)
        decay[0] = 0.0
        m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        grouped = None if self._singletons else self._grouped(X_)
        # (groups, size, n): the transposed blocks the gradient multiplies by the residuals.
        grouped_t = [np.ascontiguousarray(Xg.transpose(0, 2, 1)) for Xg in grouped or []]
        for step in range(1, self.n_epochs + 1):
            pred, S, own = self._forward(X_, theta[0], w, V, grouped)
            r = 2.0 * (pred - t) / n
            rX = r[:, None] * X_
            grad[0] = r.sum()
            g_w[:] = r @ X_
            if own is None:
                g_V[:] = rX.T @ S - V * (r @ X_)[:, None]
            else:
                # d/dv_i of the own-group square is sum_n r_n x_ni S_g(i),n: per bucket,
                # (groups, size, n) @ (groups, n, k).
                g_V[:] = rX.T @ S
                for columns, XgT, Sg in zip(self._buckets, grouped_t, own, strict=True):
                    g_V[columns] -= np.matmul(XgT * r, Sg)
            grad += decay * theta
            m1 *= beta1
            m1 += (1 - beta1) * grad
            m2 *= beta2
            m2 += (1 - beta2) * grad * grad
            theta -= (
                self.learning_rate
                * (m1 / (1 - beta1**step))
                / (np.sqrt(m2 / (1 - beta2**step)) + eps)
            )
        inverse = np.argsort(self._perm)
        self.w0_ = float(theta[0])
        self.w_, self.V_ = w[inverse].copy(), V[inverse].copy()
        return self

    def _check_fitted(self) -> None:
        if self.w0_ is None:
            from qopt.exceptions import InvalidProblemError

            raise InvalidProblemError("This FactorizationMachine is not fitted yet; call fit().")

    def predict(self, X: np.ndarray | list[list[int]]) -> np.ndarray:
        """Predicted targets for bit rows ``X`` (n, d)."""
        self._check_fitted()
        X_ = np.atleast_2d(np.asarray(X, dtype=float))[:, self._perm]
        assert self.w0_ is not None
        pred, _, _ = self._forward(X_, self.w0_, self.w_[self._perm], self.V_[self._perm])
        return self._mean + self._scale * pred

    def to_bqm(self) -> dimod.BinaryQuadraticModel:
        """The fitted model as a BINARY BQM over variables ``0 .. d - 1`` (same scale as ``y``)."""
        self._check_fitted()
        assert self.w0_ is not None
        d = self.w_.size
        Q = (self.V_ @ self.V_.T) * pair_mask(self._ids)
        rows, cols = np.nonzero(Q)
        return dimod.BinaryQuadraticModel.from_numpy_vectors(
            self._scale * self.w_,
            (rows, cols, self._scale * Q[rows, cols]),
            self._mean + self._scale * self.w0_,
            dimod.BINARY,
            variable_order=range(d),
        )
