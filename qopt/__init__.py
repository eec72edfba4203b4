"""qopt: quantum and quantum-inspired optimizers inside classical training loops.

Importing ``qopt`` loads nothing heavy: the names below are imported on first use (PEP 562), so
``qopt --help`` does not pay for dimod. Lightning, Optuna, Qiskit and dwave-system are imported
when an integration or backend that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "ConstrainedQUBO": "qopt.constraints",
    "QoptError": "qopt.exceptions",
    "Formulation": "qopt.pipeline",
    "Solution": "qopt.pipeline",
    "solve": "qopt.pipeline",
    "solve_batch": "qopt.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'qopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
