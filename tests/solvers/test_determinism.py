"""Same seed twice, same result: for every local solver and every searcher.

A seeded result must never depend on the clock or on the machine's load (a 100 ms timeout
once decided seeded tabu's answer), so each case runs twice and compares everything the
caller sees: samples, energies, proposals.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import dimod
import numpy as np
import pytest

from qopt.exceptions import SolverConfigurationError
from qopt.solvers import DecompositionSolver, TabuSolver, get_solver


def rows(sampleset: dimod.SampleSet) -> list[tuple[Any, ...]]:
    """Everything a caller reads from a sample set, in its order."""
    labels = list(sampleset.variables)
    return [
        (tuple(int(sample[v]) for v in labels), float(energy), int(occurrences))
        for sample, energy, occurrences in sampleset.data(
            ["sample", "energy", "num_occurrences"], sorted_by=None
        )
    ]


def problem(num_variables: int, seed: int) -> dimod.BinaryQuadraticModel:
    return dimod.generators.ran_r(5, num_variables, seed=seed)


LOCAL = [
    ("sa", {"num_reads": 4, "num_sweeps": 200}, 30),
    ("tabu", {"num_reads": 2}, 60),
    ("steepest", {"num_reads": 4}, 30),
    ("exact", {}, 10),
    ("qaoa", {"reps": 1, "maxiter": 10}, 6),
    ("sa", {"num_sweeps": 50, "decompose": {"subproblem_size": 8, "max_iterations": 30}}, 40),
]
if importlib.util.find_spec("qiskit_optimization") is not None:
    LOCAL.append(("qaoa-qiskit", {"reps": 1, "maxiter": 15}, 5))


@pytest.mark.parametrize(("name", "options", "size"), LOCAL)
def test_every_local_solver_repeats_its_seeded_result(
    name: str, options: dict[str, Any], size: int
) -> None:
    bqm = problem(size, seed=size)
    seed = None if name == "exact" else 11
    first, second = (
        get_solver(name, **options, **({} if seed is None else {"seed": seed})).sample(bqm)
        for _ in range(2)
    )
    assert rows(first) == rows(second)


def test_a_decomposition_around_a_seeded_child_repeats_itself() -> None:
    bqm = problem(40, seed=3)
    first, second = (
        DecompositionSolver(
            TabuSolver(seed=5), subproblem_size=10, max_iterations=20, seed=9
        ).sample(bqm)
        for _ in range(2)
    )
    assert rows(first) == rows(second)


def test_a_seeded_decomposition_refuses_a_clock_bound() -> None:
    # Within a time limit a loaded machine makes fewer iterations than an idle one: with a
    # seed, only counts (max_iterations, patience) may stop the search.
    bqm = problem(40, seed=3)
    with pytest.raises(SolverConfigurationError, match="max_iterations"):
        DecompositionSolver(TabuSolver(seed=5), time_limit=0.5, seed=9)
    seeded = DecompositionSolver(TabuSolver(seed=5), subproblem_size=10, seed=9)
    with pytest.raises(SolverConfigurationError, match="time_limit"):
        seeded.sample(bqm, time_limit=0.5)
    clocked = DecompositionSolver(TabuSolver(seed=5), subproblem_size=10, time_limit=0.5)
    with pytest.raises(SolverConfigurationError, match="seed"):
        clocked.sample(bqm, seed=9)
    with pytest.raises(SolverConfigurationError, match="time_limit"):
        get_solver("sa", seed=1, decompose={"time_limit": 0.5}).sample(bqm)
    # Unseeded, the clock may stop it; with a seed, counts do and the result repeats.
    assert clocked.sample(bqm, max_iterations=3).info["decomposition"]["iterations"] <= 3
    first, second = (seeded.sample(bqm, max_iterations=5, patience=2, seed=4) for _ in range(2))
    assert rows(first) == rows(second)


def test_the_clock_never_decides_a_seeded_tabu_search() -> None:
    # A 1 ms and a 1 s timeout: both ignored by a seeded run, which stops after its restarts.
    bqm = problem(200, seed=1)
    short, long = (TabuSolver(seed=7, timeout=t).sample(bqm) for t in (1, 1000))
    assert rows(short) == rows(long)
    assert list(short.record.num_restarts) == [TabuSolver.SEEDED_RESTARTS]
    more = TabuSolver(seed=7, num_restarts=20).sample(bqm)
    assert list(more.record.num_restarts) == [20]
    assert more.first.energy <= short.first.energy


def test_qubo_search_repeats_its_seeded_proposals() -> None:
    from qopt.encoding import CategoricalParameter, IntParameter
    from qopt.search import QuboSearch

    def run() -> list[dict[str, Any]]:
        search = QuboSearch(
            {"x": IntParameter(0, 7), "op": CategoricalParameter(("a", "b", "c"))},
            seed=3,
            n_startup_trials=4,
            solver="tabu",
            surrogate_options={"n_epochs": 30},
        )
        asked = []
        for _ in range(8):
            params = search.ask()
            asked.append(params)
            search.tell(params, (params["x"] - 5) ** 2 + (params["op"] != "b"))
        return asked

    assert run() == run()


def test_qubo_sampler_repeats_its_seeded_trials() -> None:
    optuna = pytest.importorskip("optuna")
    from qopt.integrations.optuna import QuboSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        x = trial.suggest_int("x", -4, 4)
        y = trial.suggest_float("y", 0.0, 1.0)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return (x - 1) ** 2 + (y - 0.3) ** 2 + (kind == "a")

    def run() -> list[dict[str, Any]]:
        sampler = QuboSampler(
            seed=4, n_startup_trials=4, solver="tabu", surrogate_options={"n_epochs": 30}
        )
        study = optuna.create_study(sampler=sampler)
        study.optimize(objective, n_trials=8)
        return [t.params for t in study.trials]

    first, second = run(), run()
    assert first == second
    assert len({tuple(sorted(p.items())) for p in first}) > 1  # it did explore


def test_rows_tell_different_results_apart() -> None:
    bqm = problem(30, seed=0)
    one, other = (get_solver("sa", num_reads=4, seed=s).sample(bqm) for s in (1, 2))
    assert rows(one) != rows(other)
    assert np.isfinite([e for _, e, _ in rows(one)]).all()
