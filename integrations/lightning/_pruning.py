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

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from torch import nn

from qopt._optional import import_optional
from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError
from qopt.moe import MoE
from qopt.pipeline import solve
from qopt.problems.pruning import (
    PruningCost,
    PruningGroup,
    activation_redundancy,
    fisher_importance,
    magnitude_importance,
    pruning_problem,
    taylor_importance,
)
from qopt.solvers import available_solvers

__all__ = [
    "ModelPruningGroups",
    "PrunableGroup",
    "QoptPruningWarning",
    "QuboPruningCallback",
    "count_params_and_macs",
    "model_pruning_groups",
]

_OWNER = "QuboPruningCallback"
_IMPORTANCES = ("l1", "l2", "taylor", "fisher")
_BUDGETS = ("macs", "params")
_COSTED = (nn.Linear, nn.Conv2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
#: Router logit given to a dropped expert while masked: no top-k choice picks it, and its
#: softmax probability is exactly 0 in float32 (a finite value keeps log-space Sinkhorn finite).
_DROPPED_LOGIT = -1.0e4


class QoptPruningWarning(UserWarning):
    """The pruning callback fell back or could not reach its target; training goes on.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptPruningWarning)``.
    """


def _tp() -> Any:
    return import_optional("torch_pruning", "lightning", "QuboPruningCallback")


def _layer_shapes(model: nn.Module, example_input: Any) -> dict[nn.Module, int]:
    """For every Linear/Conv2d reached by ``example_input``: rows x spatial positions."""
    positions: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            positions[module] = int(output.shape[0] * output.shape[2] * output.shape[3])
        else:  # Linear rows, or MoE tokens
            positions[module] = int(output.numel() // output.shape[-1])

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (*_COSTED, MoE))
    ]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            _forward(model, example_input)
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return positions


def _forward(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, tuple | list):
        return model(*example_input)
    if isinstance(example_input, Mapping):
        return model(**example_input)
    return model(example_input)


