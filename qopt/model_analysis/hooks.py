"""Forward hooks that train the pruned network before it is cut, and gather what scoring needs.

:class:`PruningHooks` zeroes the dropped units of each group at the inputs of the layers that
read them (an MoE masks its dropped experts: :meth:`qopt.moe.MoE.mask_experts`), so the network
that fine-tunes is the one that will ship; while collecting, the same hooks keep calibration
activations (redundancy), and Fisher and Taylor statistics (importance). Plain torch: a
training loop calls :meth:`PruningHooks.install`, :meth:`~PruningHooks.start_epoch`,
:meth:`~PruningHooks.after_backward` and :meth:`~PruningHooks.local_scores`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qopt.model_analysis.layers import input_width
from qopt.model_analysis.scores import magnitude_scores, redundancy_scores, taylor_scores
from qopt.model_analysis.tracing import UnitGroup
from qopt.problems.pruning import fisher_importance

__all__ = ["IMPORTANCES", "PruningHooks", "is_being_pruned"]

#: The importance scores :class:`PruningHooks` can give.
IMPORTANCES = ("l1", "l2", "taylor", "fisher")
#: Modules that installed hooks mask units of, with how many installed sets do.
_MASKED_MODULES: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def is_being_pruned(model: nn.Module) -> bool:
    """Whether installed :class:`PruningHooks` mask units of ``model`` (or of a submodule).

    A pruning loop is then running on it and owns its structure: it keeps every unit, masked,
    until it cuts the model. :func:`~qopt.model_analysis.load_pruned` loads such a model's
    weights as they are (a fit resumed from a checkpoint) instead of cutting it.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis.tracing import trace_unit_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
        ...                             torch.nn.Linear(3, 1))
        >>> hooks = PruningHooks(trace_unit_groups(model, torch.zeros(1, 4)),
        ...                      {"0": torch.tensor([True, False, True])})
        >>> hooks.install()
        >>> is_being_pruned(model)
        True
        >>> hooks.remove()
        >>> is_being_pruned(model)
        False
    """
    return any(module in _MASKED_MODULES for module in model.modules())


class PruningHooks:
    """Masks on a model's unit groups, applied by forward hooks, and calibration statistics.

    Args:
        groups: The model's groups (:func:`~qopt.model_analysis.tracing.trace_unit_groups`).
        masks: Per group name, a boolean tensor over all its units (True: kept). Read at every
            forward, so the caller may update it in place between steps.
        importance: ``"l1"``, ``"l2"``, ``"taylor"`` or ``"fisher"``.
        path_norm: With ``"l1"``/``"l2"``, multiply each channel's magnitude by the norm of
            the weights that read it (:func:`~qopt.model_analysis.scores.magnitude_scores`).
        calibration_samples: Samples (tokens, for experts) kept per group while collecting.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis.tracing import trace_unit_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
        ...                             torch.nn.Linear(3, 1))
        >>> groups = trace_unit_groups(model, torch.zeros(1, 4))
        >>> hooks = PruningHooks(groups, {"0": torch.tensor([True, False, True])})
        >>> hooks.install()
        >>> hooks.start_epoch(collecting=True)
        >>> _ = model(torch.randn(8, 4))
        >>> importance, redundancy, seen = hooks.local_scores(groups[0], alpha=0.5)
        >>> importance.shape, redundancy.shape, seen
        ((3,), (3, 3), 8.0)
        >>> hooks.remove()
    """

    def __init__(
        self,
        groups: Sequence[UnitGroup],
        masks: Mapping[str, torch.Tensor],
        *,
        importance: str = "l1",
        path_norm: bool = True,
        calibration_samples: int = 256,
    ) -> None:
        self.groups = list(groups)
        self.masks = masks
        self.importance = importance
        self.path_norm = path_norm
        self.calibration_samples = calibration_samples
        #: Whether the hooks gather statistics (in training forwards with gradients).
        self.collecting = False
        self.statistics: dict[str, dict[str, Any]] = {}
        self._handles: list[Any] = []

    # -- installing ------------------------------------------------------------------------

    def install(self) -> None:
        """Register the forward hooks (again: any earlier ones are removed first)."""
        self.remove()
        for module in self._masked_modules():
            _MASKED_MODULES[module] = _MASKED_MODULES.get(module, 0) + 1
        per_consumer: dict[nn.Module, list[tuple[UnitGroup, torch.Tensor, torch.Tensor]]] = {}
        for group in self.groups:
            for module, positions, units in group.consumers:
                per_consumer.setdefault(module, []).append((group, positions, units))
        for module, entries in per_consumer.items():
            self._handles.append(
                module.register_forward_pre_hook(self._consumer_hook(module, entries))
            )
        for group in self.groups:
            if group.moe is not None:
                self._handles.append(group.moe.register_forward_pre_hook(self._expert_hook(group)))
                self._handles.append(group.moe.register_forward_pre_hook(self._token_hook(group)))

    def remove(self) -> None:
        """Remove the hooks; the model computes its full network again."""
        if self._handles:
            for module in self._masked_modules():
                left = _MASKED_MODULES.get(module, 1) - 1
                if left > 0:
                    _MASKED_MODULES[module] = left
                else:
                    _MASKED_MODULES.pop(module, None)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for group in self.groups:
            if group.moe is not None:
                group.moe.mask_experts(None)

    def _masked_modules(self) -> set[nn.Module]:
        """The modules whose inputs (or experts) the hooks mask."""
        modules = {module for group in self.groups for module, _, _ in group.consumers}
        return modules | {group.moe for group in self.groups if group.moe is not None}

    def _expert_hook(self, group: UnitGroup) -> Any:
        """Dropped experts take no token: the layer masks them in every routing path."""
        assert group.moe is not None
        moe = group.moe

        def hook(_module: nn.Module, _args: Any) -> None:
            mask = self.masks[group.name]
            moe.mask_experts(None if bool(mask.all()) else mask)

        return hook

    def _token_hook(self, group: UnitGroup) -> Any:
        """Keep calibration tokens (an MoE's inputs) for the experts' redundancy."""
        assert group.moe is not None
        width = group.moe.d_model

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0] if args else None
            if not (isinstance(x, torch.Tensor) and self._observing(module)):
                return
            stats = self._stats(group)
            if stats["count"] < self.calibration_samples:
                tokens = x.detach().reshape(-1, width)
                take = min(self.calibration_samples - stats["count"], tokens.shape[0])
                stats["acts"].append(tokens[:take].float().cpu())
                stats["count"] += take

        return hook

    def _consumer_hook(
        self, module: nn.Module, entries: list[tuple[UnitGroup, torch.Tensor, torch.Tensor]]
    ) -> Any:
        """Zero the dropped units at this layer's inputs (after observing them)."""
        conv = isinstance(module, nn.Conv2d)
        width = input_width(module)

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0]
            if not isinstance(x, torch.Tensor):
                return None
            if self._observing(module):
                for group, positions, _ in entries:
                    if group.consumers[0][0] is module:  # each group observed once per forward
                        self._observe(group, positions, x, conv)
            scale = torch.ones(width, dtype=x.dtype, device=x.device)
            pruned = False
            for group, positions, units in entries:
                mask = self.masks[group.name]
                if bool(mask.all()):
                    continue
                pruned = True
                scale[positions.to(x.device)] = mask.to(x.device)[units.to(x.device)].to(x.dtype)
            if not pruned:
                return None
            shape = (1, width, 1, 1) if conv else (width,)
            return (x * scale.view(shape), *args[1:])

        return hook

    # -- statistics ------------------------------------------------------------------------

    def start_epoch(self, *, collecting: bool) -> None:
        """Forget the statistics gathered so far; gather new ones from now on if ``collecting``."""
        self.collecting = collecting
        self.statistics = {}

    def _observing(self, module: nn.Module) -> bool:
        return self.collecting and module.training and torch.is_grad_enabled()

    def _stats(self, group: UnitGroup) -> dict[str, Any]:
        return self.statistics.setdefault(group.name, {"acts": [], "count": 0})

    def _observe(
        self, group: UnitGroup, positions: torch.Tensor, x: torch.Tensor, conv: bool
    ) -> None:
        """Record a group's activations (redundancy) and, for Fisher, their gradients."""
        index = positions.to(x.device)

        def per_unit(t: torch.Tensor) -> torch.Tensor:
            flat = t if conv else t.reshape(-1, t.shape[-1])
            picked = flat[:, index]
            return picked.reshape(picked.shape[0], group.size, -1).detach().float()

        stats = self._stats(group)
        acts = per_unit(x)
        if stats["count"] < self.calibration_samples:
            take = min(self.calibration_samples - stats["count"], acts.shape[0])
            stats["acts"].append(acts[:take].cpu())
            stats["count"] += take
        if self.importance == "fisher" and x.requires_grad:

            def grad_hook(grad: torch.Tensor) -> None:
                score = fisher_importance(acts, per_unit(grad))
                stats["fisher"] = stats.get("fisher", 0.0) + score * acts.shape[0]
                stats["fisher_n"] = stats.get("fisher_n", 0) + acts.shape[0]

            x.register_hook(grad_hook)

    def after_backward(self) -> None:
        """Accumulate Taylor scores from the gradients of the backward that just ran.

        Channels and neurons for ``"taylor"``; experts for ``"taylor"`` and ``"fisher"``
        (the experts' inputs are not per-unit activations, so Fisher falls back to Taylor).
        """
        if not self.collecting:
            return
        for group in self.groups:
            wanted = ("taylor", "fisher") if group.moe is not None else ("taylor",)
            if self.importance not in wanted:
                continue
            score = taylor_scores(group)
            if score is None:
                continue
            stats = self._stats(group)
            stats["taylor"] = stats.get("taylor", 0.0) + score
            stats["taylor_n"] = stats.get("taylor_n", 0) + 1

    def statistics_state(self) -> dict[str, dict[str, Any]]:
        """The statistics gathered so far, for a checkpoint: tensors, ints and lists only
        (``torch.load(..., weights_only=True)`` reads them back).

        A loop that checkpoints in the middle of a collecting epoch saves this and hands it to
        :meth:`load_statistics_state` when it resumes, so the scores are those of an
        uninterrupted epoch.
        """
        return {
            name: {
                key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                for key, value in stats.items()
            }
            for name, stats in self.statistics.items()
        }

    def load_statistics_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Continue from statistics saved by :meth:`statistics_state` (replacing any gathered)."""
        self.statistics = {
            name: {
                key: value.numpy()
                if key in ("taylor", "fisher") and torch.is_tensor(value)
                else list(value)
                if key == "acts"
                else value
                for key, value in stats.items()
            }
            for name, stats in state.items()
        }

    # -- scores ----------------------------------------------------------------------------

    def local_scores(
        self, group: UnitGroup, *, alpha: float
    ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """``(importance, redundancy, samples seen)`` of every unit of ``group``, from what
        this process gathered.

        Importance: the configured score; ``"l1"`` magnitude where no gradient was seen
        (e.g. a run resumed at the pruning boundary). Redundancy: ``None`` when ``alpha`` is 1
        or no sample was kept. Several processes (DDP) average the importance and weigh each
        redundancy by its samples seen.
        """
        stats = self.statistics.get(group.name, {})
        if self.importance in ("l1", "l2"):
            p = 1 if self.importance == "l1" else 2
            score = magnitude_scores(group, p, path_norm=self.path_norm)
        elif stats.get("taylor_n"):
            score = stats["taylor"] / stats["taylor_n"]
        elif self.importance == "fisher" and stats.get("fisher_n"):
            score = np.asarray(stats["fisher"]) / stats["fisher_n"]
        else:
            score = magnitude_scores(group, 1, path_norm=self.path_norm)
        if alpha >= 1.0 or not stats.get("acts"):
            return score, None, 0.0
        local = redundancy_scores(group, torch.cat(stats["acts"]))
        return score, local, float(stats.get("count", 1))
