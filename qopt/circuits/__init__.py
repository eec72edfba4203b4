"""Quantum circuits in torch: one batched statevector engine and what is built on it.

:mod:`qopt.circuits.statevector` holds the gate kernels (single-qubit layers as block matrix
products, diagonal phase layers, CZ and CNOT entanglers, Pauli-Z expectations) that the
``qaoa`` solver backend and the parameterized-circuit head both use.
:class:`~qopt.circuits.head.QuantumHead` is that head: a PQC classifier on feature vectors;
:func:`~qopt.circuits.training.fit_head` trains it on precomputed features;
:class:`~qopt.circuits.hardware.EstimatorExecutor` runs it on hardware through Qiskit;
:func:`~qopt.circuits.breakeven.break_even` finds the qubit count where simulating its
training step costs as much energy as a (modelled) QPU.
"""

from qopt.circuits.breakeven import (
    BreakEven,
    ClassicalReference,
    QPUEnergyModel,
    StepCost,
    break_even,
    classical_reference,
    measure_training_step,
)
from qopt.circuits.hardware import EstimatorExecutor
from qopt.circuits.head import QuantumHead
from qopt.circuits.training import HeadFitRecord, fit_head

__all__ = [
    "BreakEven",
    "ClassicalReference",
    "EstimatorExecutor",
    "HeadFitRecord",
    "QPUEnergyModel",
    "QuantumHead",
    "StepCost",
    "break_even",
    "classical_reference",
    "fit_head",
    "measure_training_step",
]
