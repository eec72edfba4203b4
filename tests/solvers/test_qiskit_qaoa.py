"""Tests for the qaoa-qiskit backend: translation, the solver, IBM account handling."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import unittest
from collections.abc import Hashable
from typing import Any

import dimod
import dimod.testing
import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("qiskit_optimization")
pytest.importorskip("qiskit_ibm_runtime")

from qiskit_ibm_runtime import QiskitRuntimeService
from qiskit_ibm_runtime.accounts import management
from qiskit_ibm_runtime.fake_provider import FakeManilaV2
from qiskit_optimization import QuadraticProgram

from qopt.exceptions import (
    InvalidProblemError,
    ProblemTooLargeError,
    SolverConfigurationError,
    SolverUnavailableError,
)
from qopt.metering import record_of
from qopt.solvers import FallbackComposite, QoptFallbackWarning, get_solver, solver_status
from qopt.solvers.qiskit_qaoa import (
    OPTIMIZERS,
    QiskitQAOASolver,
    bqm_to_quadratic_program,
    ibm_status,
    quadratic_program_to_bqm,
)

# The runtime's SamplerV2 is deprecated since qiskit-ibm-runtime 0.50 (see the module).
runtime_sampler_deprecated = pytest.mark.filterwarnings(
    "ignore:The SamplerV2 class is deprecated:DeprecationWarning"
)


# --------------------------------------------------------------------------------------------
# Helpers


def assignments(bqm: dimod.BinaryQuadraticModel) -> list[dict[Hashable, int]]:
    """Every assignment of ``bqm``'s variables, in its vartype."""
    values = (-1, 1) if bqm.vartype is dimod.SPIN else (0, 1)
    variables = list(bqm.variables)
    return [
        dict(zip(variables, combination, strict=True))
        for combination in itertools.product(values, repeat=len(variables))
    ]


def to_binary(value: int, vartype: dimod.Vartype) -> int:
    return (value + 1) // 2 if vartype is dimod.SPIN else value


def maxcut_bqm(graph: nx.Graph) -> dimod.BinaryQuadraticModel:
    """Minimizing this BQM maximizes the cut: energy = -(edges cut)."""
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for node in graph.nodes:
        bqm.add_variable(node, 0.0)
    for u, v in graph.edges:
        bqm.add_linear(u, -1.0)
        bqm.add_linear(v, -1.0)
        bqm.add_quadratic(u, v, 2.0)
    return bqm


def mean_energy(sampleset: dimod.SampleSet) -> float:
    counts = sampleset.record.num_occurrences
    return float((sampleset.record.energy * counts).sum() / counts.sum())


@pytest.fixture
def no_ibm_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """No token in the environment, an empty account file, and no network allowed."""
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setattr(
        management, "_DEFAULT_ACCOUNT_CONFIG_JSON_FILE", str(tmp_path / "qiskit-ibm.json")
    )

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("QiskitRuntimeService() was called: that touches the network")

    monkeypatch.setattr(QiskitRuntimeService, "__init__", no_network)
    return tmp_path


# --------------------------------------------------------------------------------------------
# Translation

