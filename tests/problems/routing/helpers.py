"""Shared cases for the routing tests: random log-probabilities, feasibility, brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st


def log_probs(num_tokens: int, num_experts: int, seed: int, scale: float = 2.0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(num_tokens, num_experts)) * scale
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def assert_feasible(assignment: np.ndarray, num_experts: int, k: int, capacity: np.ndarray) -> None:
    assert assignment.shape[1] == k
    assert ((assignment >= 0) & (assignment < num_experts)).all()
    for row in assignment:
        assert len(set(row.tolist())) == k
    load = np.bincount(assignment.reshape(-1), minlength=num_experts)
    assert (load <= capacity).all()


def brute_force_optimum(scores: np.ndarray, k: int, capacity: int) -> float:
    num_tokens, num_experts = scores.shape
    best = -np.inf
    subsets = list(itertools.combinations(range(num_experts), k))
    for choice in itertools.product(subsets, repeat=num_tokens):
        load = np.bincount(np.array(choice).reshape(-1), minlength=num_experts)
        if (load <= capacity).all():
            best = max(best, sum(scores[t, list(c)].sum() for t, c in enumerate(choice)))
    return float(best)


@st.composite
def repair_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    num_tokens = draw(st.integers(1, 9))
    num_experts = draw(st.integers(1, 5))
    k = draw(st.integers(1, num_experts))
    capacity = np.array(
        [draw(st.integers(0, num_tokens)) for _ in range(num_experts)], dtype=np.int64
    )
    # Top up capacities until every token can get k experts.
    while capacity.sum() < num_tokens * k:
        capacity[int(np.argmin(capacity))] += 1
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(num_tokens, num_experts))
    matrix = rng.random((num_tokens, num_experts)) < draw(st.floats(0.0, 1.0))
    return scores, matrix, k, capacity
