"""Results of a search: the top-k table and plots (best so far, Pareto front, importance).

Imported lazily by :mod:`qopt.nas`; imports Optuna at top level, matplotlib for PNG plots and
plotly for HTML plots when plotting (``pip install 'qopt-loop[plot]'``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt._optional import import_optional
from qopt.exceptions import InvalidProblemError
from qopt.nas._runner import STATUS_ATTR, load_run, trial_record
from qopt.nas._spec import SearchSpace

__all__ = [
    "format_table",
    "history",
    "html_history",
    "html_importance",
    "html_pareto",
    "importances",
    "pareto",
    "plot_history",
    "plot_importance",
    "plot_pareto",
    "top_k",
    "tradeoff",
    "write_plots",
]


def _signs(space: SearchSpace) -> list[float]:
    """+1 for objectives to minimize, -1 to maximize: sort keys where smaller is better."""
    return [1.0 if o.direction == "minimize" else -1.0 for o in space.objectives]


def _complete(run_dir: str | Path) -> tuple[list[FrozenTrial], SearchSpace, optuna.Study]:
    """The completed trials of a run in trial order, its space and its study."""
    study, space, _ = load_run(run_dir)
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.values
    ]
    return sorted(trials, key=lambda t: t.number), space, study


def _pareto_ranks(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Non-dominated sorting: rank 0 is the Pareto front, rank 1 the front of the rest, ...

    Each front is Optuna's ``best_trials`` of an in-memory study holding the points left.
    """
    ranks = [-1] * len(points)
    left = list(range(len(points)))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per front
    try:
        for rank in itertools.count():
            if not left:
                break
            study = optuna.create_study(directions=[StudyDirection[d.upper()] for d in directions])
            study.add_trials([optuna.trial.create_trial(values=list(points[i])) for i in left])
            front = {left[t.number] for t in study.best_trials}
            for i in front:
                ranks[i] = rank
            left = [i for i in left if i not in front]
    finally:
        optuna.logging.set_verbosity(verbosity)
    return ranks


def top_k(run_dir: str | Path, k: int = 10) -> list[dict[str, Any]]:
    """The ``k`` best completed trials, best first, as records with a ``rank``.

    One objective: sorted by it. Several: by Pareto rank (0 = the front), then by the first
    objective. Each record has ``trial``, ``architecture``, ``values``, ``costs``,
    ``within_budget`` and, for trained models, ``measured`` (params, MACs).

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice.integers("w", 1, 5)]), run_dir=d, sampler="random",
        ...                n_trials=5, seed=0, objective=lambda a: (a["w"] - 2.2) ** 2)
        >>> [(r["rank"], r["architecture"]["w"]) for r in top_k(d, 3)]
        [(1, 2), (2, 3), (3, 1)]
    """
    trials, space, _ = _complete(run_dir)
    several = len(space.objectives) > 1
    directions = [o.direction for o in space.objectives]
    ranks = _pareto_ranks([t.values for t in trials], directions) if several else [0] * len(trials)
    sign = _signs(space)[0]
    order = sorted(
        range(len(trials)), key=lambda i: (ranks[i], sign * trials[i].values[0], trials[i].number)
    )
    records = []
    for position, i in enumerate(order[: max(0, k)], start=1):
        record = trial_record(trials[i], space)
        record["rank"] = position
        if several:
            record["pareto_rank"] = ranks[i]
        records.append(record)
    return records


def format_table(records: Sequence[dict[str, Any]], space: SearchSpace | None = None) -> str:
    """A Markdown table of trial records (:func:`top_k`): architecture, objectives, costs.

    Examples:
        >>> print(format_table([{"rank": 1, "trial": 4, "architecture": {"w": 2},
        ...                      "values": {"loss": 0.0}, "costs": {}}]))
        | rank | trial | architecture | loss |
        | --- | --- | --- | --- |
        | 1 | 4 | w=2 | 0 |
    """
    if not records:
        return "(no completed trials)"
    objectives = list(records[0]["values"])
    costs = list(records[0].get("costs", {}))
    measured = sorted({m for r in records for m in r.get("measured", {})})
    limits = {} if space is None else {b.name: b.max for b in space.budgets}
    header = ["rank", "trial", "architecture", *objectives]
    header += [f"{c} (<= {limits[c]:g})" if c in limits else c for c in costs]
    header += [f"measured {m}" for m in measured]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for r in records:
        arch = ", ".join(f"{k}={v}" for k, v in r["architecture"].items())
        cells = [str(r.get("rank", "")), str(r["trial"]), arch]
        cells += [f"{r['values'][o]:.6g}" for o in objectives]
        cells += [f"{r['costs'][c]:.6g}" for c in costs]
        cells += [f"{r.get('measured', {}).get(m, math.nan):.6g}" for m in measured]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def history(run_dir: str | Path, objective: int = 0) -> dict[str, list[float]]:
    """Completed trials in order: trial numbers, values of one objective, best so far.

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice.integers("w", 1, 5)]), run_dir=d, sampler="random",
        ...                n_trials=4, seed=0, objective=lambda a: a["w"])
        >>> data = history(d)
        >>> data["best"] == [min(data["value"][: i + 1]) for i in range(4)]
        True
    """
    trials, space, _ = _complete(run_dir)
    sign = _signs(space)[objective]
    numbers = [float(t.number) for t in trials]
    values = [float(t.values[objective]) for t in trials]
    best: list[float] = []
    for v in values:
        best.append(v if not best or sign * v < sign * best[-1] else best[-1])
    return {"trial": numbers, "value": values, "best": best}