def _layer_macs(module: nn.Module, positions: int) -> int:
    if isinstance(module, MoE):
        # The experts' two matrix products for each of a token's top_k choices (at evaluation
        # no token is dropped); the router is an nn.Linear, counted on its own.
        return positions * module.top_k * 2 * module.d_model * module.d_hidden
    if isinstance(module, nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return positions * module.out_channels * (module.in_channels // module.groups) * kernel
    assert isinstance(module, nn.Linear)
    return positions * module.out_features * module.in_features


def count_params_and_macs(model: nn.Module, example_input: Any) -> tuple[int, int]:
    """Parameters of ``model`` and multiply-accumulates of one forward of ``example_input``.

    MACs count the weight multiplications of ``nn.Linear`` and ``nn.Conv2d`` layers and of
    the experts of :class:`qopt.moe.MoE` layers (``2 * d_model * d_hidden`` per token and
    choice: a token's MACs depend on ``top_k``, not on how many experts exist), the part
    structured pruning shrinks; element-wise operations, normalisation, gating and bias
    additions are not counted. The pruning callback's budget and report use this same count.

    Examples:
        >>> import torch
        >>> from qopt.integrations.lightning import count_params_and_macs
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> count_params_and_macs(model, torch.zeros(1, 8))
        (46, 40)
    """
    positions = _layer_shapes(model, example_input)
    macs = sum(_layer_macs(module, rows) for module, rows in positions.items())
    return sum(p.numel() for p in model.parameters()), int(macs)


@dataclass
class _Affine:
    """``constant + sum_g coefficient[g] * k_g``: a layer dimension as a function of counts."""

    constant: float
    coefficient: dict[str, float] = field(default_factory=dict)

    def times(
        self, other: _Affine, scale: float
    ) -> tuple[float, dict[str, float], dict[tuple[str, str], float]]:
        linear: dict[str, float] = {}
        quadratic: dict[tuple[str, str], float] = {}
        for g, a in self.coefficient.items():
            linear[g] = linear.get(g, 0.0) + scale * a * other.constant
        for g, b in other.coefficient.items():
            linear[g] = linear.get(g, 0.0) + scale * b * self.constant
        for g, a in self.coefficient.items():
            for h, b in other.coefficient.items():
                key = (g, h) if g <= h else (h, g)
                quadratic[key] = quadratic.get(key, 0.0) + scale * a * b
        return scale * self.constant * other.constant, linear, quadratic


@dataclass
class _Group:
    """One coupled group of output units, as traced by the dependency graph (or an MoE's experts)."""

    name: str
    size: int
    roots: list[tuple[str, nn.Module]]  # Linear/Conv2d whose outputs are these units (or the MoE)
    consumers: list[tuple[nn.Module, torch.Tensor, torch.Tensor]]  # (module, positions, unit)
    touched: dict[nn.Module, tuple[str, int]]  # module -> ("in"/"out", units per position)
    moe: MoE | None = None  # set when the units are the experts of this MoE layer
    # root name -> the BatchNorm that reads that root's outputs directly (for magnitude scores)
    norms: dict[str, nn.Module] = field(default_factory=dict)

    def min_keep(self, floor: int) -> int:
        """The fewest units the group may keep: ``floor``, and ``top_k`` for experts."""
        return max(floor, self.moe.top_k) if self.moe is not None else floor


def _outgoing_norm(group: _Group, p: int) -> np.ndarray:
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


def _expert_parameters(moe: MoE) -> list[torch.Tensor]:
    """The per-expert parameters of an MoE layer, expert index first."""
    return [moe.w_in, moe.b_in, moe.w_out, moe.b_out]


def _expert_param_count(moe: MoE) -> int:
    """Parameters one expert owns: its two layers and its router row."""
    own = sum(p[0].numel() for p in _expert_parameters(moe))
    router = moe.router.in_features + (1 if moe.router.bias is not None else 0)
    return int(own + router)


def _experts_leaf() -> Any:
    """A Torch-Pruning pruner under which an MoE layer is one opaque module of width d_model.

    Without it the tracer walks into the per-expert parameters and index operations and
    couples them to the layers around. qopt never prunes ``d_model`` through the graph (a
    layer whose outputs are an MoE's inputs is not a prunable group); experts are removed
    with :meth:`qopt.moe.MoE.keep_experts`. Built on first use: Torch-Pruning is optional.
    """
    base = _tp().pruner.BasePruningFunc

    class ExpertsLeaf(base):  # type: ignore[misc, valid-type]
        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            raise InvalidProblemError("qopt does not prune the d_model of an MoE layer.")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: MoE) -> int:
            return layer.d_model

        def get_in_channels(self, layer: MoE) -> int:
            return layer.d_model

    return ExpertsLeaf()


def _dependency_graph(model: nn.Module, example_input: Any) -> Any:
    """Torch-Pruning's dependency graph of ``model``, with MoE layers as opaque leaves."""
    tp = _tp()
    training = model.training
    try:
        model.eval()  # tracing runs a forward; keep batch-norm statistics untouched
        return tp.DependencyGraph().build_dependency(
            model,
            example_inputs=example_input,
            customized_pruners={MoE: _experts_leaf()},
            verbose=False,
        )
    finally:
        model.train(training)


class _Analysis:
    """The prunable groups of a model and its exact parameter and MAC cost polynomials."""

    def __init__(
        self,
        model: nn.Module,
        example_input: Any,
        layers: Sequence[str] | None,
        owner: str = _OWNER,
    ) -> None:
        names = {module: name for name, module in model.named_modules()}
        self.owner = owner
        try:
            graph = _dependency_graph(model, example_input)
        except Exception as error:
            raise InvalidProblemError(
                f"{owner} could not trace {type(model).__name__} with Torch-Pruning's "
                f"dependency graph ({type(error).__name__}: {error}). Pass an example_input the "
                "model's forward accepts, or prune a traceable submodule."
            ) from error
        self.graph = graph
        wanted = None if layers is None else set(layers)
        if wanted is not None:
            unknown = sorted(wanted - set(names.values()))
            if unknown:
                raise SolverConfigurationError(
                    f"The 'layers' parameter of {owner} names modules that {type(model).__name__} "
                    f"does not have: {unknown}."
                )
        self.groups: list[_Group] = []
        seen: set[str] = set()
        for module in list(graph.module2node):
            if not isinstance(module, _COSTED) or module not in names:
                continue
            name = names[module]
            if wanted is not None and name not in wanted:
                continue
            group = self._group(graph, module, names, explicit=wanted is not None)
            if group is None:
                if wanted is not None:
                    raise InvalidProblemError(
                        f"Module {name!r} ({type(module).__name__}) has no prunable units: "
                        "its outputs reach the model's output without passing through another "
                        "Linear or Conv2d layer."
                    )
                continue
            if group.name in seen:
                continue
            seen.add(group.name)
            self.groups.append(group)
        for module, name in names.items():
            if isinstance(module, MoE) and (wanted is None or name in wanted):
                group = _Group(
                    name=f"{name}.experts" if name else "experts",
                    size=module.num_experts,
                    roots=[(name, module)],
                    consumers=[],
                    touched={module.router: ("out", 1)},
                    moe=module,
                )
                self.groups.append(group)
        # In the model's module order (the trace visits layers last to first).
        order = {name: i for i, name in enumerate(names.values())}
        self.groups.sort(key=lambda g: order[g.roots[0][0]])
        if not self.groups:
            raise InvalidProblemError(
                f"{owner} found no prunable group in {type(model).__name__}: no Linear or Conv2d "
                "layer feeds another one, and there is no MoE layer."
            )
        self._cost_polynomials(model, example_input)

    def _group(
        self, graph: Any, module: nn.Module, names: dict[nn.Module, str], *, explicit: bool
    ) -> _Group | None:
        size = _out_size(module)
        pruner = graph.get_pruner_of_module(module)
        group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(size)))
        roots: list[tuple[str, nn.Module]] = []
        consumers: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        touched: dict[nn.Module, tuple[str, int]] = {}
        for item in group:
            target = item.dep.target.module
            if isinstance(target, nn.Parameter):
                raise InvalidProblemError(
                    f"{self.owner} cannot cost the bare parameter "
                    f"{graph._param_to_name.get(target)!r} coupled to module {names[module]!r}; "
                    "wrap it in a module or exclude the layer."
                )
            if target not in names:
                continue
            target_name = names[target]
            if isinstance(target, MoE):
                # These units are the MoE's d_model (its residual width): every expert and the
                # router read all of them. Not a group qopt prunes; the experts are one.
                if explicit:
                    raise InvalidProblemError(
                        f"Module {names[module]!r} cannot be pruned: its outputs are the "
                        f"d_model of MoE layer {target_name!r}, which qopt does not prune. "
                        f"Prune the MoE's experts instead (layers=[{target_name!r}])."
                    )
                return None
            own_parameters = any(True for _ in target.parameters(recurse=False))
            idxs = torch.as_tensor(list(item.idxs), dtype=torch.long)
            units = torch.as_tensor(list(item.root_idxs), dtype=torch.long)
            per_unit = len(idxs) // size
            if isinstance(target, _NORMS):
                touched[target] = ("out", per_unit)
            elif isinstance(target, _COSTED):
                if isinstance(target, nn.Conv2d) and target.groups != 1:
                    raise InvalidProblemError(
                        f"{self.owner} does not support grouped or depthwise convolution "
                        f"{target_name!r} (groups={target.groups}) in a pruning group; "
                        "leave it out with the 'layers' parameter."
                    )
                if graph.is_out_channel_pruning_fn(item.dep.handler):
                    touched[target] = ("out", per_unit)
                    roots.append((target_name, target))
                else:
                    touched[target] = ("in", per_unit)
                    order = torch.argsort(units * (len(idxs) + 1) + idxs)
                    consumers.append((target, idxs[order], units[order]))
            elif own_parameters:
                raise InvalidProblemError(
                    f"{self.owner} cannot cost module {target_name!r} ({type(target).__name__}), "
                    f"which is coupled to the outputs of {names[module]!r}; only Linear, Conv2d "
                    "and BatchNorm layers are supported. Leave that layer out with 'layers'."
                )
        if not consumers:
            return None
        name = "+".join(sorted(n for n, _ in roots))
        norms: dict[str, nn.Module] = {}
        for root_name, root in roots:
            node = graph.module2node.get(root)
            for output in [] if node is None else node.outputs:
                if isinstance(output.module, _NORMS) and output.module in touched:
                    norms[root_name] = output.module
        return _Group(
            name, size, sorted(roots, key=lambda r: r[0]), consumers, touched, None, norms
        )

    def _cost_polynomials(self, model: nn.Module, example_input: Any) -> None:
        positions = _layer_shapes(model, example_input)
        dims: dict[nn.Module, dict[str, _Affine]] = {}
        for group in self.groups:
            for module, (side, per_unit) in group.touched.items():
                if module not in dims:
                    dims[module] = {
                        "in": _Affine(_in_size(module)),
                        "out": _Affine(_out_size(module)),
                    }
                form = dims[module][side]
                form.constant -= per_unit * group.size
                form.coefficient[group.name] = form.coefficient.get(group.name, 0.0) + per_unit
        self.polynomials: dict[
            str, tuple[float, dict[str, float], dict[tuple[str, str], float]]
        ] = {}
        totals = count_params_and_macs(model, example_input)
        for budget, total in zip(_BUDGETS[::-1], totals, strict=True):  # params, macs
            constant = 0.0
            linear: dict[str, float] = {}
            quadratic: dict[tuple[str, str], float] = {}
            for module, sides in dims.items():
                parts = []
                if isinstance(module, _NORMS):
                    if module.weight is not None and budget == "params":
                        parts.append(_Affine(2.0).times(sides["out"], 1.0))
                elif budget == "params":
                    kernel = math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1
                    parts.append(sides["in"].times(sides["out"], float(kernel)))
                    if module.bias is not None:
                        parts.append(_Affine(1.0).times(sides["out"], 1.0))
                elif module in positions:
                    kernel = math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1
                    parts.append(sides["in"].times(sides["out"], float(kernel * positions[module])))
                for c, lin, quad in parts:
                    constant += c
                    for g, v in lin.items():
                        linear[g] = linear.get(g, 0.0) + v
                    for key, v in quad.items():
                        quadratic[key] = quadratic.get(key, 0.0) + v
            for group in self.groups:
                if group.moe is not None and budget == "params":
                    # An expert's own weights (its router row is counted with the router).
                    own = sum(p[0].numel() for p in _expert_parameters(group.moe))
                    linear[group.name] = linear.get(group.name, 0.0) + float(own)
                # MACs: each token runs top_k experts whatever their number; only the router
                # shrinks with the experts, and it is counted through `touched`.
            # Whatever no group touches is fixed: the total minus the touched part at full size.
            full = {g.name: float(g.size) for g in self.groups}
            touched_full = (
                constant
                + sum(v * full[g] for g, v in linear.items())
                + sum(v * full[g] * full[h] for (g, h), v in quadratic.items())
            )
            self.polynomials[budget] = (float(total) - touched_full + constant, linear, quadratic)

    def cost(self, budget: str, alive: Mapping[str, np.ndarray]) -> PruningCost:
        """The exact cost of keeping a subset of the currently alive units of each group."""
        fixed, linear, quadratic = self.polynomials[budget]
        unit_costs = {
            g.name: np.full(int(alive[g.name].sum()), linear.get(g.name, 0.0)) for g in self.groups
        }
        return PruningCost(fixed, unit_costs, dict(quadratic))

    def predict(self, budget: str, counts: Mapping[str, float]) -> float:
        fixed, linear, quadratic = self.polynomials[budget]
        return float(
            fixed
            + sum(v * counts[g] for g, v in linear.items())
            + sum(v * counts[g] * counts[h] for (g, h), v in quadratic.items())
        )


