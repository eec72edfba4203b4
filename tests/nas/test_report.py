"""Top-k table and plots of a run: their content equals the trials in storage."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from qopt.exceptions import InvalidProblemError, MissingDependencyError
from qopt.nas import Budget, Choice, Objective, SearchSpace, report, run_search
from qopt.nas._report import (
    history,
    html_history,
    html_importance,
    html_pareto,
    importances,
    pareto,
    plot_history,
    plot_importance,
    plot_pareto,
    top_k,
    tradeoff,
    write_plots,
)
from qopt.nas._runner import load_run
from qopt.nas.cli import add_nas_parser

from .test_runner import toy_space


def complete_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study, _, _ = load_run(run_dir)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(trials, key=lambda t: t.number)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("toy")
    run_search(toy_space(), run_dir=run_dir, sampler="random", n_trials=15, seed=3)
    return run_dir


def test_top_k_table_lists_the_best_trials_in_order(toy_run: Path) -> None:
    trials = complete_trials(toy_run)
    ranked = sorted(trials, key=lambda t: (t.values[0], t.number))
    table, records = report(str(toy_run), top=4)
    assert [r["trial"] for r in records] == [t.number for t in ranked[:4]]
    lines = table.splitlines()
    assert lines[0] == "| rank | trial | architecture | loss | params (<= 2048) |"
    assert len(lines) == 2 + 4
    for line, t in zip(lines[2:], ranked, strict=False):
        arch = json.loads(t.user_attrs["architecture"])
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == str(t.number)
        assert cells[2] == ", ".join(f"{k}={v}" for k, v in arch.items())
        assert float(cells[3]) == pytest.approx(t.values[0], rel=1e-5)
        assert float(cells[4]) == pytest.approx(t.user_attrs["cost:params"], rel=1e-5)
    assert len(top_k(toy_run, 100)) == len(trials)


def test_history_plot_shows_every_trial_and_the_best_so_far(toy_run: Path, tmp_path: Path) -> None:
    trials = complete_trials(toy_run)
    data = history(toy_run)
    assert data["trial"] == [t.number for t in trials]
    assert data["value"] == [t.values[0] for t in trials]
    assert data["best"] == list(np.minimum.accumulate([t.values[0] for t in trials]))
    figure = plot_history(toy_run, tmp_path / "history.png")
    points, best = figure.axes[0].lines
    np.testing.assert_array_equal(points.get_xdata(), data["trial"])
    np.testing.assert_array_equal(points.get_ydata(), data["value"])
    np.testing.assert_array_equal(best.get_ydata(), data["best"])
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
    """``a`` is no worse than ``b`` in both (error: minimize, speed: maximize) and not equal."""
    return a.values[0] <= b.values[0] and a.values[1] >= b.values[1] and a.values != b.values


def test_pareto_plot_of_two_objectives(tmp_path: Path) -> None:
    space = SearchSpace(
        [Choice.integers("w", 1, 6), Choice.integers("d", 1, 4)],
        objectives=[Objective("error", "minimize"), Objective("speed", "maximize")],
    )

    def objective(arch: dict[str, int]) -> dict[str, float]:
        return {"error": 1.0 / (arch["w"] * arch["d"]), "speed": 10.0 - arch["w"] - 0.5 * arch["d"]}

    run_search(space, run_dir=tmp_path, sampler="random", n_trials=14, seed=0, objective=objective)
    trials = complete_trials(tmp_path)
    data = pareto(tmp_path)
    assert data["x"] == [t.values[0] for t in trials]
    assert data["y"] == [t.values[1] for t in trials]
    for t, on_front in zip(trials, data["front"], strict=True):
        assert on_front == (not any(dominates(o, t) for o in trials))
    figure = plot_pareto(tmp_path)
    rest, front = figure.axes[0].lines
    assert sorted(front.get_xdata()) == sorted(
        x for x, f in zip(data["x"], data["front"], strict=True) if f
    )
    assert len(rest.get_xdata()) + len(front.get_xdata()) == len(trials)
    table, records = report(str(tmp_path), top=3, plots=str(tmp_path / "plots"))
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "history.png",
        "pareto.png",
        "importance.png",
        "history.html",
        "importance.html",
        "pareto.html",
        "plotly.min.js",
    }
    assert all(r["pareto_rank"] == 0 for r in records[: sum(data["front"])][:3])
    assert "| error | speed |" in table
    # Every trial's rank is its front: peel the non-dominated trials off, rank by rank.
    ranked = {r["trial"]: r["pareto_rank"] for r in top_k(tmp_path, len(trials))}
    left, rank = list(trials), 0
    while left:
        front = [t for t in left if not any(dominates(o, t) for o in left)]
        assert all(ranked[t.number] == rank for t in front)
        left = [t for t in left if t not in front]
        rank += 1
    assert max(ranked.values()) == rank - 1 > 0


def test_pareto_needs_two_objectives(toy_run: Path) -> None:
    with pytest.raises(InvalidProblemError, match="needs two objectives"):
        pareto(toy_run)


def test_cli_report(toy_run: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="qopt")
    add_nas_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    args = parser.parse_args(
        ["nas", "report", str(toy_run), "--top", "2", "--plots", str(tmp_path)]
    )
    assert args.run(args, out) == 0
    assert out.getvalue().count("\n") == 2 + 2 + 1
    assert (tmp_path / "history.png").exists()


def test_html_history_holds_every_completed_trial(toy_run: Path) -> None:
    trials = complete_trials(toy_run)
    figure = html_history(toy_run)
    points = next(t for t in figure.data if t.mode == "markers")
    assert list(points.x) == [t.number for t in trials]
    assert list(points.y) == [t.values[0] for t in trials]


def test_importance_finds_the_choice_that_matters(tmp_path: Path) -> None:
    space = SearchSpace([Choice.integers("a", 1, 5), Choice.integers("b", 1, 5)])
    run_search(
        space,
        run_dir=tmp_path,
        sampler="random",
        n_trials=20,
        seed=0,
        objective=lambda arch: 10.0 * arch["a"] + 0.1 * arch["b"],
    )
    shares = importances(tmp_path)
    assert list(shares) == ["a", "b"]
    assert shares["a"] > 0.9
    assert sum(shares.values()) == pytest.approx(1.0)
    figure = plot_importance(tmp_path)
    bars = figure.axes[0].patches
    assert sorted(b.get_width() for b in bars) == sorted(shares.values())
    (interactive,) = html_importance(tmp_path).data
    assert dict(zip(interactive.y, interactive.x, strict=True)) == pytest.approx(shares)


def budget_space() -> SearchSpace:
    return SearchSpace(
        [Choice.integers("w", 1, 8), Choice("act", "categorical", ("relu", "tanh"))],
        budgets=[Budget("params", 5, costs={"w": {v: v for v in range(1, 9)}})],
        objectives=[Objective("acc", "maximize")],
    )


def test_pareto_of_one_objective_is_against_the_budget_with_rejected_points_marked(
    tmp_path: Path,
) -> None:
    # TPE ignores the budget: some proposals are over it, rejected and never evaluated.
    run_search(
        budget_space(),
        run_dir=tmp_path,
        sampler="tpe",
        n_trials=16,
        seed=1,
        n_startup_trials=12,
        objective=lambda arch: arch["w"] + (0.5 if arch["act"] == "relu" else 0.0),
    )
    study, _, _ = load_run(tmp_path)
    rejected = [
        t
        for t in study.get_trials()
        if t.state == optuna.trial.TrialState.FAIL
        and t.user_attrs.get("qopt_nas:status") == "rejected"
    ]
    assert rejected, "the seed should give over-budget proposals"
    data = tradeoff(tmp_path)
    trials = complete_trials(tmp_path)
    assert data["names"] == ["params", "acc"]
    assert data["x"] == [t.user_attrs["cost:params"] for t in trials]
    assert all(data["feasible"]) and all(x <= 5 for x in data["x"])
    assert data["rejected"] == [t.number for t in rejected]
    assert all(x > 5 for x in data["rejected_x"])
    # Front: no feasible trial has lower cost and higher accuracy.
    for x, y, on_front in zip(data["x"], data["y"], data["front"], strict=True):
        dominated = any(
            (x2 <= x and y2 >= y) and (x2, y2) != (x, y)
            for x2, y2 in zip(data["x"], data["y"], strict=True)
        )
        assert on_front == (not dominated)
    figure = html_pareto(tmp_path)
    by_name = {t.name: t for t in figure.data}
    marked = by_name["rejected (over budget, not evaluated)"]
    assert sorted(marked.x) == sorted(data["rejected_x"])
    assert sorted(by_name["Pareto front"].x) == sorted(
        x for x, f in zip(data["x"], data["front"], strict=True) if f
    )
    written = write_plots(tmp_path, tmp_path / "plots")
    assert {p.name for p in written} == {
        "history.png",
        "importance.png",
        "history.html",
        "importance.html",
        "pareto.html",
    }
    assert "Plotly.newPlot" in (tmp_path / "plots" / "pareto.html").read_text()
    assert (tmp_path / "plots" / "plotly.min.js").exists()


def test_html_plots_without_plotly_fail_clearly_before_writing(
    toy_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "plotly", None)  # makes `import plotly` fail
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(MissingDependencyError, match=r"plotly.*qopt-loop\[plot\]"):
        write_plots(toy_run, tmp_path / "plots")
    assert not (tmp_path / "plots").exists()
    # The PNG plots alone still work.
    assert [p.name for p in write_plots(toy_run, tmp_path / "png", html=False)] == [
        "history.png",
        "importance.png",
    ]
