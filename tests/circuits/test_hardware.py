from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit")

from qiskit.primitives import BackendEstimatorV2, StatevectorEstimator
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.transpiler import generate_preset_pass_manager

from qopt.circuits import QuantumHead, fit_head
from qopt.circuits.hardware import EstimatorExecutor
from qopt.exceptions import SolverConfigurationError, SolverUnavailableError


class RecordingEstimator(StatevectorEstimator):
    """Qiskit's exact local estimator, counting primitive calls and the PUBs of each."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def run(self, pubs: Any, *, precision: float | None = None) -> Any:
        self.calls.append(len(pubs))
        return super().run(pubs, precision=precision)


class BrokenEstimator:
    def run(self, pubs: Any, **options: Any) -> Any:
        raise ConnectionError("the QPU queue is unreachable")


def head_on(executor: EstimatorExecutor | None, **options: Any) -> QuantumHead:
    head = QuantumHead(
        5,
        3,
        num_qubits=3,
        layers=2,
        dtype="float64",
        seed=4,
        gradient="parameter-shift" if executor is not None else "backprop",
        executor=executor,
        **options,
    )
    with torch.no_grad():
        head.weights.uniform_(-math.pi, math.pi, generator=torch.Generator().manual_seed(1))
    return head


def loss_gradients(head: QuantumHead, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    head.zero_grad()
    x = x.clone().requires_grad_(True)
    logits = head(x)
    (
        logits * torch.linspace(-1, 2, logits.numel(), dtype=logits.dtype).view_as(logits)
    ).sum().backward()
    assert head.weights.grad is not None and x.grad is not None
    return logits.detach(), head.weights.grad.clone(), x.grad.clone()


def test_a_training_step_is_one_job_with_every_shift_and_exact_values() -> None:
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    estimator = RecordingEstimator()
    executor = EstimatorExecutor(estimator)
    on_hardware = loss_gradients(head_on(executor), x)
    assert estimator.calls == [1]  # one primitive call, one PUB: batch and gradient together
    assert executor.jobs == 1 and executor.rows == 6 * (1 + 2 * 3 * 2 * 3)
    simulated = loss_gradients(head_on(None), x)
    for got, expected in zip(on_hardware, simulated, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-9)
    with torch.no_grad():  # evaluation: the batch alone, one job
        head_on(executor)(x)
    assert estimator.calls == [1, 1] and executor.rows == 6 * 37 + 6


def test_fit_head_sends_one_job_per_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3))
    y = (x[:, 0] > 0).astype(int)
    estimator = RecordingEstimator()
    executor = EstimatorExecutor(estimator)
    head = QuantumHead(
        3, 2, num_qubits=2, layers=1, gradient="parameter-shift", executor=executor, seed=0
    )
    fit_head(x, y, head=head, epochs=2, batch_size=8)
    assert len(estimator.calls) == 2 * 3 + 1  # 3 steps per epoch, then the accuracy pass
    assert executor.fallback is None


def test_a_failing_backend_warns_once_and_training_goes_on_simulated() -> None:
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    executor = EstimatorExecutor(BrokenEstimator())
    head = head_on(executor)
    with pytest.warns(RuntimeWarning, match="QPU queue is unreachable.*simulator"):
        got = loss_gradients(head, x)
    assert executor.fallback is not None and "ConnectionError" in executor.fallback
    expected = loss_gradients(head_on(None), x)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the simulator just carries on
        loss_gradients(head, x)


def test_the_job_budget_is_respected() -> None:
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    estimator = RecordingEstimator()
    executor = EstimatorExecutor(estimator, max_jobs=2)
    head = head_on(executor)
    loss_gradients(head, x)
    loss_gradients(head, x)
    with pytest.warns(RuntimeWarning, match="job budget of 2"):
        loss_gradients(head, x)
    assert len(estimator.calls) == 2 and executor.jobs == 2


@pytest.mark.filterwarnings("ignore:Aer not found")
def test_shots_on_a_transpiled_fake_backend_estimate_the_exact_values() -> None:
    # A 5-qubit generic backend: the circuit is transpiled to its basis and layout, and the
    # observables follow the layout; 4000 shots per circuit (noiseless without qiskit-aer).
    backend = GenericBackendV2(num_qubits=5, seed=0)
    executor = EstimatorExecutor(
        BackendEstimatorV2(backend=backend, options={"seed_simulator": 0}),
        pass_manager=generate_preset_pass_manager(
            backend=backend, optimization_level=1, seed_transpiler=0
        ),
    )
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    noisy = head_on(executor, shots=4000)
    with torch.no_grad():
        sampled = noisy.expectations(x)
        exact = head_on(None).expectations(x)
    assert executor.jobs == 1
    # Each <Z> from 4000 shots: standard deviation at most 1 / sqrt(4000) = 0.016.
    assert (sampled - exact).abs().max() < 5 / math.sqrt(4000)
    assert (sampled - exact).abs().max() > 0  # and it is sampled, not exact


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(SolverConfigurationError, match="parameter-shift"):
        QuantumHead(5, 2, num_qubits=3, executor=EstimatorExecutor(StatevectorEstimator()))
    with pytest.raises(SolverConfigurationError, match="amplitude"):
        QuantumHead(
            5,
            2,
            num_qubits=3,
            encoding="amplitude",
            projection="fixed",
            gradient="parameter-shift",
            executor=EstimatorExecutor(StatevectorEstimator()),
        )
    with pytest.raises(SolverUnavailableError, match="EstimatorV2"):
        EstimatorExecutor(object())
    with pytest.raises(SolverConfigurationError, match="'max_jobs'"):
        EstimatorExecutor(StatevectorEstimator(), max_jobs=0)


@pytest.fixture
def ionq_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """IonQ's cloud simulator backend from qiskit-ionq, kept offline: no token in the
    environment or a ``.env`` file, and the API address on a closed loopback port."""
    pytest.importorskip("qiskit_ionq")
    from qiskit_ionq import IonQProvider

    for name in ("IONQ_API_KEY", "QISKIT_IONQ_API_TOKEN", "IONQ_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IONQ_API_URL", "http://127.0.0.1:9/v0.4")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Failed to get qubits ... Using 4": offline
        return IonQProvider().get_backend("simulator")


def ionq_executor(estimator: Any, backend: Any) -> EstimatorExecutor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qiskit-ionq's transpile-level advice
        pass_manager = generate_preset_pass_manager(
            backend=backend, optimization_level=1, seed_transpiler=0
        )
    return EstimatorExecutor(estimator, pass_manager=pass_manager)


def test_the_circuit_compiled_for_ionq_gives_the_simulators_values(ionq_backend: Any) -> None:
    # qiskit-ionq has no local simulator: its "simulator" runs in IonQ's cloud. The circuit
    # compiled to its gate set and layout runs here on Qiskit's exact estimator instead.
    executor = ionq_executor(RecordingEstimator(), ionq_backend)
    x = torch.randn(5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = loss_gradients(head_on(executor), x)
    expected = loss_gradients(head_on(None), x)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    assert executor.jobs == 1 and executor.fallback is None


def test_ionq_without_a_token_warns_and_training_goes_on_simulated(ionq_backend: Any) -> None:
    executor = ionq_executor(BackendEstimatorV2(backend=ionq_backend), ionq_backend)
    head = head_on(executor, shots=100)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="IonQCredentialsError.*token.*simulator"):
        logits, _, _ = loss_gradients(head, x)
    assert executor.fallback is not None and "IonQCredentialsError" in executor.fallback
    assert torch.isfinite(logits).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; the simulator carries on
        loss_gradients(head, x)
