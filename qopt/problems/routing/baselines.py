"""Classical routers, the anchors every QUBO route is compared with.

- :func:`exact_assignment`: the exact optimum, as in BASE layers (Lewis et al., "BASE Layers:
  Simplifying Training of Large, Sparse Models", ICML 2021);
- :func:`sinkhorn_assignment`: S-BASE's Sinkhorn balancing (Clark et al., "Unified Scaling
  Laws for Routed Language Models", ICML 2022);
- :func:`greedy_assignment`: top-k with capacity, dropping overflow (Switch / GShard).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from qopt.problems.routing.assignment import (
    apply_capacity,
    b_matching,
    check_capacity,
    check_k,
    check_scores,
    topk_assignment,
)
from qopt.problems.routing.repair import repair_assignment

__all__ = [
    "exact_assignment",
    "greedy_assignment",
    "sinkhorn_assignment",
    "sinkhorn_plan",
]


def greedy_assignment(scores: Any, k: int, capacity: int | np.ndarray) -> np.ndarray:
    """Top-k routing with capacity, overflow dropped (Switch Transformer, Fedus et al. 2022).

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import greedy_assignment
        >>> greedy_assignment(np.array([[1.0, 0.0], [1.0, 0.0]]), 1, 1).tolist()
        [[0], [-1]]
    """
    values = check_scores(scores, "greedy_assignment")
    k = check_k(k, values.shape[1], "greedy_assignment")
    cap = check_capacity(
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
    values = check_scores(scores, "sinkhorn_plan")
    num_tokens, num_experts = values.shape
    k = check_k(k, num_experts, "sinkhorn_plan")
    if capacity is None:
        columns = np.full(num_experts, num_tokens * k / num_experts)
    else:
        cap = check_capacity(capacity, num_tokens, num_experts, k, "sinkhorn_plan", complete=True)
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
    values = check_scores(scores, "sinkhorn_assignment")
    k = check_k(k, values.shape[1], "sinkhorn_assignment")
    cap = check_capacity(
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
    values = check_scores(scores, "exact_assignment")
    num_tokens, num_experts = values.shape
    k = check_k(k, num_experts, "exact_assignment")
    cap = check_capacity(capacity, num_tokens, num_experts, k, "exact_assignment", complete=False)
    if k == 1:
        slot_expert = np.repeat(np.arange(num_experts), cap)
        if slot_expert.size == 0:
            return np.full((num_tokens, 1), -1, dtype=np.int64)
        rows, cols = linear_sum_assignment(values[:, slot_expert], maximize=True)
        out = np.full((num_tokens, 1), -1, dtype=np.int64)
        out[rows, 0] = slot_expert[cols]
        return out
    return b_matching(values, k, cap, bonus=None)
