from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.quality import (
    approximation_ratio,
    gap_to_best_known,
    reaches_target,
    success_probability,
    tts,
)


def test_tts99_formula() -> None:
    assert tts(1.0, 0.5) == pytest.approx(math.log(0.01) / math.log(0.5))
    assert tts(2.0, 1.0) == 2.0
    assert tts(2.0, 0.0) == math.inf


@given(st.floats(0.01, 10), st.floats(0.01, 0.99))
def test_tts_at_least_one_run_and_decreasing_in_p(t: float, p: float) -> None:
    assert tts(t, p) >= t * 0.999 or p >= 0.99
    assert tts(t, min(p + 0.005, 1.0)) <= tts(t, p)


def test_ratio_and_gap_for_both_senses() -> None:
    assert approximation_ratio(90, 100, sense="max") == pytest.approx(0.9)
    assert approximation_ratio(-90, -100, sense="min") == pytest.approx(0.9)
    assert gap_to_best_known(90, 100, sense="max") == pytest.approx(0.1)
    assert gap_to_best_known(-90, -100, sense="min") == pytest.approx(0.1)
    assert gap_to_best_known(-2098, -2098, sense="min") == 0


def test_ratio_refuses_meaningless_references() -> None:
    with pytest.raises(InvalidProblemError, match="gap_to_best_known"):
        approximation_ratio(1, 0, sense="max")
    with pytest.raises(InvalidProblemError, match="negative"):
        approximation_ratio(5, 10, sense="min")


def test_success_probability() -> None:
    assert success_probability([10, 12, 12, 11], 12, sense="max") == 0.5
    assert success_probability([-5, -7], -7, sense="min") == 0.5
    assert reaches_target(11.9999999999, 12, sense="max")
    with pytest.raises(InvalidProblemError, match="at least one run"):
        success_probability([], 1, sense="max")


@pytest.mark.parametrize(("p", "conf"), [(1.5, 0.99), (0.5, 1.0)])
def test_tts_refuses_bad_probabilities(p: float, conf: float) -> None:
    with pytest.raises(SolverConfigurationError, match="success" if p > 1 else "confidence"):
        tts(1.0, p, confidence=conf)


def test_an_unknown_sense_is_refused() -> None:
    with pytest.raises(SolverConfigurationError, match="sense must be 'min' or 'max'"):
        gap_to_best_known(1, 2, sense="maximum")  # type: ignore[arg-type]


@pytest.mark.parametrize("best_known", [0.0, math.nan, math.inf])
def test_no_relative_gap_to_a_zero_or_non_finite_best_known(best_known: float) -> None:
    with pytest.raises(InvalidProblemError, match="finite, non-zero best-known"):
        gap_to_best_known(5.0, best_known, sense="min")
