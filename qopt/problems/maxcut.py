"""MaxCut as a BQM, and the random regular graphs used by QAOA benchmarks.

Examples:
    >>> from qopt.problems.maxcut import cut_value, maxcut_bqm, random_regular_graph
    >>> edges = random_regular_graph(8, 3, seed=0)
    >>> bqm = maxcut_bqm(edges)
    >>> sample = {v: v % 2 for v in bqm.variables}
    >>> cut_value(edges, sample) == -float(bqm.energy(sample))
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dimod
import numpy as np

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError

__all__ = ["cut_value", "maxcut_bqm", "random_regular_graph"]


def maxcut_bqm(
    edges: np.ndarray | list[tuple[int, int]],
    weights: np.ndarray | list[float] | None = None,
    *,
    nodes: list[Any] | None = None,
) -> dimod.BinaryQuadraticModel:
    """BQM whose energy is minus the cut: each edge (i, j, w) adds w * (2 x_i x_j - x_i - x_j).

    Args:
        edges: Pairs of node labels, shape (E, 2).
        weights: Edge weights, shape (E,); all ones when omitted.
        nodes: Every node label, so isolated nodes become variables too (optional).
    """
    edge_array = np.asarray(edges)
    if edge_array.size and (edge_array.ndim != 2 or edge_array.shape[1] != 2):
        raise InvalidProblemError(f"edges must have shape (E, 2). Got {edge_array.shape}.")
    w = np.ones(len(edge_array)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(edge_array),):
        raise InvalidProblemError(
            f"weights must have one entry per edge ({len(edge_array)}). Got shape {w.shape}."
        )
    if not np.isfinite(w).all():
        raise InvalidProblemError("MaxCut edge weights must be finite (no NaN or inf).")
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    if nodes is not None:
        bqm.add_variables_from((v, 0.0) for v in nodes)
    for (i, j), weight in zip(edge_array.tolist(), w.tolist(), strict=True):
        if i == j:
            raise InvalidProblemError(f"Self-loop on node {i}: a cut has no self-loops.")
        bqm.add_quadratic(i, j, 2.0 * weight)
        bqm.add_linear(i, -weight)
        bqm.add_linear(j, -weight)
    return bqm


def cut_value(
    edges: np.ndarray | list[tuple[int, int]],
    sample: Mapping[Any, int],
    weights: np.ndarray | list[float] | None = None,
) -> float:
    """Total weight of the edges whose ends lie on different sides in ``sample``."""
    edge_array = np.asarray(edges)
    w = np.ones(len(edge_array)) if weights is None else np.asarray(weights, dtype=float)
    return float(
        sum(
            wt
            for (i, j), wt in zip(edge_array.tolist(), w.tolist(), strict=True)
            if sample[i] != sample[j]
        )
    )


def random_regular_graph(num_nodes: int, degree: int, *, seed: int | None = None) -> np.ndarray:
    """Edges of a uniformly random simple ``degree``-regular graph on nodes 0..num_nodes-1.

    Pairs up ``degree`` stubs per node at random and retries until the pairing has no
    self-loops or repeated edges (the configuration model; Bollobas 1980).
    """
    num_nodes = check_int(num_nodes, "num_nodes", "random_regular_graph", low=1)
    degree = check_int(degree, "degree", "random_regular_graph", low=1)
    if num_nodes * degree % 2 or degree >= num_nodes:
        raise InvalidProblemError(
            f"No simple {degree}-regular graph on {num_nodes} nodes: the degree must be in "
            "[1, nodes) and nodes * degree must be even."
        )
    if seed is not None:
        seed = check_int(seed, "seed", "random_regular_graph", low=0)
    rng = np.random.default_rng(seed)
    stubs = np.repeat(np.arange(num_nodes), degree)
    for _ in range(10_000):
        pairs = rng.permutation(stubs).reshape(-1, 2)
        pairs.sort(axis=1)
        if (pairs[:, 0] != pairs[:, 1]).all() and len(np.unique(pairs, axis=0)) == len(pairs):
            return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    raise InvalidProblemError(  # pragma: no cover - astronomically unlikely for small degrees
        f"Could not draw a simple {degree}-regular graph on {num_nodes} nodes; try another seed."
    )
