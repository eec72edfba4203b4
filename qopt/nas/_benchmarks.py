"""The tabular benchmarks as search spaces: NAS-Bench-201 and NAS-Bench-Graph."""

from __future__ import annotations

from qopt.exceptions import InvalidProblemError
from qopt.nas._spec import Budget, Choice, Objective, SearchSpace
from qopt.nas._tables import (
    NB201_BASE_MPARAMS,
    NB201_EDGE_MPARAMS,
    NB201_OPS,
    NBG_CHOICES,
    NBG_DATASETS,
    NBG_LINKS,
    import_nbg,
    nbg_lower_bound,
    nbg_ops,
)

__all__ = ["nas_bench_201_space", "nas_bench_graph_space"]


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
                costs={f"Op{i}": dict(NB201_EDGE_MPARAMS) for i in range(6)},
                constant=NB201_BASE_MPARAMS,
            )
        )
    return SearchSpace(
        [Choice(f"Op{i}", "categorical", NB201_OPS) for i in range(6)],
        budgets=budgets,
        objectives=[Objective("val_acc", "maximize")],
        evaluate=f"benchmark:nb201-{dataset}",
        name=name or f"nb201-{dataset}",
    )


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
    import_nbg()
    if dataset not in NBG_DATASETS:
        raise InvalidProblemError(
            f"The 'dataset' parameter of nas_bench_graph_space must be a str among "
            f"{list(NBG_DATASETS)}. Got {dataset!r} instead."
        )
    ops = nbg_ops(dataset)
    choices = [Choice("link", "categorical", NBG_LINKS)] + [
        Choice(n, "categorical", ops) for n in NBG_CHOICES[1:]
    ]
    budgets = []
    for kind, limit in (("params", max_mparams), ("latency", max_latency)):
        if limit is None:
            continue
        constant, parts = nbg_lower_bound(dataset, kind)
        budgets.append(
            Budget(
                kind,
                limit,
                kind=kind,
                costs={
                    n: {v: float(x) for v, x in zip(c.values, part, strict=True)}
                    for n, c, part in zip(NBG_CHOICES, choices, parts, strict=True)
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
