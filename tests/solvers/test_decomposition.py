from __future__ import annotations

import time
import unittest
from typing import Any, Literal

import dimod
import dimod.testing
import numpy as np
import pytest

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.maxcut import random_regular_graph
from qopt.solvers import ExactSolver, SimulatedAnnealingSolver, get_solver
from qopt.solvers.decomposition import DecompositionSolver, _default_tenure, _Search
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
        max_iterations=30,
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
    assert info["iterations"] <= 30 and info["improvements"] >= 1


@pytest.mark.parametrize("repairs", [0, 2])
@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
@pytest.mark.parametrize("initial", ["steepest", "sa", "random"])
def test_search_never_ends_above_its_start(
    vartype: Literal["SPIN", "BINARY"], initial: str, repairs: int
) -> None:
    bqm = dimod.generators.gnp_random_bqm(40, 0.2, vartype, random_state=3)
    sampleset = DecompositionSolver(
        ExactSolver(),
        subproblem_size=8,
        max_iterations=40,
        initial=initial,
        repairs=repairs,
        seed=2,
    ).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    info = sampleset.info["decomposition"]
    assert sampleset.first.energy <= info["initial_energy"] + 1e-9
    # The answer is the best state seen, wherever the tabu moves went afterwards.
    assert sampleset.first.energy == pytest.approx(info["trace"][-1][1])
    energies = [energy for _, energy in info["trace"]]
    assert energies == sorted(energies, reverse=True)  # improvements only go down
    assert info["child_calls"] == 40 * repairs
    assert set(sampleset.info["timing"]) == {"preprocessing_ns", "sampling_ns", "postprocessing_ns"}


def frustrated_graph(seed: int, n: int = 80, density: float = 0.15) -> dimod.BinaryQuadraticModel:
    """A +/-1-weighted random graph (a small G6-G10 look-alike) as an Ising model."""
    rng = np.random.default_rng(seed)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density]
    couplings = {edge: float(rng.choice([-1, 1])) for edge in edges}
    return dimod.BinaryQuadraticModel.from_ising({}, couplings)


def signed_cubic_maxcut(n: int = 40, seed: int = 5) -> dimod.BinaryQuadraticModel:
    """A +/-1-weighted random 3-regular MaxCut (a small G6-G10 look-alike), as an Ising model."""
    rng = np.random.default_rng(0)
    edges = random_regular_graph(n, 3, seed=seed)
    return dimod.BinaryQuadraticModel.from_ising(
        {}, {(int(u), int(v)): float(rng.choice([-1, 1])) for u, v in edges}
    )


def exact_ground_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    # Exact by tree decomposition (a 40-node cubic graph has a small treewidth).
    from dwave.samplers import TreeDecompositionSolver

    return float(TreeDecompositionSolver().sample(bqm).first.energy)


def test_search_with_an_exact_child_reaches_the_optimum_of_a_40_node_maxcut() -> None:
    bqm = signed_cubic_maxcut()
    optimum = exact_ground_energy(bqm)

    def final(repairs: int, seed: int) -> float:
        solver = DecompositionSolver(
            ExactSolver(),
            subproblem_size=8,
            max_iterations=100,
            patience=100,
            initial="steepest",
            repairs=repairs,
            seed=seed,
        )
        sampleset = solver.sample(bqm)
        info = sampleset.info["decomposition"]
        assert info["child_calls"] == 100 * repairs
        assert info["moves"] == 100 * 100  # 100 tabu moves per iteration
        assert sampleset.first.energy >= optimum - 1e-9
        return float(sampleset.first.energy)

    with_child = [final(2, seed) for seed in range(3)]
    alone = [final(0, seed) for seed in range(3)]
    assert with_child == [optimum] * 3
    # The same tabu search without a child (the control) misses the optimum more often.
    assert sorted(alone)[1] > optimum  # median


def test_child_answers_alone_improve_a_local_minimum() -> None:
    # tabu_moves=0: the child's answers are the only moves after the initial descent.
    bqm = signed_cubic_maxcut(80, seed=3)

    def run(child: dimod.Sampler) -> dict[str, Any]:
        solver = DecompositionSolver(
            child, subproblem_size=8, max_iterations=30, initial="steepest", tabu_moves=0, seed=1
        )
        sampleset = solver.sample(bqm)
        info: dict[str, Any] = sampleset.info["decomposition"]
        info["energy"] = sampleset.first.energy
        return info

    exact = run(ExactSolver())
    assert exact["moves"] == 0 and exact["child_calls"] == 60
    assert exact["child_improvements"] > 0 and exact["child_gain"] > 0
    assert exact["energy"] < exact["initial_energy"]
    assert exact["child_best"] >= exact["improvements"] >= 1


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


class RecordingSearch(_Search):
    """A search that records which variable each move flipped."""

    def __init__(self, bqm: dimod.BinaryQuadraticModel, state: np.ndarray) -> None:
        super().__init__(bqm, state)
        self.flipped: list[tuple[int, bool]] = []
        self.energies: list[float] = []

    def flip(self, i: int) -> None:
        best = self.best_energy
        super().flip(i)
        self.flipped.append((i, self.energy < best - 1e-9))
        self.energies.append(self.energy)


@pytest.mark.parametrize("tenure", [(3, 3), (5, 9)])
def test_tabu_moves_respect_the_tenure_and_leave_local_minima(tenure: tuple[int, int]) -> None:
    bqm = signed_cubic_maxcut(40, seed=2)
    search = RecordingSearch(bqm, np.ones(40))
    search.descend()
    search.keep_if_best()
    minimum = search.energy
    search.flipped.clear()
    search.energies.clear()
    search.tabu_search(300, tenure, np.random.default_rng(0))
    assert len(search.flipped) == 300
    # From a local minimum the first move goes uphill: tabu search leaves it.
    assert search.energies[0] > minimum
    assert len({i for i, _ in search.flipped}) > tenure[1]
    last: dict[int, int] = {}
    for move, (i, new_best) in enumerate(search.flipped):
        if i in last and not new_best:  # aspiration: a tabu flip only to a new best
            assert move - last[i] >= tenure[0]
        last[i] = move
    assert search.best_energy <= minimum
    assert bqm.energy(dict(zip(search.labels, search.best_x, strict=True))) == pytest.approx(
        search.best_energy
    )
    assert bqm.energy(dict(zip(search.labels, search.x, strict=True))) == pytest.approx(
        search.energy
    )


def test_default_tenure_grows_with_the_problem() -> None:
    assert _default_tenure(800) == (40, 80)
    assert _default_tenure(40) == (5, 10)
    for n in range(2, 300):
        low, high = _default_tenure(n)
        assert 1 <= low <= high and high <= max(1, n - 1)


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
        RecordingChild(delay=0.02),
        subproblem_size=5,
        time_limit=0.01,  # unseeded only
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
        ({"tabu_moves": -1}, "'tabu_moves'"),
        ({"tenure": 0}, "'tenure'"),
        ({"tenure": (3, 2)}, "'tenure'"),
        ({"tenure": "long"}, "'tenure'"),
        ({"tenure": True}, "'tenure'"),
        ({"repairs": -1}, "'repairs'"),
        ({"tabu_moves": 0, "repairs": 0}, "cannot both be 0"),
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
