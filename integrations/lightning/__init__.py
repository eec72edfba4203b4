"""Lightning callbacks that hand a training loop's discrete decisions to a QUBO solver."""

from __future__ import annotations

from qopt.integrations.lightning._attention import QuboAttentionCallback
from qopt.integrations.lightning._demo import print_routing_demo, routing_demo
from qopt.integrations.lightning._finetuning import QuantumHeadFinetuning, restore_quantum_head
from qopt.integrations.lightning._pruning import QoptPruningWarning, QuboPruningCallback
from qopt.integrations.lightning._routing import QoptRoutingWarning, QuboRoutingCallback

# Re-exported for code written against this module; their home is qopt.model_analysis.
from qopt.model_analysis import (
    ModelPruningGroups,
    PrunableGroup,
    count_params_and_macs,
    model_pruning_groups,
)

__all__ = [
    "ModelPruningGroups",
    "PrunableGroup",
    "QoptPruningWarning",
    "QoptRoutingWarning",
    "QuantumHeadFinetuning",
    "QuboAttentionCallback",
    "QuboPruningCallback",
    "QuboRoutingCallback",
    "count_params_and_macs",
    "model_pruning_groups",
    "print_routing_demo",
    "restore_quantum_head",
    "routing_demo",
]