def _in_size(module: nn.Module) -> int:
    if isinstance(module, nn.Conv2d):
        return int(module.in_channels)
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    return 1


def _out_size(module: nn.Module) -> int:
    if isinstance(module, nn.Conv2d):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    assert isinstance(module, _NORMS)
    return int(module.num_features)


def _remove_units(
    model: nn.Module, example_input: Any, groups: Sequence[_Group], masks: Mapping[str, Any]
) -> None:
    """Remove the units whose mask is False, in place: Torch-Pruning, then MoE experts."""
    names = dict(model.named_modules())
    graph = _dependency_graph(model, example_input)
    for group in groups:
        keep = _as_bool(masks[group.name])
        if keep.shape != (group.size,):
            raise InvalidProblemError(
                f"The mask of pruning group {group.name!r} must have shape ({group.size},). "
                f"Got {keep.shape} instead."
            )
        if group.moe is not None or keep.all():
            continue
        root = names[group.roots[0][0]]
        pruner = graph.get_pruner_of_module(root)
        drop = np.flatnonzero(~keep).tolist()
        graph.get_pruning_group(root, pruner.prune_out_channels, drop).prune()
    for group in groups:
        if group.moe is not None:
            moe = names[group.roots[0][0]]
            assert isinstance(moe, MoE)
            keep = _as_bool(masks[group.name])
            if not keep.all():
                moe.keep_experts(np.flatnonzero(keep).tolist())


