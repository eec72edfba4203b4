from __future__ import annotations

import time
import unittest
from typing import Any

import dimod
import dimod.testing
import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.maxcut import random_regular_graph
from qopt.solvers import ExactSolver, SimulatedAnnealingSolver, get_solver
from qopt.solvers.decomposition import DecompositionSolver
from qopt.solvers.qaoa import QAOASolver


def small_decomposition() -> DecompositionSolver:
    # Subproblems of 3 make every BQM above 3 variables go through the search.
    return DecompositionSolver(ExactSolver(), subproblem_size=3, max_iterations=20, seed=1)


@dimod.testing.load_sampler_bqm_tests(small_decomposition, max_num_variables=6)
class TestDecompositionConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_composite_api(small_decomposition())
        dimod.testing.assert_sampler_api(small_decomposition())


class RecordingChild(dimod.Sampler):
    """Exact solver that records what it was asked, optionally slowly or uselessly."""

    def __init__(self, *, delay: float = 0.0, keep_current: bool = False) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.delay = delay
        self.keep_current = keep_current
        self.device = "cuda:3"
        self.remote = True

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return {"flavour": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        self.calls.append((bqm.num_variables, parameters))
        time.sleep(self.delay)
        if self.keep_current:  # an all-zero/-1 answer: rarely better than the current state
            low = -1 if bqm.vartype is dimod.SPIN else 0
            return dimod.SampleSet.from_samples_bqm(
                (np.full((1, bqm.num_variables), low), list(bqm.variables)), bqm
            )
        return dimod.ExactSolver().sample(bqm)


def maxcut_ising(edges: np.ndarray) -> dimod.BinaryQuadraticModel:
    return dimod.BinaryQuadraticModel.from_ising({}, {(int(u), int(v)): 1.0 for u, v in edges})


def test_qaoa_child_gets_within_a_few_percent_of_sa_on_maxcut() -> None:
    edges = random_regular_graph(80, 3, seed=7)
    bqm = maxcut_ising(edges)
    m = len(edges)
    sa_cut = (m - SimulatedAnnealingSolver(seed=0).sample(bqm).first.energy) / 2
    # Start from a steepest-descent local minimum so that the QAOA subproblems do the work.
    solver = DecompositionSolver(
        QAOASolver(reps=1, maxiter=20, num_reads=50, seed=0),
        subproblem_size=10,
        max_iterations=60,
        initial="steepest",
        seed=0,
    )
    sampleset = solver.sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    info = sampleset.info["decomposition"]
    cut = (m - sampleset.first.energy) / 2
    start_cut = (m - info["initial_energy"]) / 2
    assert cut > start_cut  # the subproblems improved on the descent
    assert cut >= 0.97 * sa_cut
    assert info["iterations"] <= 60 and info["improvements"] >= 1


@pytest.mark.parametrize("acceptance", ["anneal", "greedy"])
@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
@pytest.mark.parametrize("initial", ["steepest", "sa", "random"])
def test_search_never_ends_above_its_start(vartype: str, initial: str, acceptance: str) -> None:
    bqm = dimod.generators.gnp_random_bqm(40, 0.2, vartype, random_state=3)
    sampleset = DecompositionSolver(
        ExactSolver(),
        subproblem_size=8,
        max_iterations=40,
        initial=initial,
        acceptance=acceptance,
        seed=2,
    ).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    info = sampleset.info["decomposition"]
    assert info["acceptance"] == acceptance
    assert sampleset.first.energy <= info["initial_energy"] + 1e-9
    # The answer is the best state seen, even when the search last moved uphill.
    assert sampleset.first.energy == pytest.approx(info["trace"][-1][1])
    if acceptance == "greedy":
        assert info["uphill"] == 0
    energies = [energy for _, energy in info["trace"]]
    assert energies == sorted(energies, reverse=True)  # improvements only go down
    assert set(sampleset.info["timing"]) == {"preprocessing_ns", "sampling_ns", "postprocessing_ns"}


def frustrated_graph(seed: int, n: int = 80, density: float = 0.15) -> dimod.BinaryQuadraticModel:
    """A +/-1-weighted random graph (a small G6-G10 look-alike) as an Ising model."""
    rng = np.random.default_rng(seed)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density]
    couplings = {edge: float(rng.choice([-1, 1])) for edge in edges}
    return dimod.BinaryQuadraticModel.from_ising({}, couplings)


