"""Lightning callbacks that hand a training loop's discrete decisions to a QUBO solver."""

from __future__ import annotations

from qopt.integrations.lightning._pruning import (
    ModelPruningGroups,
    PrunableGroup,
    QoptPruningWarning,
    QuboPruningCallback,
    count_params_and_macs,
    model_pruning_groups,
)
from qopt.integrations.lightning._routing import QuboRoutingCallback

__all__ = [
    "ModelPruningGroups",
    "PrunableGroup",
    "QoptPruningWarning",
    "QuboPruningCallback",
    "QuboRoutingCallback",
    "count_params_and_macs",
    "model_pruning_groups",
]
