"""Torch model analysis for structured pruning: counting, prunable groups, unit removal.

- :func:`count_params_and_macs` (:mod:`~qopt.model_analysis.counting`): parameters and
  multiply-accumulates of one forward.
- :func:`model_pruning_groups` (:mod:`~qopt.model_analysis.groups`): the groups of units a
  model can lose together, traced with Torch-Pruning's dependency graph
  (:mod:`~qopt.model_analysis.tracing`), the exact cost of any selection
  (:mod:`~qopt.model_analysis.cost`) and their removal (:mod:`~qopt.model_analysis.surgery`).
- :class:`PruningHooks` (:mod:`~qopt.model_analysis.hooks`): masks applied by forward hooks
  while a pruned network fine-tunes, and the calibration statistics its scores need
  (:mod:`~qopt.model_analysis.scores`).
- :func:`select_units` (:mod:`~qopt.model_analysis.selection`): the units to keep within a
  budget, by the pruning QUBO (:mod:`qopt.problems.pruning`) solved through
  :func:`qopt.pipeline.solve`.
- :func:`load_pruned` (:mod:`~qopt.model_analysis.checkpoint`): a pruned model back from a
  checkpoint (cut, or still masked) that holds a :func:`pruning_record`.

Framework-free apart from torch (and Torch-Pruning for tracing, imported when first used):
the pruning callback, ``qopt nas`` and any other caller share it.

Examples:
    >>> import torch
    >>> from qopt.model_analysis import count_params_and_macs, model_pruning_groups
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
    >>> groups.prune(model, {"0": [True, True, False, True]})
    >>> count_params_and_macs(model, torch.zeros(1, 8)) == (groups.cost({"0": 3}, "params"), 30)
    True
"""

from __future__ import annotations

from qopt.model_analysis.checkpoint import PRUNING_KEY, load_pruned, pruning_record
from qopt.model_analysis.counting import count_params_and_macs
from qopt.model_analysis.groups import ModelPruningGroups, PrunableGroup, model_pruning_groups
from qopt.model_analysis.hooks import PruningHooks
from qopt.model_analysis.selection import UnitSelection, select_units

__all__ = [
    "PRUNING_KEY",
    "ModelPruningGroups",
    "PrunableGroup",
    "PruningHooks",
    "UnitSelection",
    "count_params_and_macs",
    "load_pruned",
    "model_pruning_groups",
    "pruning_record",
    "select_units",
]
