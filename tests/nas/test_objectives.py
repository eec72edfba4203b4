"""Built-in tabular objectives: NAS-Bench-Graph with exact table budgets and a relaxed QUBO."""

from __future__ import annotations

import itertools
import sys
from typing import Any

import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, MissingDependencyError
from qopt.nas import Budget, SearchSpace, nas_bench_graph_space, resolve_evaluator

DATASET = "pubmed"
MAX_MPARAMS = 0.16  # about the 25th percentile of pubmed's parameter counts: the optimum is over


def _table_cost(architecture: dict[str, Any], column: str) -> float:
    """The table's cost read straight from the package (independent of qopt's arrays)."""
    from nas_bench_graph import Arch, light_read

    cell = Arch([int(c) for c in architecture["link"]], [architecture[f"op{i}"] for i in range(4)])
    row = light_read(DATASET).get(cell.valid_hash())
    return float("inf") if row is None else float(row[column])


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nas_bench_graph", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"nas-bench-graph==1\.4\.0"):
        nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS)


def test_bad_dataset_and_bad_exact_reference() -> None:
    pytest.importorskip("nas_bench_graph")
    with pytest.raises(InvalidProblemError, match="'dataset' parameter"):
        nas_bench_graph_space(dataset="mnist")
    with pytest.raises(InvalidProblemError, match="exact="):
        Budget("params", 1.0, costs={"link": {"0000": 0.0}}, exact="nbg-cora")
    space = nas_bench_graph_space(dataset=DATASET)
    data = space.to_dict()
    data["budgets"] = [
        {"name": "params", "max": 1.0, "costs": {"op0": {"gcn": 0.1}}, "exact": "benchmark:x:y"}
    ]
    with pytest.raises(InvalidProblemError, match=r"budgets\[0\]\.exact.*unknown exact cost"):
        SearchSpace.from_dict(data)


def test_budget_polynomial_is_a_lower_bound_on_the_table_everywhere() -> None:
    pytest.importorskip("nas_bench_graph")
    space = nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS, max_latency=0.003)
    from qopt.nas._tables import nbg_column

    for b_index, (budget, column) in enumerate(
        zip(space.budgets, ("para", "latency"), strict=True)
    ):
        exact = nbg_column(DATASET, column)
        parts = [space.unary_costs(b_index)[n] for n in ("link", "op0", "op1", "op2", "op3")]
        bound = budget.constant + sum(
            np.expand_dims(p, [a for a in range(5) if a != i]) for i, p in enumerate(parts)
        )
        finite = np.isfinite(exact)
        assert finite.sum() == 59049 - 9  # only the all-skip cell (9 link patterns) is missing
        assert np.all(bound[finite] <= exact[finite])  # never cuts off a feasible cell
        over = finite & (exact > budget.max)
        # ...and the relaxation is informative: it excludes a good share of the over-budget cells.
        assert np.mean(bound[over] > budget.max) > 0.2
    # The space's costs are the exact table values, not the polynomial.
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.architecture(
            {n: int(rng.integers(len(c.values))) for n, c in space.choices.items()}
        )
        assert space.cost(arch, "params") == _table_cost(arch, "para")
        assert space.cost(arch, "latency") == _table_cost(arch, "latency")


def test_evaluator_reads_the_table_and_refuses_the_missing_cell() -> None:
    pytest.importorskip("nas_bench_graph")
    space = nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS)
    evaluate = resolve_evaluator(space)
    chain = {"link": "0123", "op0": "gcn", "op1": "gcn", "op2": "gcn", "op3": "gcn"}
    metrics = evaluate(chain)
    assert sorted(metrics) == ["latency", "params", "test_perf", "valid_perf"]
    assert metrics["params"] == _table_cost(chain, "para")
    # Four parallel nodes on the input: permuting their operations gives the same cell.
    parallel = {"link": "0000", "op0": "gat", "op1": "gcn", "op2": "sage", "op3": "fc"}
    permuted = {"link": "0000", "op0": "fc", "op1": "sage", "op2": "gat", "op3": "gcn"}
    assert evaluate(parallel) == evaluate(permuted)
    assert evaluate(parallel) != evaluate(chain)
    skips = {"link": "0000", **{f"op{i}": "skip" for i in range(4)}}
    with pytest.raises(InvalidProblemError, match="no cell"):
        evaluate(skips)
    assert not space.within_budget(skips)  # costs inf: repaired, never evaluated


def test_exact_budget_survives_serialisation() -> None:
    # Workers in other processes and `qopt nas status` rebuild the space from its dict: the
    # exact cost must come back, or they would accept cells the relaxation lets through.
    pytest.importorskip("nas_bench_graph")
    space = nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS)
    again = SearchSpace.from_dict(space.to_dict())
    budget = space.budgets[0]
    slipping = None
    for combo in itertools.product(*(c.values for c in space.choices.values())):
        arch = dict(zip(space.choices, combo, strict=True))
        if budget.cost(arch) <= budget.max < space.cost(arch):
            slipping = arch
            break
    assert slipping is not None
    assert not space.within_budget(slipping) and not again.within_budget(slipping)
    assert again.cost(slipping) == space.cost(slipping)


@pytest.mark.parametrize("sampler", ["qubo", "tpe"])
def test_no_evaluated_architecture_is_over_the_exact_budget(sampler: str) -> None:
    pytest.importorskip("nas_bench_graph")
    pytest.importorskip("optuna")
    from qopt.nas import run_search

    space = nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS)
    table = resolve_evaluator(space)
    evaluated: list[dict[str, Any]] = []

    def objective(arch: dict[str, Any]) -> Any:
        evaluated.append(dict(arch))
        return table(arch)

    summary = run_search(space, sampler=sampler, n_trials=15, seed=0, objective=objective)
    assert len(evaluated) == summary.n_evaluated == 15
    # Checked on the package's own table, not through the space's cost arrays.
    assert max(_table_cost(a, "para") for a in evaluated) <= MAX_MPARAMS
    assert summary.n_over_budget_evaluated == 0
    if sampler == "tpe":
        assert summary.n_rejected > 0  # TPE ignores budgets: the check above was exercised
