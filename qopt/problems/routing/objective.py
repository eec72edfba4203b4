"""The routing objective: pairwise terms beside the affinity, and the energy of an assignment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qopt.exceptions import InvalidProblemError
from qopt.problems.routing.assignment import affinity, as_matrix

__all__ = [
    "PairwiseTerms",
    "knn_similarity",
    "routing_energy",
]


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

    def expert_matrix(self, num_experts: int) -> np.ndarray | None:
        """The weighted expert-pair cost (diversity plus communication), or ``None``."""
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

    def token_matrix(self, num_tokens: int) -> np.ndarray | None:
        """The weighted token similarity, or ``None``."""
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
    matrix = as_matrix(array, num_experts).astype(float)
    token = pairwise.token_matrix(num_tokens)
    if token is not None:
        # sum over t < u of w[t, u] times the experts t and u share, as one product.
        energy -= float(((np.triu(token, 1) @ matrix) * matrix).sum())
    expert = pairwise.expert_matrix(num_experts)
    if expert is not None:
        per_token = np.einsum("te,ef,tf->t", matrix, np.triu(expert, 1), matrix)
        energy += float(per_token.sum())
    return energy
