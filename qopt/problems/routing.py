"""Mixture-of-experts routing as a constrained QUBO, with the classical anchors beside it.

Routing sends each of ``T`` tokens to ``k`` of ``E`` experts, no expert taking more than its
capacity. With a purely linear objective (the token-expert affinities) this is a transportation
problem that classical methods solve exactly or nearly, and faster than any QUBO solver:

- :func:`exact_assignment`: the exact optimum, as in BASE layers (Lewis et al., "BASE Layers:
  Simplifying Training of Large, Sparse Models", ICML 2021);
- :func:`sinkhorn_assignment`: S-BASE's Sinkhorn balancing (Clark et al., "Unified Scaling Laws
  for Routed Language Models", ICML 2022);
- :func:`greedy_assignment`: top-k with capacity, dropping overflow (Switch / GShard).

:func:`routing_problem` builds the same decision as a :class:`qopt.pipeline.Formulation` and adds
what linear assignment cannot express: pairwise terms (:class:`PairwiseTerms`) between tokens
that should share an expert, between the experts one token uses (top-k diversity) and between
the devices holding them (communication cost). :func:`solve_routing` splits a large batch into
token groups that one solver call serves together, warm-starts from a classical assignment and
repairs every sample, so the result always gives each token ``k`` experts and no expert more
than its capacity; then :func:`polish_assignment` (classical cycle canceling) improves it on
the same objective. On a linear objective that polish, not the QUBO solver, is what reaches
the exact optimum: the annealer returns its warm start.

An assignment is an int array of shape ``(T, k)``: the experts of each token, ``-1`` where a
slot was dropped for lack of capacity.

Examples:
    >>> import numpy as np
    >>> from qopt.problems.routing import (
    ...     affinity, exact_assignment, routing_stats, solve_routing)
    >>> scores = np.random.default_rng(0).normal(size=(12, 3))
    >>> result = solve_routing(scores, k=1, capacity=4, solver="sa", seed=0)
    >>> routing_stats(result.assignment, 3, capacity=4).capacity_violation
    0
    >>> best = exact_assignment(scores, 1, 4)
    >>> bool(result.affinity >= affinity(best, scores) - 1e-9 - 0.01 * abs(affinity(best, scores)))
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import dimod
import numpy as np
from scipy.optimize import linear_sum_assignment, linprog
from scipy.sparse import coo_matrix, csr_matrix

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

if TYPE_CHECKING:
    from qopt.constraints import ConstrainedQUBO
    from qopt.pipeline import Formulation, Solution

__all__ = [
    "PairwiseTerms",
    "RoutingSolution",
    "RoutingStats",
    "affinity",
    "apply_capacity",
    "exact_assignment",
    "expert_capacity",
    "greedy_assignment",
    "knn_similarity",
    "polish_assignment",
    "repair_assignment",
    "routing_bqm",
    "routing_energy",
    "routing_problem",
    "routing_stats",
    "sinkhorn_assignment",
    "sinkhorn_plan",
    "solve_routing",
    "topk_assignment",
]

WarmStart = Literal["sinkhorn", "greedy"] | None
Polish = Literal["global", "groups"] | None


# --------------------------------------------------------------------------- input checks


def _check_scores(scores: Any, owner: str) -> np.ndarray:
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


def _check_k(k: Any, num_experts: int, owner: str) -> int:
    if not (isinstance(k, int | np.integer) and not isinstance(k, bool) and 1 <= k <= num_experts):
        raise InvalidProblemError(
            f"The 'k' parameter of {owner} must be an int in [1, {num_experts}] (the number of "
            f"experts). Got {k!r} instead."
        )
    return int(k)


def _check_capacity(
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


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- classical routing


def topk_assignment(scores: Any, k: int) -> np.ndarray:
    """The ``k`` best experts of each token, best first, ignoring capacity.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import topk_assignment
        >>> topk_assignment(np.array([[0.1, 0.7, 0.2]]), 2).tolist()
        [[1, 2]]
    """
    values = _check_scores(scores, "topk_assignment")
    k = _check_k(k, values.shape[1], "topk_assignment")
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


def greedy_assignment(scores: Any, k: int, capacity: int | np.ndarray) -> np.ndarray:
    """Top-k routing with capacity, overflow dropped (Switch Transformer, Fedus et al. 2022).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import greedy_assignment
        >>> greedy_assignment(np.array([[1.0, 0.0], [1.0, 0.0]]), 1, 1).tolist()
        [[0], [-1]]
    """
    values = _check_scores(scores, "greedy_assignment")
    k = _check_k(k, values.shape[1], "greedy_assignment")
    cap = _check_capacity(
        capacity, values.shape[0], values.shape[1], k, "greedy_assignment", complete=False
    )
    return apply_capacity(topk_assignment(values, k), cap, values.shape[1])


def sinkhorn_plan(
    scores: Any,
    k: int = 1,
    capacity: int | np.ndarray | None = None,
    *,
    num_iterations: int = 50,
    temperature: float = 1.0,
) -> np.ndarray:
    """Balanced soft assignment: ``exp(scores / temperature)`` scaled to row sums ``k``.

    Column sums are scaled to the capacities (proportionally, so they add up to ``T k``) or
    to the balanced load ``T k / E`` when ``capacity`` is omitted. Iterates in log space.
    Reference: Cuturi, "Sinkhorn Distances", NeurIPS 2013; as used for routing by S-BASE
    (Clark et al., ICML 2022).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import sinkhorn_plan
        >>> plan = sinkhorn_plan(np.array([[3.0, 0.0], [2.0, 0.0]]), num_iterations=200)
        >>> np.round(plan.sum(axis=0), 3).tolist()
        [1.0, 1.0]
    """
    values = _check_scores(scores, "sinkhorn_plan")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "sinkhorn_plan")
    if capacity is None:
        columns = np.full(num_experts, num_tokens * k / num_experts)
    else:
        cap = _check_capacity(capacity, num_tokens, num_experts, k, "sinkhorn_plan", complete=True)
        columns = cap / cap.sum() * num_tokens * k
    log_rows = math.log(k)
    with np.errstate(divide="ignore"):
        log_columns = np.log(columns)
    log_plan = values / temperature
    for _ in range(num_iterations):
        log_plan = log_plan - (_logsumexp(log_plan, axis=1) - log_rows)[:, None]
        log_plan = log_plan - (_logsumexp(log_plan, axis=0) - log_columns)[None, :]
    plan: np.ndarray = np.exp(log_plan)
    return plan


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    peak = values.max(axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        out: np.ndarray = np.log(np.exp(values - peak).sum(axis=axis)) + peak.squeeze(axis)
    return out


def sinkhorn_assignment(
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    num_iterations: int = 50,
    repair: bool = False,
) -> np.ndarray:
    """S-BASE routing: top-k of the Sinkhorn plan, then capacity (Clark et al., ICML 2022).

    Args:
        scores: Router scores, shape ``(T, E)``.
        k: Experts per token.
        capacity: Slots per expert (int or shape ``(E,)``).
        num_iterations: Sinkhorn iterations.
        repair: Complete the assignment with :func:`repair_assignment` instead of dropping
            overflow (needs capacities adding up to at least ``T k``).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import sinkhorn_assignment
        >>> sinkhorn_assignment(np.array([[3.0, 0.0], [2.0, 0.0]]), 1, 1).tolist()
        [[0], [1]]
    """
    values = _check_scores(scores, "sinkhorn_assignment")
    k = _check_k(k, values.shape[1], "sinkhorn_assignment")
    cap = _check_capacity(
        capacity, values.shape[0], values.shape[1], k, "sinkhorn_assignment", complete=repair
    )
    plan_capacity = cap if int(cap.sum()) >= values.shape[0] * k else None
    plan = sinkhorn_plan(values, k, plan_capacity, num_iterations=num_iterations)
    choice = topk_assignment(plan, k)
    if repair:
        return repair_assignment(choice, values, k, cap)
    return apply_capacity(choice, cap, values.shape[1])


def exact_assignment(scores: Any, k: int, capacity: int | np.ndarray) -> np.ndarray:
    """The assignment with the largest total score, as many slots filled as capacity allows.

    For ``k = 1`` this is the BASE-layer linear assignment (Lewis et al., ICML 2021), solved
    with :func:`scipy.optimize.linear_sum_assignment` over capacity-replicated expert slots.
    For ``k > 1`` each token needs ``k`` distinct experts, which replicated slots cannot
    enforce; the problem is then a bipartite b-matching solved as a linear program (HiGHS dual
    simplex), whose constraint matrix is totally unimodular, so the vertex it returns is
    integral.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import exact_assignment
        >>> exact_assignment(np.array([[3.0, 2.9], [1.0, 0.0]]), 1, 1).tolist()
        [[1], [0]]
    """
    values = _check_scores(scores, "exact_assignment")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "exact_assignment")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "exact_assignment", complete=False)
    if k == 1:
        slot_expert = np.repeat(np.arange(num_experts), cap)
        if slot_expert.size == 0:
            return np.full((num_tokens, 1), -1, dtype=np.int64)
        rows, cols = linear_sum_assignment(values[:, slot_expert], maximize=True)
        out = np.full((num_tokens, 1), -1, dtype=np.int64)
        out[rows, 0] = slot_expert[cols]
        return out
    return _b_matching(values, k, cap, bonus=None)


def _b_matching(
    values: np.ndarray, k: int, cap: np.ndarray, bonus: np.ndarray | None
) -> np.ndarray:
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


# --------------------------------------------------------------------------- repair


def _as_matrix(assignment: np.ndarray, num_experts: int) -> np.ndarray:
    matrix = np.zeros((assignment.shape[0], num_experts), dtype=bool)
    rows, cols = np.nonzero(assignment >= 0)
    matrix[rows, assignment[rows, cols]] = True
    return matrix


def _from_matrix(matrix: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Each token's chosen experts, best score first, at most ``k`` (``-1`` pads)."""
    masked = np.where(matrix, values, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(matrix, order, axis=1)
    return np.where(chosen, order, -1).astype(np.int64)


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
    values = _check_scores(scores, "repair_assignment")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "repair_assignment")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "repair_assignment", complete=True)
    raw = np.asarray(assignment)
    if raw.shape == (num_tokens, num_experts) and raw.dtype == bool:
        matrix = raw.copy()
    elif raw.ndim == 2 and raw.shape[0] == num_tokens:
        indices = raw.astype(np.int64)
        if ((indices < -1) | (indices >= num_experts)).any():
            raise InvalidProblemError(
                f"Assignment entries must be expert indices in [-1, {num_experts - 1}]."
            )
        matrix = _as_matrix(indices, num_experts)
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
            return _b_matching(values, k, cap, bonus=bonus)
    return _from_matrix(matrix, values, k)


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