labels_strategy = st.one_of(
    st.integers(-5, 5),
    st.text("abc", min_size=1, max_size=2),
    st.tuples(st.integers(0, 2), st.text("xy", max_size=1)),
)
bias = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def bqms(draw: st.DrawFn, max_variables: int = 5) -> dimod.BinaryQuadraticModel:
    labels = draw(st.lists(labels_strategy, max_size=max_variables, unique=True))
    vartype = draw(st.sampled_from([dimod.BINARY, dimod.SPIN]))
    bqm = dimod.BinaryQuadraticModel(vartype)
    for label in labels:
        bqm.add_variable(label, draw(bias))
    for u, v in itertools.combinations(labels, 2):
        if draw(st.booleans()):
            bqm.add_quadratic(u, v, draw(bias))
    bqm.offset = draw(bias)
    return bqm


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bqms())
def test_program_objective_equals_bqm_energy_for_every_assignment(
    bqm: dimod.BinaryQuadraticModel,
) -> None:
    program, labels = bqm_to_quadratic_program(bqm)
    assert set(labels) == set(bqm.variables) and len(labels) == bqm.num_variables
    assert [v.name for v in program.variables] == [f"x{i}" for i in range(len(labels))]
    assert program.get_num_linear_constraints() == 0
    for sample in assignments(bqm):
        x = [to_binary(sample[label], bqm.vartype) for label in labels]
        assert math.isclose(
            program.objective.evaluate(x), bqm.energy(sample), rel_tol=1e-9, abs_tol=1e-9
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bqms())
def test_round_trip_keeps_labels_and_every_energy(bqm: dimod.BinaryQuadraticModel) -> None:
    program, labels = bqm_to_quadratic_program(bqm)
    back = quadratic_program_to_bqm(program, labels=labels)
    assert back.vartype is dimod.BINARY
    assert set(back.variables) == set(bqm.variables)
    for sample in assignments(bqm):
        binary = {v: to_binary(value, bqm.vartype) for v, value in sample.items()}
        assert math.isclose(back.energy(binary), bqm.energy(sample), rel_tol=1e-9, abs_tol=1e-9)
    # and once more through qiskit-optimization: the program is reproduced exactly
    again, _ = bqm_to_quadratic_program(back)
    assert again.objective.constant == pytest.approx(program.objective.constant)
    assert again.objective.linear.to_dict() == pytest.approx(program.objective.linear.to_dict())


def test_program_to_bqm_diagonal_terms_maximize_and_default_labels() -> None:
    program = QuadraticProgram()
    program.binary_var("a")
    program.binary_var("b")
    program.binary_var("unused")
    program.maximize(constant=1.0, linear={"a": 2.0}, quadratic={("a", "a"): 3.0, ("a", "b"): -4.0})
    bqm = quadratic_program_to_bqm(program)
    assert set(bqm.variables) == {"a", "b", "unused"}
    for x in itertools.product((0, 1), repeat=3):
        sample = dict(zip(["a", "b", "unused"], x, strict=True))
        # maximization is negated so that the BQM's minimum is the program's maximum
        assert bqm.energy(sample) == pytest.approx(-program.objective.evaluate(list(x)))


