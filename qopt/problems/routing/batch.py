"""Routing one training batch: router logits in, a feasible assignment and its statistics out.

:class:`BatchRouter` holds the settings a training loop fixes once (solver, groups, pairwise
terms, warm start, penalty, polish) and routes each batch's router logits with
:func:`~qopt.problems.routing.solve_routing`. It is what
:class:`~qopt.integrations.lightning.QuboRoutingCallback` calls; any other loop can call it too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import dimod
import numpy as np

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing.assignment import affinity, check_scores, routing_stats
from qopt.problems.routing.baselines import exact_assignment
from qopt.problems.routing.objective import PairwiseTerms, knn_similarity
from qopt.problems.routing.solve import (
    Polish,
    RoutingSolution,
    WarmStart,
    check_routing_options,
    solve_routing,
)

__all__ = ["BatchRouter", "PairwiseSpec", "RoutedBatch"]

#: How a router builds its pairwise terms: fixed terms, ``"similarity"`` (cosine nearest
#: neighbours of the router inputs) or a callable ``(log_probs, hidden) -> PairwiseTerms``.
PairwiseSpec = (
    PairwiseTerms | Literal["similarity"] | Callable[[np.ndarray, np.ndarray | None], PairwiseTerms]
)


@dataclass(frozen=True)
class RoutedBatch:
    """One batch routed by :meth:`BatchRouter.route`.

    Attributes:
        assignment: Shape ``(T, k)``, always feasible: every token ``k`` experts, none over
            capacity, none outside the ``experts`` routed over.
        solution: The :class:`~qopt.problems.routing.RoutingSolution` behind it (with
            ``experts``, over those columns: its expert indices are positions in
            ``experts``).
        record: The solved assignment's statistics by name (over the experts routed over):
            ``max_violation``, ``dropped``, ``dead_experts``, ``infeasible_fraction``,
            ``solver_s``, ``warm_start_kept``, ``polish_gain``, ``route_s``; with the exact
            comparison also ``objective``, ``exact_objective`` and ``optimality_gap``
            (log-probability units).
        fallback: Why the requested solver failed and its local fallback solved instead
            (from the solve record), or ``None``.
    """

    assignment: np.ndarray
    solution: RoutingSolution
    record: dict[str, float] = field(default_factory=dict)
    fallback: str | None = None


class BatchRouter:
    """Route batches of router logits through the QUBO pipeline with fixed settings.

    Each batch's logits become log-probabilities, the routing problem of
    :func:`~qopt.problems.routing.solve_routing` (``k`` experts per token, the given expert
    capacity, optional pairwise terms, token groups solved as one batch, warm start, repair,
    polish) and a :class:`RoutedBatch`.

    Args:
        solver: A registry name or any :class:`dimod.Sampler` (build one with
            :func:`qopt.solvers.resolve_solver` to give it routing's defaults).
        group_size: Tokens per QUBO group (``None``: one group).
        pairwise: ``None`` (linear objective) or a :data:`PairwiseSpec`.
        similarity_weight: Weight of the ``"similarity"`` terms, in log-probability units.
        num_neighbors: Neighbours per token for ``"similarity"``.
        warm_start: ``"sinkhorn"``, ``"greedy"`` or ``None``.
        penalty: Constraint penalty (see :func:`~qopt.problems.routing.routing_problem`).
        polish: ``"global"``, ``"groups"`` or ``None`` (see
            :func:`~qopt.problems.routing.solve_routing`).
        sample_params: Keyword arguments for the solver's ``sample`` at every batch.
        compare_exact: On a linear objective, also report the gap to the exact
            linear-assignment optimum.
        owner: The name configuration errors are reported under.

    Raises:
        SolverConfigurationError: An invalid setting.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import BatchRouter
        >>> router = BatchRouter(solver="sa", group_size=8, sample_params={"seed": 0})
        >>> logits = np.random.default_rng(0).normal(size=(16, 4))
        >>> routed = router.route(logits, k=1, capacity=4)
        >>> routed.assignment.shape, routed.record["dropped"], routed.fallback
        ((16, 1), 0.0, None)
    """

    def __init__(
        self,
        *,
        solver: str | dimod.Sampler = "sa",
        group_size: int | None = 32,
        pairwise: PairwiseSpec | None = None,
        similarity_weight: float = 0.1,
        num_neighbors: int = 4,
        warm_start: WarmStart = "sinkhorn",
        penalty: float | Literal["auto"] | None = None,
        polish: Polish = "global",
        sample_params: Mapping[str, Any] | None = None,
        compare_exact: bool = True,
        owner: str = "BatchRouter",
    ) -> None:
        self.solver = solver
        self.group_size, self.warm_start, self.penalty, self.polish = check_routing_options(
            group_size, warm_start, penalty, polish, owner
        )
        if not (
            pairwise is None
            or pairwise == "similarity"
            or isinstance(pairwise, PairwiseTerms)
            or callable(pairwise)
        ):
            raise SolverConfigurationError(
                f"The 'pairwise' parameter of {owner} must be None, 'similarity', a "
                f"PairwiseTerms or a callable. Got {pairwise!r} instead."
            )
        self.pairwise = pairwise
        self.similarity_weight = check_float(similarity_weight, "similarity_weight", owner)
        self.num_neighbors = check_int(num_neighbors, "num_neighbors", owner, low=1)
        self.sample_params = dict(sample_params or {})
        self.compare_exact = bool(compare_exact)

    def pairwise_terms(
        self, log_probs: np.ndarray, hidden: np.ndarray | None
    ) -> PairwiseTerms | None:
        """The pairwise terms for one batch (``hidden``: the router inputs, or ``None``)."""
        if self.pairwise is None or isinstance(self.pairwise, PairwiseTerms):
            return self.pairwise
        if self.pairwise == "similarity":
            features = log_probs if hidden is None else hidden
            return PairwiseTerms(
                token_similarity=knn_similarity(
                    features, num_neighbors=self.num_neighbors, block_size=self.group_size
                ),
                similarity_weight=self.similarity_weight,
            )
        return self.pairwise(log_probs, hidden)

    def route(
        self,
        logits: Any,
        k: int,
        capacity: int,
        hidden: np.ndarray | None = None,
        *,
        experts: Any = None,
    ) -> RoutedBatch:
        """Route one batch: router ``logits`` of shape ``(T, E)`` to ``k`` experts each.

        ``experts`` (indices, or ``None`` for all) are the experts that may take tokens, e.g.
        those a pruning mask leaves: the batch is routed over their columns only, with
        their log-probabilities among themselves, and every other expert gets no token.

        Raises:
            InvalidProblemError: Non-finite logits (the router has diverged), or a capacity
                too small for ``k``: the caller should let the layer route by itself; or
                ``experts`` not distinct indices of the logits' columns.
        """
        started = time.perf_counter()
        num_experts = check_scores(logits, "BatchRouter.route()").shape[1]
        # In the logits' own precision (float32 from torch): the routes depend on it.
        values = np.asarray(logits)
        log_probs = values - np.logaddexp.reduce(values, axis=1, keepdims=True)
        pairwise = self.pairwise_terms(log_probs, hidden)
        columns = None if experts is None else _check_experts(experts, num_experts)
        if columns is not None:
            values = values[:, columns]
            num_experts = columns.size
            log_probs = values - np.logaddexp.reduce(values, axis=1, keepdims=True)
            pairwise = None if pairwise is None else _restrict(pairwise, columns)
        result = solve_routing(
            log_probs,
            k,
            capacity,
            solver=self.solver,
            pairwise=pairwise,
            group_size=self.group_size,
            warm_start=self.warm_start,
            penalty=self.penalty,
            polish=self.polish,
            **self.sample_params,
        )
        stats = routing_stats(result.assignment, num_experts, capacity)
        record: dict[str, float] = {
            "max_violation": stats.max_violation,
            "dropped": float(stats.capacity_violation + stats.dropped),
            "dead_experts": float(stats.dead_experts),
            "infeasible_fraction": result.infeasible_fraction,
            "solver_s": result.solver_wall_s,
            "warm_start_kept": float(result.warm_start_kept),
            "polish_gain": result.polish_gain,
        }
        if self.compare_exact and (pairwise is None or pairwise.is_empty()):
            optimum = affinity(exact_assignment(log_probs, k, capacity), log_probs)
            record["objective"] = result.affinity
            record["exact_objective"] = optimum
            record["optimality_gap"] = (optimum - result.affinity) / max(abs(optimum), 1e-12)
        record["route_s"] = time.perf_counter() - started
        assignment = result.assignment
        if columns is not None:  # positions among the routed experts -> expert indices
            assignment = np.where(assignment >= 0, columns[assignment.clip(min=0)], -1)
        return RoutedBatch(assignment, result, record, result.fallback)


def _restrict(pairwise: PairwiseTerms, columns: np.ndarray) -> PairwiseTerms:
    """The pairwise terms among the experts ``columns`` only."""
    grid = np.ix_(columns, columns)
    return dataclasses.replace(
        pairwise,
        expert_similarity=None
        if pairwise.expert_similarity is None
        else np.asarray(pairwise.expert_similarity)[grid],
        communication_cost=None
        if pairwise.communication_cost is None
        else np.asarray(pairwise.communication_cost)[grid],
    )


def _check_experts(experts: Any, num_experts: int) -> np.ndarray:
    """The experts to route over, as distinct int indices of the ``num_experts`` columns."""
    array = np.asarray(experts)
    if not (
        array.ndim == 1
        and array.size > 0
        and np.issubdtype(array.dtype, np.integer)
        and ((array >= 0) & (array < num_experts)).all()
        and np.unique(array).size == array.size
    ):
        raise InvalidProblemError(
            f"The 'experts' parameter of BatchRouter.route() must be distinct expert indices "
            f"in [0, {num_experts - 1}]. Got {experts!r} instead."
        )
    return array.astype(np.int64)