def pareto(run_dir: str | Path) -> dict[str, Any]:
    """Two objectives of every completed trial, and which trials form the Pareto front.

    Raises:
        InvalidProblemError: The search does not have exactly two objectives.
    """
    trials, space, study = _complete(run_dir)
    if len(space.objectives) != 2:
        raise InvalidProblemError(
            f"A Pareto front plot needs two objectives; study '{space.name}' has "
            f"{len(space.objectives)} ({[o.name for o in space.objectives]})."
        )
    front = {t.number for t in study.best_trials}
    return {
        "names": [o.name for o in space.objectives],
        "trial": [t.number for t in trials],
        "x": [float(t.values[0]) for t in trials],
        "y": [float(t.values[1]) for t in trials],
        "front": [t.number in front for t in trials],
    }


def _pyplot() -> Any:
    matplotlib = import_optional("matplotlib", "plot", "qopt nas plots")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_history(run_dir: str | Path, path: str | Path | None = None) -> Any:
    """Objective value of each trial and the best so far; the matplotlib Figure (PNG at ``path``)."""
    plt = _pyplot()
    _, space, _ = _complete(run_dir)
    data = history(run_dir)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(data["trial"], data["value"], "o", alpha=0.5, label="trial")
    axes.plot(data["trial"], data["best"], "-", drawstyle="steps-post", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{space.objectives[0].name} ({space.objectives[0].direction})")
    axes.set_title(f"{space.name}: optimization history")
    axes.legend()
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def plot_pareto(run_dir: str | Path, path: str | Path | None = None) -> Any:
    """The two objectives of every trial with the Pareto front drawn; the Figure."""
    plt = _pyplot()
    data = pareto(run_dir)
    figure, axes = plt.subplots(figsize=(6, 4))
    rest = [i for i, f in enumerate(data["front"]) if not f]
    front = sorted((i for i, f in enumerate(data["front"]) if f), key=lambda i: data["x"][i])
    axes.plot(
        [data["x"][i] for i in rest], [data["y"][i] for i in rest], "o", alpha=0.4, label="trial"
    )
    axes.plot(
        [data["x"][i] for i in front],
        [data["y"][i] for i in front],
        "o-",
        color="C3",
        label="Pareto front",
    )
    axes.set_xlabel(data["names"][0])
    axes.set_ylabel(data["names"][1])
    axes.legend()
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def importances(run_dir: str | Path, objective: int = 0) -> dict[str, float]:
    """Importance of each choice for one objective (fANOVA: Hutter, Hoos & Leyton-Brown,
    ICML 2014, as :func:`optuna.importance.get_param_importances` computes it, seed 0).

    Shares summing to 1, largest first; choices that never varied are left out.

    Raises:
        InvalidProblemError: Fewer than two completed trials.

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> space = SearchSpace([Choice.integers("a", 1, 4), Choice.integers("b", 1, 4)])
        >>> _ = run_search(space, run_dir=d, sampler="random", n_trials=12, seed=0,
        ...                objective=lambda arch: 10 * arch["a"] + arch["b"])
        >>> shares = importances(d)
        >>> next(iter(shares)), round(sum(shares.values()), 6)
        ('a', 1.0)
    """
    import_optional("sklearn", "plot", "Parameter importance (fANOVA)")
    trials, space, study = _complete(run_dir)
    if len(trials) < 2:
        raise InvalidProblemError(
            f"Parameter importance needs at least two completed trials; study '{space.name}' "
            f"has {len(trials)}. Run more trials first."
        )
    shares = optuna.importance.get_param_importances(
        study,
        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
        target=lambda t: float(t.values[objective]),
    )
    return {str(k): float(v) for k, v in shares.items()}


def plot_importance(run_dir: str | Path, path: str | Path | None = None) -> Any:
    """Bar chart of :func:`importances` (first objective); the Figure (PNG at ``path``)."""
    plt = _pyplot()
    _, space, _ = _complete(run_dir)
    shares = importances(run_dir)
    names = list(shares)[::-1]
    figure, axes = plt.subplots(figsize=(6, 0.8 + 0.35 * max(1, len(names))))
    axes.barh(names, [shares[n] for n in names], color="C0")
    axes.set_xlabel(f"importance for {space.objectives[0].name} (fANOVA)")
    axes.set_title(f"{space.name}: parameter importance")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def tradeoff(run_dir: str | Path) -> dict[str, Any]:
    """The points of the Pareto plot: two objectives, or the objective against the first budget.

    With two objectives the axes are the objectives; with one objective and a budget, the
    budget's cost (x, smaller is better) against the objective (y). Every completed trial is a
    point; ``front`` marks the non-dominated ones among those within every budget, and
    ``feasible`` whether a point is within budget. Over-budget proposals that were rejected
    (never evaluated) have no objective value: ``rejected`` holds their trial numbers and,
    on a cost axis, their costs.

    Raises:
        InvalidProblemError: One objective and no budget: nothing to trade off.

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Budget, Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> space = SearchSpace([Choice.integers("w", 1, 6)],
        ...                     budgets=[Budget("params", 4, costs={"w": {v: v for v in range(1, 7)}})])
        >>> _ = run_search(space, run_dir=d, sampler="random", n_trials=4, seed=0,
        ...                objective=lambda a: -a["w"])
        >>> data = tradeoff(d)
        >>> data["names"], all(data["feasible"]), sorted(data["x"])
        (['params', 'objective'], True, [1.0, 2.0, 3.0, 4.0])
    """
    trials, space, study = _complete(run_dir)
    names = [o.name for o in space.objectives]
    directions = [o.direction for o in space.objectives]
    limits = {b.name: b.max for b in space.budgets}

    def feasible(t: FrozenTrial) -> bool:
        return all(
            float(t.user_attrs.get(f"cost:{n}", -math.inf)) <= m + 1e-9 for n, m in limits.items()
        )

    rejected = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) == "rejected"
    ]
    if len(names) >= 2:
        axes = names[:2]
        xs = [float(t.values[0]) for t in trials]
        ys = [float(t.values[1]) for t in trials]
        x_direction, y_direction = directions[0], directions[1]
        rejected_x: list[float] = []
    elif space.budgets:
        budget = space.budgets[0].name
        axes = [budget, names[0]]
        xs = [float(t.user_attrs.get(f"cost:{budget}", math.nan)) for t in trials]
        ys = [float(t.values[0]) for t in trials]
        x_direction, y_direction = "minimize", directions[0]
        rejected_x = [float(t.user_attrs.get(f"cost:{budget}", math.nan)) for t in rejected]
    else:
        raise InvalidProblemError(
            f"A Pareto plot needs two objectives or a budget; study '{space.name}' has one "
            f"objective ({names[0]}) and no budget."
        )
    ok = [feasible(t) for t in trials]
    inside = [i for i in range(len(trials)) if ok[i]]
    ranks = _pareto_ranks([(xs[i], ys[i]) for i in inside], [x_direction, y_direction])
    front = [False] * len(trials)
    for i, r in zip(inside, ranks, strict=True):
        front[i] = r == 0
    return {
        "names": axes,
        "trial": [t.number for t in trials],
        "x": xs,
        "y": ys,
        "front": front,
        "feasible": ok,
        "rejected": [t.number for t in rejected],
        "rejected_x": rejected_x,
        "limit": limits.get(axes[0]),
    }


