"""Classical polish: cycle canceling on the routing objective (Klein 1967)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError
from qopt.problems.routing.assignment import (
    as_matrix,
    check_capacity,
    check_k,
    check_scores,
    from_matrix,
)
from qopt.problems.routing.objective import PairwiseTerms

__all__ = [
    "polish_assignment",
]


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
    values = check_scores(scores, "polish_assignment")
    num_tokens, num_experts = values.shape
    k = check_k(k, num_experts, "polish_assignment")
    cap = check_capacity(capacity, num_tokens, num_experts, k, "polish_assignment", complete=True)
    array = np.asarray(assignment, dtype=np.int64)
    matrix = as_matrix(array, num_experts) if array.ndim == 2 else None
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
    polished = polish_groups(matrix, values, [np.arange(num_tokens)], [cap], [pairwise], rounds)
    return from_matrix(polished, values, k)


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    """The strict upper triangle mirrored: the pairwise terms read only ``t < u`` pairs."""
    upper = np.triu(matrix, 1)
    out: np.ndarray = upper + upper.T
    return out


def polish_groups(
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
        w = p.token_matrix(g.size)
        if w is not None and count == 1:
            sparse = csr_matrix(_symmetric(w))
        elif w is not None:
            if dense is None:
                dense = np.zeros((count, size, size))
            dense[i, : g.size, : g.size] = _symmetric(w)
        c = p.expert_matrix(num_experts)
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
        if node < 0:  # pragma: no cover - see polish_groups
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
