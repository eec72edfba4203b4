"""NAS-Bench-Graph as a search space: exact table budgets and a relaxed QUBO."""

from __future__ import annotations

import itertools
import sys
from typing import Any

import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, MissingDependencyError
from qopt.nas import Budget, SearchSpace, nas_bench_graph_space, resolve_evaluator
from qopt.nas._tables import nbg_column

DATASET = "pubmed"
MAX_MPARAMS = 0.16  # about the 25th percentile of pubmed's parameter counts: the optimum is over


def table_cost(architecture: dict[str, Any], column: str) -> float:
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
        assert space.cost(arch, "params") == table_cost(arch, "para")
        assert space.cost(arch, "latency") == table_cost(arch, "latency")


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
    assert max(table_cost(a, "para") for a in evaluated) <= MAX_MPARAMS
    assert summary.n_over_budget_evaluated == 0
    if sampler == "tpe":
        assert summary.n_rejected > 0  # TPE ignores budgets: the check above was exercised
