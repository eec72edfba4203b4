from __future__ import annotations

import math

import dimod
import pytest

from qopt.bench import Trial, format_table, summarize
from qopt.io import ProblemFile


def trial(objective: float, *, mock: bool = False, energy: float | None = 1.0) -> Trial:
    return Trial("p", "s", 0, objective, 2.0, 2.0, energy, "estimated", "model", None, mock)


PROBLEM = ProblemFile("p", "maxcut", dimod.BinaryQuadraticModel("BINARY"), "max", best_known=10)


def test_summary_statistics_and_tts() -> None:
    summary = summarize([trial(10), trial(8), trial(10), trial(9)], PROBLEM, target=10)
    assert summary.median_objective == 9.5 and (summary.min_objective, summary.max_objective) == (
        8,
        10,
    )
    assert summary.success == 0.5
    assert summary.tts99_s == pytest.approx(2.0 * math.log(0.01) / math.log(0.5))
    assert summary.ets99_j == pytest.approx(1.0 * math.log(0.01) / math.log(0.5))
    assert summary.median_gap == pytest.approx(0.05)


def test_never_hitting_the_target_gives_infinite_tts() -> None:
    summary = summarize([trial(3)], PROBLEM, target=10)
    assert summary.tts99_s == math.inf and "inf" in format_table([summary])


def test_mock_trials_keep_quality_but_never_report_time_or_energy() -> None:
    summary = summarize([trial(10, mock=True)], PROBLEM, target=10)
    assert summary.success == 1.0
    assert (
        summary.median_wall_s is None
        and summary.tts99_s is None
        and summary.median_energy_j is None
    )
    assert "not reported (mock)" in format_table([summary])


def test_not_measured_energy_has_no_ets() -> None:
    summary = summarize([trial(10, energy=None)], PROBLEM, target=10)
    assert summary.median_energy_j is None and summary.ets99_j is None


def test_summarize_needs_trials() -> None:
    with pytest.raises(ValueError, match="at least one trial"):
        summarize([], PROBLEM, target=1)