def test_translation_refuses_what_it_cannot_translate() -> None:
    constrained = QuadraticProgram()
    constrained.binary_var("a")
    constrained.linear_constraint({"a": 1}, "==", 1)
    with pytest.raises(InvalidProblemError, match="QuadraticProgramToQubo"):
        quadratic_program_to_bqm(constrained)
    integer = QuadraticProgram()
    integer.integer_var(0, 3, "n")
    with pytest.raises(InvalidProblemError, match="IntegerToBinary"):
        quadratic_program_to_bqm(integer)
    program, _ = bqm_to_quadratic_program(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY"))
    with pytest.raises(InvalidProblemError, match="one distinct label per program variable"):
        quadratic_program_to_bqm(program, labels=["a", "b"])
    with pytest.raises(InvalidProblemError, match="QuadraticProgram"):
        quadratic_program_to_bqm({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidProblemError, match="non-finite"):
        bqm_to_quadratic_program(dimod.BinaryQuadraticModel({"a": math.nan}, {}, 0, "BINARY"))


# --------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reps": 0}, r"The 'reps' parameter of QiskitQAOASolver must be an int in \[1, inf\)"),
        ({"shots": 0}, r"The 'shots' parameter .* Got 0 instead"),
        ({"maxiter": 0}, r"The 'maxiter' parameter"),
        ({"max_qubits": 0}, r"The 'max_qubits' parameter"),
        ({"seed": -1}, r"The 'seed' parameter"),
        ({"reps": 1.5}, r"The 'reps' parameter .* Got 1.5 instead"),
        ({"optimizer": "ADAM"}, r"'COBYLA', 'NELDER_MEAD', 'SPSA'.*Got 'ADAM' instead"),
        ({"optimizer": None}, r"The 'optimizer' parameter"),
        ({"backend": 3}, r"IBM backend name \(str\), a qiskit.providers.BackendV2 or None"),
        ({"backend": " "}, r"non-empty IBM backend name"),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SolverConfigurationError, match=message):
        QiskitQAOASolver(**options)


def test_options_are_keyword_only_and_optimizer_names_are_normalized() -> None:
    with pytest.raises(TypeError):
        QiskitQAOASolver(2)  # type: ignore[misc]
    assert QiskitQAOASolver(optimizer="nelder-mead").optimizer == "NELDER_MEAD"
    assert set(OPTIMIZERS) == {"COBYLA", "NELDER_MEAD", "SPSA"}
    solver = QiskitQAOASolver()
    assert (solver.reps, solver.optimizer, solver.maxiter, solver.shots) == (1, "COBYLA", 50, 1024)
    assert (solver.max_qubits, solver.remote, solver.backend) == (20, False, None)


def test_bad_problems_and_parameters_are_refused_at_sample_time() -> None:
    solver = QiskitQAOASolver(max_qubits=3, maxiter=2)
    with pytest.raises(ProblemTooLargeError) as error:
        solver.sample(dimod.generators.ran_r(1, 4, seed=0))
    text = str(error.value)
    assert "max_qubits=3" in text and "4 variables" in text and "get_solver('sa')" in text
    assert "decompose" in text
    for bad in (math.inf, math.nan):
        with pytest.raises(InvalidProblemError, match="non-finite"):
            solver.sample(dimod.BinaryQuadraticModel({"a": bad}, {}, 0, "SPIN"))
    with pytest.raises(InvalidProblemError, match="non-finite"):
        solver.sample(dimod.BinaryQuadraticModel({"a": 1}, {("a", "b"): math.inf}, 0, "SPIN"))
    small = dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "SPIN")
    with pytest.raises(SolverConfigurationError, match="unknown parameter"):
        solver.sample(small, num_reads=3)
    with pytest.raises(SolverConfigurationError, match="'shots' parameter"):
        solver.sample(small, shots=0)
    with pytest.raises(SolverConfigurationError, match="'optimizer' parameter"):
        solver.sample(small, optimizer="BFGS")


# --------------------------------------------------------------------------------------------
# dimod conformance


@dimod.testing.load_sampler_bqm_tests(
    lambda: QiskitQAOASolver(seed=3, maxiter=4, shots=64), max_num_variables=4
)
class TestDimodConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(QiskitQAOASolver(seed=0))


# --------------------------------------------------------------------------------------------
# Behaviour and quality


def test_maxcut_best_sample_is_the_optimum_and_qaoa_beats_uniform_sampling() -> None:
    graph = nx.random_regular_graph(3, 8, seed=1)
    bqm = maxcut_bqm(graph)
    exact = dimod.ExactSolver().sample(bqm)
    sampleset = QiskitQAOASolver(reps=2, seed=0, maxiter=40).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert sampleset.first.energy == exact.first.energy  # the maximum cut
    assert int(sampleset.record.num_occurrences.sum()) == 1024
    assert len(sampleset) == len({tuple(row) for row in sampleset.record.sample})  # distinct
    # QAOA has optimized something: its samples cut clearly more than uniform guessing does
    # (uniform mean -6 of an optimum -10 here; p=2 QAOA gets about -8.6).
    uniform = float(exact.record.energy.mean())
    assert mean_energy(sampleset) < uniform - 1.5
    info = sampleset.info
    assert list(info["optimal_parameters"]) == ["β[0]", "β[1]", "γ[0]", "γ[1]"]
    assert 0 < info["num_function_evaluations"] <= 45
    assert info["expected_energy"] == pytest.approx(mean_energy(sampleset), abs=0.3)
    assert set(info["timing"]) == {"preprocessing_ns", "sampling_ns", "postprocessing_ns"}
    assert all(value >= 0 for value in info["timing"].values())
    assert (info["reps"], info["optimizer"], info["backend"]) == (
        2,
        "COBYLA",
        "statevector_sampler",
    )