@dataclass(frozen=True)
class PrunableGroup:
    """A set of units of a model that structured pruning keeps or removes together.

    Attributes:
        name: The group's label: the names of the layers whose outputs are its units, joined
            by ``+`` (layers coupled by a residual addition form one group), or
            ``"<moe>.experts"`` for the experts of the MoE layer ``<moe>``.
        size: How many units (channels, neurons or experts) the group has.
        layers: Names of the modules whose outputs are the units: Linear/Conv2d layers, or
            the one :class:`qopt.moe.MoE` layer.
        kind: ``"channels"`` (outputs of Linear/Conv2d layers) or ``"experts"``.
        min_keep: The fewest units a pruned model may keep (``top_k`` for experts).

    Examples:
        >>> from qopt.integrations.lightning import PrunableGroup
        >>> PrunableGroup("fc1", 16, ("fc1",), "channels", 1).size
        16
    """

    name: str
    size: int
    layers: tuple[str, ...]
    kind: str
    min_keep: int


class ModelPruningGroups(Sequence[PrunableGroup]):
    """The prunable groups of a model and its exact cost: see :func:`model_pruning_groups`.

    A sequence of :class:`PrunableGroup`, plus :meth:`cost` (parameters or MACs of the model
    for any numbers of units kept per group) and :meth:`prune` (remove units for real).

    Examples:
        >>> import torch
        >>> from qopt.integrations.lightning import model_pruning_groups
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(),
        ...                             torch.nn.Linear(4, 2))
        >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
        >>> [g.name for g in groups], groups.cost({"0": 4}), groups.cost({"0": 3})
        (['0'], 40, 30)
    """

    def __init__(self, analysis: _Analysis, example_input: Any, min_keep: int) -> None:
        self._analysis = analysis
        self._example = example_input
        self._groups = tuple(
            PrunableGroup(
                name=g.name,
                size=g.size,
                layers=tuple(n for n, _ in g.roots),
                kind="experts" if g.moe is not None else "channels",
                min_keep=g.min_keep(min_keep),
            )
            for g in analysis.groups
        )

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, str):  # by name, too
            for group in self._groups:
                if group.name == index:
                    return group
            raise KeyError(index)
        return self._groups[index]

    def __repr__(self) -> str:
        inner = ", ".join(f"{g.name!r}: {g.size} {g.kind}" for g in self._groups)
        return f"ModelPruningGroups({inner})"

    def cost(self, counts: Mapping[str, int], budget: str = "macs") -> int:
        """Exact MACs (or parameters) of the model pruned to ``counts[name]`` units per group.

        A group missing from ``counts`` keeps all its units. The value is the one
        :func:`count_params_and_macs` gives on the pruned model.
        """
        if budget not in _BUDGETS:
            raise SolverConfigurationError(
                f"The 'budget' parameter of ModelPruningGroups.cost must be one of "
                f"{list(_BUDGETS)}. Got {budget!r} instead."
            )
        unknown = sorted(set(counts) - {g.name for g in self._groups})
        if unknown:
            raise InvalidProblemError(
                f"ModelPruningGroups.cost got counts for unknown groups {unknown}; the groups "
                f"are {[g.name for g in self._groups]}."
            )
        full = {g.name: int(counts.get(g.name, g.size)) for g in self._groups}
        return round(self._analysis.predict(budget, full))

    def prune(self, model: nn.Module, masks: Mapping[str, Any]) -> None:
        """Remove, in place, the units whose ``masks[name]`` entry is False.

        ``model`` must have the architecture the groups were found in (the model given to
        :func:`model_pruning_groups`, or a copy of it). Groups missing from ``masks`` are
        left whole. Channels go through Torch-Pruning, experts through
        :meth:`qopt.moe.MoE.keep_experts`.
        """
        unknown = sorted(set(masks) - {g.name for g in self._groups})
        if unknown:
            raise InvalidProblemError(
                f"ModelPruningGroups.prune got masks for unknown groups {unknown}; the groups "
                f"are {[g.name for g in self._groups]}."
            )
        full = {
            g.name: masks[g.name] if g.name in masks else np.ones(g.size, dtype=bool)
            for g in self._groups
        }
        for group in self._groups:
            kept = int(np.count_nonzero(_as_bool(full[group.name])))
            if kept < group.min_keep:
                raise InvalidProblemError(
                    f"The mask of pruning group {group.name!r} keeps {kept} unit(s); it must "
                    f"keep at least {group.min_keep}."
                )
        device = next(model.parameters()).device
        example = _to_device(self._example, device)
        # The analysis' groups refer to the analysed model's modules; match them by name.
        mapped = [
            _Group(g.name, g.size, list(g.roots), [], {}, g.moe) for g in self._analysis.groups
        ]
        _remove_units(model, example, mapped, full)


