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

The modules, by responsibility: :mod:`~qopt.problems.routing.assignment` (input checks,
capacity, load statistics), :mod:`~qopt.problems.routing.baselines` (the classical routers),
:mod:`~qopt.problems.routing.objective` (pairwise terms, energy),
:mod:`~qopt.problems.routing.repair`, :mod:`~qopt.problems.routing.polish` (cycle canceling),
:mod:`~qopt.problems.routing.formulation` (the QUBO), :mod:`~qopt.problems.routing.solve`
(:func:`solve_routing`) and :mod:`~qopt.problems.routing.batch` (:class:`BatchRouter`, one
training batch at a time). Every public name is importable from this package.

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

from qopt.problems.routing.assignment import (
    RoutingStats,
    affinity,
    apply_capacity,
    expert_capacity,
    routing_stats,
    topk_assignment,
)
from qopt.problems.routing.baselines import (
    exact_assignment,
    greedy_assignment,
    sinkhorn_assignment,
    sinkhorn_plan,
)
from qopt.problems.routing.batch import BatchRouter, PairwiseSpec, RoutedBatch
from qopt.problems.routing.formulation import routing_bqm, routing_problem
from qopt.problems.routing.objective import PairwiseTerms, knn_similarity, routing_energy
from qopt.problems.routing.polish import polish_assignment
from qopt.problems.routing.repair import repair_assignment
from qopt.problems.routing.solve import ROUTING_SOLVER_DEFAULTS, RoutingSolution, solve_routing

__all__ = [
    "ROUTING_SOLVER_DEFAULTS",
    "BatchRouter",
    "PairwiseSpec",
    "PairwiseTerms",
    "RoutedBatch",
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
