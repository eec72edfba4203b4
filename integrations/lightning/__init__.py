"""Lightning callbacks that hand a training loop's discrete decisions to a QUBO solver."""

from __future__ import annotations

from qopt.integrations.lightning._pruning import QuboPruningCallback, count_params_and_macs
from qopt.integrations.lightning._routing import QuboRoutingCallback

__all__ = ["QuboPruningCallback", "QuboRoutingCallback", "count_params_and_macs"]