def _plotly() -> None:
    import_optional("plotly", "plot", "qopt nas HTML plots")


def html_history(run_dir: str | Path) -> Any:
    """Optuna's interactive optimization history (first objective); a plotly Figure."""
    _plotly()
    _, space, study = _complete(run_dir)
    objective = space.objectives[0]
    return optuna.visualization.plot_optimization_history(
        study,
        target=lambda t: float(t.values[0]),
        target_name=f"{objective.name} ({objective.direction})",
    )


def html_importance(run_dir: str | Path) -> Any:
    """Optuna's interactive chart of :func:`importances` (the same fANOVA shares); a plotly
    Figure."""
    _plotly()
    import_optional("sklearn", "plot", "Parameter importance (fANOVA)")
    _, space, study = _complete(run_dir)
    return optuna.visualization.plot_param_importances(
        study,
        evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
        target=lambda t: float(t.values[0]),
        target_name=space.objectives[0].name,
    )


def html_pareto(run_dir: str | Path) -> Any:
    """Interactive Pareto plot of :func:`tradeoff`, infeasible points marked; a plotly Figure.

    Several objectives: Optuna's ``plot_pareto_front`` of the first two or three. One
    objective against the first budget's cost: completed trials within budget are blue, the
    front is joined in red, completed trials over a budget are grey crosses, the budget is a
    dashed line and rejected over-budget proposals (never evaluated) are red crosses along
    the bottom edge.
    """
    _plotly()
    import plotly.graph_objects as go

    _, space, study = _complete(run_dir)
    names = [o.name for o in space.objectives][:3]
    if len(names) >= 2:
        return optuna.visualization.plot_pareto_front(
            study, targets=lambda t: t.values[: len(names)], target_names=names
        )
    data = tradeoff(run_dir)
    figure = go.Figure()

    def add(indices: list[int], name: str, **style: Any) -> None:
        figure.add_trace(
            go.Scatter(
                x=[data["x"][i] for i in indices],
                y=[data["y"][i] for i in indices],
                text=[f"trial {data['trial'][i]}" for i in indices],
                name=name,
                **style,
            )
        )

    n = len(data["trial"])
    add(
        [i for i in range(n) if data["feasible"][i] and not data["front"][i]],
        "trial",
        mode="markers",
        marker={"color": "#1f77b4", "opacity": 0.6},
    )
    add(
        sorted((i for i in range(n) if data["front"][i]), key=lambda i: data["x"][i]),
        "Pareto front",
        mode="lines+markers",
        marker={"color": "#d62728"},
    )
    add(
        [i for i in range(n) if not data["feasible"][i]],
        "over budget",
        mode="markers",
        marker={"color": "#7f7f7f", "symbol": "x"},
    )
    if data["rejected_x"]:
        bottom = min(data["y"]) if data["y"] else 0.0
        figure.add_trace(
            go.Scatter(
                x=data["rejected_x"],
                y=[bottom] * len(data["rejected_x"]),
                text=[f"trial {t}: rejected, not evaluated" for t in data["rejected"]],
                name="rejected (over budget, not evaluated)",
                mode="markers",
                marker={"color": "#d62728", "symbol": "x", "size": 9},
            )
        )
    if data["limit"] is not None:
        figure.add_vline(x=data["limit"], line_dash="dash", annotation_text="budget")
    figure.update_layout(
        title=f"{space.name}: Pareto front ({len(data['rejected'])} rejected over budget)",
        xaxis_title=data["names"][0],
        yaxis_title=data["names"][1],
    )
    return figure


