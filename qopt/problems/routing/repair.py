"""Repair: make any assignment feasible, every token ``k`` experts, none over capacity."""

from __future__ import annotations

from typing import Any

import numpy as np

from qopt.exceptions import InvalidProblemError
from qopt.problems.routing.assignment import (
    as_matrix,
    b_matching,
    check_capacity,
    check_k,
    check_scores,
    from_matrix,
)

__all__ = [
    "repair_assignment",
]


def repair_assignment(
    assignment: Any, scores: Any, k: int, capacity: int | np.ndarray
) -> np.ndarray:
    """Make any assignment feasible: every token ``k`` distinct experts, none over capacity.

    Keeps what it can of the input: a token with too many experts keeps its best-scoring
    ones, an overfull expert keeps its best-scoring tokens, and the free slots go greedily to
    the tokens still short, best score first. When the greedy fill gets stuck (a short token
    whose only experts with room are ones it already has), an exact b-matching that rewards
    every kept pair finishes the job, so the result is feasible whenever any assignment is.
    Before that, one exchange usually unsticks it: another token moves from an expert the
    stuck token lacks to one with room, and the stuck token takes the freed slot (the
    exchange that loses the least score).

    Args:
        assignment: Shape ``(T, k')`` of expert indices (``-1`` empty), or a 0/1 matrix of
            shape ``(T, E)``; any content, duplicates and overfull experts included.
        scores: Router scores, shape ``(T, E)``.
        k: Experts per token.
        capacity: Slots per expert, adding up to at least ``T k``.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import repair_assignment
        >>> scores = np.array([[2.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
        >>> repair_assignment(np.array([[0], [0], [0]]), scores, 1, 2).tolist()
        [[0], [0], [1]]
    """
    values = check_scores(scores, "repair_assignment")
    num_tokens, num_experts = values.shape
    k = check_k(k, num_experts, "repair_assignment")
    cap = check_capacity(capacity, num_tokens, num_experts, k, "repair_assignment", complete=True)
    raw = np.asarray(assignment)
    if raw.shape == (num_tokens, num_experts) and raw.dtype == bool:
        matrix = raw.copy()
    elif raw.ndim == 2 and raw.shape[0] == num_tokens:
        indices = raw.astype(np.int64)
        if ((indices < -1) | (indices >= num_experts)).any():
            raise InvalidProblemError(
                f"Assignment entries must be expert indices in [-1, {num_experts - 1}]."
            )
        matrix = as_matrix(indices, num_experts)
    else:
        raise InvalidProblemError(
            f"repair_assignment expects an assignment of shape ({num_tokens}, k) or a boolean "
            f"matrix of shape ({num_tokens}, {num_experts}). Got shape {raw.shape} instead."
        )
    # Tokens with too many experts keep their best ones.
    for t in np.flatnonzero(matrix.sum(axis=1) > k):
        experts = np.flatnonzero(matrix[t])
        drop = experts[np.argsort(values[t, experts], kind="stable")][: experts.size - k]
        matrix[t, drop] = False
    # Overfull experts keep their best tokens.
    for e in np.flatnonzero(matrix.sum(axis=0) > cap):
        tokens = np.flatnonzero(matrix[:, e])
        drop = tokens[np.argsort(values[tokens, e], kind="stable")][: tokens.size - cap[e]]
        matrix[drop, e] = False
    # Fill the short tokens, best free pair first.
    room = cap - matrix.sum(axis=0)
    need = k - matrix.sum(axis=1)
    if need.any():
        short = np.flatnonzero(need > 0)
        candidates = values[short]
        order = np.argsort(-candidates, axis=None, kind="stable")
        for flat in order:
            i, e = divmod(int(flat), num_experts)
            t = short[i]
            if need[t] > 0 and room[e] > 0 and not matrix[t, e]:
                matrix[t, e] = True
                need[t] -= 1
                room[e] -= 1
        for t in np.flatnonzero(need > 0):
            while need[t] > 0 and _swap_in(matrix, values, room, int(t)):
                need[t] -= 1
        if need.any():
            # Still stuck: re-solve exactly, rewarding every pair already kept so few move.
            spread = float(values.max() - values.min()) + 1.0
            bonus = np.where(matrix, spread * 2.0, 0.0)
            return b_matching(values, k, cap, bonus=bonus)
    return from_matrix(matrix, values, k)


def _swap_in(matrix: np.ndarray, values: np.ndarray, room: np.ndarray, t: int) -> bool:
    """Give token ``t`` one more expert through a single exchange; False when none exists.

    Token ``t`` is short, and every expert with room is one it already has. Another token
    ``u`` that uses an expert ``f`` which ``t`` lacks, and lacks an expert ``e`` with room,
    moves from ``f`` to ``e``; ``t`` takes ``f``. Of all such exchanges, the one with the
    largest ``values[t, f] + values[u, e] - values[u, f]`` is made. ``matrix`` and ``room``
    are updated in place.
    """
    best: tuple[float, int, int, int] | None = None
    lacks = ~matrix[t]
    for e in np.flatnonzero(room > 0):
        movable = matrix & ~matrix[:, e][:, None] & lacks[None, :]  # (u, f): u on f, not on e
        movable[t] = False
        movable[:, e] = False
        if not movable.any():
            continue
        gain = np.where(movable, values[t][None, :] + values[:, e][:, None] - values, -np.inf)
        u, f = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if best is None or gain[u, f] > best[0]:
            best = (float(gain[u, f]), int(u), int(f), int(e))
    if best is None:
        return False
    _, mover, freed, target = best
    matrix[mover, freed], matrix[mover, target], matrix[t, freed] = False, True, True
    room[target] -= 1
    return True
