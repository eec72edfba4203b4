"""Quality of the default solver on the public instances (quality only: no timing here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qopt.io import load_problem
from qopt.solvers import get_solver


def test_sa_reaches_999_permille_of_g1_best_known(shared_data: Path) -> None:
    problem = load_problem(shared_data / "gset" / "G1.txt")
    sampleset = get_solver("sa", seed=0).sample(problem.bqm)
    assert problem.best_known is not None
    assert problem.objective(sampleset.first.energy) >= 0.999 * problem.best_known


@pytest.mark.parametrize("instance", [f"bqp{n}-{k}" for n in (50, 100) for k in range(1, 11)])
def test_sa_reaches_the_proven_optimum_of_beasley_instances(
    shared_data: Path, instance: str
) -> None:
    problem = load_problem(shared_data / "beasley" / f"{instance}.txt")
    sampleset = get_solver("sa", seed=0, num_reads=20).sample(problem.bqm)
    assert sampleset.first.energy == problem.best_known