def test_seed_makes_runs_reproducible_and_call_parameters_override() -> None:
    bqm = dimod.generators.ran_r(1, 5, seed=2)
    solver = QiskitQAOASolver(seed=11, maxiter=10, shots=256)
    first, second = solver.sample(bqm), solver.sample(bqm)
    assert first.record.sample.tolist() == second.record.sample.tolist()
    assert first.record.num_occurrences.tolist() == second.record.num_occurrences.tolist()
    other = solver.sample(bqm, shots=100, reps=2, seed=5)
    assert int(other.record.num_occurrences.sum()) == 100
    assert len(other.info["optimal_parameters"]) == 4


@pytest.mark.parametrize("optimizer", ["NELDER_MEAD", "SPSA"])
def test_other_optimizers_run(optimizer: str) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": -1, "b": 0.5}, {("a", "b"): -1}, 0.25, "SPIN")
    sampleset = QiskitQAOASolver(optimizer=optimizer, seed=1, maxiter=3, shots=128).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert sampleset.info["optimizer"] == optimizer
    assert sampleset.info["num_function_evaluations"] > 0


def test_constant_energy_bqm_gives_uniform_samples() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 0.0, "b": 0.0, "c": 0.0}, {}, 2.5, "SPIN")
    sampleset = QiskitQAOASolver(seed=0, shots=800).sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert set(sampleset.record.energy.tolist()) == {2.5}
    assert len(sampleset) == 8 and int(sampleset.record.num_occurrences.sum()) == 800
    assert sampleset.info["num_function_evaluations"] == 0


@runtime_sampler_deprecated
def test_backend_object_runs_through_runtime_sampler_with_correct_energies() -> None:
    # A triangle needs SWAPs on Manila's line of qubits, so the routed layout is not the
    # identity: with qiskit-optimization's own pass_manager the optimizer would see energies
    # of permuted bits and 'expected_energy' would not match the samples (see the module).
    bqm = dimod.BinaryQuadraticModel(
        {0: 0.5, 1: -2.0, 2: 1.0, 3: -0.5},
        {(0, 1): 1.0, (1, 2): -1.5, (0, 2): 2.0, (2, 3): 1.0, (1, 3): 0.7},
        0.0,
        "BINARY",
    )
    solver = QiskitQAOASolver(seed=0, maxiter=15, shots=2000, backend=FakeManilaV2())
    assert solver.remote is False  # a local fake backend, not IBM hardware
    sampleset = solver.sample(bqm)
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    assert sampleset.info["backend"] == "fake_manila"
    assert sampleset.info["expected_energy"] == pytest.approx(mean_energy(sampleset), abs=0.2)
    uniform = float(dimod.ExactSolver().sample(bqm).record.energy.mean())  # 0.3
    assert mean_energy(sampleset) < uniform - 1.0
    with pytest.raises(ProblemTooLargeError, match="has 5 qubits; this BQM has 6 variables"):
        solver.sample(dimod.generators.ran_r(1, 6, seed=0))


def test_get_solver_end_to_end_with_a_record() -> None:
    solver = get_solver("qaoa-qiskit", seed=0, maxiter=10)
    bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
    sampleset = solver.sample(bqm)
    assert sampleset.first.energy == -1.0
    record = record_of(sampleset)
    assert (record.solver, record.solved_by, record.num_variables) == ("qaoa-qiskit",) * 2 + (2,)
    assert record.fallback is None and not record.mock and record.wall_s > 0
    assert record.energy_provenance in ("measured", "estimated")
    assert record.timing["sampling_ns"] > 0
    with pytest.raises(SolverConfigurationError, match="Unknown option"):
        get_solver("qaoa-qiskit", num_reads=3)


