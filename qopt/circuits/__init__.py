"""Quantum circuits in torch: one batched statevector engine and what is built on it.

:mod:`qopt.circuits.statevector` holds the gate kernels (single-qubit layers as block matrix
products, diagonal phase layers, CZ and CNOT entanglers, Pauli-Z expectations) that the
``qaoa`` solver backend and the parameterized-circuit head both use.
:class:`~qopt.circuits.head.QuantumHead` is that head: a PQC classifier on feature vectors;
:func:`~qopt.circuits.training.fit_head` trains it on precomputed features;
:class:`~qopt.circuits.hardware.EstimatorExecutor` runs it on hardware through Qiskit.
"""

from qopt.circuits.hardware import EstimatorExecutor
from qopt.circuits.head import QuantumHead
from qopt.circuits.training import HeadFitRecord, fit_head

__all__ = ["EstimatorExecutor", "HeadFitRecord", "QuantumHead", "fit_head"]