# --------------------------------------------------------------------------- polish


def polish_assignment(
    assignment: Any,
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    pairwise: PairwiseTerms | None = None,
    max_rounds: int | None = None,
) -> np.ndarray:
    """Improve a feasible assignment by moving tokens along negative cycles of experts.

    A classical local search on the routing objective (:func:`routing_energy`, pairwise
    terms included) that keeps every token's ``k`` experts and every expert within capacity:
    cycle canceling (Klein, "A primal method for minimal cost flows with applications to the
    assignment and transportation problems", Management Science 14(3), 1967). Each round
    builds a graph over the experts whose edge ``e -> f`` is the best single move of a token
    from ``e`` to ``f`` (with one more node for the spare capacity: a chain of moves may end
    at an expert with room), finds a negative cycle with Bellman-Ford and moves one token
    along each of its edges: with ``k = 1`` a 2-cycle is an exchange of two tokens' experts,
    a path into the spare node moves a token to an expert with room. Edge costs add up
    exactly for a linear objective, so there the search stops only at the optimum for the
    given capacity (``k = 1``; for ``k > 1`` at a local optimum of these moves). With
    pairwise terms the moves of one cycle interact, so each cycle is priced on the whole
    objective and made only when it lowers it: the result is never worse than the input.

    Args:
        assignment: A feasible assignment of shape ``(T, k)`` (every token ``k`` distinct
            experts, no expert over capacity), e.g. from :func:`repair_assignment`.
        scores: Router scores, shape ``(T, E)``.
        k: Experts per token.
        capacity: Slots per expert (int or shape ``(E,)``).
        pairwise: Optional quadratic terms (see :class:`PairwiseTerms`).
        max_rounds: Cycles to cancel at most (default ``T k``).

    Returns:
        An assignment of shape ``(T, k)`` with energy at most the input's.

    Raises:
        InvalidProblemError: The assignment is not feasible, or bad scores, k or capacity.
        SolverConfigurationError: ``max_rounds`` is not a non-negative int.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import polish_assignment
        >>> scores = np.array([[0.0, 1.0], [1.0, 0.0]])
        >>> polish_assignment(np.array([[0], [1]]), scores, 1, 1).tolist()  # an exchange
        [[1], [0]]
    """
    values = _check_scores(scores, "polish_assignment")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "polish_assignment")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "polish_assignment", complete=True)
    array = np.asarray(assignment, dtype=np.int64)
    matrix = _as_matrix(array, num_experts) if array.ndim == 2 else None
    if (
        matrix is None
        or array.shape != (num_tokens, k)
        or ((array < 0) | (array >= num_experts)).any()
        or (matrix.sum(axis=1) != k).any()
        or (matrix.sum(axis=0) > cap).any()
    ):
        raise InvalidProblemError(
            f"polish_assignment expects a feasible assignment of shape ({num_tokens}, {k}): "
            "every token k distinct experts, no expert over capacity. Repair it first "
            "(repair_assignment)."
        )
    rounds = (
        num_tokens * k
        if max_rounds is None
        else check_int(max_rounds, "max_rounds", "polish_assignment", low=0)
    )
    polished = _polish_groups(matrix, values, [np.arange(num_tokens)], [cap], [pairwise], rounds)
    return _from_matrix(polished, values, k)


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    """The strict upper triangle mirrored: the pairwise terms read only ``t < u`` pairs."""
    upper = np.triu(matrix, 1)
    out: np.ndarray = upper + upper.T
    return out


