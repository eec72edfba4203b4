from __future__ import annotations

import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import dimod
import pytest

from qopt.bench import (
    Comparison,
    Trial,
    compare_solvers,
    format_runs_table,
    format_table,
    plot_quality_vs_time,
    plot_tts_vs_size,
    results_path,
    run_trials,
    summarize,
    write_results,
)
from qopt.exceptions import InvalidProblemError, MissingDependencyError, UnknownSolverError
from qopt.io import ProblemFile
from qopt.solvers import ExactSolver


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


# --- the general harness -----------------------------------------------------------------

RAN = ProblemFile("ran12", "json", dimod.generators.ran_r(1, 12, seed=0), "min")


def test_run_trials_takes_a_factory_and_extracts_facts() -> None:
    from qopt.solvers import SteepestDescentSolver

    trials = run_trials(
        RAN,
        lambda seed: SteepestDescentSolver(num_reads=3, seed=seed),
        seeds=[4, 5],
        name="steepest",
        extract=lambda sampleset: {"reads": len(sampleset)},
    )
    assert [(t.seed, t.solver, t.info, t.num_variables) for t in trials] == [
        (4, "steepest", {"reads": 3}, 12),
        (5, "steepest", {"reads": 3}, 12),
    ]
    energies = {t.objective for t in trials}
    assert all(e >= ExactSolver().sample(RAN.bqm).first.energy for e in energies)
    with pytest.raises(ValueError, match="needs a 'name'"):
        run_trials(RAN, lambda seed: SteepestDescentSolver(), seeds=[0])


def test_compare_solvers_mixes_names_and_factories() -> None:
    comparison = compare_solvers(
        RAN, {"sa": {"num_reads": 2}, "exact-ish": lambda seed: ExactSolver()}, seeds=2
    )
    assert [s.solver for s in comparison.summaries] == ["sa", "exact-ish"]
    optimum = ExactSolver().sample(RAN.bqm).first.energy
    assert comparison.reference == pytest.approx(optimum)  # the exact solver found it
    assert comparison.summaries[1].success == 1.0 and comparison.sense == "min"
    assert all(s.num_variables == 12 for s in comparison.summaries)


def test_format_runs_table_gives_median_and_spread_per_group() -> None:
    rows = [
        {"p": "a", "x": 1.0, "y": None},
        {"p": "a", "x": 5.0, "y": 2.0},
        {"p": "a", "x": 2.0},
        {"p": "b", "x": 7.0, "y": math.nan},
    ]
    lines = format_runs_table(rows, ["p"], ["x", "y"]).splitlines()
    assert lines[0].split() == ["p", "runs", "x", "y"]
    assert lines[2].split() == ["a", "3", "2", "[1,", "5]", "2"]
    assert lines[3].split() == ["b", "1", "7", "n/a"]


def test_write_results_adds_the_machine_and_serializes_trials(tmp_path: Path) -> None:
    path = write_results(tmp_path / "deep" / "r.json", {"trials": [trial(3)]})
    data = json.loads(path.read_text())
    assert data["trials"][0]["objective"] == 3 and data["machine"]["cores"] >= 1
    own = write_results(tmp_path / "s.json", {"machine": {"torch_threads": 1}})
    assert json.loads(own.read_text())["machine"] == {"torch_threads": 1}
    assert results_path(tmp_path, "qaoa-gset").parent == tmp_path


# --- plots ---------------------------------------------------------------------------------


def comparisons_of_two_sizes() -> list[Comparison]:
    return [
        compare_solvers(
            ProblemFile(f"ran{n}", "json", dimod.generators.ran_r(1, n, seed=n), "min"),
            {"sa": {"num_reads": 2}, "steepest": {"num_reads": 2}},
            seeds=3,
        )
        for n in (8, 16)
    ]


def lines_by_gid(figure: Any) -> dict[str, Any]:
    return {line.get_gid(): line for axis in figure.axes for line in axis.lines}


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quality_vs_time_plots_every_run_and_the_medians(tmp_path: Path) -> None:
    comparisons = comparisons_of_two_sizes()
    path = tmp_path / "plots" / "q.png"
    figure = plot_quality_vs_time(comparisons, path)
    assert is_png(path)
    lines = lines_by_gid(figure)
    for comparison in comparisons:
        for solver in ("sa", "steepest"):
            own = [t for t in comparison.trials if t.solver == solver]
            runs = lines[f"runs:{comparison.problem}:{solver}"]
            assert list(runs.get_xdata()) == [t.wall_s for t in own]
            assert list(runs.get_ydata()) == [t.objective for t in own]
            median = lines[f"median:{comparison.problem}:{solver}"]
            assert list(median.get_ydata()) == [statistics.median(t.objective for t in own)]
        reference = lines[f"reference:{comparison.problem}"]
        assert list(reference.get_ydata()) == [comparison.reference] * 2
    assert [axis.get_title() for axis in figure.axes if axis.get_visible()] == ["ran8", "ran16"]


