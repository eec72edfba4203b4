from __future__ import annotations

import itertools
import math
import subprocess
import sys
import unittest
from typing import Any

import dimod
import dimod.testing
import numpy as np
import pytest
import torch

from qopt.exceptions import InvalidProblemError, ProblemTooLargeError, SolverConfigurationError
from qopt.problems.maxcut import random_regular_graph
from qopt.solvers import ExactSolver
from qopt.solvers import qaoa as qaoa_module
from qopt.solvers.qaoa import (
    QAOASimulator,
    QAOASolver,
    interpolate_angles,
    linear_ramp_angles,
    max_qubits_for_memory,
    qaoa_cost_diagonal,
    qaoa_expectation,
    qaoa_gradient,
)


def small_qaoa() -> QAOASolver:
    return QAOASolver(reps=1, maxiter=10, num_reads=8, seed=1)


@dimod.testing.load_sampler_bqm_tests(small_qaoa, max_num_variables=5)
class TestQAOAConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(QAOASolver())


Edges = list[tuple[int, int]]

PETERSEN: Edges = (
    [(i, (i + 1) % 5) for i in range(5)]
    + [(i, i + 5) for i in range(5)]
    + [(5 + i, 5 + (i + 2) % 5) for i in range(5)]
)


def cycle(n: int) -> Edges:
    return [(i, (i + 1) % n) for i in range(n)]


def gnp(n: int, p: float, seed: int) -> Edges:
    rng = np.random.default_rng(seed)
    return [(i, j) for i, j in itertools.combinations(range(n), 2) if rng.random() < p]


def regular3(n: int, seed: int) -> Edges:
    return [(int(u), int(v)) for u, v in random_regular_graph(n, 3, seed=seed)]


def maxcut_bqm(edges: Edges) -> dimod.BinaryQuadraticModel:
    """Energy = (uncut edges) - (cut edges) = |E| - 2 cut, as an Ising model without fields."""
    return dimod.BinaryQuadraticModel.from_ising({}, {e: 1.0 for e in edges})


def random_bqm(n: int, vartype: str, seed: int, fields: bool = True) -> dimod.BinaryQuadraticModel:
    rng = np.random.default_rng(seed)
    linear = {i: float(rng.normal()) if fields else 0.0 for i in range(n)}
    quadratic = {
        (i, j): float(rng.normal())
        for i, j in itertools.combinations(range(n), 2)
        if rng.random() < 0.7
    }
    bqm = dimod.BinaryQuadraticModel(linear, quadratic, float(rng.normal()), "SPIN")
    return bqm if vartype == "SPIN" else dimod.BinaryQuadraticModel(bqm.binary)