def model_pruning_groups(
    model: nn.Module,
    example_inputs: Any,
    *,
    layers: Sequence[str] | None = None,
    min_keep: int = 1,
) -> ModelPruningGroups:
    """The groups of units :class:`QuboPruningCallback` would prune, and the exact cost.

    Traces ``model`` with Torch-Pruning's dependency graph (Fang et al., "DepGraph: towards
    any structural pruning", CVPR 2023). Each Linear/Conv2d whose outputs feed another
    Linear/Conv2d is a group of channels or neurons (layers coupled by a residual addition
    or concatenation form one group); the final layer is never one. The experts of each
    :class:`qopt.moe.MoE` layer form a group whose units are whole experts (its router rows
    go with them); a layer whose outputs are an MoE's ``d_model`` is not a group.

    Use it to select units with your own criterion under the same exact budget the callback
    uses, and to remove them: ``groups.cost(counts, "macs")`` and ``groups.prune(model,
    masks)``.

    Args:
        model: The network (any ``nn.Module``; a LightningModule works).
        example_inputs: An input ``model.forward`` accepts (a tensor, a tuple of positional
            arguments or a dict of keyword arguments), for tracing and counting.
        layers: Restrict the groups to these module names (Linear/Conv2d whose outputs are
            the units, or MoE layers); a listed layer that cannot be pruned is an error.
        min_keep: The fewest units any group keeps (experts: at least ``top_k``).

    Returns:
        A :class:`ModelPruningGroups` (a sequence of :class:`PrunableGroup`).

    Raises:
        InvalidProblemError: The model cannot be traced, has no prunable group, or a group
            couples a module that cannot be costed; the message names the module.

    Examples:
        >>> import torch
        >>> from qopt.integrations.lightning import count_params_and_macs, model_pruning_groups
        >>> from qopt.moe import MoE
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
        ...                             torch.nn.Linear(16, 8), MoE(8, 4, d_hidden=8, top_k=2))
        >>> groups = model_pruning_groups(model, torch.zeros(1, 8))
        >>> [(g.name, g.size, g.kind, g.min_keep) for g in groups]
        [('0', 16, 'channels', 1), ('3.experts', 4, 'experts', 2)]
        >>> groups.prune(model, {"0": [True] * 12 + [False] * 4, "3.experts": [True, False] * 2})
        >>> count_params_and_macs(model, torch.zeros(1, 8))[0] == groups.cost(
        ...     {"0": 12, "3.experts": 2}, "params")
        True
    """
    min_keep = check_int(min_keep, "min_keep", "model_pruning_groups", low=1)
    analysis = _Analysis(model, example_inputs, layers, owner="model_pruning_groups")
    return ModelPruningGroups(analysis, example_inputs, min_keep)