def _polish_groups(
    matrix: np.ndarray,
    values: np.ndarray,
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
    group_pairwise: list[PairwiseTerms | None],
    max_rounds: int,
) -> np.ndarray:
    """Cycle canceling (see :func:`polish_assignment`) in every group at once.

    ``matrix`` is the feasible 0/1 assignment of shape ``(T, E)``; groups are consecutive
    token ranges, each with its capacity share. The groups are padded to one size and
    stacked, so a round is a few numpy passes over all of them, each group canceling one
    cycle; a group leaves the loop when it has no negative cycle left. One group (the whole
    batch) keeps its token similarity sparse: it is a nearest-neighbour graph.
    """
    num_experts = values.shape[1]
    size = max(g.size for g in groups)
    count = len(groups)
    tokens = np.concatenate(groups)
    slot = np.concatenate([np.arange(g.size) + i * size for i, g in enumerate(groups)])
    # Padded and stacked: (group, token in group, expert); padding tokens hold no expert,
    # so no move ever involves them.
    x = np.zeros((count, size, num_experts), dtype=bool)
    x.reshape(-1, num_experts)[slot] = matrix[tokens]
    v = np.zeros((count, size, num_experts))
    v.reshape(-1, num_experts)[slot] = values[tokens]
    caps = np.stack(group_caps).astype(np.int64)
    dense: np.ndarray | None = None  # (group, token, token), mirrored
    sparse: csr_matrix | None = None  # one group only
    expert: np.ndarray | None = None  # (E, E), mirrored; the same in every group
    for i, (g, p) in enumerate(zip(groups, group_pairwise, strict=True)):
        if p is None or p.is_empty():
            continue
        w = p._token_matrix(g.size)
        if w is not None and count == 1:
            sparse = csr_matrix(_symmetric(w))
        elif w is not None:
            if dense is None:
                dense = np.zeros((count, size, size))
            dense[i, : g.size, : g.size] = _symmetric(w)
        c = p._expert_matrix(num_experts)
        if c is not None:
            expert = _symmetric(c)
    linear = dense is None and sparse is None and expert is None
    nodes = num_experts + 1  # the experts and the spare-capacity node
    alive = np.arange(count)
    for _ in range(max_rounds):
        if alive.size == 0:
            break
        xa = x[alive]
        xf = xa.astype(float)
        # field[t, f]: the energy of a slot of token t on expert f, given the other slots.
        field = -v[alive]
        if dense is not None:
            field = field - dense[alive] @ xf
        if sparse is not None:
            field = field - (sparse @ xf[0])[None]
        if expert is not None:
            field = field + xf @ expert
        cost = np.full((alive.size, nodes, nodes), np.inf)
        cost[:, :num_experts, :num_experts], mover = _best_moves(xa, field, expert)
        room = caps[alive] - xa.sum(axis=1)
        cost[:, :num_experts, num_experts] = np.where(room > 0, 0.0, np.inf)
        cost[:, num_experts, :num_experts] = 0.0
        keep = np.zeros(alive.size, dtype=bool)
        searching = np.ones(alive.size, dtype=bool)
        # Several cycles a round: after each, its experts leave the graph of that round (the
        # next cycle is disjoint from it, so its moves were priced on the same state).
        for _ in range(nodes // 2):
            parent, changed = _bellman_ford(cost)
            searching &= changed.any(axis=1)
            if not searching.any():
                break
            for j in np.flatnonzero(searching):
                cycle = _parent_cycle(parent[j], int(np.flatnonzero(changed[j])[0]), nodes)
                if cycle is None:  # pragma: no cover - a node that still improves has a cycle
                    searching[j] = False
                    continue
                on_cycle = [a for a, _ in cycle]
                cost[j, on_cycle, :] = np.inf
                cost[j, :, on_cycle] = np.inf
                group = int(alive[j])
                trial = x[group].copy()
                moved: list[int] = []
                ok = True
                for a, b in cycle:
                    if a == num_experts or b == num_experts:
                        continue  # the ends of a chain: the spare node moves no token
                    t = int(mover[j, a, b])
                    ok = ok and bool(trial[t, a]) and not bool(trial[t, b])
                    trial[t, a], trial[t, b] = False, True
                    moved.append(t)
                ok = ok and bool((trial.sum(axis=0) <= caps[group]).all())
                if ok and not linear:
                    # The moves of one cycle interact through the pairwise terms: price them.
                    rows = np.unique(moved)
                    w_rows = None
                    if dense is not None:
                        w_rows = dense[group, rows]
                    elif sparse is not None:
                        w_rows = sparse[rows].toarray()
                    change = _moves_delta(x[group], trial, rows, v[group], w_rows, expert)
                    ok = change < -1e-12
                if ok:
                    x[group] = trial
                    keep[j] = True
        alive = alive[keep]
    out = matrix.copy()
    out[tokens] = x.reshape(count * size, num_experts)[slot]
    return out


def _best_moves(
    x: np.ndarray, field: np.ndarray, expert: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per group and pair of experts ``e -> f``: the cheapest move of one slot, and its token.

    ``x`` and ``field`` have shape ``(group, token, expert)``. The slots (token, expert) held
    are sorted by group and expert, so each ``(group, e)`` is one contiguous segment and its
    minimum over tokens one ``reduceat``: work in proportion to ``T k E``, not ``T E**2``.
    Returns the costs (``inf`` where no token can move) and the tokens, each of shape
    ``(group, E, E)``.
    """
    count, _, num_experts = x.shape
    g, t, e = np.nonzero(x)
    key = g * num_experts + e
    order = np.argsort(key, kind="stable")
    g, t, e, key = g[order], t[order], e[order], key[order]
    delta = field[g, t, :] - field[g, t, e][:, None]  # (slot, to)
    if expert is not None:
        delta = delta - expert[e]  # the slot that leaves no longer pairs with the new one
    delta[x[g, t, :]] = np.inf  # the token already holds that expert (or it is ``e``)
    segments = np.arange(count * num_experts)
    starts = np.searchsorted(key, segments)
    sizes = np.searchsorted(key, segments, side="right") - starts
    filled = sizes > 0
    cost = np.full((count * num_experts, num_experts), np.inf)
    mover = np.zeros((count * num_experts, num_experts), dtype=np.int64)
    if key.size:
        lowest = np.minimum.reduceat(delta, starts[filled], axis=0)
        at_lowest = delta == np.repeat(lowest, sizes[filled], axis=0)
        index = np.where(at_lowest, np.arange(key.size)[:, None], key.size)
        first = np.minimum.reduceat(index, starts[filled], axis=0)
        cost[filled] = lowest
        mover[filled] = t[np.minimum(first, key.size - 1)]
    shape = (count, num_experts, num_experts)
    return cost.reshape(shape), mover.reshape(shape)


def _bellman_ford(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bellman-Ford in every graph of ``cost`` (shape ``(graph, node, node)``) at once.

    From a virtual source joined to every node at cost 0. Returns the parent of each node
    and which nodes still improved in the last of ``nodes`` rounds: walking back from one of
    those leads into a negative cycle (Bellman 1958; Ford 1956).
    """
    count, nodes, _ = cost.shape
    dist = np.zeros((count, nodes))
    parent = np.full((count, nodes), -1)
    changed = np.zeros((count, nodes), dtype=bool)
    for _ in range(nodes):
        through = dist[:, :, None] + cost
        best = through.min(axis=1)
        changed = best < dist - 1e-12
        parent = np.where(changed, through.argmin(axis=1), parent)
        dist = np.where(changed, best, dist)
    return parent, changed


def _parent_cycle(parent: np.ndarray, start: int, nodes: int) -> list[tuple[int, int]] | None:
    """The edges ``(parent[v], v)`` of the cycle that walking back from ``start`` enters."""
    node = start
    for _ in range(nodes):
        node = int(parent[node])
        if node < 0:  # pragma: no cover - see _polish_groups
            return None
    cycle: list[tuple[int, int]] = []
    current = node
    while True:
        previous = int(parent[current])
        cycle.append((previous, current))
        current = previous
        if current == node:
            return cycle
        if len(cycle) > nodes:  # pragma: no cover - the walk above ended inside a cycle
            return None


def _moves_delta(
    old: np.ndarray,
    new: np.ndarray,
    rows: np.ndarray,
    values: np.ndarray,
    token_rows: np.ndarray | None,
    expert: np.ndarray | None,
) -> float:
    """Exact change of :func:`routing_energy` when only the tokens ``rows`` change.

    ``token_rows`` are the rows ``rows`` of the mirrored token-similarity matrix; ``expert``
    the mirrored expert matrix. Pairs of two moved tokens are counted once.
    """
    xo = old.astype(float)
    xn = new.astype(float)
    change = -float((values[rows] * (xn[rows] - xo[rows])).sum())
    if expert is not None:
        change += 0.5 * float(
            np.einsum("te,ef,tf->", xn[rows], expert, xn[rows])
            - np.einsum("te,ef,tf->", xo[rows], expert, xo[rows])
        )
    if token_rows is not None:
        shared = token_rows * (xn[rows] @ xn.T - xo[rows] @ xo.T)
        change -= float(shared.sum()) - 0.5 * float(shared[:, rows].sum())
    return change


# --------------------------------------------------------------------------- QUBO formulation


@dataclass(frozen=True)
class PairwiseTerms:
    """Quadratic routing terms that linear assignment cannot express.

    Every matrix is optional; each adds to the energy that :func:`routing_problem` minimizes
    (the negated affinity):

    - ``token_similarity`` (T x T): ``- similarity_weight * w[t, u]`` for each pair of tokens
      ``t < u`` sent to the same expert (positive ``w``: share an expert; negative: keep apart);
    - ``expert_similarity`` (E x E): ``+ diversity_weight * s[e, f]`` for each token using both
      experts ``e < f`` (top-k diversity: a token's experts should differ);
    - ``communication_cost`` (E x E): ``+ communication_weight * c[e, f]`` for each token using
      both ``e < f``, e.g. the cost between the devices that hold them
      (:meth:`device_cost` builds it from a device map).

    Attributes:
        token_similarity: Symmetric ``(T, T)`` weights; only the upper triangle is read.
        expert_similarity: Symmetric ``(E, E)`` similarity between experts.
        communication_cost: Symmetric ``(E, E)`` cost of one token using both experts.
        similarity_weight: Scale of the token term.
        diversity_weight: Scale of the expert-similarity term.
        communication_weight: Scale of the communication term.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import PairwiseTerms
        >>> terms = PairwiseTerms(communication_cost=PairwiseTerms.device_cost([0, 0, 1, 1]))
        >>> terms.communication_cost[0].tolist()
        [0.0, 0.0, 1.0, 1.0]
    """

    token_similarity: np.ndarray | None = None
    expert_similarity: np.ndarray | None = None
    communication_cost: np.ndarray | None = None
    similarity_weight: float = 1.0
    diversity_weight: float = 1.0
    communication_weight: float = 1.0

    @staticmethod
    def device_cost(expert_device: Sequence[int], device_cost: Any = None) -> np.ndarray:
        """Expand a device-to-device cost matrix (default: 1 off the diagonal) to experts."""
        devices = np.asarray(expert_device, dtype=np.int64)
        num_devices = int(devices.max()) + 1 if devices.size else 0
        cost = (
            1.0 - np.eye(num_devices)
            if device_cost is None
            else np.asarray(device_cost, dtype=float)
        )
        out: np.ndarray = cost[np.ix_(devices, devices)].astype(float)
        return out

    def is_empty(self) -> bool:
        """Whether no pairwise term is set."""
        return (
            self.token_similarity is None
            and self.expert_similarity is None
            and self.communication_cost is None
        )

    def for_tokens(self, tokens: np.ndarray) -> PairwiseTerms:
        """The terms restricted to a subset of tokens (for decomposition into groups)."""
        sim = self.token_similarity
        return PairwiseTerms(
            token_similarity=None if sim is None else np.asarray(sim)[np.ix_(tokens, tokens)],
            expert_similarity=self.expert_similarity,
            communication_cost=self.communication_cost,
            similarity_weight=self.similarity_weight,
            diversity_weight=self.diversity_weight,
            communication_weight=self.communication_weight,
        )

    def _expert_matrix(self, num_experts: int) -> np.ndarray | None:
        total = np.zeros((num_experts, num_experts))
        used = False
        for matrix, weight, name in (
            (self.expert_similarity, self.diversity_weight, "expert_similarity"),
            (self.communication_cost, self.communication_weight, "communication_cost"),
        ):
            if matrix is None:
                continue
            array = np.asarray(matrix, dtype=float)
            if array.shape != (num_experts, num_experts) or not np.isfinite(array).all():
                raise InvalidProblemError(
                    f"PairwiseTerms.{name} must be a finite ({num_experts}, {num_experts}) "
                    f"matrix. Got shape {array.shape}."
                )
            total += weight * array
            used = True
        return total if used else None

    def _token_matrix(self, num_tokens: int) -> np.ndarray | None:
        if self.token_similarity is None:
            return None
        array = np.asarray(self.token_similarity, dtype=float)
        if array.shape != (num_tokens, num_tokens) or not np.isfinite(array).all():
            raise InvalidProblemError(
                f"PairwiseTerms.token_similarity must be a finite ({num_tokens}, {num_tokens}) "
                f"matrix. Got shape {array.shape}."
            )
        return self.similarity_weight * array


def knn_similarity(
    features: Any, *, num_neighbors: int = 4, block_size: int | None = None
) -> np.ndarray:
    """Sparse token similarity: cosine similarity to each token's nearest neighbours.

    Entry ``[t, u]`` is the (positive part of the) cosine similarity of ``features[t]`` and
    ``features[u]`` when ``u`` is among the ``num_neighbors`` most similar tokens of ``t`` or
    the reverse, else 0. With ``block_size``, neighbours are searched only within consecutive
    blocks of that many tokens (the groups :func:`solve_routing` solves together), since
    pairs across groups never meet in one QUBO.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import knn_similarity
        >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> (knn_similarity(x, num_neighbors=1) > 0).astype(int).tolist()
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    array = np.asarray(features, dtype=float)
    if array.ndim != 2 or not np.isfinite(array).all():
        raise InvalidProblemError(
            f"knn_similarity expects finite features of shape (tokens, dim). Got {array.shape}."
        )
    num_tokens = array.shape[0]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit = array / np.maximum(norms, 1e-12)
    out = np.zeros((num_tokens, num_tokens))
    step = num_tokens if block_size is None else max(1, int(block_size))
    for start in range(0, num_tokens, step):
        block = slice(start, min(start + step, num_tokens))
        sim = np.clip(unit[block] @ unit[block].T, 0.0, None)
        np.fill_diagonal(sim, -np.inf)
        size = sim.shape[0]
        m = min(num_neighbors, size - 1)
        if m <= 0:
            continue
        nearest = np.argpartition(-sim, m - 1, axis=1)[:, :m]
        mask = np.zeros_like(sim, dtype=bool)
        mask[np.arange(size)[:, None], nearest] = True
        mask |= mask.T
        mask &= sim > 0
        out[block, block] = np.where(mask, sim, 0.0)
    return out


def routing_energy(assignment: Any, scores: Any, pairwise: PairwiseTerms | None = None) -> float:
    """The routing objective of an assignment: ``-affinity`` plus the pairwise terms.

    This is the energy :func:`routing_problem` minimizes (without penalties), so classical
    and QUBO routes can be compared on the same scale.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import PairwiseTerms, routing_energy
        >>> scores = np.zeros((2, 2))
        >>> terms = PairwiseTerms(token_similarity=np.array([[0, 1.0], [1.0, 0]]))
        >>> routing_energy(np.array([[0], [0]]), scores, terms)
        -1.0
    """
    array = np.asarray(assignment, dtype=np.int64)
    values = np.asarray(scores, dtype=float)
    energy = -affinity(array, values)
    if pairwise is None or pairwise.is_empty():
        return energy
    num_tokens, num_experts = values.shape
    matrix = _as_matrix(array, num_experts).astype(float)
    token = pairwise._token_matrix(num_tokens)
    if token is not None:
        # sum over t < u of w[t, u] times the experts t and u share, as one product.
        energy -= float(((np.triu(token, 1) @ matrix) * matrix).sum())
    expert = pairwise._expert_matrix(num_experts)
    if expert is not None:
        per_token = np.einsum("te,ef,tf->t", matrix, np.triu(expert, 1), matrix)
        energy += float(per_token.sum())
    return energy


def routing_problem(
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    pairwise: PairwiseTerms | None = None,
    penalty: float | Literal["auto"] | None = None,
    polish: bool = True,
) -> Formulation:
    """Routing of ``T`` tokens to ``k`` of ``E`` experts as a :class:`qopt.pipeline.Formulation`.

    One binary ``(t, e)`` per token and expert, 1 when token ``t`` goes to expert ``e``;
    exactly ``k`` per token (:meth:`~qopt.constraints.ConstrainedQUBO.add_k_of_n`), at most
    ``capacity[e]`` per expert (:meth:`~qopt.constraints.ConstrainedQUBO.add_inequality`).
    The objective is the negated affinity, with each token's scores centred (a constant under
    "exactly k", so the optimum is unchanged but the penalties need less weight), plus the
    :class:`PairwiseTerms`. The decoder returns an assignment of shape ``(T, k)``, polished
    with :func:`polish_assignment` (classical cycle canceling on the same objective) unless
    ``polish=False``; the repair step is :func:`repair_assignment`, so every solution is
    feasible.

    Args:
        scores: Router scores (logits or log-probabilities), shape ``(T, E)``, finite.
        k: Experts per token, in ``[1, E]``.
        capacity: Slots per expert (int or shape ``(E,)``), adding up to at least ``T k``.
        pairwise: Optional quadratic terms.
        penalty: Constraint penalty. ``None`` (default) uses half the largest change one
            variable can make to the objective: too weak to prove that every minimum is
            feasible, but most samples come out feasible or nearly so and the repair step
            fixes the rest. On small linear cases this finds routes within 1% of the exact
            optimum, where the provable ``"auto"`` weights (see :mod:`qopt.constraints`)
            dwarf the objective and leave simulated annealing far from it. A float sets it.
        polish: Polish the decoded assignment (it never gets worse; on a linear objective
            with ``k = 1`` the polish alone reaches the exact optimum).

    Raises:
        InvalidProblemError: Non-finite scores, ``k`` out of range, or capacity too small for k.

    Examples:
        >>> import numpy as np
        >>> from qopt.pipeline import solve
        >>> from qopt.problems.routing import routing_problem
        >>> scores = np.array([[2.0, 0.0], [1.0, 0.0]])
        >>> solve(routing_problem(scores, 1, 1), "sa", seed=0).value.tolist()
        [[0], [1]]
    """
    from qopt.constraints import ConstrainedQUBO
    from qopt.pipeline import Formulation

    values = _check_scores(scores, "routing_problem")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "routing_problem")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "routing_problem", complete=True)
    centred = values - values.mean(axis=1, keepdims=True)

    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for t in range(num_tokens):
        for e in range(num_experts):
            bqm.add_variable((t, e), -float(centred[t, e]))
    if pairwise is not None and not pairwise.is_empty():
        token = pairwise._token_matrix(num_tokens)
        if token is not None:
            rows, cols = np.nonzero(np.triu(token, 1))
            for t, u in zip(rows.tolist(), cols.tolist(), strict=True):
                for e in range(num_experts):
                    bqm.add_quadratic((t, e), (u, e), -float(token[t, u]))
        expert = pairwise._expert_matrix(num_experts)
        if expert is not None:
            rows, cols = np.nonzero(np.triu(expert, 1))
            for e, f in zip(rows.tolist(), cols.tolist(), strict=True):
                for t in range(num_tokens):
                    bqm.add_quadratic((t, e), (t, f), float(expert[e, f]))

    model = ConstrainedQUBO(bqm)
    for t in range(num_tokens):
        model.add_k_of_n([(t, e) for e in range(num_experts)], k, label=f"token {t}")
    for e in range(num_experts):
        if cap[e] < num_tokens:  # a capacity of T or more cannot bind
            model.add_inequality(
                {(t, e): 1.0 for t in range(num_tokens)}, ub=float(cap[e]), label=f"expert {e}"
            )

    def decode(sample: Mapping[Hashable, int]) -> np.ndarray:
        matrix = _sample_matrix(sample, num_tokens, num_experts)
        if polish and (matrix.sum(axis=1) == k).all() and (matrix.sum(axis=0) <= cap).all():
            # Only a feasible sample can be polished (without a repair it may not be).
            matrix = _polish_groups(
                matrix, values, [np.arange(num_tokens)], [cap], [pairwise], num_tokens * k
            )
        return _from_matrix(matrix, values, k)

    def repair(sample: Mapping[Hashable, int]) -> dict[Hashable, int]:
        matrix = _sample_matrix(sample, num_tokens, num_experts)
        fixed = _as_matrix(repair_assignment(matrix, values, k, cap), num_experts)
        return {(t, e): int(fixed[t, e]) for t in range(num_tokens) for e in range(num_experts)}

    if penalty is None:
        penalty = _default_penalty(bqm)
    return Formulation(model, decode=decode, repair=repair, penalty=penalty)


def _default_penalty(bqm: dimod.BinaryQuadraticModel) -> float:
    """Half the largest change one variable flip can make to the objective (at least 1e-6)."""
    swing = {v: abs(bias) for v, bias in bqm.linear.items()}
    for (u, v), bias in bqm.quadratic.items():
        swing[u] += abs(bias)
        swing[v] += abs(bias)
    return max(0.5 * max(swing.values(), default=0.0), 1e-6)


def _sample_matrix(sample: Mapping[Hashable, int], num_tokens: int, num_experts: int) -> np.ndarray:
    flat = [sample.get((t, e), 0) for t in range(num_tokens) for e in range(num_experts)]
    return np.asarray(flat, dtype=bool).reshape(num_tokens, num_experts)


# --------------------------------------------------------------------------- decomposition


def _split_capacity(
    cap: np.ndarray, groups: list[np.ndarray], k: int, warm: np.ndarray | None
) -> list[np.ndarray]:
    """Share each expert's capacity among token groups so every group stays feasible.

    With a warm start, each group first gets the load the warm start gives it (so the warm
    start stays feasible in every group); otherwise a share proportional to its size. Groups
    still short of ``size * k`` slots then take spare slots (the expert with the most room
    first); what is left is shared in proportion to group size, the last slots going to the
    groups with the smallest share of that expert relative to their size.
    """
    num_experts = cap.size
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    total_tokens = int(sizes.sum())
    if warm is not None:
        matrix = _as_matrix(warm, num_experts)
        shares = np.stack([matrix[g].sum(axis=0) for g in groups]).astype(np.int64)
    else:
        shares = np.floor(cap[None, :] * sizes[:, None] / total_tokens).astype(np.int64)
    shares = np.minimum(shares, sizes[:, None])
    spare = cap - shares.sum(axis=0)
    for g in np.flatnonzero(shares.sum(axis=1) < sizes * k):
        need = int(sizes[g] * k - shares[g].sum())
        while need > 0:
            room = np.minimum(spare, sizes[g] - shares[g])
            e = int(np.argmax(room))
            if room[e] <= 0:
                break
            take = min(need, int(room[e]))
            shares[g, e] += take
            spare[e] -= take
            need -= take
    extra = np.floor(spare[None, :] * sizes[:, None] / total_tokens).astype(np.int64)
    extra = np.clip(np.minimum(extra, sizes[:, None] - shares), 0, None)
    shares += extra
    spare -= extra.sum(axis=0)
    for expert in np.flatnonzero(spare > 0):
        while spare[expert] > 0:
            open_groups = np.flatnonzero(shares[:, expert] < sizes)
            if open_groups.size == 0:
                break
            ratio = shares[open_groups, expert] / sizes[open_groups]
            chosen = open_groups[np.argsort(ratio, kind="stable")][: int(spare[expert])]
            shares[chosen, expert] += 1
            spare[expert] -= chosen.size
    return [shares[i] for i in range(len(groups))]


@functools.lru_cache(maxsize=64)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)``, cached: every group and expert asks for the same few sizes."""
    rows, cols = np.triu_indices(n, 1)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def _slack_coefficients(capacity: int) -> np.ndarray:
    """The slack bits dimod gives ``sum <= capacity`` (``add_linear_inequality_constraint``).

    ``1, 2, ..., 2**(m-1)`` and ``capacity - 2**m + 1`` with ``m = floor(log2(capacity))``:
    every integer in ``[0, capacity]`` and nothing above it. Empty for a capacity of 0.
    """
    if capacity <= 0:
        return np.zeros(0, dtype=np.int64)
    m = int(capacity).bit_length() - 1
    return np.array([2**j for j in range(m)] + [capacity - 2**m + 1], dtype=np.int64)


def _slack_bits(value: int, coefficients: np.ndarray) -> np.ndarray:
    """Bits over ``coefficients`` (see :func:`_slack_coefficients`) that add up to ``value``."""
    m = coefficients.size - 1
    bits = np.zeros(coefficients.size, dtype=np.int8)
    if m < 0:
        return bits
    if value > 2**m - 1:  # beyond what the powers of two reach: use the last bit
        bits[m] = 1
        value -= int(coefficients[m])
    bits[:m] = (value >> np.arange(m)) & 1
    return bits


@dataclass
class _Vectors:
    """A routing QUBO over integer indices: decision ``t * E + e`` first, then slack."""

    linear: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray
    offset: float
    #: Per capacitated expert: (expert, slack coefficients, index of its first slack bit).
    slack: list[tuple[int, np.ndarray, int]]


def _objective_terms(
    values: np.ndarray, pairwise: PairwiseTerms | None
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The routing objective over indices ``t * E + e``: linear biases and quadratic parts.

    The negated scores, each token's centred (a constant under "exactly k"), and the
    :class:`PairwiseTerms` as lists of (rows, cols, data) arrays.
    """
    num_tokens, num_experts = values.shape
    centred = values - values.mean(axis=1, keepdims=True)
    index = np.arange(num_tokens * num_experts).reshape(num_tokens, num_experts)
    linear = -centred.reshape(-1)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    if pairwise is not None and not pairwise.is_empty():
        token = pairwise._token_matrix(num_tokens)
        if token is not None:
            t, u = np.nonzero(np.triu(token, 1))
            rows.append(index[t].reshape(-1))
            cols.append(index[u].reshape(-1))
            data.append(np.repeat(-token[t, u], num_experts))
        expert = pairwise._expert_matrix(num_experts)
        if expert is not None:
            e, f = np.nonzero(np.triu(expert, 1))
            rows.append(index[:, e].reshape(-1))
            cols.append(index[:, f].reshape(-1))
            data.append(np.tile(expert[e, f], num_tokens))
    return linear, rows, cols, data


def _routing_vectors(
    values: np.ndarray,
    k: int,
    cap: np.ndarray,
    pairwise: PairwiseTerms | None,
    penalty: float | None,
) -> _Vectors:
    """The routing QUBO of :func:`routing_problem` (``penalty`` a float or None), in numpy.

    Term for term the BQM that ``routing_problem(...).model.to_bqm(penalty)`` builds through
    :class:`~qopt.constraints.ConstrainedQUBO` (the same penalties ``P (sum - rhs)**2`` and
    the same slack encoding), without a Python call per term. The capacity constraints stay
    dense cliques over each expert's tokens: that is the honest model of "at most c of these".
    """
    num_tokens, num_experts = values.shape
    index = np.arange(num_tokens * num_experts).reshape(num_tokens, num_experts)
    linear, rows, cols, data = _objective_terms(values, pairwise)
    if penalty is None:
        # Half the largest change one flip can make to the objective (see routing_problem).
        swing = np.abs(linear)
        for r, c, d in zip(rows, cols, data, strict=True):
            np.add.at(swing, r, np.abs(d))
            np.add.at(swing, c, np.abs(d))
        penalty = max(0.5 * float(swing.max(initial=0.0)), 1e-6)
    weight = float(penalty)
    linear = linear + weight * (1 - 2 * k)
    offset = weight * k * k * num_tokens
    e, f = _pairs(num_experts)
    rows.append(index[:, e].reshape(-1))
    cols.append(index[:, f].reshape(-1))
    data.append(np.full(num_tokens * e.size, 2 * weight))
    slack: list[tuple[int, np.ndarray, int]] = []
    slack_linear: list[np.ndarray] = []
    next_index = num_tokens * num_experts
    t, u = _pairs(num_tokens)
    for expert_index in range(num_experts):
        c_e = int(cap[expert_index])
        if c_e >= num_tokens:  # a capacity of T or more cannot bind
            continue
        column = index[:, expert_index]
        coefficients = _slack_coefficients(c_e).astype(float)
        bits = next_index + np.arange(coefficients.size)
        next_index += coefficients.size
        slack.append(
            (expert_index, coefficients.astype(np.int64), int(bits[0]) if bits.size else -1)
        )
        # weight * (sum_t x_te + sum_j c_j s_j - c_e)**2, with x**2 = x.
        linear[column] += weight * (1 - 2 * c_e)
        slack_linear.append(weight * (coefficients**2 - 2 * c_e * coefficients))
        offset += weight * c_e * c_e
        rows.append(column[t])
        cols.append(column[u])
        data.append(np.full(t.size, 2 * weight))
        if bits.size:
            rows.append(np.repeat(column, bits.size))
            cols.append(np.tile(bits, num_tokens))
            data.append(np.tile(2 * weight * coefficients, num_tokens))
            i, j = _pairs(bits.size)
            rows.append(bits[i])
            cols.append(bits[j])
            data.append(2 * weight * coefficients[i] * coefficients[j])
    return _Vectors(
        linear=np.concatenate([linear, *slack_linear]),
        rows=np.concatenate(rows).astype(np.int64),
        cols=np.concatenate(cols).astype(np.int64),
        data=np.concatenate(data).astype(float),
        offset=float(offset),
        slack=slack,
    )


def routing_bqm(
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    pairwise: PairwiseTerms | None = None,
    penalty: float | None = None,
) -> dimod.BinaryQuadraticModel:
    """The penalized routing BQM of :func:`routing_problem`, built from numpy in one shot.

    Same variables (``(t, e)`` and slack bits ``"slack[expert e][j]"``), same biases and
    offset as ``routing_problem(scores, k, capacity, pairwise=pairwise,
    penalty=penalty).model.to_bqm(penalty)`` (a test checks it term by term), built with
    :meth:`dimod.BinaryQuadraticModel.from_numpy_vectors` instead of one Python call per
    term: about a hundred times faster at 1024 tokens. ``penalty`` is a float or ``None``
    (the default of :func:`routing_problem`); the provable ``"auto"`` weights are only
    available through :func:`routing_problem`.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import routing_bqm
        >>> bqm = routing_bqm(np.zeros((3, 2)), 1, 2, penalty=1.0)
        >>> bqm.num_variables, bqm.num_interactions  # 6 decisions + 2 slack bits per expert
        (10, 23)
    """
    values = _check_scores(scores, "routing_bqm")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "routing_bqm")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "routing_bqm", complete=True)
    if penalty is not None:
        penalty = check_float(penalty, "penalty", "routing_bqm", low=0.0, low_inclusive=False)
    vectors = _routing_vectors(values, k, cap, pairwise, penalty)
    labels: list[Hashable] = [(t, e) for t in range(num_tokens) for e in range(num_experts)]
    for e, coefficients, _ in vectors.slack:
        labels.extend(f"slack[expert {e}][{j}]" for j in range(coefficients.size))
    return dimod.BinaryQuadraticModel.from_numpy_vectors(
        vectors.linear,
        (vectors.rows, vectors.cols, vectors.data),
        vectors.offset,
        dimod.BINARY,
        variable_order=labels,
    )


def _sa_beta_range(bqm: dimod.BinaryQuadraticModel) -> tuple[float, float]:
    """dwave-samplers' default annealing schedule for ``bqm``, computed in numpy.

    The rule of ``dwave.samplers.sa.sampler._default_ising_beta_range`` on the Ising form:
    hot enough that the largest effective field flips with probability 1/2, cold enough
    that the smallest flips with probability 1/100 summed over the variables that have it.
    dwave-samplers evaluates it with a Python loop over the couplings, which costs more
    than the anneal itself at these sizes.
    """
    linear, (rows, cols, data), _ = bqm.to_numpy_vectors()  # type: ignore[misc]
    linear = np.asarray(linear, dtype=float)
    data = np.asarray(data, dtype=float)
    h = linear / 2.0
    np.add.at(h, rows, data / 4.0)
    np.add.at(h, cols, data / 4.0)
    coupling = np.abs(data / 4.0)
    field = np.abs(h)
    np.add.at(field, rows, coupling)
    np.add.at(field, cols, coupling)
    smallest = np.where(np.abs(h) > 0, np.abs(h), np.inf)
    positive = np.where(coupling > 0, coupling, np.inf)
    np.minimum.at(smallest, rows, positive)
    np.minimum.at(smallest, cols, positive)
    finite = smallest[np.isfinite(smallest)]
    largest = float(field.max(initial=0.0))
    if finite.size == 0 or largest == 0:
        return (0.1, 1.0)
    gap = float(finite.min())
    hot = math.log(2) / (2 * largest)
    cold = math.log(int((finite == gap).sum()) / 0.01) / (2 * gap)
    return (hot, cold)


@dataclass
class RoutingSolution:
    """A routing solved through the QUBO pipeline, always feasible.

    Attributes:
        assignment: Shape ``(T, k)``: every token's experts, best score first.
        energy: :func:`routing_energy` of the assignment (negated affinity plus pairwise terms).
        affinity: Sum of the scores of the assigned pairs.
        num_samples: Samples the solver returned, counted once per group (one read of a
            batch of G groups counts G).
        num_infeasible: Of those, how many broke a constraint of their group before repair.
        num_groups: Token groups solved together in one batch.
        warm_start_kept: Groups where the warm start beat the pipeline's answer and was kept.
        solver_wall_s: Wall-clock seconds the solver took (from the solve records).
        sample_energy: :func:`routing_energy` of the pipeline's answer (the solver's best
            sample, repaired) before the polish and before any group fell back to the warm
            start: what the solver itself found.
        warm_energy: :func:`routing_energy` of the warm start (``nan`` without one).
        solutions: The pipeline's :class:`~qopt.pipeline.Solution` of the one solve that
            served all groups (its ``sampleset`` holds the raw samples).
    """

    assignment: np.ndarray
    energy: float
    affinity: float
    num_samples: int
    num_infeasible: int
    num_groups: int
    warm_start_kept: int
    solver_wall_s: float
    sample_energy: float = math.nan
    warm_energy: float = math.nan
    solutions: list[Solution] = field(default_factory=list, repr=False)

    @property
    def polish_gain(self) -> float:
        """How much the classical polish lowered the energy below the better of the solver's
        answer and the warm start (0 when it found nothing, or without polish)."""
        before = min(self.sample_energy, self.warm_energy)
        return 0.0 if math.isnan(before) else max(0.0, before - self.energy)

    @property
    def infeasible_fraction(self) -> float:
        """Raw solver samples that were infeasible before repair."""
        return self.num_infeasible / max(1, self.num_samples)


def solve_routing(
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    solver: str | dimod.Sampler = "sa",
    pairwise: PairwiseTerms | None = None,
    group_size: int | None = None,
    warm_start: WarmStart = "sinkhorn",
    penalty: float | Literal["auto"] | None = None,
    polish: Polish = "global",
    **sample_params: Any,
) -> RoutingSolution:
    """Route tokens through the QUBO pipeline, in token groups solved as one batch.

    The batch is cut into consecutive groups of ``group_size`` tokens (all tokens in one group
    when omitted) and each expert's capacity is shared among the groups. Each group's routing
    QUBO (:func:`routing_bqm`: the same BQM as :func:`routing_problem`, built from numpy
    arrays) becomes one block of a single block-diagonal BQM that goes to the solver in one
    call through :func:`qopt.pipeline.solve` (metered like every solve). The pipeline selects
    the answer as for any formulation: the model's objective is the block-diagonal routing
    objective, its constraints (``k`` experts per token, each group's capacity share) are
    checked on the whole sample array at once (``feasible_rows``), and every infeasible
    sample is repaired group by group with :func:`repair_assignment` (``repair_rows``), so
    the best sample over the reads wins (whole samples: groups are not mixed across reads).

    A classical warm start (``"sinkhorn"`` or ``"greedy"``, repaired to feasibility) sets
    the capacity split, is handed to the solver as its initial state when the solver takes
    ``initial_states`` (every slack bit set so that the state pays no penalty), and is kept
    for any group where it beats the pipeline's answer, so the result is never worse than the
    warm start on the objective. Simulated annealing without an explicit ``beta_range``
    gets dwave-samplers' default schedule computed here in numpy (dwave-samplers evaluates
    it in a Python loop that costs more than the anneal at these sizes); from a warm start,
    only its cold end (``beta`` from a tenth of the final value up), so that the anneal
    refines the warm start instead of melting it.

    Polish (classical, after the solver): the decoder runs :func:`polish_assignment`'s cycle
    canceling in every group on its capacity share (``"groups"``), on the routing objective
    with its pairwise terms; ``"global"`` (the default) then runs it once more over the whole
    batch with the full capacities, which moves tokens between the groups' shares. On a
    linear objective the global pass ends at the exact optimum for ``k = 1`` (and reached it
    on every ``k = 2`` instance measured): there the polish, not the annealer, does the work
    (docs/moe.md). It never makes the energy worse; ``polish=None`` turns it off.

    Args:
        scores: Router scores, shape ``(T, E)``, finite.
        k: Experts per token.
        capacity: Slots per expert (int or shape ``(E,)``), adding up to at least ``T k``.
        solver: A registry name (``qopt solvers``) or any :class:`dimod.Sampler`.
        pairwise: Optional quadratic terms (see :class:`PairwiseTerms`).
        group_size: Tokens per group; smaller groups mean smaller QUBOs but a coarser
            capacity split.
        warm_start: ``"sinkhorn"``, ``"greedy"`` or ``None``.
        penalty: Constraint penalty (see :func:`routing_problem`); ``"auto"`` builds each
            group through :class:`~qopt.constraints.ConstrainedQUBO` (slower).
        polish: ``"global"``, ``"groups"`` or ``None`` (see above).
        **sample_params: Passed to the solver's ``sample`` (e.g. ``seed``, ``num_reads``).

    Returns:
        A :class:`RoutingSolution`; its assignment is always feasible.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import routing_stats, solve_routing
        >>> scores = np.random.default_rng(1).normal(size=(16, 4))
        >>> result = solve_routing(scores, 2, 8, group_size=8, seed=0)
        >>> routing_stats(result.assignment, 4, 8).capacity_violation, result.num_groups
        (0, 2)
    """
    from qopt.pipeline import Formulation, solve
    from qopt.solvers import get_solver
    from qopt.solvers.classical import SimulatedAnnealingSolver

    values = _check_scores(scores, "solve_routing")
    num_tokens, num_experts = values.shape
    k = _check_k(k, num_experts, "solve_routing")
    cap = _check_capacity(capacity, num_tokens, num_experts, k, "solve_routing", complete=True)
    if group_size is None:
        group_size = num_tokens
    if not (isinstance(group_size, int) and not isinstance(group_size, bool) and group_size >= 1):
        raise SolverConfigurationError(
            f"The 'group_size' parameter of solve_routing must be an int in [1, inf). "
            f"Got {group_size!r} instead."
        )
    if warm_start not in ("sinkhorn", "greedy", None):
        raise SolverConfigurationError(
            "The 'warm_start' parameter of solve_routing must be 'sinkhorn', 'greedy' or None. "
            f"Got {warm_start!r} instead."
        )
    if penalty is not None and penalty != "auto":
        penalty = check_float(penalty, "penalty", "solve_routing", low=0.0, low_inclusive=False)
    if polish not in ("global", "groups", None):
        raise SolverConfigurationError(
            "The 'polish' parameter of solve_routing must be 'global', 'groups' or None. "
            f"Got {polish!r} instead."
        )
    warm: np.ndarray | None = None
    if warm_start == "sinkhorn":
        warm = sinkhorn_assignment(values, k, cap, repair=True)
    elif warm_start == "greedy":
        warm = repair_assignment(topk_assignment(values, k), values, k, cap)

    groups = [
        np.arange(s, min(s + group_size, num_tokens)) for s in range(0, num_tokens, group_size)
    ]
    group_caps = _split_capacity(cap, groups, k, warm)
    if any(
        int(np.minimum(c, g.size).sum()) < g.size * k
        for c, g in zip(group_caps, groups, strict=True)
    ):
        # The split could not keep every group feasible (tiny groups, tight capacity): one group.
        groups, group_caps = [np.arange(num_tokens)], [cap]
    group_pairwise = [None if pairwise is None else pairwise.for_tokens(g) for g in groups]
    blocks = [
        _group_vectors(values[g], k, c, p, penalty)
        for g, c, p in zip(groups, group_caps, group_pairwise, strict=True)
    ]
    bqm, slack_starts = _block_diagonal(blocks, num_tokens * num_experts, groups, num_experts)
    slacks = [b.slack for b in blocks]

    sampler = get_solver(solver) if isinstance(solver, str) else solver  # solve() meters it
    parameters = getattr(sampler, "parameters", {})
    child = getattr(sampler, "child", sampler)
    if (
        isinstance(child, SimulatedAnnealingSolver)
        and "beta_range" not in sample_params
        and "beta_range" in parameters
    ):
        hot, cold = _sa_beta_range(bqm)
        # From a warm start, anneal only the cold end (a tenth of the final beta upward):
        # hot sweeps would randomize the state and forget the warm start.
        sample_params["beta_range"] = (cold / 10.0, cold) if warm is not None else (hot, cold)
    if (
        warm is not None
        and "initial_states" not in sample_params
        and "initial_states" in parameters
    ):
        state = _warm_state(warm, slacks, slack_starts, groups, group_caps, bqm.num_variables)
        # The BQM's variables are 0..n-1 in order, so the array needs no labels.
        sample_params["initial_states"] = state[None, :]
    model, feasible_rows, repair_rows = _block_formulation(
        values, k, groups, group_caps, group_pairwise
    )
    decisions = num_tokens * num_experts

    raw_matrix: list[np.ndarray] = []

    def decode(sample: Mapping[Hashable, int]) -> np.ndarray:
        flat = np.array(list(map(sample.__getitem__, range(decisions))), dtype=bool)
        matrix = flat.reshape(num_tokens, num_experts)
        raw_matrix.append(matrix)
        if polish is not None:  # the sample is feasible: selected after repair
            matrix = _polish_groups(
                matrix, values, groups, group_caps, group_pairwise, num_tokens * k
            )
        return _from_matrix(matrix, values, k)

    formulation = Formulation(
        model, decode=decode, bqm=bqm, feasible_rows=feasible_rows, repair_rows=repair_rows
    )
    solution = solve(formulation, sampler, **sample_params)
    assignment = solution.value
    sample_energy = routing_energy(_from_matrix(raw_matrix[-1], values, k), values, pairwise)
    kept = 0
    if warm is not None:
        # The warm start is feasible in every group: keep it wherever it beats the solver.
        for g, p in zip(groups, group_pairwise, strict=True):
            if (
                routing_energy(warm[g], values[g], p)
                < routing_energy(assignment[g], values[g], p) - 1e-12
            ):
                assignment[g] = warm[g]
                kept += 1
    if polish == "global" and len(groups) > 1:
        # Across the groups: tokens may now trade the capacity shares the split fixed.
        whole = _polish_groups(
            _as_matrix(assignment, num_experts),
            values,
            [np.arange(num_tokens)],
            [cap],
            [pairwise],
            num_tokens * k,
        )
        assignment = _from_matrix(whole, values, k)

    # Raw samples before repair, counted per group (one read seen by G groups is G samples).
    sampleset = solution.sampleset
    position = np.empty(bqm.num_variables, dtype=np.int64)
    position[np.asarray(list(sampleset.variables), dtype=np.int64)] = np.arange(bqm.num_variables)
    raw = np.asarray(sampleset.record.sample)[:, position[:decisions]]
    occurrences = np.asarray(sampleset.record.num_occurrences, dtype=np.int64)
    group_ok = _groups_feasible(raw, num_experts, k, groups, group_caps)
    return RoutingSolution(
        assignment=assignment,
        energy=routing_energy(assignment, values, pairwise),
        affinity=affinity(assignment, values),
        num_samples=int(occurrences.sum()) * len(groups),
        num_infeasible=int((occurrences[:, None] * ~group_ok).sum()),
        num_groups=len(groups),
        warm_start_kept=kept,
        solver_wall_s=float(solution.record.wall_s) if solution.record is not None else 0.0,
        sample_energy=sample_energy,
        warm_energy=math.nan if warm is None else routing_energy(warm, values, pairwise),
        solutions=[solution],
    )


def _groups_feasible(
    rows: np.ndarray,
    num_experts: int,
    k: int,
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
) -> np.ndarray:
    """Per sample and group: every token has ``k`` experts and no expert exceeds its share.

    ``rows`` has shape ``(n, T * E)`` (decision ``t * E + e``); returns shape ``(n, G)``.
    Groups are consecutive token ranges, so each check is one ``reduceat`` over the tokens.
    """
    matrices = np.asarray(rows, dtype=np.int64).reshape(rows.shape[0], -1, num_experts)
    starts = np.array([int(g[0]) for g in groups])
    tokens_ok = matrices.sum(axis=2) == k  # (n, T)
    every_token = np.logical_and.reduceat(tokens_ok, starts, axis=1)  # (n, G)
    loads = np.add.reduceat(matrices, starts, axis=1)  # (n, G, E)
    within = (loads <= np.stack(group_caps)[None]).all(axis=2)
    result: np.ndarray = every_token & within
    return result


def _block_formulation(
    values: np.ndarray,
    k: int,
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
    group_pairwise: list[PairwiseTerms | None],
) -> tuple[ConstrainedQUBO, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The block-diagonal routing objective as a model, with its array feasibility and repair.

    Returns a :class:`~qopt.constraints.ConstrainedQUBO` holding only the objective (the
    constraints would cost a Python call per token to register; ``feasible_rows`` checks
    them on the sample array instead) and the ``feasible_rows`` / ``repair_rows`` pair for
    :class:`~qopt.pipeline.Formulation`.
    """
    from qopt.constraints import ConstrainedQUBO

    num_tokens, num_experts = values.shape
    linear_parts: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for g, p in zip(groups, group_pairwise, strict=True):
        linear, r, c, d = _objective_terms(values[g], p)
        shift = int(g[0]) * num_experts  # groups are contiguous: local index + shift is global
        linear_parts.append(linear)
        rows.extend(part + shift for part in r)
        cols.extend(part + shift for part in c)
        data.extend(d)
    empty = np.zeros(0, dtype=np.int64)
    objective = dimod.BinaryQuadraticModel.from_numpy_vectors(
        np.concatenate(linear_parts),
        (
            np.concatenate(rows) if rows else empty,
            np.concatenate(cols) if cols else empty,
            np.concatenate(data) if data else np.zeros(0),
        ),
        0.0,
        dimod.BINARY,
    )
    model = ConstrainedQUBO(objective)

    def feasible_rows(samples: np.ndarray) -> np.ndarray:
        ok = _groups_feasible(samples, num_experts, k, groups, group_caps)
        return np.asarray(ok.all(axis=1), dtype=bool)

    def repair_rows(samples: np.ndarray) -> np.ndarray:
        out = np.array(samples, dtype=np.int8, copy=True)
        fixed = out.reshape(out.shape[0], num_tokens, num_experts)  # a view of ``out``
        ok = _groups_feasible(out, num_experts, k, groups, group_caps)
        for r, i in zip(*np.nonzero(~ok), strict=True):
            g = groups[i]  # only the broken groups: feasible ones are kept as the solver left them
            repaired = repair_assignment(fixed[r, g].astype(bool), values[g], k, group_caps[i])
            fixed[r, g] = _as_matrix(repaired, num_experts)
        return out

    return model, feasible_rows, repair_rows


def _group_vectors(
    values: np.ndarray,
    k: int,
    cap: np.ndarray,
    pairwise: PairwiseTerms | None,
    penalty: float | Literal["auto"] | None,
) -> _Vectors:
    """One group's QUBO; ``"auto"`` goes through ConstrainedQUBO for its weights."""
    if penalty != "auto":
        return _routing_vectors(values, k, cap, pairwise, penalty)
    num_tokens, num_experts = values.shape
    bqm = routing_problem(values, k, cap, pairwise=pairwise, penalty="auto").model.to_bqm("auto")
    layout = _routing_vectors(values, k, cap, None, 1.0)  # same variables, same slack bits
    order: list[Hashable] = [(t, e) for t in range(num_tokens) for e in range(num_experts)]
    for e, coefficients, _ in layout.slack:
        order.extend(f"slack[expert {e}][{j}]" for j in range(coefficients.size))
    linear, (rows, cols, data), offset = bqm.to_numpy_vectors(variable_order=order)  # type: ignore[misc]
    return _Vectors(
        linear=np.asarray(linear, dtype=float),
        rows=np.asarray(rows, dtype=np.int64),
        cols=np.asarray(cols, dtype=np.int64),
        data=np.asarray(data, dtype=float),
        offset=float(offset),
        slack=layout.slack,
    )


def _block_diagonal(
    blocks: list[_Vectors], num_decisions: int, groups: list[np.ndarray], num_experts: int
) -> tuple[dimod.BinaryQuadraticModel, list[int]]:
    """All groups in one BQM over integers: decisions ``t * E + e`` (global ``t``), then slack.

    Returns the BQM and, per group, the index of its first slack variable.
    """
    size = [b.linear.size for b in blocks]
    remap: list[np.ndarray] = []
    slack_starts: list[int] = []
    next_slack = num_decisions
    for g, n in zip(groups, size, strict=True):
        local = g.size * num_experts
        mapping = np.empty(n, dtype=np.int64)
        mapping[:local] = int(g[0]) * num_experts + np.arange(local)  # groups are contiguous
        mapping[local:] = next_slack + np.arange(n - local)
        slack_starts.append(next_slack)
        next_slack += n - local
        remap.append(mapping)
    linear = np.zeros(next_slack)
    for b, mapping in zip(blocks, remap, strict=True):
        linear[mapping] = b.linear
    bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear,
        (
            np.concatenate([m[b.rows] for b, m in zip(blocks, remap, strict=True)]),
            np.concatenate([m[b.cols] for b, m in zip(blocks, remap, strict=True)]),
            np.concatenate([b.data for b in blocks]),
        ),
        sum(b.offset for b in blocks),
        dimod.BINARY,
    )
    return bqm, slack_starts


def _warm_state(
    warm: np.ndarray,
    slacks: list[list[tuple[int, np.ndarray, int]]],
    slack_starts: list[int],
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
    num_variables: int,
) -> np.ndarray:
    """The warm start as a state of the block-diagonal BQM, every slack at its best value.

    The warm start fits each group's capacity share, so each capacity constraint's slack
    takes ``capacity - load`` and its penalty is exactly zero.
    """
    num_experts = group_caps[0].size
    state = np.zeros(num_variables, dtype=np.int8)
    matrix = _as_matrix(warm, num_experts)
    state[: matrix.size] = matrix.reshape(-1)
    for slack, start, g, c in zip(slacks, slack_starts, groups, group_caps, strict=True):
        load = matrix[g].sum(axis=0)
        position = start
        for e, coefficients, _ in slack:
            bits = _slack_bits(int(c[e] - load[e]), coefficients)
            state[position : position + bits.size] = bits
            position += bits.size
    return state