def dense_reference(
    bqm: dimod.BinaryQuadraticModel, gammas: np.ndarray, betas: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """QAOA with dense 2^n x 2^n matrices and torch autograd: independent of the solver's code.

    Same documented conventions: the cost is the energy minus its mean over all states,
    divided by the largest absolute Ising bias; mixer exp(i beta sum X); start |+>^n.
    """
    n = bqm.num_variables
    bits = np.array(list(itertools.product([0, 1], repeat=n)))
    states = 2 * bits - 1 if bqm.vartype is dimod.SPIN else bits
    energies = bqm.energies((states, list(bqm.variables)))
    spin = bqm.spin
    biases = [abs(b) for b in spin.linear.values()] + [abs(b) for b in spin.quadratic.values()]
    scale = max(biases) or 1.0  # all-zero biases: no scaling
    cost = torch.tensor((energies - energies.mean()) / scale, dtype=torch.complex128)
    x = torch.tensor([[0, 1], [1, 0]], dtype=torch.complex128)
    eye = torch.eye(2, dtype=torch.complex128)
    mixer = torch.zeros(2**n, 2**n, dtype=torch.complex128)
    for j in range(n):
        term = torch.ones(1, 1, dtype=torch.complex128)
        for i in range(n):
            term = torch.kron(term, x if i == j else eye)
        mixer += term
    g = torch.tensor(gammas, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(betas, dtype=torch.float64, requires_grad=True)
    psi = torch.full((2**n,), 2 ** (-n / 2), dtype=torch.complex128)
    for k in range(len(gammas)):
        psi = torch.exp(-1j * g[k] * cost) * psi
        psi = torch.linalg.matrix_exp(1j * b[k] * mixer) @ psi
    value = (psi.conj() * cost * psi).real.sum() * scale + energies.mean()
    value.backward()
    assert g.grad is not None and b.grad is not None
    return float(value.detach()), g.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_cost_diagonal_is_the_energy_of_every_state(n: int, vartype: str) -> None:
    bqm = random_bqm(n, vartype, seed=n)
    bits = np.array(list(itertools.product([0, 1], repeat=n)))
    states = 2 * bits - 1 if vartype == "SPIN" else bits
    expected = bqm.energies((states, list(bqm.variables)))
    np.testing.assert_allclose(qaoa_cost_diagonal(bqm).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("n", "vartype", "fields"),
    [
        (1, "SPIN", True),
        (2, "BINARY", True),
        (3, "SPIN", False),
        (5, "BINARY", True),
        (6, "SPIN", True),
        (6, "SPIN", False),
    ],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_statevector_matches_dense_matrix_qaoa(
    n: int, vartype: str, fields: bool, dtype: str
) -> None:
    # fields=False exercises the flip-symmetric half-state path.
    bqm = random_bqm(n, vartype, seed=10 + n, fields=fields)
    rng = np.random.default_rng(n)
    gammas, betas = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3)
    expected, d_gamma, d_beta = dense_reference(bqm, gammas, betas)
    tolerance = 1e-9 if dtype == "float64" else 1e-4
    value = qaoa_expectation(bqm, gammas, betas, dtype=dtype)
    assert value == pytest.approx(expected, abs=tolerance * (1 + abs(expected)))
    value, grad_gamma, grad_beta = qaoa_gradient(bqm, gammas, betas, dtype=dtype)
    assert value == pytest.approx(expected, abs=tolerance * (1 + abs(expected)))
    np.testing.assert_allclose(grad_gamma, d_gamma, atol=tolerance * 10)
    np.testing.assert_allclose(grad_beta, d_beta, atol=tolerance * 10)


def test_simulator_is_reusable_and_agrees_with_the_functions() -> None:
    bqm = random_bqm(7, "SPIN", seed=3)
    simulator = QAOASimulator(bqm)
    rng = np.random.default_rng(1)
    for _ in range(3):
        gammas, betas = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        expected, d_gamma, d_beta = dense_reference(bqm, gammas, betas)
        assert simulator.expectation(gammas, betas) == pytest.approx(expected, abs=1e-10)
        value, grad_gamma, grad_beta = simulator.value_and_grad(gammas, betas)
        assert value == pytest.approx(expected, abs=1e-10)
        np.testing.assert_allclose(grad_gamma, d_gamma, atol=1e-9)
        np.testing.assert_allclose(grad_beta, d_beta, atol=1e-9)
        assert qaoa_expectation(bqm, gammas, betas) == simulator.expectation(gammas, betas)


def test_functions_reuse_the_simulator_of_an_unchanged_bqm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[QAOASimulator] = []

    class CountingSimulator(QAOASimulator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(qaoa_module, "QAOASimulator", CountingSimulator)
    bqm = random_bqm(6, "BINARY", seed=4)
    before = qaoa_expectation(bqm, [0.1], [0.2])
    qaoa_gradient(bqm, [0.3], [0.1])
    assert qaoa_expectation(bqm, [0.1], [0.2]) == before
    assert len(built) == 1
    qaoa_expectation(bqm, [0.1], [0.2], dtype="float32")  # another precision: another one
    assert len(built) == 2
    bqm.add_linear(0, 1.5)  # a changed bias is a new problem: a new simulator, a new value
    after = qaoa_expectation(bqm, [0.1], [0.2])
    assert len(built) == 3
    assert after == pytest.approx(dense_reference(bqm, np.array([0.1]), np.array([0.2]))[0])


def test_float32_value_and_gradient_reach_float32_accuracy() -> None:
    # <C> of a centred cost is a sum that largely cancels: summed in float32 over 2^16
    # amplitudes it lost about 1e-6 relative; summed in float64 it keeps ~1e-7.
    rng = np.random.default_rng(2)
    n = 16
    bqm = dimod.BinaryQuadraticModel(
        {i: rng.normal() for i in range(n)},
        {e: rng.normal() for e in regular3(n, seed=2)},
        0.0,
        "SPIN",
    )
    gammas, betas = np.array([0.2, 0.4, 0.6]), np.array([0.6, 0.4, 0.2])
    exact, d_gamma, d_beta = QAOASimulator(bqm).value_and_grad(gammas, betas)
    single = QAOASimulator(bqm, dtype="float32")
    assert single.expectation(gammas, betas) == pytest.approx(exact, rel=5e-7)
    value, grad_gamma, grad_beta = single.value_and_grad(gammas, betas)
    assert value == pytest.approx(exact, rel=5e-7)
    largest = np.abs(np.concatenate([d_gamma, d_beta])).max()
    np.testing.assert_allclose(grad_gamma, d_gamma, atol=2e-6 * largest)
    np.testing.assert_allclose(grad_beta, d_beta, atol=2e-6 * largest)


def p1_edge_cut(edges: Edges, u: int, v: int, gamma: float, beta: float) -> float:
    """Expected cut of edge (u, v) at p = 1, for any graph: Wang, Hadfield, Jiang & Rieffel,
    PRA 97, 022304 (2018), Theorem 1 (standard convention: exp(-i beta B) exp(-i gamma C))."""
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    d_u, d_v = len(neighbours[u]) - 1, len(neighbours[v]) - 1
    triangles = len(neighbours[u] & neighbours[v])
    c, s = math.cos(gamma), math.sin(gamma)
    return (
        0.5
        + 0.25 * math.sin(4 * beta) * s * (c**d_u + c**d_v)
        - 0.25
        * math.sin(2 * beta) ** 2
        * c ** (d_u + d_v - 2 * triangles)
        * (1 - math.cos(2 * gamma) ** triangles)
    )


@pytest.mark.parametrize(
    "edges",
    [cycle(3), list(itertools.combinations(range(4), 2)), PETERSEN, gnp(9, 0.5, seed=3)],
    ids=["triangle", "K4", "petersen", "gnp9"],
)
def test_p1_expectation_matches_the_analytic_formula(edges: Edges) -> None:
    bqm = maxcut_bqm(edges)
    for gamma, beta in [(0.3, 0.2), (0.7, -0.4), (1.1, 0.9)]:
        cut = (len(edges) - qaoa_expectation(bqm, [gamma], [beta])) / 2
        # Our cost is sum Z Z = |E| - 2 cut, so our gamma is half the standard one.
        expected = sum(p1_edge_cut(edges, u, v, 2 * gamma, beta) for u, v in edges)
        assert cut == pytest.approx(expected, abs=1e-9)


def test_p1_ring_optimum_cuts_three_quarters_of_the_edges() -> None:
    # Farhi et al. 2014: on a ring, p = 1 reaches an approximation ratio of 3/4.
    ring = maxcut_bqm(cycle(10))
    sampleset = QAOASolver(reps=1, seed=0, dtype="float64").sample(ring)
    cut = (10 - sampleset.info["expectation"]) / 2
    assert cut / 10 == pytest.approx(0.75, abs=1e-6)
    assert sampleset.first.energy == -10  # sampling + polish finds the maximum cut


def test_triangle_p1_optimum_matches_the_analytic_maximum() -> None:
    triangle = cycle(3)
    grid = np.linspace(0, math.pi, 181)
    best = max(
        sum(p1_edge_cut(triangle, u, v, 2 * g, b) for u, v in triangle)
        for g in grid
        for b in grid[:91]
    )
    sampleset = QAOASolver(reps=1, seed=0, dtype="float64").sample(maxcut_bqm(triangle))
    cut = (3 - sampleset.info["expectation"]) / 2
    assert cut >= best - 1e-3  # the optimizer beats a one-degree grid (or ties it)
    assert cut <= 2.0  # and never the maximum cut itself at p = 1


def test_deeper_circuits_do_better_on_3_regular_maxcut() -> None:
    sampleset = QAOASolver(reps=3, seed=0).sample(maxcut_bqm(regular3(10, seed=4)))
    history = sampleset.info["history"]
    assert len(history) == 3
    assert history[0] > history[1] > history[2]  # INTERP: each depth starts from the last optimum
    assert sampleset.info["expectation"] == pytest.approx(history[-1])
    assert sampleset.info["evaluations"] <= 3 * 50


@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_sample_is_the_exact_optimum(vartype: str, seed: int) -> None:
    bqm = random_bqm(9, vartype, seed=seed)
    optimum = ExactSolver().sample(bqm).first.energy
    sampleset = QAOASolver(reps=2, seed=seed).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert sampleset.first.energy == pytest.approx(optimum)
    assert len(sampleset) == 100


def test_without_polish_samples_come_from_the_state() -> None:
    bqm = random_bqm(8, "BINARY", seed=5)
    raw = QAOASolver(reps=2, seed=3, polish=False, num_reads=400).sample(bqm)
    polished = QAOASolver(reps=2, seed=3, num_reads=400).sample(bqm)
    dimod.testing.assert_sampleset_energies(raw, bqm)
    # Polishing never raises an energy; on 400 reads it lowers the mean.
    assert polished.record.energy.mean() < raw.record.energy.mean()
    # The sample mean estimates <C>: within 5 standard errors.
    spread = raw.record.energy.std() / math.sqrt(400)
    assert abs(raw.record.energy.mean() - raw.info["expectation"]) < 5 * spread


def subproblem_like(seed: int, n: int = 10) -> dimod.BinaryQuadraticModel:
    """A subproblem as DecompositionSolver hands it out on +/-1-weighted G-set graphs:
    sparse +/-1 couplings inside, strong integer fields from the fixed boundary."""
    rng = np.random.default_rng(seed)
    fields = {i: float(rng.integers(-6, 7)) for i in range(n)}
    couplings = {
        (i, j): float(rng.choice([-1, 1]))
        for i in range(n)
        for j in range(i + 1, n)
        if rng.random() < 0.3
    }
    return dimod.BinaryQuadraticModel.from_ising(fields, couplings)


def test_raw_p1_shots_find_the_optimum_of_subproblems_that_random_draws_miss() -> None:
    # The decomposition's child reads the lowest of 100 unpolished shots: at p = 1 that is
    # the subproblem's optimum, where 100 uniformly random states rarely include it.
    qaoa_hits = random_hits = 0
    for seed in range(8):
        bqm = subproblem_like(seed)
        optimum = float(qaoa_cost_diagonal(bqm).min())
        shots = QAOASolver(reps=1, num_reads=100, polish=False, seed=seed).sample(bqm)
        qaoa_hits += bool(shots.first.energy == optimum)
        draws = np.random.default_rng(seed).choice([-1, 1], size=(100, bqm.num_variables))
        random_hits += bool(min(bqm.energies((draws, list(bqm.variables)))) == optimum)
    assert qaoa_hits >= 7
    assert random_hits <= 3


def test_seed_makes_samples_reproducible() -> None:
    bqm = random_bqm(8, "SPIN", seed=6)
    first = QAOASolver(seed=42, polish=False).sample(bqm)
    second = QAOASolver(seed=42, polish=False).sample(bqm)
    np.testing.assert_array_equal(first.record.sample, second.record.sample)
    other = QAOASolver(seed=43, polish=False).sample(bqm)
    assert not np.array_equal(first.record.sample, other.record.sample)


def test_sample_parameters_override_the_constructor() -> None:
    bqm = random_bqm(5, "SPIN", seed=7)
    sampleset = QAOASolver(seed=0).sample(bqm, num_reads=7, reps=1, maxiter=5)
    assert len(sampleset) == 7
    assert sampleset.info["reps"] == 1
    assert sampleset.info["evaluations"] <= 5
    with pytest.raises(SolverConfigurationError, match="num_sweeps"):
        QAOASolver().sample(bqm, num_sweeps=3)
    with pytest.raises(SolverConfigurationError, match="'reps'"):
        QAOASolver().sample(bqm, reps=0)


@pytest.mark.parametrize("optimizer", ["adam", "cobyla"])
def test_other_optimizers_reach_the_ring_optimum(optimizer: str) -> None:
    ring = maxcut_bqm(cycle(8))
    solver = QAOASolver(reps=1, optimizer=optimizer, maxiter=120, init="ramp", seed=0)
    sampleset = solver.sample(ring)
    assert sampleset.info["expectation"] == pytest.approx(-4.0, abs=0.05)
    assert sampleset.info["evaluations"] <= 120
    assert sampleset.info["optimizer"] == optimizer


def test_float32_and_float64_agree() -> None:
    bqm = maxcut_bqm(regular3(12, seed=1))
    single = QAOASolver(reps=2, seed=0, dtype="float32").sample(bqm)
    double = QAOASolver(reps=2, seed=0, dtype="float64").sample(bqm)
    assert single.info["expectation"] == pytest.approx(double.info["expectation"], abs=1e-3)
    assert single.info["flip_symmetric"] is True


def test_info_and_attributes() -> None:
    solver = QAOASolver(seed=0)
    assert solver.device == "cpu"  # MeteredComposite reads it
    sampleset = solver.sample(random_bqm(4, "BINARY", seed=1))
    info = sampleset.info
    assert set(info["timing"]) == {"preprocessing_ns", "sampling_ns", "postprocessing_ns"}
    assert len(info["gammas"]) == len(info["betas"]) == 2
    assert info["scale"] > 0 and info["dtype"] == "float32"


def test_thread_setting_is_restored_after_a_solve() -> None:
    before = torch.get_num_threads()
    QAOASolver(seed=0, num_threads=1).sample(random_bqm(5, "SPIN", seed=2))
    QAOASolver(seed=0).sample(random_bqm(5, "SPIN", seed=2))
    assert torch.get_num_threads() == before


def test_empty_bqm_gives_an_empty_sampleset() -> None:
    sampleset = QAOASolver().sample(dimod.BinaryQuadraticModel("BINARY"))
    assert len(sampleset) == 0


def test_ramp_and_interp_angles() -> None:
    gammas, betas = linear_ramp_angles(4, delta_t=1.0)
    np.testing.assert_allclose(gammas, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(gammas + betas, 1.0)
    grown_g, grown_b = interpolate_angles(gammas, betas)
    assert len(grown_g) == len(grown_b) == 5
    assert grown_g[0] == pytest.approx(gammas[0]) and grown_g[-1] == pytest.approx(gammas[-1])
    assert np.all(np.diff(grown_g) > 0) and np.all(np.diff(grown_b) < 0)  # keeps the ramp shape


def test_max_qubits_formula() -> None:
    # floor(log2(0.75 * bytes / (4 c + r + 4))): 40 bytes per amplitude in float32, 76 in float64.
    for dtype, per_amplitude in [("float32", 40), ("float64", 76)]:
        just_enough = math.ceil(per_amplitude * 2**20 / 0.75)
        assert max_qubits_for_memory(dtype, available_bytes=just_enough) == 20
        assert max_qubits_for_memory(dtype, available_bytes=just_enough - 100) == 19
    assert 10 <= QAOASolver().max_qubits <= 40  # derived from this machine's free memory


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("reps", 0, r"'reps' parameter of QAOASolver must be an int in \[1, inf\)"),
        ("maxiter", 0, "'maxiter'"),
        ("num_reads", -1, "'num_reads'"),
        ("optimizer", "sgd", "'optimizer' parameter of QAOASolver must be one of"),
        ("init", "random", "'init'"),
        ("dtype", "float16", "'dtype'"),
        ("device", "tpu", "'device' parameter of QAOASolver must be 'cpu', 'cuda' or 'cuda:N'"),
        ("polish", "yes", "'polish'"),
        ("max_qubits", 0, "'max_qubits'"),
        ("learning_rate", 0.0, "'learning_rate'"),
        ("num_threads", 0, "'num_threads'"),
    ],
)
def test_bad_options_are_refused_at_construction(option: str, value: object, match: str) -> None:
    with pytest.raises(SolverConfigurationError, match=match):
        QAOASolver(**{option: value})  # type: ignore[arg-type]


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SolverConfigurationError, match=r"no CUDA GPU.*device='cpu'"):
        QAOASolver(device="cuda")
    with pytest.raises(SolverConfigurationError, match="no CUDA GPU"):
        QAOASolver(device="cuda:1")


def test_non_finite_biases_are_refused() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": math.nan, "b": 1.0}, {("a", "b"): 1.0}, 0, "BINARY")
    with pytest.raises(InvalidProblemError, match="non-finite"):
        QAOASolver().sample(bqm)
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": 1.0}, {("a", "b"): math.inf}, 0, "BINARY")
    with pytest.raises(InvalidProblemError, match="non-finite"):
        QAOASolver().sample(bqm)


def test_over_the_qubit_limit_says_size_limit_and_way_out() -> None:
    bqm = random_bqm(6, "BINARY", seed=1)
    with pytest.raises(ProblemTooLargeError, match=r"limited to 4 variables.*it has 6.*decompose"):
        QAOASolver(max_qubits=4).sample(bqm)
    # A field-free Ising model stores half its states: 5 variables fit in 4 stored qubits.
    ring = maxcut_bqm(cycle(5))
    assert QAOASolver(max_qubits=4, seed=0).sample(ring).first.energy == -3


def test_bad_angles_are_refused() -> None:
    bqm = random_bqm(3, "SPIN", seed=0)
    with pytest.raises(SolverConfigurationError, match="same length"):
        qaoa_expectation(bqm, [0.1, 0.2], [0.3])
    with pytest.raises(SolverConfigurationError, match="finite"):
        qaoa_gradient(bqm, [math.nan], [0.3])
    with pytest.raises(SolverConfigurationError, match="same length"):
        QAOASimulator(bqm).expectation([0.1], [])
    with pytest.raises(SolverConfigurationError, match="'dtype' parameter of QAOASimulator"):
        QAOASimulator(bqm, dtype="float16")
    with pytest.raises(InvalidProblemError, match="BinaryQuadraticModel"):
        qaoa_expectation({"a": 1.0}, [0.1], [0.2])  # type: ignore[arg-type]


def test_importing_the_solver_package_does_not_import_torch() -> None:
    code = (
        "import sys, qopt.solvers, qopt.solvers.decomposition; "
        "bad = [m for m in ('torch', 'hybrid', 'dwave.system') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
