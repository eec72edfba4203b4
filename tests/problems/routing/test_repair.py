"""Tests of qopt.problems.routing.repair."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from qopt.problems.routing import (
    exact_assignment,
    repair_assignment,
)
from tests.problems.routing.helpers import (
    assert_feasible,
    log_probs,
    repair_cases,
)


@settings(max_examples=150, deadline=None)
@given(repair_cases())
def test_repair_always_feasible(case: tuple[np.ndarray, np.ndarray, int, np.ndarray]) -> None:
    scores, matrix, k, capacity = case
    fixed = repair_assignment(matrix, scores, k, capacity)
    assert_feasible(fixed, scores.shape[1], k, capacity)


def test_repair_keeps_a_feasible_assignment_unchanged() -> None:
    scores = log_probs(12, 4, seed=3)
    best = exact_assignment(scores, 2, 6)
    assert np.array_equal(np.sort(repair_assignment(best, scores, 2, 6), 1), np.sort(best, 1))


def test_repair_escapes_when_greedy_fill_gets_stuck() -> None:
    # Tokens 0 and 1 hold experts 0 and 1; token 2 needs two experts but only expert 2 has
    # room: the greedy fill is stuck and an exchange (or the exact fallback) must move something.
    scores = np.array([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    start = np.array([[0, 1], [0, 1], [-1, -1]])
    fixed = repair_assignment(start, scores, 2, 2)
    assert_feasible(fixed, 3, 2, np.full(3, 2))


def test_repair_unsticks_with_the_cheapest_single_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    # Experts 0 and 1 are full; token 2 holds the only expert with room and needs one more.
    # Token 1 moving from expert 0 to expert 2 (and token 2 taking expert 0) loses nothing;
    # every other exchange loses 2. No linear program is needed for it.
    import qopt.problems.routing.repair as repair

    def no_lp(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the exact fallback was not needed")

    monkeypatch.setattr(repair, "b_matching", no_lp)
    scores = np.array([[5.0, 5.0, 1.0], [5.0, 5.0, 3.0], [2.0, 0.0, 9.0]])
    start = np.array([[0, 1], [0, 1], [2, -1]])
    fixed = repair_assignment(start, scores, 2, 2)
    assert fixed.tolist() == [[0, 1], [1, 2], [2, 0]]
