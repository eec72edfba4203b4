"""Offline architecture search (``qopt nas``): a search space with hard budgets, searched on
Optuna storage by the QUBO sampler or a baseline, resumable and parallel.

The space model (:class:`SearchSpace`, :class:`Choice`, :class:`Budget`, :class:`Objective`,
:class:`Training`, :func:`load_spec`) is framework-free; :func:`run_search`, :func:`status`,
:func:`report`, :func:`export`, :func:`export_model` and :func:`demo` import Optuna when
called (``pip install 'qopt[optuna]'``); a spec with a ``train`` section trains Lightning
modules (``qopt[lightning]``), and plots need ``qopt[plot]``. The tabular benchmarks
(:func:`nas_bench_201_space`, :func:`nas_bench_graph_space`) need ``qopt[bench]``.

Examples:
    >>> from qopt.nas import Budget, Choice, Objective, PairCost, SearchSpace
    >>> space = SearchSpace(
    ...     [Choice.integers("width_1", 16, 64, step=16), Choice.integers("width_2", 16, 64, step=16)],
    ...     budgets=[Budget("params", 2048, kind="params",
    ...                     pairs=(PairCost("width_1", "width_2", coefficient=1.0),))],
    ...     objectives=[Objective("loss", "minimize")],
    ... )
    >>> space.cost({"width_1": 32, "width_2": 64}, "params"), space.within_budget({"width_1": 64, "width_2": 48})
    (2048.0, False)
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from qopt._optional import import_optional
from qopt.nas._benchmarks import nas_bench_201_space, nas_bench_graph_space
from qopt.nas._objectives import resolve_evaluator
from qopt.nas._spec import (
    Budget,
    Choice,
    Objective,
    PairCost,
    QoptBudgetWarning,
    SearchSpace,
    Training,
    load_spec,
)
from qopt.nas._tables import NB201_OPS, NBG_DATASETS, NBG_LINKS

if TYPE_CHECKING:
    from qopt.nas._runner import RunSummary

__all__ = [
    "NB201_OPS",
    "NBG_DATASETS",
    "NBG_LINKS",
    "Budget",
    "Choice",
    "Objective",
    "PairCost",
    "QoptBudgetWarning",
    "SearchSpace",
    "Training",
    "demo",
    "export",
    "export_model",
    "load_model",
    "load_spec",
    "nas_bench_201_space",
    "nas_bench_graph_space",
    "report",
    "resolve_evaluator",
    "run_search",
    "status",
]


def _load_runner() -> ModuleType:
    """The runner module, which needs Optuna (an error names the extra when it is missing)."""
    import_optional("optuna", "optuna", "qopt.nas")
    from qopt.nas import _runner

    return _runner


def run_search(space: SearchSpace, **options: Any) -> RunSummary:
    """Search ``space``; see :func:`qopt.nas._runner.run_search` for the options.

    Examples:
        >>> space = SearchSpace([Choice.integers("w", 1, 6)])
        >>> run_search(space, sampler="random", n_trials=6, seed=0, objective=lambda a: -a["w"]).best[0]["architecture"]
        {'w': 6}
    """
    result: RunSummary = _load_runner().run_search(space, **options)
    return result


def status(run_dir: str) -> RunSummary:
    """Where the search in ``run_dir`` stands; see :func:`qopt.nas._runner.status`.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice.integers("w", 1, 3)]), run_dir=d, sampler="random",
        ...                n_trials=2, seed=0, objective=lambda a: a["w"])
        >>> status(d).n_evaluated
        2
    """
    result: RunSummary = _load_runner().status(run_dir)
    return result


def export(run_dir: str, path: str | None = None) -> list[dict[str, Any]]:
    """The best architecture (Pareto front) of ``run_dir`` as JSON-ready dicts.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice.integers("w", 1, 3)]), run_dir=d, sampler="random",
        ...                n_trials=3, seed=0, objective=lambda a: a["w"])
        >>> export(d)[0]["values"]
        {'objective': 1.0}
    """
    result: list[dict[str, Any]] = _load_runner().export(run_dir, path)
    return result


def export_model(run_dir: str, **options: Any) -> Any:
    """The best architecture as a torch module; see :func:`qopt.nas._runner.export_model`.

    Examples:
        >>> import tempfile, torch
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice("width", "ordinal", (2, 4))]), run_dir=d,
        ...                sampler="random", n_trials=2, seed=0, objective=lambda a: -a["width"])
        >>> export_model(d, build=lambda a: torch.nn.Linear(3, a["width"])).out_features
        4
    """
    return _load_runner().export_model(run_dir, **options)


def load_model(path: str, **options: Any) -> Any:
    """A module saved by ``export_model(..., path=)``; see :func:`qopt.nas._runner.load_model`.

    Examples:
        >>> load_model.__name__
        'load_model'
    """
    return _load_runner().load_model(path, **options)


def report(
    run_dir: str, *, top: int = 10, plots: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The top-``top`` table of a run (Markdown) and its records; plots into ``plots``.

    Plots (``pip install 'qopt[plot]'``: matplotlib, plotly, scikit-learn): ``history.png``
    and ``history.html`` (each trial's first objective and the best so far),
    ``importance.png`` and ``importance.html`` (fANOVA importance of each choice), with two
    objectives ``pareto.png``, and with two objectives or a budget ``pareto.html`` (the
    Pareto front, infeasible points marked). A missing package raises
    :class:`qopt.exceptions.MissingDependencyError` before any file is written.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice.integers("w", 1, 3)]), run_dir=d, sampler="random",
        ...                n_trials=3, seed=0, objective=lambda a: a["w"])
        >>> table, records = report(d, top=2)
        >>> print(table)
        | rank | trial | architecture | objective |
        | --- | --- | --- | --- |
        | 1 | 2 | w=1 | 1 |
        | 2 | 1 | w=2 | 2 |
    """
    _, space, _ = _load_runner().load_run(run_dir)
    from qopt.nas import _report  # needs Optuna, checked above

    records = _report.top_k(run_dir, top)
    if plots is not None:
        _report.write_plots(run_dir, plots)
    return _report.format_table(records, space), records


def demo(
    out: Any = None,
    *,
    n_trials: int = 30,
    max_mparams: float = 0.6,
    seed: int = 0,
    sampler: str = "qubo",
) -> RunSummary:
    """A short NAS-Bench-201 (CIFAR-10, tabular) search under a parameter budget.

    Prints the best architecture and how many evaluated trials went over the budget (none).

    Examples:
        >>> import io
        >>> buffer = io.StringIO()
        >>> summary = demo(buffer, n_trials=12, seed=0)
        >>> summary.n_over_budget_evaluated, "over budget: 0" in buffer.getvalue()
        (0, True)
    """
    out = out or sys.stdout
    space = nas_bench_201_space(max_mparams=max_mparams)
    summary = run_search(space, sampler=sampler, n_trials=n_trials, seed=seed)
    best = summary.best[0]
    out.write(
        f"Architecture search on NAS-Bench-201 CIFAR-10 (tabular), {sampler} sampler, "
        f"{summary.n_evaluated} evaluations, parameter budget {max_mparams} M\n"
    )
    ops = ", ".join(f"{k}={v}" for k, v in best["architecture"].items())
    out.write(
        f"best: {ops}\n  val_acc {best['values']['val_acc']:.2f} %, "
        f"params {best['costs']['params']:.3f} M (budget {max_mparams} M)\n"
    )
    out.write(
        f"trials evaluated over budget: {summary.n_over_budget_evaluated}; proposals rejected "
        f"before evaluation: {summary.n_rejected}\n"
    )
    return summary