def test_quality_vs_time_draws_only_the_chosen_solvers() -> None:
    figure = plot_quality_vs_time(comparisons_of_two_sizes()[:1], solvers=["steepest"])
    assert set(lines_by_gid(figure)) == {
        "runs:ran8:steepest",
        "median:ran8:steepest",
        "reference:ran8",
    }


def test_tts_vs_size_plots_each_summary_and_the_median_per_size(tmp_path: Path) -> None:
    comparisons = comparisons_of_two_sizes()
    path = tmp_path / "t.png"
    figure = plot_tts_vs_size(comparisons, path)
    assert is_png(path)
    assert figure.axes[0].get_yscale() == "log"
    lines = lines_by_gid(figure)
    for solver in ("sa", "steepest"):
        summaries = [s for c in comparisons for s in c.summaries if s.solver == solver]
        finite = [s for s in summaries if s.tts99_s is not None and math.isfinite(s.tts99_s)]
        points = lines[f"points:{solver}"]
        assert list(points.get_xdata()) == [s.num_variables for s in finite]
        assert list(points.get_ydata()) == [s.tts99_s for s in finite]
        median = lines[f"median:{solver}"]
        assert list(median.get_ydata()) == [s.tts99_s for s in finite]  # one problem per size


def test_tts_vs_size_names_sizes_where_the_target_was_never_reached() -> None:
    hit = summarize([trial(10), trial(10)], PROBLEM, target=10)
    missed = summarize([trial(3)], PROBLEM, target=10)
    summaries = [
        dataclasses.replace(hit, num_variables=10),
        dataclasses.replace(missed, problem="q", num_variables=20),
    ]
    figure = plot_tts_vs_size(summaries)
    median = lines_by_gid(figure)["median:s"]
    assert list(median.get_xdata()) == [10] and list(median.get_ydata()) == [hit.tts99_s]
    assert "not reached at n = 20" in median.get_label()


def test_plots_refuse_bad_input() -> None:
    comparisons = comparisons_of_two_sizes()
    with pytest.raises(InvalidProblemError, match="at least one timed"):
        plot_quality_vs_time([])
    with pytest.raises(InvalidProblemError, match="at least one timed"):
        plot_quality_vs_time([trial(3, mock=True)])
    with pytest.raises(UnknownSolverError, match="'tabu' is not in these results"):
        plot_quality_vs_time(comparisons, solvers=["tabu"])
    with pytest.raises(UnknownSolverError, match="'qaoa' is not in these results"):
        plot_tts_vs_size(comparisons, solvers=["sa", "qaoa"])
    with pytest.raises(InvalidProblemError, match="at least two sizes"):
        plot_tts_vs_size(comparisons[:1])
    with pytest.raises(InvalidProblemError, match="at least one timed"):
        plot_tts_vs_size([])


def test_a_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"qopt-loop\[plot\]"):
        plot_quality_vs_time([trial(3)])


def test_backends_without_a_seed_run_seeded_benchmarks() -> None:
    # The seed applies where the backend has one: exact has none, and took no 'seed' option.
    comparison = compare_solvers(RAN, {"exact": {}}, seeds=2)
    optimum = ExactSolver().sample(RAN.bqm).first.energy
    (exact,) = comparison.summaries
    assert exact.runs == 2 and exact.median_objective == pytest.approx(optimum)


def test_a_remote_backend_without_a_seed_runs_seeded_on_a_mock() -> None:
    from dwave.system.testing import MockDWaveSampler

    sampler = MockDWaveSampler(topology_type="pegasus")
    trials = run_trials(RAN, "dwave", seeds=[0, 1], options={"sampler": sampler})
    assert [t.mock for t in trials] == [True, True] and all(t.fallback is None for t in trials)


def test_bench_argument_errors_are_qopt_errors() -> None:
    from qopt.exceptions import SolverConfigurationError

    with pytest.raises(SolverConfigurationError, match="'target_ratio' parameter"):
        compare_solvers(RAN, {"sa": {}}, seeds=1, target_ratio=0)
    with pytest.raises(SolverConfigurationError, match="apply to a registry name only"):
        run_trials(RAN, lambda seed: ExactSolver(), seeds=[0], name="x", options={"a": 1})
