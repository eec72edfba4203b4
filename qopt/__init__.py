"""qopt: quantum and quantum-inspired optimizers inside classical training loops.

Importing ``qopt`` loads only the framework-free core (numpy, dimod). Lightning, Optuna,
Qiskit and dwave-system are imported when an integration or backend that needs them is used.
"""

from __future__ import annotations

from qopt.constraints import ConstrainedQUBO
from qopt.exceptions import QoptError
from qopt.pipeline import Formulation, Solution, solve, solve_batch

__version__ = "0.1.0"

__all__ = [
    "ConstrainedQUBO",
    "Formulation",
    "QoptError",
    "Solution",
    "__version__",
    "solve",
    "solve_batch",
]
