"""How an architecture is evaluated: the built-in tables as evaluators."""

from __future__ import annotations

import pytest

from qopt.exceptions import InvalidProblemError
from qopt.nas import nas_bench_graph_space, resolve_evaluator

from .test_benchmarks import DATASET, MAX_MPARAMS, table_cost


def test_evaluator_reads_the_table_and_refuses_the_missing_cell() -> None:
    pytest.importorskip("nas_bench_graph")
    space = nas_bench_graph_space(dataset=DATASET, max_mparams=MAX_MPARAMS)
    evaluate = resolve_evaluator(space)
    chain = {"link": "0123", "op0": "gcn", "op1": "gcn", "op2": "gcn", "op3": "gcn"}
    metrics = evaluate(chain)
    assert sorted(metrics) == ["latency", "params", "test_perf", "valid_perf"]
    assert metrics["params"] == table_cost(chain, "para")
    # Four parallel nodes on the input: permuting their operations gives the same cell.
    parallel = {"link": "0000", "op0": "gat", "op1": "gcn", "op2": "sage", "op3": "fc"}
    permuted = {"link": "0000", "op0": "fc", "op1": "sage", "op2": "gat", "op3": "gcn"}
    assert evaluate(parallel) == evaluate(permuted)
    assert evaluate(parallel) != evaluate(chain)
    skips = {"link": "0000", **{f"op{i}": "skip" for i in range(4)}}
    with pytest.raises(InvalidProblemError, match="no cell"):
        evaluate(skips)
    assert not space.within_budget(skips)  # costs inf: repaired, never evaluated
