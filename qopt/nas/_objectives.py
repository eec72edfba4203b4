"""How an architecture is evaluated: a tabular benchmark or a user entry point."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qopt._optional import import_optional
from qopt.exceptions import InvalidProblemError
from qopt.nas._spec import SearchSpace, import_entry, where_in_spec
from qopt.nas._tables import NBG_DATASETS, NB201Table, NBGTable

__all__ = ["Evaluator", "import_entry", "objective_values", "resolve_evaluator"]

Evaluator = Callable[[dict[str, Any]], Mapping[str, float]]


def resolve_evaluator(
    space: SearchSpace, *, seed: int | None = None, run_dir: str | None = None
) -> Evaluator:
    """The function that evaluates an architecture of ``space`` (``space.evaluate``).

    ``"benchmark:nb201-<dataset>"`` is the NAS-Bench-201 table, ``"benchmark:nbg-<dataset>"``
    NAS-Bench-Graph's (:func:`nas_bench_graph_space`); ``"package.module:function"``
    imports ``function`` (also from the spec file's folder), which takes the architecture
    dict and returns a float (one objective) or a dict of metrics. With a ``train`` section
    the function builds a ``LightningModule`` instead, and the evaluator trains it
    (:class:`qopt.nas._lightning.LightningEvaluator`, pruning through the Optuna trial;
    weights kept in ``run_dir/weights``).

    Raises:
        InvalidProblemError: No ``evaluate`` entry, or its module or function does not exist.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> space = nas_bench_201_space()
        >>> metrics = resolve_evaluator(space, seed=0)({f"Op{i}": "skip_connect" for i in range(6)})
        >>> sorted(metrics)
        ['latency', 'model_size', 'train_time', 'val_acc']
    """
    where = where_in_spec(space.source, "evaluate")
    target = space.evaluate
    if target is None:
        raise InvalidProblemError(
            f"{where}: the spec has no 'evaluate' entry point; add 'evaluate: package.module:build' "
            "(a function of the architecture dict) or 'evaluate: benchmark:nb201-cifar10', or pass "
            "objective= to run_search()."
        )
    module_name, _, attr = target.partition(":")
    if module_name == "benchmark":
        if attr.startswith("nbg-"):
            return NBGTable(attr.removeprefix("nbg-"))
        if not attr.startswith("nb201-"):
            raise InvalidProblemError(
                f"{where}: unknown benchmark '{attr}'; the built-in ones are 'nb201-cifar10' "
                "(also nb201-cifar100, nb201-imagenet) and 'nbg-<dataset>' (NAS-Bench-Graph: "
                f"{', '.join(NBG_DATASETS)})."
            )
        return NB201Table(attr.removeprefix("nb201-"), seed)
    function = import_entry(space, target, "evaluate")
    if space.train is not None:
        import_optional("lightning", "lightning", "a 'train' objective of qopt.nas")
        import_optional("optuna_integration", "optuna", "pruning a 'train' objective of qopt.nas")
        from qopt.nas._lightning import LightningEvaluator

        data = (
            None
            if space.train.data is None
            else import_entry(space, space.train.data, "train.data")
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
