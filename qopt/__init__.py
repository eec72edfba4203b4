"""qopt: quantum and quantum-inspired optimizers inside classical training loops.

Importing ``qopt`` loads only the framework-free core (numpy, dimod). Lightning, Optuna,
Qiskit and dwave-system are imported when an integration or backend that needs them is used.
"""

from __future__ import annotations

from qopt.exceptions import QoptError

__version__ = "0.1.0"

__all__ = ["QoptError", "__version__"]
