"""Routing assignments: input checks, capacity, load statistics and exact b-matching.

An assignment is an int array of shape ``(T, k)``: the experts of each token, ``-1`` where a
slot was dropped for lack of capacity. Its 0/1 form is a boolean matrix of shape ``(T, E)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from qopt.exceptions import InvalidProblemError

__all__ = [
    "RoutingStats",
    "affinity",
    "apply_capacity",
    "expert_capacity",
    "routing_stats",
    "topk_assignment",
]


def check_scores(scores: Any, owner: str) -> np.ndarray:
    """Router scores as a finite float array of shape ``(T, E)``; ``owner`` names the caller."""
    array = np.asarray(scores, dtype=float)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidProblemError(
            f"{owner} expects router scores of shape (tokens, experts) with both at least 1. "
            f"Got shape {array.shape} instead."
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InvalidProblemError(
            f"{owner} was given {bad} non-finite (NaN or inf) router score(s). The router has "
            "probably diverged; lower the learning rate or clip the router logits."
        )
    return array


def check_k(k: Any, num_experts: int, owner: str) -> int:
    """Experts per token as an int in ``[1, E]``."""
    if not (isinstance(k, int | np.integer) and not isinstance(k, bool) and 1 <= k <= num_experts):
        raise InvalidProblemError(
            f"The 'k' parameter of {owner} must be an int in [1, {num_experts}] (the number of "
            f"experts). Got {k!r} instead."
        )
    return int(k)


def check_capacity(
    capacity: Any, num_tokens: int, num_experts: int, k: int, owner: str, *, complete: bool
) -> np.ndarray:
    """Per-expert capacity as an int array; with ``complete``, refuse one too small for k."""
    array = np.asarray(capacity)
    if array.ndim == 0:
        array = np.full(num_experts, array)
    ok = array.shape == (num_experts,) and np.issubdtype(array.dtype, np.integer)
    if not ok or (array < 0).any():
        raise InvalidProblemError(
            f"The 'capacity' parameter of {owner} must be a non-negative int or an int array of "
            f"shape ({num_experts},). Got {capacity!r} instead."
        )
    array = np.minimum(array.astype(np.int64), num_tokens)
    if complete and int(array.sum()) < num_tokens * k:
        raise InvalidProblemError(
            f"Capacity too small for k in {owner}: {num_tokens} tokens x k={k} need "
            f"{num_tokens * k} expert slots, but the capacities {array.tolist()} give only "
            f"{int(array.sum())}. Give each expert at least "
            f"{math.ceil(num_tokens * k / num_experts)} slots (capacity factor >= 1.0), "
            "or lower k."
        )
    return array


def expert_capacity(num_tokens: int, num_experts: int, k: int, capacity_factor: float) -> int:
    """Slots per expert: ``ceil(capacity_factor * num_tokens * k / num_experts)``, at most T.

    The Switch Transformer definition (Fedus et al., JMLR 2022); a factor of 1.0 gives the
    perfectly balanced load and no room to spare.

    Examples:
        >>> from qopt.problems.routing import expert_capacity
        >>> expert_capacity(1024, 8, 2, 1.25)
        320
    """
    raw = capacity_factor * num_tokens * k / num_experts
    # Guard against 0.1 + 0.2 style float noise pushing an exact load up by one slot.
    return int(min(num_tokens, math.ceil(raw - 1e-9)))


@dataclass(frozen=True)
class RoutingStats:
    """Load balance of one assignment.

    Attributes:
        load: Tokens per expert.
        num_tokens: Tokens routed.
        top_k: Expert slots per token.
        dropped: Token-expert slots dropped for lack of capacity.
        dropped_tokens: Tokens that lost at least one of their slots.
        max_violation: ``max(load) / (T k / E) - 1``: how far the fullest expert is above the
            perfectly balanced load (0 is perfect balance).
        capacity_violation: Slots above capacity summed over experts (0 when no capacity given).
        dead_experts: Experts that received no token.
    """

    load: tuple[int, ...]
    num_tokens: int
    top_k: int
    dropped: int
    dropped_tokens: int
    max_violation: float
    capacity_violation: int
    dead_experts: int

    @property
    def dropped_fraction(self) -> float:
        """Dropped slots over all ``T k`` slots."""
        return self.dropped / max(1, self.num_tokens * self.top_k)


def routing_stats(
    assignment: Any, num_experts: int, capacity: int | np.ndarray | None = None
) -> RoutingStats:
    """Load balance, drops and capacity violations of an assignment of shape ``(T, k)``.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import routing_stats
        >>> stats = routing_stats(np.array([[0], [0], [1], [-1]]), 3, capacity=2)
        >>> stats.load, stats.dropped, stats.dead_experts
        ((2, 1, 0), 1, 1)
    """
    array = np.asarray(assignment, dtype=np.int64)
    if array.ndim != 2:
        raise InvalidProblemError(
            f"An assignment must have shape (tokens, k). Got shape {array.shape} instead."
        )
    num_tokens, k = array.shape
    kept = array[array >= 0]
    load = np.bincount(kept, minlength=num_experts)[:num_experts]
    dropped = int((array < 0).sum())
    ideal = num_tokens * k / num_experts
    violation = float(load.max() / ideal - 1.0) if ideal > 0 else 0.0
    over = 0
    if capacity is not None:
        cap = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (num_experts,))
        over = int(np.maximum(load - cap, 0).sum())
    return RoutingStats(
        load=tuple(int(v) for v in load),
        num_tokens=int(num_tokens),
        top_k=int(k),
        dropped=dropped,
        dropped_tokens=int((array < 0).any(axis=1).sum()),
        max_violation=violation,
        capacity_violation=over,
        dead_experts=int((load == 0).sum()),
    )


def affinity(assignment: Any, scores: Any) -> float:
    """Sum of the scores of the kept token-expert pairs (what linear routing maximizes).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import affinity
        >>> affinity(np.array([[1], [-1]]), np.array([[0.0, 2.0], [5.0, 1.0]]))
        2.0
    """
    array = np.asarray(assignment, dtype=np.int64)
    values = np.asarray(scores, dtype=float)
    rows = np.broadcast_to(np.arange(array.shape[0])[:, None], array.shape)
    mask = array >= 0
    return float(values[rows[mask], array[mask]].sum())


def topk_assignment(scores: Any, k: int) -> np.ndarray:
    """The ``k`` best experts of each token, best first, ignoring capacity.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import topk_assignment
        >>> topk_assignment(np.array([[0.1, 0.7, 0.2]]), 2).tolist()
        [[1, 2]]
    """
    values = check_scores(scores, "topk_assignment")
    k = check_k(k, values.shape[1], "topk_assignment")
    return np.argsort(-values, axis=1, kind="stable")[:, :k].astype(np.int64)


def apply_capacity(assignment: Any, capacity: int | np.ndarray, num_experts: int) -> np.ndarray:
    """Drop (set to -1) the slots that overflow each expert's capacity.

    Priority follows GShard (Lepikhin et al., ICLR 2021): every token's first choice before
    any second choice, and earlier tokens first within a choice rank.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import apply_capacity
        >>> apply_capacity(np.array([[0, 1], [0, 1], [0, 2]]), 2, 3).tolist()
        [[0, 1], [0, 1], [-1, 2]]
    """
    array = np.array(assignment, dtype=np.int64, copy=True)
    cap = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (num_experts,))
    used = np.zeros(num_experts, dtype=np.int64)
    for j in range(array.shape[1]):
        column = array[:, j]
        for t in np.flatnonzero(column >= 0):
            e = column[t]
            if used[e] < cap[e]:
                used[e] += 1
            else:
                array[t, j] = -1
    return array


def as_matrix(assignment: np.ndarray, num_experts: int) -> np.ndarray:
    """The 0/1 form of an assignment: shape ``(T, E)``, True where a token uses an expert."""
    matrix = np.zeros((assignment.shape[0], num_experts), dtype=bool)
    rows, cols = np.nonzero(assignment >= 0)
    matrix[rows, assignment[rows, cols]] = True
    return matrix


def from_matrix(matrix: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Each token's chosen experts, best score first, at most ``k`` (``-1`` pads)."""
    masked = np.where(matrix, values, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(matrix, order, axis=1)
    return np.where(chosen, order, -1).astype(np.int64)


def b_matching(values: np.ndarray, k: int, cap: np.ndarray, bonus: np.ndarray | None) -> np.ndarray:
    """Max-score b-matching (each token <= k experts, each expert <= cap, max cardinality)."""
    num_tokens, num_experts = values.shape
    n = num_tokens * num_experts
    weights = values if bonus is None else values + bonus
    token_rows = np.repeat(np.arange(num_tokens), num_experts)
    expert_rows = np.tile(np.arange(num_experts), num_tokens)
    cols = np.arange(n)
    a_ub = coo_matrix(
        (
            np.ones(2 * n),
            (np.concatenate([token_rows, num_tokens + expert_rows]), np.concatenate([cols, cols])),
        ),
        shape=(num_tokens + num_experts, n),
    ).tocsr()
    b_ub = np.concatenate([np.full(num_tokens, k), cap]).astype(float)
    total = min(num_tokens * k, int(cap.sum()))
    result = linprog(
        -weights.reshape(-1),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.ones((1, n)),
        b_eq=[float(total)],
        bounds=(0.0, 1.0),
        method="highs-ds",
    )
    if result.status != 0 or result.x is None:  # pragma: no cover - feasible by construction
        raise InvalidProblemError(f"The exact assignment LP failed: {result.message}")
    chosen = result.x.reshape(num_tokens, num_experts) > 0.5
    out = np.full((num_tokens, k), -1, dtype=np.int64)
    for t in range(num_tokens):
        experts = np.flatnonzero(chosen[t])
        experts = experts[np.argsort(-values[t, experts], kind="stable")][:k]
        out[t, : experts.size] = experts
    return out
