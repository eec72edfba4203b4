from __future__ import annotations

import re
import subprocess
import sys
import unittest

import dimod
import dimod.testing
import pytest

from qopt.exceptions import InvalidProblemError, ProblemTooLargeError, SolverConfigurationError
from qopt.solvers import (
    ExactSolver,
    SimulatedAnnealingSolver,
    SteepestDescentSolver,
    TabuSolver,
    get_solver,
)


@dimod.testing.load_sampler_bqm_tests(lambda: SimulatedAnnealingSolver(num_reads=3, seed=1))
class TestSimulatedAnnealingConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(SimulatedAnnealingSolver())


@dimod.testing.load_sampler_bqm_tests(lambda: TabuSolver(timeout=5, seed=1))
class TestTabuConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(TabuSolver())


@dimod.testing.load_sampler_bqm_tests(lambda: SteepestDescentSolver(seed=1))
class TestSteepestConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(SteepestDescentSolver())


@dimod.testing.load_sampler_bqm_tests(ExactSolver)
class TestExactConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(ExactSolver())


@dimod.testing.load_sampler_bqm_tests(lambda: get_solver("sa", num_reads=2, seed=3))
class TestMeteredConformance(unittest.TestCase):
    def test_composite_api(self) -> None:
        dimod.testing.assert_composite_api(get_solver("sa"))


@pytest.mark.parametrize("name", ["sa", "tabu", "steepest"])
def test_heuristics_find_the_exact_optimum_of_small_problems(name: str) -> None:
    bqm = dimod.generators.ran_r(1, 14, seed=5)
    optimum = ExactSolver().sample(bqm).first.energy
    sampleset = get_solver(name, seed=0).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert sampleset.first.energy == pytest.approx(optimum)


def test_seed_makes_samples_reproducible() -> None:
    bqm = dimod.generators.ran_r(1, 30, seed=2)
    a = SimulatedAnnealingSolver(seed=11, num_sweeps=10).sample(bqm)
    b = SimulatedAnnealingSolver(seed=11, num_sweeps=10).sample(bqm)
    assert (a.record.sample == b.record.sample).all()


@pytest.mark.parametrize(
    ("cls", "options", "fragment"),
    [
        (
            SimulatedAnnealingSolver,
            {"num_reads": 0},
            "'num_reads' parameter of SimulatedAnnealingSolver",
        ),
        (SimulatedAnnealingSolver, {"num_sweeps": -5}, "'num_sweeps'"),
        (SimulatedAnnealingSolver, {"num_reads": 2.5}, "Got 2.5 instead"),
        (SimulatedAnnealingSolver, {"seed": -1}, "'seed'"),
        (TabuSolver, {"timeout": 0}, "'timeout' parameter of TabuSolver"),
        (SteepestDescentSolver, {"num_reads": True}, "'num_reads'"),
        (ExactSolver, {"max_variables": 99}, "'max_variables'"),
    ],
)
def test_bad_options_are_refused_at_construction(cls: type, options: dict, fragment: str) -> None:
    with pytest.raises(SolverConfigurationError, match=fragment):
        cls(**options)


def test_unknown_sample_parameter_lists_the_known_ones() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY")
    with pytest.raises(SolverConfigurationError, match="num_sweeps"):
        SimulatedAnnealingSolver().sample(bqm, sweeps=10)


def test_exact_refuses_large_problems_with_size_and_limit() -> None:
    bqm = dimod.generators.ran_r(1, 25, seed=0)
    with pytest.raises(ProblemTooLargeError, match=r"limited to 24 variables; this BQM has 25"):
        ExactSolver().sample(bqm)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_biases_are_refused(bad: float) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": bad, "b": 1.0}, {("a", "b"): 1.0}, 0, "BINARY")
    with pytest.raises(InvalidProblemError, match="non-finite"):
        SimulatedAnnealingSolver().sample(bqm)


