"""What every quadratic surrogate shares: input checks and interaction masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import dimod
import numpy as np

from qopt.exceptions import InvalidProblemError

__all__ = ["QuadraticSurrogate"]


@runtime_checkable
class QuadraticSurrogate(Protocol):
    """A model of ``y`` over bit vectors that is quadratic in the bits, hence a QUBO."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> QuadraticSurrogate:
        """Fit to rows of bits ``X`` (n, d) and targets ``y`` (n,) to be minimized."""
        ...

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted targets for rows of bits."""
        ...

    def to_bqm(self) -> dimod.BinaryQuadraticModel:
        """The fitted model as a BINARY BQM over variables ``0 .. d - 1``."""
        ...


def check_training_data(X: object, y: object, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``X`` (n, d) as float 0/1 and ``y`` (n,) as finite floats, or raise."""
    X_ = np.asarray(X, dtype=float)
    y_ = np.asarray(y, dtype=float).reshape(-1)
    if X_.ndim != 2 or X_.shape[0] != y_.shape[0] or X_.shape[0] == 0:
        raise InvalidProblemError(
            f"{owner}.fit expects X of shape (n, d) and y of shape (n,) with n >= 1. "
            f"Got X {X_.shape} and y {y_.shape} instead."
        )
    if not np.isin(X_, (0.0, 1.0)).all():
        raise InvalidProblemError(f"{owner}.fit expects X to hold bits (0 or 1).")
    if not np.isfinite(y_).all():
        raise InvalidProblemError(
            f"{owner}.fit got non-finite targets; transform them first "
            "(qopt.surrogates.transform_targets maps failures, marked +inf, to the worst value)."
        )
    return X_, y_


def group_ids(groups: Sequence[int] | np.ndarray | None, d: int, owner: str) -> np.ndarray:
    """One group id per bit; bits of one group never interact (``None``: every bit alone)."""
    if groups is None:
        return np.arange(d)
    ids = np.asarray(groups, dtype=np.int64).reshape(-1)
    if ids.size != d:
        raise InvalidProblemError(
            f"The 'groups' parameter of {owner} has {ids.size} entries for {d} bits."
        )
    return np.unique(ids, return_inverse=True)[1].astype(np.int64)


def pair_mask(ids: np.ndarray) -> np.ndarray:
    """Upper-triangle mask of the pairs ``i < j`` in different groups."""
    d = ids.size
    mask = np.triu(np.ones((d, d), dtype=bool), k=1)
    return mask & (ids[:, None] != ids[None, :])
