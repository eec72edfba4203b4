"""Run a :class:`~qopt.circuits.head.QuantumHead`'s circuits on hardware through Qiskit.

:class:`EstimatorExecutor` turns the head's circuit into one parameterized Qiskit circuit
and sends every circuit of a mini-batch, the parameter-shift terms of its gradient
included, as **one** primitive call: a single PUB whose parameter-value array has one row
per (example, shift) and whose observables are the ``n`` single-qubit ``Z``, so the
primitive broadcasts them into a ``(n, rows)`` array of expectation values. One job per
mini-batch, never one per example (Qiskit ML's TorchConnector and PennyLane's TorchLayer
send one circuit per example).

Any ``EstimatorV2`` works: ``qiskit.primitives.StatevectorEstimator`` locally (exact; what
the tests use), ``BackendEstimatorV2`` around a backend (IonQ through ``qiskit-ionq``, a fake
IBM backend), or ``qiskit_ibm_runtime.EstimatorV2`` on IBM hardware, with its token set up the
way the SDK does it (``QiskitRuntimeService.save_account``). Hardware needs circuits in its
instruction set: pass the backend's ``pass_manager``
(``generate_preset_pass_manager(backend=..., optimization_level=1)``).

A primitive that fails (network, token, queue timeout) or a spent job budget does not stop
training: the head warns once, naming the cause, and goes on with its exact simulator;
:attr:`EstimatorExecutor.fallback` records why.

This module imports qiskit when it is used; install ``qopt-loop[qiskit]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from qopt._validation import check_int
from qopt.exceptions import MissingDependencyError, SolverUnavailableError

if TYPE_CHECKING:
    from qopt.circuits.head import QuantumHead

__all__ = ["EstimatorExecutor"]


def _qiskit() -> Any:
    try:
        import qiskit
    except ImportError as error:
        raise MissingDependencyError(
            "EstimatorExecutor needs qiskit: pip install 'qopt-loop[qiskit]'."
        ) from error
    return qiskit


class EstimatorExecutor:
    """Evaluates a quantum head's circuits with a Qiskit ``EstimatorV2``, one job per batch.

    Args:
        estimator: An ``EstimatorV2`` (local, ``BackendEstimatorV2`` or IBM Runtime's).
        pass_manager: Optional transpiler pass manager to the backend's instruction set;
            the observables follow the layout it chooses.
        max_jobs: Most primitive calls allowed; ``None``: no limit. Past it the head goes on
            with its simulator (and says so once).

    Attributes:
        jobs: Primitive calls made so far.
        rows: Parameter sets (circuits) evaluated so far.
        fallback: Why the head fell back to its simulator, or ``None``.

    Examples:
        >>> import torch
        >>> from qiskit.primitives import StatevectorEstimator
        >>> from qopt.circuits import QuantumHead
        >>> executor = EstimatorExecutor(StatevectorEstimator())
        >>> head = QuantumHead(4, 2, num_qubits=2, layers=1, gradient="parameter-shift",
        ...                    executor=executor, seed=0)
        >>> head(torch.randn(8, 4)).sum().backward()  # 8 examples, 12 shifted circuits each
        >>> executor.jobs, executor.rows  # one job for the batch and its gradient
        (1, 104)
    """

    def __init__(
        self, estimator: Any, *, pass_manager: Any = None, max_jobs: int | None = None
    ) -> None:
        if not callable(getattr(estimator, "run", None)):
            raise SolverUnavailableError(
                "EstimatorExecutor needs a Qiskit EstimatorV2 (an object with run(pubs)); "
                f"got {type(estimator).__name__}. Use qiskit.primitives.StatevectorEstimator() "
                "locally or qiskit_ibm_runtime.EstimatorV2(mode=backend) for IBM hardware."
            )
        self.estimator = estimator
        self.pass_manager = pass_manager
        self.max_jobs = (
            None
            if max_jobs is None
            else check_int(max_jobs, "max_jobs", "EstimatorExecutor", low=1)
        )
        self.jobs = 0
        self.rows = 0
        self.fallback: str | None = None
        self._circuits: dict[tuple[int, int, tuple[tuple[int, int], ...]], Any] = {}

    def _circuit(self, head: QuantumHead) -> tuple[Any, Any, list[int], list[int]]:
        """The head's parameterized circuit, its observables, and the column of each of its
        parameters for the encoded angles ``(L, n)`` and the weights ``(L, n, 2)``."""
        key = (head.num_qubits, head.layers, tuple(head.pairs))
        if key not in self._circuits:
            qiskit = _qiskit()
            from qiskit.circuit import ParameterVector
            from qiskit.quantum_info import SparsePauliOp

            n, layers = head.num_qubits, head.layers
            angles = ParameterVector("x", layers * n)
            weights = ParameterVector("w", layers * n * 2)
            circuit = qiskit.QuantumCircuit(n)
            for layer in range(layers):
                for qubit in range(n):
                    circuit.ry(angles[layer * n + qubit], qubit)
                    circuit.rz(weights[(layer * n + qubit) * 2], qubit)
                    circuit.ry(weights[(layer * n + qubit) * 2 + 1], qubit)
                for a, b in head.pairs:
                    circuit.cz(a, b)
            observables = [
                SparsePauliOp.from_sparse_list([("Z", [qubit], 1.0)], num_qubits=n)
                for qubit in range(n)
            ]
            if self.pass_manager is not None:
                circuit = self.pass_manager.run(circuit)
                observables = [o.apply_layout(circuit.layout) for o in observables]
            order = {parameter: column for column, parameter in enumerate(circuit.parameters)}
            self._circuits[key] = (
                circuit,
                [[observable] for observable in observables],  # (n, 1): broadcasts over rows
                [order[p] for p in angles],
                [order[p] for p in weights],
            )
        return self._circuits[key]

    def expectations(
        self, head: QuantumHead, angles: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """``<Z_j>`` of ``rows`` circuits in one primitive call.

        Args:
            head: The head whose circuit runs.
            angles: Encoded angles of every layer, ``(rows, layers, n)``.
            weights: Circuit weights, ``(rows, layers, n, 2)``.

        Returns:
            ``(rows, n)``, on ``angles``' device and in its dtype.

        Raises:
            SolverUnavailableError: The job budget is spent.
        """
        if self.max_jobs is not None and self.jobs >= self.max_jobs:
            raise SolverUnavailableError(
                f"the job budget of {self.max_jobs} primitive calls is spent "
                "(EstimatorExecutor max_jobs)"
            )
        circuit, observables, angle_columns, weight_columns = self._circuit(head)
        rows = angles.shape[0]
        values = np.empty((rows, circuit.num_parameters))
        values[:, angle_columns] = angles.detach().reshape(rows, -1).cpu().double().numpy()
        values[:, weight_columns] = weights.detach().reshape(rows, -1).cpu().double().numpy()
        options: dict[str, Any] = {}
        if head.shots is not None:
            options["precision"] = 1.0 / np.sqrt(head.shots)
        self.jobs += 1
        self.rows += rows
        result = self.estimator.run([(circuit, observables, values)], **options).result()
        evs = np.asarray(result[0].data.evs, dtype=float).reshape(head.num_qubits, rows)
        return torch.from_numpy(evs.T.copy()).to(device=angles.device, dtype=angles.dtype)