def test_a_child_that_solves_its_subproblems_beats_the_search_alone() -> None:
    # The search perturbs, the child repairs: with repairs=0 the same search runs without
    # any child call, so the gap is what solving subproblems adds.
    for graph in (2, 5):
        bqm = frustrated_graph(graph)

        def final(repairs: int, seed: int, bqm: dimod.BinaryQuadraticModel = bqm) -> float:
            solver = DecompositionSolver(
                ExactSolver(),
                subproblem_size=8,
                max_iterations=60,
                patience=60,
                initial="steepest",
                repairs=repairs,
                seed=seed,
            )
            sampleset = solver.sample(bqm)
            info = sampleset.info["decomposition"]
            assert info["child_calls"] == 60 * repairs
            assert (info["child_improvements"] > 0) == (repairs > 0)
            return float(sampleset.first.energy)

        with_child = sorted(final(2, seed) for seed in range(5))
        alone = sorted(final(0, seed) for seed in range(5))
        assert with_child[2] < alone[2]  # medians
        assert with_child[0] <= alone[0]


class WorstAnswerChild(dimod.Sampler):
    """Answers every subproblem with its highest-energy state."""

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        every = dimod.ExactSolver().sample(bqm)
        row = every.record.sample[int(np.argmax(every.record.energy))][None, :]
        return dimod.SampleSet.from_samples_bqm((row, list(every.variables)), bqm)


def test_answers_worse_than_the_current_assignment_are_never_applied() -> None:
    bqm = frustrated_graph(3, n=40)
    sampleset = DecompositionSolver(
        WorstAnswerChild(), subproblem_size=6, max_iterations=30, initial="steepest", seed=0
    ).sample(bqm)
    info = sampleset.info["decomposition"]
    assert info["child_calls"] == 60
    assert info["child_improvements"] == 0 and info["child_gain"] == 0.0
    assert sampleset.first.energy <= info["initial_energy"]


def test_annealing_acceptance_keeps_some_rises_and_greedy_none() -> None:
    bqm = frustrated_graph(2)

    def uphill(acceptance: str) -> int:
        solver = DecompositionSolver(
            ExactSolver(),
            subproblem_size=6,
            max_iterations=80,
            initial="steepest",
            acceptance=acceptance,
            seed=0,
        )
        return int(solver.sample(bqm).info["decomposition"]["uphill"])

    assert uphill("anneal") > 0 == uphill("greedy")


def test_exact_subproblems_reach_the_optimum_of_a_small_problem() -> None:
    bqm = dimod.generators.ran_r(1, 16, seed=11)
    optimum = ExactSolver().sample(bqm).first.energy
    sampleset = DecompositionSolver(
        ExactSolver(), subproblem_size=8, max_iterations=200, patience=100, seed=0
    ).sample(bqm)
    assert sampleset.first.energy == pytest.approx(optimum)


def test_labels_of_any_kind_reach_the_child() -> None:
    bqm = dimod.BinaryQuadraticModel(
        {("x", i): (-1.0) ** i for i in range(12)},
        {(("x", i), ("x", (i + 1) % 12)): 0.5 for i in range(12)},
        0.0,
        "BINARY",
    )
    bqm.add_linear("alpha", -2.0)
    bqm.add_quadratic("alpha", ("x", 0), 1.5)
    child = RecordingChild()
    sampleset = DecompositionSolver(child, subproblem_size=4, max_iterations=10, seed=0).sample(
        bqm, flavour="mint"
    )
    assert set(sampleset.variables) == set(bqm.variables)
    assert all(size == 4 and params == {"flavour": "mint"} for size, params in child.calls)


def test_a_problem_the_child_can_take_goes_to_it_whole() -> None:
    bqm = dimod.generators.ran_r(1, 6, seed=0)
    child = RecordingChild()
    sampleset = DecompositionSolver(child, subproblem_size=6).sample(bqm)
    assert child.calls == [(6, {})]
    assert sampleset.info["decomposition"]["stopped"] == "small enough"
    assert sampleset.first.energy == ExactSolver().sample(bqm).first.energy