def _as_bool(mask: Any) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, dtype=bool).reshape(-1)


def _to_device(example: Any, device: torch.device) -> Any:
    if isinstance(example, torch.Tensor):
        return example.to(device)
    if isinstance(example, tuple | list):
        return type(example)(x.to(device) if isinstance(x, torch.Tensor) else x for x in example)
    if isinstance(example, Mapping):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in example.items()}
    return example


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
        _tp()  # fail at construction, naming the extra, if Torch-Pruning is missing
        self.target_ratio = check_float(
            target_ratio, "target_ratio", _OWNER, low=0.0, high=1.0, low_inclusive=False
        )
        if self.target_ratio >= 1.0:
            raise SolverConfigurationError(
                f"The 'target_ratio' parameter of {_OWNER} must be a float in (0, 1). "
                f"Got {target_ratio!r} instead."
            )
        if budget not in _BUDGETS:
            raise SolverConfigurationError(
                f"The 'budget' parameter of {_OWNER} must be one of {list(_BUDGETS)}. "
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
        self._analysis: _Analysis | None = None
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
        self._analysis = _Analysis(pl_module, self._device_input(pl_module), self.layers)
        for group in self._analysis.groups:
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
        assert self._analysis is not None
        floors = {g.name: g.min_keep(self.min_keep) for g in self._analysis.groups}
        minimum = self._analysis.predict(self.budget, floors)
        budget = self.target_ratio * self.report[f"{self.budget}_before"]
        if minimum <= budget + 1e-9:
            return
        detail = ", ".join(
            f"{g.name!r}: {floors[g.name]}"
            + (f" of {g.size} experts (top_k of MoE {g.roots[0][0]!r})" if g.moe else "")
            for g in self._analysis.groups
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
        return _to_device(self._example, next(pl_module.parameters()).device)

    def _install_hooks(self) -> None:
        assert self._analysis is not None
        self._remove_hooks()
        per_consumer: dict[nn.Module, list[tuple[_Group, torch.Tensor, torch.Tensor]]] = {}
        for group in self._analysis.groups:
            for module, positions, units in group.consumers:
                per_consumer.setdefault(module, []).append((group, positions, units))
        for module, entries in per_consumer.items():
            self._handles.append(module.register_forward_pre_hook(self._make_hook(module, entries)))
        for group in self._analysis.groups:
            if group.moe is not None:
                self._handles.append(
                    group.moe.router.register_forward_hook(self._make_router_hook(group))
                )
                self._handles.append(
                    group.moe.register_forward_pre_hook(self._make_token_hook(group))
                )

    def _make_router_hook(self, group: _Group) -> Any:
        """Dropped experts get a router logit no top-k choice picks (and gate exactly 0)."""

        def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor | None:
            mask = self.masks[group.name]
            if bool(mask.all()):
                return None
            return output.masked_fill(~mask.to(output.device), _DROPPED_LOGIT)

        return hook

    def _make_token_hook(self, group: _Group) -> Any:
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
        self, module: nn.Module, entries: list[tuple[_Group, torch.Tensor, torch.Tensor]]
    ) -> Any:
        conv = isinstance(module, nn.Conv2d)
        width = _in_size(module)

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

    def _observe(self, group: _Group, positions: torch.Tensor, x: torch.Tensor, conv: bool) -> None:
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
        if not self._collecting or self._analysis is None:
            return
        for group in self._analysis.groups:
            if group.moe is not None:
                if self.importance not in ("taylor", "fisher"):
                    continue
                # First-order Taylor over all of an expert's parameters (its router row
                # excluded: the router's gradient says how routing, not the expert, matters).
                params = _expert_parameters(group.moe)
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

    def _magnitude(self, group: _Group, p: int) -> np.ndarray:
        if group.moe is not None:
            weight = torch.cat(
                [t.detach().reshape(group.size, -1) for t in _expert_parameters(group.moe)], dim=1
            )
            return magnitude_importance(weight, p=p)
        total = np.zeros(group.size)
        for name, root in group.roots:
            parameter = root.weight
            assert isinstance(parameter, torch.Tensor)  # roots are Linear/Conv2d layers
            weight = parameter.detach()
            norm = group.norms.get(name)
            if isinstance(norm, _NORMS):
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

    def _redundancy(self, group: _Group, stats: Mapping[str, Any]) -> np.ndarray | None:
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

    def _scores(self, trainer: Trainer, group: _Group) -> tuple[np.ndarray, np.ndarray | None]:
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
        if self._analysis is None or self._next_epoch() != trainer.current_epoch:
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
        predicted = {b: self._analysis.predict(b, counts) for b in _BUDGETS}
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
        assert self._analysis is not None
        alive = {name: mask.numpy().astype(bool) for name, mask in self.masks.items()}
        cost = self._analysis.cost(self.budget, alive)
        groups = []
        for group in self._analysis.groups:  # every rank: the scores are reduced across ranks
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
            for group in self._analysis.groups:
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
        if self._analysis is None:
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
        assert self._analysis is not None
        _remove_units(model, self._device_input(model), self._analysis.groups, self.masks)

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
