"""QuboPruningCallback: structured pruning of a LightningModule, selected by a QUBO solver.

The callback is a thin translation layer: it traces the model's channel dependencies with
Torch-Pruning's ``DependencyGraph`` (Fang et al., "DepGraph: towards any structural pruning",
CVPR 2023), turns each coupled group of output units into a
:class:`~qopt.problems.pruning.PruningGroup`, lets :func:`qopt.pipeline.solve` pick the units
to keep under a parameter or MAC budget (:func:`~qopt.problems.pruning.pruning_problem`),
masks the dropped units while the model fine-tunes, and removes them for real when ``fit``
ends, again through Torch-Pruning. The experts of a :class:`qopt.moe.MoE` layer are one
more group, whose units are whole experts.

:func:`model_pruning_groups` exposes the same analysis (groups and exact cost) for callers that
select units themselves.

This module imports Lightning and Torch-Pruning at import time; ``qopt`` imports it only
when ``qopt.integrations.lightning`` is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import dimod
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError
from qopt.model_analysis import ModelPruningGroups, count_params_and_macs, model_pruning_groups
from qopt.model_analysis.cost import BUDGETS
from qopt.model_analysis.layers import NORM_LAYERS, expert_parameters, input_width
from qopt.model_analysis.surgery import remove_units
from qopt.model_analysis.tracing import UnitGroup, torch_pruning
from qopt.pipeline import solve
from qopt.problems.pruning import (
    PruningGroup,
    activation_redundancy,
    fisher_importance,
    magnitude_importance,
    pruning_problem,
    taylor_importance,
)
from qopt.solvers import available_solvers

__all__ = ["QoptPruningWarning", "QuboPruningCallback"]

_OWNER = "QuboPruningCallback"
_IMPORTANCES = ("l1", "l2", "taylor", "fisher")
#: Router logit given to a dropped expert while masked: no top-k choice picks it, and its
#: softmax probability is exactly 0 in float32 (a finite value keeps log-space Sinkhorn finite).
_DROPPED_LOGIT = -1.0e4


class QoptPruningWarning(UserWarning):
    """The pruning callback fell back or could not reach its target; training goes on.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptPruningWarning)``.
    """


def _outgoing_norm(group: UnitGroup, p: int) -> np.ndarray:
    """Lp norm of the weights that read each unit: its columns in every consumer layer.

    A ReLU unit computes the same function when its incoming weights are scaled by ``c > 0``
    and its outgoing ones by ``1 / c``; the product of the two norms does not change, and
    for ``p = 1`` it is the unit's share of the two layers' l1 path norm (Neyshabur,
    Tomioka and Srebro, "Norm-based capacity control in neural networks", COLT 2015).
    """
    total = np.zeros(group.size)
    for module, positions, units in group.consumers:
        parameter = module.weight
        assert isinstance(parameter, torch.Tensor)  # consumers are Linear/Conv2d layers
        # Input positions are dimension 1 of both (out, in) and (out, in, kh, kw) weights.
        columns = parameter.detach()[:, positions.to(parameter.device)].float()
        others = tuple(d for d in range(columns.dim()) if d != 1)
        per_position = columns.abs().sum(dim=others) if p == 1 else columns.pow(2).sum(dim=others)
        np.add.at(total, units.cpu().numpy(), per_position.cpu().numpy().astype(float))
    return total if p == 1 else np.sqrt(total)


class QuboPruningCallback(Callback):
    """Prune channels and neurons of a LightningModule to a MAC or parameter budget.

    At the end of each epoch listed in ``epochs`` the callback scores the units still alive
    (``importance`` from the statistics gathered during that epoch; redundancy from the
    activation similarity of up to ``calibration_samples`` training samples), builds
    :func:`~qopt.problems.pruning.pruning_problem` with a global budget of
    ``target_ratio ** (step / steps)`` of the original cost, and solves it with ``solver``
    through :func:`qopt.pipeline.solve`. Dropped units are masked at the inputs of the layers
    that read them (forward pre-hooks installed in ``setup`` and removed in ``teardown``), so
    the remaining epochs fine-tune the network that will ship. When ``fit`` ends, the dropped
    units are removed for real with Torch-Pruning and ``report`` holds parameters, MACs and
    the ``monitor`` metric before and after. A failed solve falls back to a greedy selection
    with a :class:`QoptPruningWarning`; training never stops because a solver did.

    Importance scores are divided by their mean within each group, so layers of different
    scale compete fairly for the global budget. Cost is counted by
    :func:`count_params_and_macs` on ``example_input``; the groups are those of
    :func:`model_pruning_groups`.

    **MoE experts.** The experts of every :class:`qopt.moe.MoE` layer form one group whose
    units are whole experts: importance from the expert's parameters (``"l1"``/``"l2"``:
    their norm; ``"taylor"`` and ``"fisher"``: first-order Taylor on all of them),
    redundancy from the similarity of the experts' outputs on the same calibration tokens,
    at least ``top_k`` kept, and each expert's parameters (two layers plus its router row) or
    router MACs in the global budget (a token's expert MACs depend on ``top_k``, not on the
    number of experts, so a MAC budget gains little from experts). While fine-tuning, a
    dropped expert's router logit is set to -1e4, so top-k and ``"bias"`` routing never pick
    it; when ``fit`` ends :meth:`qopt.moe.MoE.keep_experts` removes it (router row included).

    **DDP.** Every rank gathers statistics on its own shard; importance and redundancy are
    averaged across ranks, rank 0 alone solves the QUBO (one solver call, even on a QPU),
    and its masks are broadcast, so every rank prunes the same units.

    Args:
        target_ratio: Fraction of the original MACs (or parameters) to keep, in (0, 1);
            0.5 is a 2x reduction.
        budget: ``"macs"`` or ``"params"``.
        epochs: Epochs at whose end to prune; the budget tightens geometrically over them.
        importance: ``"l1"`` (default)/``"l2"`` (weight magnitude), ``"taylor"`` (first order,
            Molchanov et al. 2019) or ``"fisher"`` (Theis et al. 2018). L1 is the default because
            it is what the benchmark measured best (docs/pruning.md: Taylor scores rank MLP
            neurons badly). For a layer whose outputs go straight into a BatchNorm, the
            magnitude is that of the folded weights ``gamma / sqrt(running_var + eps) * W``:
            the normalization makes the layer's output independent of its own weights' scale.
        alpha: Importance against redundancy in the QUBO, in [0, 1] (1: importance only).
        balance: Pull of each group's kept count towards the uniform split (every group
            keeping the same fraction of its units, the fraction that meets the budget), as
            ``pruning_problem(balance=...)``: 0 lets the scores split the budget across
            groups freely; larger values trade that freedom for the uniform split. The
            default 3 is there because the importance is linear: without the pull, the
            objective's own optimum starves the layers whose units cost most (a greedy
            optimum kept 1 of 16 channels of the digits CNN's first layer at 3x and lost
            5.7 pp on validation; docs/pruning.md), so a better solver gave a worse network.
        polish: Refine the solver's answer by 1-swap local search within each group
            (``pruning_problem(polish=True)``): never a worse objective, same counts.
        path_norm: With ``"l1"``/``"l2"``, multiply each channel's or neuron's magnitude by
            the same norm of the weights that read it (its columns in the next layer): the
            unit's share of the path norm through it (Neyshabur et al., COLT 2015). A ReLU
            unit's incoming weights can be scaled by ``c`` and its outgoing ones by ``1 / c``
            without changing the network; the product does not change either, the incoming
            norm alone does. On by default: chosen on validation seeds of the digits MLP and
            CNN (docs/pruning.md). MoE experts are scored by all their parameters either way.
        min_keep: Fewest units any group keeps.
        layers: Names of the Linear/Conv2d modules whose outputs may be pruned, and of MoE
            layers whose experts may be (default: every Linear/Conv2d whose outputs feed
            another one, and every MoE layer).
        example_input: An input of ``pl_module.forward`` for tracing and counting (default:
            ``pl_module.example_input_array``).
        solver: A registry name or a :class:`dimod.Sampler`.
        solver_options: Keyword arguments for the solve, e.g. ``{"num_reads": 50}``.
        monitor: A logged metric (e.g. ``"val_acc"``) to report before and after.
        calibration_samples: Samples (tokens, for MoE experts) kept per epoch for the
            redundancy estimate.
        remove: Whether to remove the pruned units physically when ``fit`` ends.

    Examples:
        >>> import torch
        >>> from lightning.pytorch import Trainer
        >>> from lightning.pytorch.demos.boring_classes import BoringModel
        >>> from qopt.integrations.lightning import QuboPruningCallback
        >>> class Model(BoringModel):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.layer = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(),
        ...                                          torch.nn.Linear(16, 2))
        ...         self.example_input_array = torch.zeros(1, 32)
        >>> callback = QuboPruningCallback(target_ratio=0.5, epochs=[0], solver="sa",
        ...                                solver_options={"num_reads": 20, "seed": 0})
        >>> trainer = Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=1,
        ...                   callbacks=[callback], logger=False, enable_progress_bar=False,
        ...                   enable_checkpointing=False, enable_model_summary=False)
        >>> trainer.fit(Model())
        >>> callback.report["macs_after"] <= callback.report["budget"]
        True
    """

    def __init__(
        self,
        *,
        target_ratio: float,
        budget: str = "macs",
        epochs: Sequence[int] = (0,),
        importance: str = "l1",
        alpha: float = 0.5,
        balance: float = 3.0,
        polish: bool = True,
        path_norm: bool = True,
        min_keep: int = 1,
        layers: Sequence[str] | None = None,
        example_input: Any = None,
        solver: str | dimod.Sampler = "sa",
        solver_options: Mapping[str, Any] | None = None,
        monitor: str | None = None,
        calibration_samples: int = 256,
        remove: bool = True,
    ) -> None:
        torch_pruning(_OWNER)  # fail at construction, naming the extra, if Torch-Pruning is missing
        self.target_ratio = check_float(
            target_ratio, "target_ratio", _OWNER, low=0.0, high=1.0, low_inclusive=False
        )
        if self.target_ratio >= 1.0:
            raise SolverConfigurationError(
                f"The 'target_ratio' parameter of {_OWNER} must be a float in (0, 1). "
                f"Got {target_ratio!r} instead."
            )
        if budget not in BUDGETS:
            raise SolverConfigurationError(
                f"The 'budget' parameter of {_OWNER} must be one of {list(BUDGETS)}. "
                f"Got {budget!r} instead."
            )
        self.budget = budget
        if isinstance(epochs, str | bytes) or not isinstance(epochs, Sequence) or not epochs:
            raise SolverConfigurationError(
                f"The 'epochs' parameter of {_OWNER} must be a non-empty sequence of ints >= 0. "
                f"Got {epochs!r} instead."
            )
        checked_epochs = [check_int(e, "epochs", _OWNER, low=0) for e in epochs]
        if len(set(checked_epochs)) != len(checked_epochs):
            raise SolverConfigurationError(
                f"The 'epochs' parameter of {_OWNER} must not repeat an epoch. Got {epochs!r} instead."
            )
        self.epochs = tuple(sorted(checked_epochs))
        if importance not in _IMPORTANCES:
            raise SolverConfigurationError(
                f"The 'importance' parameter of {_OWNER} must be one of {list(_IMPORTANCES)}. "
                f"Got {importance!r} instead."
            )
        self.importance = importance
        self.alpha = check_float(alpha, "alpha", _OWNER, low=0.0, high=1.0)
        self.balance = check_float(balance, "balance", _OWNER, low=0.0)
        self.polish = bool(polish)
        self.path_norm = bool(path_norm)
        self.min_keep = check_int(min_keep, "min_keep", _OWNER, low=1)
        if layers is not None and (
            isinstance(layers, str) or not all(isinstance(n, str) for n in layers)
        ):
            raise SolverConfigurationError(
                f"The 'layers' parameter of {_OWNER} must be a sequence of module names. "
                f"Got {layers!r} instead."
            )
        self.layers = None if layers is None else list(layers)
        self.example_input = example_input
        if isinstance(solver, str):
            known = available_solvers()
            if solver not in known:
                raise UnknownSolverError(
                    f"Unknown solver {solver!r} for {_OWNER}. Known solvers: "
                    f"{', '.join(sorted(known))}."
                )
        elif not isinstance(solver, dimod.Sampler):
            raise SolverConfigurationError(
                f"The 'solver' parameter of {_OWNER} must be a solver name or a dimod.Sampler. "
                f"Got {type(solver).__name__} instead."
            )
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        if monitor is not None and not isinstance(monitor, str):
            raise SolverConfigurationError(
                f"The 'monitor' parameter of {_OWNER} must be a metric name or None. "
                f"Got {monitor!r} instead."
            )
        self.monitor = monitor
        self.calibration_samples = check_int(
            calibration_samples, "calibration_samples", _OWNER, low=1
        )
        self.remove = bool(remove)

        self.masks: dict[str, torch.Tensor] = {}
        self.steps_done = 0
        self.report: dict[str, Any] = {}
        self._groups: ModelPruningGroups | None = None
        self._handles: list[Any] = []
        self._example: Any = None
        self._stats: dict[str, dict[str, Any]] = {}
        self._collecting = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            target_ratio=self.target_ratio,
            budget=self.budget,
            epochs=self.epochs,
            importance=self.importance,
            layers=self.layers,
        )

    # -- setup / teardown ------------------------------------------------------------------

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        example = self.example_input
        if example is None:
            example = pl_module.example_input_array
        if example is None:
            raise SolverConfigurationError(
                f"{_OWNER} needs an input to trace {type(pl_module).__name__}: pass "
                "example_input=... or set pl_module.example_input_array."
            )
        self._example = example
        self._groups = model_pruning_groups(
            pl_module,
            self._device_input(pl_module),
            layers=self.layers,
            min_keep=self.min_keep,
            owner=_OWNER,
        )
        for group in self._groups.unit_groups:
            floor = group.min_keep(self.min_keep)
            if group.size <= floor:
                what = (
                    f"MoE layer {group.roots[0][0]!r} has {group.size} expert(s) and keeps at "
                    f"least max(min_keep={self.min_keep}, top_k={floor})"
                    if group.moe is not None
                    else f"it has {group.size} unit(s) and min_keep={self.min_keep}"
                )
                raise InvalidProblemError(
                    f"Pruning group {group.name!r} has no prunable units: {what}."
                )
            if group.name not in self.masks:
                self.masks[group.name] = torch.ones(group.size, dtype=torch.bool)
            if group.moe is not None and group.moe.routing in (
                "sinkhorn",
                "assignment",
                "external",
            ):
                warnings.warn(
                    f"{_OWNER}: MoE layer {group.roots[0][0]!r} routes training batches with "
                    f"{group.moe.routing!r}, which balances load over every expert, so a masked "
                    "expert can still receive tokens while fine-tuning (evaluation routes by "
                    "top-k and is exact). Prune with routing='topk' or 'bias' for an exact "
                    "fine-tuning network.",
                    QoptPruningWarning,
                    stacklevel=2,
                )
        params, macs = count_params_and_macs(pl_module, self._device_input(pl_module))
        self.report.setdefault("params_before", params)
        self.report.setdefault("macs_before", macs)
        self._check_budget()
        self._install_hooks()

    def _check_budget(self) -> None:
        """The final budget must fit the minimum keeps: say so before any training."""
        assert self._groups is not None
        floors = {g.name: g.min_keep(self.min_keep) for g in self._groups.unit_groups}
        minimum = self._groups.model_cost.predict(self.budget, floors)
        budget = self.target_ratio * self.report[f"{self.budget}_before"]
        if minimum <= budget + 1e-9:
            return
        detail = ", ".join(
            f"{g.name!r}: {floors[g.name]}"
            + (f" of {g.size} experts (top_k of MoE {g.roots[0][0]!r})" if g.moe else "")
            for g in self._groups.unit_groups
        )
        raise InvalidProblemError(
            f"The budget of {_OWNER} (target_ratio={self.target_ratio:g} of "
            f"{self.report[f'{self.budget}_before']} {self.budget}: {budget:g}) is below the cost "
            f"of the minimum keeps ({minimum:g} {self.budget} keeping {detail}). Raise "
            "target_ratio, lower min_keep, or leave layers out with 'layers'."
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._remove_hooks()

    def _device_input(self, pl_module: nn.Module) -> Any:
        return move_data_to_device(self._example, next(pl_module.parameters()).device)

    def _install_hooks(self) -> None:
        assert self._groups is not None
        self._remove_hooks()
        per_consumer: dict[nn.Module, list[tuple[UnitGroup, torch.Tensor, torch.Tensor]]] = {}
        for group in self._groups.unit_groups:
            for module, positions, units in group.consumers:
                per_consumer.setdefault(module, []).append((group, positions, units))
        for module, entries in per_consumer.items():
            self._handles.append(module.register_forward_pre_hook(self._make_hook(module, entries)))
        for group in self._groups.unit_groups:
            if group.moe is not None:
                self._handles.append(
                    group.moe.router.register_forward_hook(self._make_router_hook(group))
                )
                self._handles.append(
                    group.moe.register_forward_pre_hook(self._make_token_hook(group))
                )

    def _make_router_hook(self, group: UnitGroup) -> Any:
        """Dropped experts get a router logit no top-k choice picks (and gate exactly 0)."""

        def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor | None:
            mask = self.masks[group.name]
            if bool(mask.all()):
                return None
            return output.masked_fill(~mask.to(output.device), _DROPPED_LOGIT)

        return hook

    def _make_token_hook(self, group: UnitGroup) -> Any:
        """Keep calibration tokens (an MoE's inputs) for the experts' redundancy."""
        assert group.moe is not None
        width = group.moe.d_model

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0] if args else None
            if not (
                isinstance(x, torch.Tensor)
                and self._collecting
                and module.training
                and torch.is_grad_enabled()
            ):
                return
            stats = self._stats.setdefault(group.name, {"acts": [], "count": 0})
            if stats["count"] < self.calibration_samples:
                tokens = x.detach().reshape(-1, width)
                take = min(self.calibration_samples - stats["count"], tokens.shape[0])
                stats["acts"].append(tokens[:take].float().cpu())
                stats["count"] += take

        return hook

    def _make_hook(
        self, module: nn.Module, entries: list[tuple[UnitGroup, torch.Tensor, torch.Tensor]]
    ) -> Any:
        conv = isinstance(module, nn.Conv2d)
        width = input_width(module)

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            x = args[0]
            if not isinstance(x, torch.Tensor):
                return None
            if self._collecting and module.training and torch.is_grad_enabled():
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

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # -- statistics ------------------------------------------------------------------------

    def _observe(
        self, group: UnitGroup, positions: torch.Tensor, x: torch.Tensor, conv: bool
    ) -> None:
        """Record a group's activations (redundancy) and, for Fisher, their gradients."""
        index = positions.to(x.device)

        def per_unit(t: torch.Tensor) -> torch.Tensor:
            flat = t if conv else t.reshape(-1, t.shape[-1])
            picked = flat[:, index]
            return picked.reshape(picked.shape[0], group.size, -1).detach().float()

        stats = self._stats.setdefault(group.name, {"acts": [], "count": 0})
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

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._collecting = self._next_epoch() == trainer.current_epoch
        self._stats = {}

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._collecting or self._groups is None:
            return
        for group in self._groups.unit_groups:
            if group.moe is not None:
                if self.importance not in ("taylor", "fisher"):
                    continue
                # First-order Taylor over all of an expert's parameters (its router row
                # excluded: the router's gradient says how routing, not the expert, matters).
                params = expert_parameters(group.moe)
                if any(p.grad is None for p in params):
                    continue
                weight = torch.cat([p.detach().reshape(group.size, -1) for p in params], dim=1)
                grad = torch.cat(
                    [p.grad.reshape(group.size, -1) for p in params if p.grad is not None], dim=1
                )
                score = taylor_importance(weight, grad)
            elif self.importance == "taylor":
                score = np.zeros(group.size)
                for _, root in group.roots:
                    if root.weight.grad is None:
                        continue
                    bias = root.bias
                    score = score + taylor_importance(
                        root.weight,
                        root.weight.grad,
                        bias=bias,
                        bias_grad=None if bias is None else bias.grad,
                    )
            else:
                continue
            stats = self._stats.setdefault(group.name, {"acts": [], "count": 0})
            stats["taylor"] = stats.get("taylor", 0.0) + score
            stats["taylor_n"] = stats.get("taylor_n", 0) + 1

    def _next_epoch(self) -> int | None:
        return self.epochs[self.steps_done] if self.steps_done < len(self.epochs) else None

    def _magnitude(self, group: UnitGroup, p: int) -> np.ndarray:
        if group.moe is not None:
            weight = torch.cat(
                [t.detach().reshape(group.size, -1) for t in expert_parameters(group.moe)], dim=1
            )
            return magnitude_importance(weight, p=p)
        total = np.zeros(group.size)
        for name, root in group.roots:
            parameter = root.weight
            assert isinstance(parameter, torch.Tensor)  # roots are Linear/Conv2d layers
            weight = parameter.detach()
            norm = group.norms.get(name)
            if isinstance(norm, NORM_LAYERS):
                # A BatchNorm after the layer makes its output independent of the weights'
                # scale; the pair applies the folded weights gamma / sqrt(var + eps) * W.
                scale = torch.ones(weight.shape[0], device=weight.device, dtype=weight.dtype)
                if isinstance(norm.weight, torch.Tensor):
                    scale = scale * norm.weight.detach().abs()
                if isinstance(norm.running_var, torch.Tensor):
                    scale = scale / torch.sqrt(norm.running_var.detach() + norm.eps)
                weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
            total = total + magnitude_importance(weight, p=p)
        if self.path_norm:
            total = total * _outgoing_norm(group, p)
        return total

    def _redundancy(self, group: UnitGroup, stats: Mapping[str, Any]) -> np.ndarray | None:
        if not stats.get("acts"):
            return None
        acts = torch.cat(stats["acts"])
        if group.moe is None:
            return activation_redundancy(acts)
        # Experts are redundant when they compute the same function: compare every expert's
        # output on the same calibration tokens, whichever experts the router chose.
        moe = group.moe
        with torch.no_grad():
            x = acts.to(moe.w_in.device, moe.w_in.dtype)
            hidden = torch.nn.functional.gelu(
                torch.einsum("td,edh->teh", x, moe.w_in) + moe.b_in[None]
            )
            outputs = torch.einsum("teh,ehd->ted", hidden, moe.w_out) + moe.b_out[None]
        return activation_redundancy(outputs)

    def _scores(self, trainer: Trainer, group: UnitGroup) -> tuple[np.ndarray, np.ndarray | None]:
        stats = self._stats.get(group.name, {})
        if self.importance in ("l1", "l2"):
            score = self._magnitude(group, 1 if self.importance == "l1" else 2)
        elif stats.get("taylor_n"):
            score = stats["taylor"] / stats["taylor_n"]
        elif self.importance == "fisher" and stats.get("fisher_n"):
            score = np.asarray(stats["fisher"]) / stats["fisher_n"]
        else:  # no gradient seen this epoch (e.g. resumed at the boundary): fall back to L1
            score = self._magnitude(group, 1)
        # DDP: every rank scores from its own data; the mean is what all of them use. Every
        # rank takes part in every reduction, in the same order, whatever it observed.
        score_t = trainer.strategy.reduce(
            torch.as_tensor(score, dtype=torch.float64), reduce_op="mean"
        )
        score = np.asarray(score_t.cpu().numpy(), dtype=float)
        if self.alpha >= 1.0:
            return score, None
        local = self._redundancy(group, stats)
        seen = 0.0 if local is None else float(stats.get("count", 1))
        weighted = np.zeros((group.size, group.size)) if local is None else local * seen
        total = trainer.strategy.reduce(
            torch.as_tensor(np.append(weighted.reshape(-1), seen), dtype=torch.float64),
            reduce_op="sum",
        )
        total_np = np.asarray(total.cpu().numpy(), dtype=float)
        if total_np[-1] <= 0:
            return score, None
        return score, total_np[:-1].reshape(group.size, group.size) / total_np[-1]

    # -- the pruning step ------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._groups is None or self._next_epoch() != trainer.current_epoch:
            return
        self._collecting = False
        if (
            self.monitor is not None
            and self.steps_done == 0
            and self.monitor in trainer.callback_metrics
        ):
            self.report["metric_before"] = float(trainer.callback_metrics[self.monitor])
        self.steps_done += 1
        ratio = self.target_ratio ** (self.steps_done / len(self.epochs))
        original = self.report[f"{self.budget}_before"]
        budget = ratio * original
        masks = self._select(trainer, budget)
        for name, mask in masks.items():
            self.masks[name] = mask
        counts = {name: int(mask.sum()) for name, mask in self.masks.items()}
        predicted = {b: self._groups.model_cost.predict(b, counts) for b in BUDGETS}
        self.report.update(
            budget=budget,
            params_predicted=round(predicted["params"]),
            macs_predicted=round(predicted["macs"]),
            kept={name: int(c) for name, c in counts.items()},
        )
        pl_module.log("pruning/macs", predicted["macs"], on_epoch=True, sync_dist=False)
        pl_module.log("pruning/params", predicted["params"], on_epoch=True, sync_dist=False)
        pl_module.log("pruning/ratio", predicted[self.budget] / original, on_epoch=True)
        pl_module.log(
            "pruning/solver_fallback", float(self.report.get("fallbacks", 0)), on_epoch=True
        )
        self._stats = {}

    def _select(self, trainer: Trainer, budget: float) -> dict[str, torch.Tensor]:
        assert self._groups is not None
        alive = {name: mask.numpy().astype(bool) for name, mask in self.masks.items()}
        cost = self._groups.model_cost.cost(self.budget, alive)
        groups = []
        for group in self._groups.unit_groups:  # every rank: the scores are reduced across ranks
            score, redundancy = self._scores(trainer, group)
            index = np.flatnonzero(alive[group.name])
            score = score[index]
            mean = float(np.mean(np.abs(score))) or 1.0
            groups.append(
                PruningGroup(
                    group.name,
                    importance=score / mean,
                    redundancy=None if redundancy is None else redundancy[np.ix_(index, index)],
                    unit_cost=cost.unit_costs[group.name],
                    min_keep=min(group.min_keep(self.min_keep), len(index)),
                )
            )
        problem = pruning_problem(
            groups,
            budget=budget,
            fixed_cost=cost.fixed,
            interactions=cost.interactions,
            alpha=self.alpha,
            balance=self.balance,
            fill="budget",
            polish=self.polish,
        )
        chosen: Mapping[str, Any] | None = None
        failed = 0
        if trainer.is_global_zero:  # one solve (one QPU call), then broadcast
            try:
                solution = solve(problem, solver=self.solver, **self.solver_options)
                chosen = solution.value
            except (KeyboardInterrupt, InvalidProblemError):
                raise
            except Exception as error:  # a solver must never stop training
                failed = 1
                warnings.warn(
                    f"{_OWNER}: solving the pruning QUBO failed ({type(error).__name__}: {error}); "
                    "kept units chosen greedily by importance per cost instead.",
                    QoptPruningWarning,
                    stacklevel=2,
                )
                everything: dict[Hashable, int] = {
                    (g.name, i): 1 for g in groups for i in range(g.num_units)
                }
                assert problem.repair is not None and problem.decode is not None
                chosen = problem.decode(dict(problem.repair(everything)))
            assert chosen is not None
            selected: dict[str, torch.Tensor] = {}
            for group in self._groups.unit_groups:
                full = np.zeros(group.size, dtype=bool)
                kept = np.asarray(chosen[group.name], dtype=bool)
                full[np.flatnonzero(alive[group.name])[kept]] = True
                selected[group.name] = torch.as_tensor(full)
            masks: dict[str, torch.Tensor] | None = selected
        else:
            masks = None
        masks, failed = trainer.strategy.broadcast((masks, failed), src=0)
        assert masks is not None
        if failed:
            self.report["fallbacks"] = self.report.get("fallbacks", 0) + 1
        return masks

    # -- the end: a physically smaller model -----------------------------------------------

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._groups is None:
            return
        if self.steps_done < len(self.epochs):
            warnings.warn(
                f"{_OWNER}: training ended after {self.steps_done} of {len(self.epochs)} pruning "
                f"steps (epochs {list(self.epochs)}); the model was pruned only that far.",
                QoptPruningWarning,
                stacklevel=2,
            )
        if self.monitor is not None and self.monitor in trainer.callback_metrics:
            self.report["metric_after"] = float(trainer.callback_metrics[self.monitor])
        self._remove_hooks()
        if self.remove and self.steps_done:
            self.prune_model(pl_module)
            params, macs = count_params_and_macs(pl_module, self._device_input(pl_module))
            self.report.update(params_after=params, macs_after=macs)

    def prune_model(self, model: nn.Module) -> None:
        """Remove the masked units from ``model`` in place.

        Channels and neurons go through Torch-Pruning's dependency graph, MoE experts through
        :meth:`qopt.moe.MoE.keep_experts` (router rows too). ``model`` must have the
        architecture the masks were chosen for (the one given to ``fit``); the callback calls
        this when ``fit`` ends.
        """
        assert self._groups is not None
        remove_units(model, self._device_input(model), self._groups.unit_groups, self.masks)

    # -- checkpointing ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {name: mask.tolist() for name, mask in self.masks.items()},
            "steps_done": self.steps_done,
            "report": dict(self.report),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = {
            name: torch.as_tensor(mask, dtype=torch.bool)
            for name, mask in state_dict["masks"].items()
        }
        self.steps_done = int(state_dict["steps_done"])
        self.report = dict(state_dict["report"])