def test_patience_and_time_limit_stop_the_search() -> None:
    bqm = dimod.generators.ran_r(1, 30, seed=1)
    useless = DecompositionSolver(
        RecordingChild(keep_current=True), subproblem_size=5, patience=7, seed=0
    ).sample(bqm, initial_state={v: 1 for v in bqm.variables})
    info = useless.info["decomposition"]
    assert info["stopped"] == "patience" and info["iterations"] >= 7
    slow = DecompositionSolver(
        RecordingChild(delay=0.02), subproblem_size=5, time_limit=0.01, seed=0
    ).sample(bqm)
    assert slow.info["decomposition"]["stopped"] == "time_limit"
    assert slow.info["decomposition"]["iterations"] == 1
    capped = DecompositionSolver(ExactSolver(), subproblem_size=5, seed=0).sample(
        bqm, max_iterations=3, patience=100
    )
    assert capped.info["decomposition"]["iterations"] == 3


def test_initial_state_warm_starts_the_search() -> None:
    bqm = dimod.generators.ran_r(1, 30, seed=2)
    good = SimulatedAnnealingSolver(seed=0).sample(bqm).first
    sampleset = DecompositionSolver(ExactSolver(), subproblem_size=6, seed=0).sample(
        bqm, initial_state=good.sample, max_iterations=10
    )
    assert sampleset.info["decomposition"]["initial_energy"] <= good.energy + 1e-9
    assert sampleset.first.energy <= good.energy + 1e-9
    with pytest.raises(InvalidProblemError, match="every variable"):
        DecompositionSolver(ExactSolver(), subproblem_size=6).sample(
            bqm, initial_state={0: 1, 1: -1}
        )
    with pytest.raises(InvalidProblemError, match="values in"):
        DecompositionSolver(ExactSolver(), subproblem_size=6).sample(
            bqm, initial_state={v: 0 for v in bqm.variables}
        )


def test_composite_reports_the_childs_device_and_remoteness() -> None:
    solver = DecompositionSolver(RecordingChild(), subproblem_size=4)
    assert solver.device == "cuda:3" and solver.remote is True and solver.is_mock is False
    assert DecompositionSolver(ExactSolver()).device == "cpu"
    assert set(solver.parameters) >= {"flavour", "max_iterations", "initial_state"}


def test_metered_decomposition_keeps_a_solve_record() -> None:
    from qopt.metering import record_of
    from qopt.solvers import MeteredComposite

    solver = MeteredComposite(
        DecompositionSolver(get_solver("exact"), subproblem_size=5, max_iterations=5, seed=0),
        name="exact+decompose",
    )
    sampleset = solver.sample(dimod.generators.ran_r(1, 20, seed=3))
    assert record_of(sampleset).num_variables == 20


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"subproblem_size": 0}, "'subproblem_size'"),
        ({"subproblem_size": 99}, "at most the child's max_qubits"),
        ({"max_iterations": 0}, "'max_iterations'"),
        ({"patience": 0}, "'patience'"),
        ({"time_limit": 0.0}, "'time_limit'"),
        ({"initial": "tabu"}, "'initial'"),
        ({"acceptance": "late"}, "'acceptance'"),
        ({"perturbation_size": 0}, "'perturbation_size'"),
        ({"repairs": -1}, "'repairs'"),
        ({"seed": -1}, "'seed'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(SolverConfigurationError, match=match):
        DecompositionSolver(QAOASolver(max_qubits=20), **options)


def test_default_subproblem_size_fits_the_child() -> None:
    assert DecompositionSolver(ExactSolver()).subproblem_size == 12
    assert DecompositionSolver(QAOASolver(max_qubits=8)).subproblem_size == 8


def test_child_must_be_a_sampler() -> None:
    with pytest.raises(SolverConfigurationError, match=r"must be a dimod\.Sampler"):
        DecompositionSolver("qaoa")  # type: ignore[arg-type]


def test_non_finite_biases_are_refused() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": float("nan")}, {}, 0, "BINARY")
    with pytest.raises(InvalidProblemError, match="non-finite"):
        DecompositionSolver(ExactSolver()).sample(bqm)