def test_non_bqm_input_is_refused() -> None:
    with pytest.raises(InvalidProblemError, match=r"expects a dimod\.BinaryQuadraticModel"):
        SimulatedAnnealingSolver().sample({"a": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("vartype", ["BINARY", "SPIN"])
def test_simulated_annealing_default_beta_range_is_dwave_samplers_rule(vartype: str) -> None:
    from dwave.samplers.sa.sampler import default_beta_range

    for seed in range(3):
        bqm = dimod.generators.gnp_random_bqm(30, 0.3, vartype, random_state=seed)
        expected = default_beta_range(bqm)
        assert SimulatedAnnealingSolver.default_beta_range(bqm) == pytest.approx(expected)


def test_simulated_annealing_from_initial_states_anneals_only_the_cold_end() -> None:
    bqm = dimod.generators.ran_r(1, 60, seed=1)  # a frustrated +-1 spin glass
    _, cold = SimulatedAnnealingSolver.default_beta_range(bqm)
    good = SimulatedAnnealingSolver(num_reads=1, seed=0).sample(bqm)
    start = good.first.energy
    solver = SimulatedAnnealingSolver(num_reads=1, num_sweeps=10, seed=1)
    warm = solver.sample(bqm, initial_states=good)
    assert warm.info["beta_range"] == pytest.approx((cold / 10.0, cold))
    assert warm.first.energy <= start + 1e-9  # refined, not melted
    # An explicit schedule is the caller's: the full hot-to-cold anneal forgets the start.
    hot = solver.sample(bqm, initial_states=good, beta_range=(1e-3, cold))
    assert hot.info["beta_range"] == (1e-3, cold)
    assert hot.first.energy > start


@pytest.mark.parametrize(
    ("name", "parameters", "fragment"),
    [
        ("sa", {"num_reads": -3}, "'num_reads' parameter of SimulatedAnnealingSolver.sample()"),
        ("sa", {"num_sweeps": "x"}, "'num_sweeps' parameter of SimulatedAnnealingSolver.sample()"),
        ("sa", {"seed": -1}, "'seed' parameter"),
        ("tabu", {"timeout": 0}, "'timeout' parameter of TabuSolver.sample()"),
        ("steepest", {"num_reads": 2.5}, "Got 2.5 instead"),
    ],
)
def test_bad_sample_parameters_are_refused_by_qopt_not_the_upstream_sampler(
    name: str, parameters: dict, fragment: str
) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": -1, "b": 1}, {("a", "b"): -1}, 0, "BINARY")
    with pytest.raises(SolverConfigurationError, match=re.escape(fragment)):
        get_solver(name).sample(bqm, **parameters)
    assert len(get_solver(name).sample(bqm, num_reads=2)) == 2  # good values still pass


def test_a_count_beyond_a_c_int_is_refused_not_overflowed() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY")
    with pytest.raises(SolverConfigurationError, match=r"'num_reads' .* \[1, 2147483647\]"):
        get_solver("sa", num_reads=10**20).sample(bqm)
    with pytest.raises(SolverConfigurationError, match="'num_sweeps'"):
        get_solver("sa").sample(bqm, num_sweeps=2**31)


@pytest.mark.parametrize("name", ["sa", "tabu", "steepest", "exact"])
def test_biases_that_overflow_double_precision_are_refused_before_native_code(name: str) -> None:
    # In a subprocess: tabu used to abort the interpreter ("double free or corruption") here.
    code = (
        "import dimod\n"
        "from qopt.exceptions import InvalidProblemError\n"
        "from qopt.solvers import get_solver\n"
        "bqm = dimod.BinaryQuadraticModel({'a': 1e308, 'b': -1e308, 'c': 1.0},\n"
        "                                 {('a', 'b'): 1e308, ('b', 'c'): 1.0}, 0, 'BINARY')\n"
        "try:\n"
        f"    get_solver({name!r}).sample(bqm)\n"
        "except InvalidProblemError as error:\n"
        "    print('refused:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "Divide every bias" in result.stdout


def test_large_but_safe_biases_still_solve() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1e250, "b": -1e250}, {("a", "b"): 1e250}, 0, "BINARY")
    assert get_solver("sa", seed=0).sample(bqm).first.energy == pytest.approx(-1e250)
