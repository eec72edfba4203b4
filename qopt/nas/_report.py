"""Results of a search: the top-k table and plots (best so far, Pareto front).

Imported lazily by :mod:`qopt.nas`; imports Optuna at top level and matplotlib when plotting
(``pip install 'qopt[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from qopt.exceptions import InvalidProblemError
from qopt.nas._runner import _load, _trial_record
from qopt.nas._spec import SearchSpace

__all__ = [
    "format_table",
    "history",
    "pareto",
    "plot_history",
    "plot_pareto",
    "top_k",
    "write_plots",
]


def _signs(space: SearchSpace) -> list[float]:
    """+1 for objectives to minimize, -1 to maximize: sort keys where smaller is better."""
    return [1.0 if o.direction == "minimize" else -1.0 for o in space.objectives]


def _complete(run_dir: str | Path) -> tuple[list[FrozenTrial], SearchSpace]:
    study, space, _ = _load(run_dir)
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.values
    ]
    return sorted(trials, key=lambda t: t.number), space


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def _pareto_ranks(points: list[list[float]]) -> list[int]:
    """Non-dominated sorting (minimization): rank 0 is the front, rank 1 the next, ..."""
    ranks = [-1] * len(points)
    rank, left = 0, set(range(len(points)))
    while left:
        front = {i for i in left if not any(_dominates(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
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
    trials, space = _complete(run_dir)
    signs = _signs(space)
    points = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials]
    ranks = _pareto_ranks(points) if len(signs) > 1 else [0] * len(trials)
    order = sorted(range(len(trials)), key=lambda i: (ranks[i], points[i][0], trials[i].number))
    records = []
    for position, i in enumerate(order[: max(0, k)], start=1):
        record = _trial_record(trials[i], space)
        record["rank"] = position
        if len(signs) > 1:
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
    trials, space = _complete(run_dir)
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
    trials, space = _complete(run_dir)
    if len(space.objectives) != 2:
        raise InvalidProblemError(
            f"A Pareto front plot needs two objectives; study '{space.name}' has "
            f"{len(space.objectives)} ({[o.name for o in space.objectives]})."
        )
    signs = _signs(space)
    points = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials]
    ranks = _pareto_ranks(points)
    return {
        "names": [o.name for o in space.objectives],
        "trial": [t.number for t in trials],
        "x": [float(t.values[0]) for t in trials],
        "y": [float(t.values[1]) for t in trials],
        "front": [r == 0 for r in ranks],
    }


def _pyplot() -> Any:
    from qopt._optional import import_optional

    matplotlib = import_optional("matplotlib", "plot", "qopt nas plots")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_history(run_dir: str | Path, path: str | Path | None = None) -> Any:
    """Objective value of each trial and the best so far; the matplotlib Figure (PNG at ``path``)."""
    plt = _pyplot()
    _, space = _complete(run_dir)
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


def write_plots(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """``history.png`` (and ``pareto.png`` for two objectives) in ``out_dir``; their paths."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, space = _complete(run_dir)
    written = [out / "history.png"]
    plt.close(plot_history(run_dir, written[0]))
    if len(space.objectives) == 2:
        written.append(out / "pareto.png")
        plt.close(plot_pareto(run_dir, written[1]))
    return written