def test_import_qopt_solvers_does_not_import_qiskit() -> None:
    code = (
        "import sys, qopt, qopt.solvers\n"
        "qopt.solvers.available_solvers()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('qiskit', 'qiskit_optimization', 'qiskit_ibm_runtime'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# IBM Quantum account


def test_ibm_status_reads_the_environment_and_saved_accounts(
    no_ibm_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured, message = ibm_status()
    assert configured is False
    assert "save_account" in message and "QISKIT_IBM_TOKEN" in message

    monkeypatch.setenv("QISKIT_IBM_TOKEN", "not-a-real-token")
    assert ibm_status() == (
        True,
        "IBM Quantum token from the environment variable QISKIT_IBM_TOKEN",
    )
    monkeypatch.delenv("QISKIT_IBM_TOKEN")

    account_file = no_ibm_account / "qiskit-ibm.json"
    account_file.write_text(
        json.dumps(
            {"default-ibm-quantum-platform": {"channel": "ibm_quantum_platform", "token": "t"}}
        )
    )
    configured, message = ibm_status()
    assert configured is True and "default-ibm-quantum-platform" in message

    account_file.write_text("{ not json")
    configured, message = ibm_status()  # reported, never raised
    assert configured is False and "could not read saved IBM Quantum accounts" in message


def test_local_simulator_is_ready_without_an_account_and_status_says_so(
    no_ibm_account: Any,
) -> None:
    status = solver_status("qaoa-qiskit")
    assert status.installed is True
    account_ready, message = ibm_status()
    assert not account_ready
    assert status.ready is True  # the local simulator needs no account
    assert status.message == message


def test_hardware_backend_without_account_fails_fast_without_network(no_ibm_account: Any) -> None:
    solver = QiskitQAOASolver(backend="ibm_nowhere")  # the constructor never connects
    assert solver.remote is True
    assert solver.properties["backend"] == "ibm_nowhere"
    bqm = dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "SPIN")
    with pytest.raises(SolverUnavailableError) as error:
        solver.sample(bqm)
    assert "ibm_nowhere" in str(error.value) and "save_account" in str(error.value)
    assert "QISKIT_IBM_TOKEN" in str(error.value)
    # an empty BQM needs no hardware: dimod's contract answers it with an empty sample set
    assert len(solver.sample(dimod.BinaryQuadraticModel("SPIN"))) == 0


def test_hardware_backend_unreachable_is_solver_unavailable(
    no_ibm_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "not-a-real-token")

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(QiskitRuntimeService, "__init__", unreachable)
    solver = QiskitQAOASolver(backend="ibm_nowhere")
    with pytest.raises(SolverUnavailableError, match="ConnectionError: network unreachable"):
        solver.sample(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "SPIN"))


def test_get_solver_hardware_without_account_falls_back(no_ibm_account: Any) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -1.0}, {("a", "b"): 0.5}, 0, "SPIN")
    # A backend name makes the solver remote, so get_solver adds the local fallback ('sa').
    solver = get_solver("qaoa-qiskit", backend="ibm_nowhere", seed=0)
    with pytest.warns(QoptFallbackWarning, match="SolverUnavailableError.*save_account"):
        sampleset = solver.sample(bqm)
    record = record_of(sampleset)
    assert (record.solver, record.solved_by) == ("qaoa-qiskit", "sa")
    assert "SolverUnavailableError" in (record.fallback or "")
    assert sampleset.first.energy == pytest.approx(-2.5)
    assert np.isin(sampleset.record.sample, (-1, 1)).all()
    # fallback=None raises instead; the local simulator gets no fallback by default.
    with pytest.raises(SolverUnavailableError, match="ibm_nowhere"):
        get_solver("qaoa-qiskit", backend="ibm_nowhere", fallback=None).sample(bqm)
    local = get_solver("qaoa-qiskit", seed=0, maxiter=5)
    assert not isinstance(local.child, FallbackComposite)


def test_the_local_simulator_refuses_more_qubits_than_memory_can_hold() -> None:
    from qopt.solvers.qiskit_qaoa import LOCAL_MAX_QUBITS

    with pytest.raises(SolverConfigurationError, match=r"'max_qubits' .* at most 32"):
        QiskitQAOASolver(max_qubits=60)
    assert QiskitQAOASolver(max_qubits=LOCAL_MAX_QUBITS).max_qubits == LOCAL_MAX_QUBITS
    with pytest.raises(SolverConfigurationError, match="'max_qubits'"):
        get_solver("qaoa-qiskit", max_qubits=60)