def write_plots(run_dir: str | Path, out_dir: str | Path, *, html: bool = True) -> list[Path]:
    """PNG and HTML plots of a run in ``out_dir``; their paths.

    PNG (matplotlib): ``history.png``, ``importance.png`` (two or more completed trials) and,
    with two objectives, ``pareto.png``. HTML (plotly; the files share one ``plotly.min.js``
    written beside them, so they open offline): ``history.html``, ``importance.html`` and,
    with two objectives or a budget, ``pareto.html`` (infeasible points marked).

    Raises:
        MissingDependencyError: matplotlib, scikit-learn (importance) or, with ``html=True``,
            plotly is not installed (``pip install 'qopt-loop[plot]'``); checked before any file
            is written.
    """
    plt = _pyplot()
    trials, space, _ = _complete(run_dir)
    if len(trials) >= 2:
        import_optional("sklearn", "plot", "Parameter importance (fANOVA)")
    if html:
        _plotly()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "history.png"]
    plt.close(plot_history(run_dir, written[0]))
    if len(space.objectives) == 2:
        written.append(out / "pareto.png")
        plt.close(plot_pareto(run_dir, written[-1]))
    if len(trials) >= 2:
        written.append(out / "importance.png")
        plt.close(plot_importance(run_dir, written[-1]))
    if html:
        figures = [("history.html", html_history(run_dir))]
        if len(trials) >= 2:
            figures.append(("importance.html", html_importance(run_dir)))
        if len(space.objectives) >= 2 or space.budgets:
            figures.append(("pareto.html", html_pareto(run_dir)))
        for name, figure in figures:
            figure.write_html(out / name, include_plotlyjs="directory")
            written.append(out / name)
    return written
