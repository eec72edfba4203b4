"""QuboPruningCallback: structured pruning of a LightningModule, selected by a QUBO solver.

A translation layer between Lightning and :mod:`qopt.model_analysis`: the callback traces the
model's groups of units (:func:`~qopt.model_analysis.model_pruning_groups`), keeps their
masks and calibration statistics through :class:`~qopt.model_analysis.PruningHooks`,
averages the scores across DDP ranks, lets rank 0 choose the units to keep
(:func:`~qopt.model_analysis.select_units`) and broadcasts them, and removes the
dropped units when ``fit`` ends. It owns Lightning's side: hooks, checkpointed state,
DDP, logging.

This module imports Lightning at import time; ``qopt`` imports it only when
``qopt.integrations.lightning`` is used.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import dimod
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidInputError, InvalidProblemError, SolverConfigurationError
from qopt.model_analysis import (
    PRUNING_KEY,
    ModelPruningGroups,
    PruningHooks,
    UnitSelection,
    count_params_and_macs,
    model_pruning_groups,
    pruning_record,
    select_units,
)
from qopt.model_analysis.cost import BUDGETS
from qopt.model_analysis.hooks import IMPORTANCES
from qopt.model_analysis.surgery import remove_units
from qopt.model_analysis.tracing import torch_pruning
from qopt.solvers import check_solver_options

__all__ = ["QoptPruningWarning", "QuboPruningCallback"]

_OWNER = "QuboPruningCallback"


class QoptPruningWarning(UserWarning):
    """The pruning callback could not do all it was asked; training goes on.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptPruningWarning)``.
    """


class QuboPruningCallback(Callback):
    """Prune channels and neurons of a LightningModule to a MAC or parameter budget.

    At the end of each epoch listed in ``epochs`` the callback scores the units still alive
    (``importance`` from the statistics gathered during that epoch; redundancy from the
    activation similarity of up to ``calibration_samples`` training samples) and selects the
    units to keep within ``target_ratio ** (step / steps)`` of the original cost with
    :func:`qopt.model_analysis.select_units` (the pruning QUBO, solved by ``solver``
    through :func:`qopt.pipeline.solve`). Dropped units are masked at the inputs of the layers
    that read them (:class:`~qopt.model_analysis.PruningHooks`, installed in ``setup``
    and removed in ``teardown``), so the remaining epochs fine-tune the network that will
    ship. When ``fit`` ends, the dropped units are removed for real and ``report`` holds
    parameters, MACs and the ``monitor`` metric before and after. A remote solver that fails
    falls back to the local default (:func:`qopt.solvers.get_solver`), counted in
    ``report["fallbacks"]``; any other solver error is raised.

    Importance scores are divided by their mean within each group, so layers of different
    scale compete fairly for the global budget. Cost is counted by
    :func:`~qopt.model_analysis.count_params_and_macs` on ``example_input``; the groups are
    those of :func:`~qopt.model_analysis.model_pruning_groups`.

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

    **Checkpoints.** Every checkpoint written with the callback in the Trainer records the
    pruned structure beside the weights (:func:`qopt.model_analysis.pruning_record`):
    ``qopt.model_analysis.load_pruned(Model(...), path)`` returns the pruned model with its
    weights, from the checkpoint saved after ``fit`` (the cut layers) or from any written
    during it (full-size weights, cut with the masks then in force). Plain
    ``Model.load_from_checkpoint`` builds the unpruned layers, so it fails on the first kind
    and ignores the masks of the second, unless the module's ``on_load_checkpoint`` calls
    ``load_pruned(self, checkpoint)``. ``trainer.fit(..., ckpt_path=...)`` resumes the
    schedule with the same masks and, from a checkpoint written within an epoch that ends in
    a pruning step, the statistics gathered so far, so it ends where an uninterrupted run
    does. After ``fit`` has cut the model, loading a checkpoint written during fit into it
    (``trainer.test(ckpt_path="best")``) is refused with an error that says how to load it.

    Args:
        target_ratio: Fraction of the original MACs (or parameters) to keep, in (0, 1);
            0.5 is a 2x reduction.
        budget: ``"macs"`` or ``"params"``.
        epochs: Epochs at whose end to prune; the budget tightens geometrically over them.
        importance: ``"l1"`` (default)/``"l2"`` (weight magnitude), ``"taylor"`` (first order,
            Molchanov et al. 2019) or ``"fisher"`` (Theis et al. 2018). L1 is the default because
            it is what the benchmark measured best (docs/benchmarks/pruning.md: Taylor scores rank MLP
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
            5.7 pp on validation; docs/benchmarks/pruning.md), so a better solver gave a worse network.
        polish: Refine the solver's answer by 1-swap local search within each group
            (``pruning_problem(polish=True)``): never a worse objective, same counts.
        path_norm: With ``"l1"``/``"l2"``, multiply each channel's or neuron's magnitude by
            the same norm of the weights that read it (its columns in the next layer): the
            unit's share of the path norm through it (Neyshabur et al., COLT 2015). A ReLU
            unit's incoming weights can be scaled by ``c`` and its outgoing ones by ``1 / c``
            without changing the network; the product does not change either, the incoming
            norm alone does. On by default: chosen on validation seeds of the digits MLP and
            CNN (docs/benchmarks/pruning.md). MoE experts are scored by all their parameters either way.
        min_keep: Fewest units any group keeps.
        layers: Names of the Linear/Conv2d modules whose outputs may be pruned, and of MoE
            layers whose experts may be (default: every Linear/Conv2d whose outputs feed
            another one, and every MoE layer).
        example_input: An input of ``pl_module.forward`` for tracing and counting (default:
            ``pl_module.example_input_array``).
        solver: A registry name (``qopt solvers``) or a :class:`dimod.Sampler` instance.
        solver_options: With a name, the options of :func:`qopt.solvers.get_solver` for it,
            e.g. ``{"num_reads": 50, "seed": 0}`` for ``"sa"``; checked here.
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
        if importance not in IMPORTANCES:
            raise SolverConfigurationError(
                f"The 'importance' parameter of {_OWNER} must be one of {list(IMPORTANCES)}. "
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
        check_solver_options(solver, solver_options, _OWNER)
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

        #: Per group, which units are kept (True) so far; checkpointed.
        self.masks: dict[str, torch.Tensor] = {}
        self.steps_done = 0
        self.report: dict[str, Any] = {}
        #: The latest step's selection (its problem and solution), on rank 0; not checkpointed.
        self.last_selection: UnitSelection | None = None
        self._groups: ModelPruningGroups | None = None
        self._hooks: PruningHooks | None = None
        self._example: Any = None
        #: The module this callback cut when fit ended, and the guard on its later loads.
        self._cut_module: weakref.ref[nn.Module] | None = None
        self._load_guard: Any = None

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
            cut = self._cut_module() if self._cut_module is not None else None
            if pl_module is cut and self._load_guard is None:  # e.g. test(ckpt_path="best")
                self._load_guard = pl_module.register_load_state_dict_pre_hook(
                    self._refuse_another_structure
                )
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
        for group, traced in zip(self._groups, self._groups.unit_groups, strict=True):
            if group.size <= group.min_keep:
                what = (
                    f"MoE layer {group.layers[0]!r} has {group.size} expert(s) and keeps at "
                    f"least max(min_keep={self.min_keep}, top_k={group.min_keep})"
                    if traced.moe is not None
                    else f"it has {group.size} unit(s) and min_keep={self.min_keep}"
                )
                raise InvalidProblemError(
                    f"Pruning group {group.name!r} has no prunable units: {what}."
                )
            self.masks.setdefault(group.name, torch.ones(group.size, dtype=torch.bool))
        params, macs = count_params_and_macs(pl_module, self._device_input(pl_module))
        self.report.setdefault("params_before", params)
        self.report.setdefault("macs_before", macs)
        self._check_budget()
        self._hooks = PruningHooks(
            self._groups.unit_groups,
            self.masks,
            importance=self.importance,
            path_norm=self.path_norm,
            calibration_samples=self.calibration_samples,
        )
        self._hooks.install()

    def _check_budget(self) -> None:
        """The final budget must fit the minimum keeps: say so before any training."""
        assert self._groups is not None
        floors = {g.name: g.min_keep for g in self._groups}
        minimum = self._groups.model_cost.predict(self.budget, floors)
        budget = self.target_ratio * self.report[f"{self.budget}_before"]
        if minimum <= budget + 1e-9:
            return
        detail = ", ".join(
            f"{g.name!r}: {g.min_keep}"
            + (
                f" of {g.size} experts (top_k of MoE {g.layers[0]!r})"
                if g.kind == "experts"
                else ""
            )
            for g in self._groups
        )
        raise InvalidProblemError(
            f"The budget of {_OWNER} (target_ratio={self.target_ratio:g} of "
            f"{self.report[f'{self.budget}_before']} {self.budget}: {budget:g}) is below the cost "
            f"of the minimum keeps ({minimum:g} {self.budget} keeping {detail}). Raise "
            "target_ratio, lower min_keep, or leave layers out with 'layers'."
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._hooks is not None:
            self._hooks.remove()
        if self._load_guard is not None:
            self._load_guard.remove()
            self._load_guard = None

    def _refuse_another_structure(
        self, module: nn.Module, state_dict: Mapping[str, Any], prefix: str, *_: Any
    ) -> None:
        """Say why a checkpoint written during fit does not load into the model fit cut."""
        wrong = [
            name
            for name, value in module.state_dict().items()
            if prefix + name in state_dict
            and tuple(state_dict[prefix + name].shape) != tuple(value.shape)
        ]
        if wrong:
            raise InvalidInputError(
                f"{_OWNER} cut {type(module).__name__} when fit ended, and the weights being "
                f"loaded have other shapes ({', '.join(wrong[:3])}"
                f"{', ...' if len(wrong) > 3 else ''}): a checkpoint written "
                "during fit (e.g. ckpt_path='best' or 'last' of ModelCheckpoint) holds the "
                "model before its units were removed. Build the model it holds with "
                "qopt.model_analysis.load_pruned(Model(...), path) and pass that to the "
                "Trainer, without ckpt_path."
            )

    def _device_input(self, model: nn.Module) -> Any:
        return move_data_to_device(self._example, next(model.parameters()).device)

    # -- statistics ------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._hooks is not None:
            self._hooks.start_epoch(collecting=self._next_epoch() == trainer.current_epoch)

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._hooks is not None:
            self._hooks.after_backward()

    def _next_epoch(self) -> int | None:
        return self.epochs[self.steps_done] if self.steps_done < len(self.epochs) else None

    # -- the pruning step ------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._groups is None or self._hooks is None:
            return
        if self._next_epoch() != trainer.current_epoch:
            return
        self._hooks.collecting = False
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
        self.masks.update(self._select(trainer, budget))
        counts = {name: int(mask.sum()) for name, mask in self.masks.items()}
        predicted = {b: self._groups.model_cost.predict(b, counts) for b in BUDGETS}
        self.report.update(
            budget=budget,
            params_predicted=round(predicted["params"]),
            macs_predicted=round(predicted["macs"]),
            kept=counts,
        )
        pl_module.log("pruning/macs", predicted["macs"], on_epoch=True, sync_dist=False)
        pl_module.log("pruning/params", predicted["params"], on_epoch=True, sync_dist=False)
        pl_module.log("pruning/ratio", predicted[self.budget] / original, on_epoch=True)
        pl_module.log(
            "pruning/solver_fallback", float(self.report.get("fallbacks", 0)), on_epoch=True
        )
        self._hooks.start_epoch(collecting=False)

    def _reduced_scores(
        self, trainer: Trainer
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
        """Every group's importance (mean over ranks) and redundancy (weighted by samples)."""
        assert self._groups is not None and self._hooks is not None
        importance: dict[str, np.ndarray] = {}
        redundancy: dict[str, np.ndarray | None] = {}
        # Every rank takes part in every reduction, in the same order, whatever it observed.
        for group in self._groups.unit_groups:
            score, local, seen = self._hooks.local_scores(group, alpha=self.alpha)
            mean = trainer.strategy.reduce(
                torch.as_tensor(score, dtype=torch.float64), reduce_op="mean"
            )
            importance[group.name] = np.asarray(mean.cpu().numpy(), dtype=float)
            redundancy[group.name] = None
            if self.alpha >= 1.0:
                continue
            weighted = np.zeros((group.size, group.size)) if local is None else local * seen
            total = trainer.strategy.reduce(
                torch.as_tensor(np.append(weighted.reshape(-1), seen), dtype=torch.float64),
                reduce_op="sum",
            )
            total_np = np.asarray(total.cpu().numpy(), dtype=float)
            if total_np[-1] > 0:
                redundancy[group.name] = (
                    total_np[:-1].reshape(group.size, group.size) / total_np[-1]
                )
        return importance, redundancy

    def _select(self, trainer: Trainer, budget: float) -> dict[str, torch.Tensor]:
        """Rank 0 selects (one solver call, even on a QPU); every rank gets its masks."""
        assert self._groups is not None
        importance, redundancy = self._reduced_scores(trainer)
        chosen: tuple[dict[str, torch.Tensor], int] | None = None
        if trainer.is_global_zero:
            selection = select_units(
                self._groups,
                {name: mask.numpy().astype(bool) for name, mask in self.masks.items()},
                importance,
                redundancy,
                budget=budget,
                currency=self.budget,
                alpha=self.alpha,
                balance=self.balance,
                polish=self.polish,
                solver=self.solver,
                solver_options=self.solver_options,
                owner=_OWNER,
            )
            self.last_selection = selection
            masks = {name: torch.as_tensor(mask) for name, mask in selection.masks.items()}
            chosen = (masks, int(selection.solution.record.fallback is not None))
        received = trainer.strategy.broadcast(chosen, src=0)
        assert received is not None  # rank 0 always selects
        masks, fell_back = received
        if fell_back:
            self.report["fallbacks"] = self.report.get("fallbacks", 0) + 1
        return masks

    # -- the end: a physically smaller model -----------------------------------------------

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._groups is None or self._hooks is None:
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
        self._hooks.remove()
        if self.remove and self.steps_done:
            self.prune_model(pl_module)
            self._cut_module = weakref.ref(pl_module)
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

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # The structure, beside the weights, for qopt.model_analysis.load_pruned: the
        # weights are the cut model's after fit, and the full masked model's before.
        if self._groups is not None:
            checkpoint[PRUNING_KEY] = pruning_record(self.masks, self._example, self.layers)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "masks": {name: mask.tolist() for name, mask in self.masks.items()},
            "steps_done": self.steps_done,
            "report": dict(self.report),
        }
        hooks = self._hooks
        if hooks is not None and hooks.collecting and hooks.statistics:
            # Checkpointed within a collecting epoch (ModelCheckpoint at validation end, or
            # every n steps): the scores of a resumed run then see the whole epoch.
            state["statistics"] = hooks.statistics_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # In place: the installed hooks read this dictionary.
        self.masks.clear()
        self.masks.update(
            {
                name: torch.as_tensor(mask, dtype=torch.bool)
                for name, mask in state_dict["masks"].items()
            }
        )
        self.steps_done = int(state_dict["steps_done"])
        self.report = dict(state_dict["report"])
        # Lightning resumes a checkpoint written within an epoch in that epoch, without
        # calling on_train_epoch_start again: the statistics go on from where they were.
        if self._hooks is not None and "statistics" in state_dict:
            self._hooks.start_epoch(collecting=True)
            self._hooks.load_statistics_state(state_dict["statistics"])
