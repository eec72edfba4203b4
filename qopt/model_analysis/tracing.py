"""Which output units of a torch model can be pruned together: Torch-Pruning's dependency graph.

The tracer is Torch-Pruning's ``DependencyGraph`` (Fang et al., "DepGraph: towards any
structural pruning", CVPR 2023). Each Linear/Conv2d whose outputs feed another Linear/Conv2d
gives a :class:`UnitGroup` of channels or neurons (layers coupled by a residual addition or a
concatenation form one group); the experts of each :class:`qopt.moe.MoE` layer are one more
group, whose units are whole experts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from qopt._optional import import_optional
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.model_analysis.layers import COSTED_LAYERS, NORM_LAYERS, output_width
from qopt.moe import MoE

__all__ = [
    "UnitGroup",
    "dependency_graph",
    "move_to_device",
    "torch_pruning",
    "trace_unit_groups",
]


def torch_pruning(purpose: str = "qopt.model_analysis") -> Any:
    """The ``torch_pruning`` module, or an error naming the extra that installs it."""
    return import_optional("torch_pruning", "lightning", purpose)


@dataclass
class UnitGroup:
    """One coupled group of output units, as traced by the dependency graph (or an MoE's experts).

    Attributes:
        name: The names of the layers whose outputs are the units, joined by ``+``, or
            ``"<moe>.experts"``.
        size: How many units the group has.
        roots: ``(name, module)`` of the Linear/Conv2d layers whose outputs are the units (or
            the MoE layer), by name.
        consumers: ``(module, positions, unit)``: the layers that read the units, the input
            positions they read them at, and which unit each position carries.
        touched: Every module whose shape the group changes: ``("in" or "out", units per
            position)``.
        moe: The MoE layer, when the units are its experts.
        norms: Root name -> the BatchNorm that reads that root's outputs directly.
    """

    name: str
    size: int
    roots: list[tuple[str, nn.Module]]
    consumers: list[tuple[nn.Module, torch.Tensor, torch.Tensor]]
    touched: dict[nn.Module, tuple[str, int]]
    moe: MoE | None = None
    norms: dict[str, nn.Module] = field(default_factory=dict)

    def min_keep(self, floor: int) -> int:
        """The fewest units the group may keep: ``floor``, and ``top_k`` for experts."""
        return max(floor, self.moe.top_k) if self.moe is not None else floor


def move_to_device(example: Any, device: torch.device | str) -> Any:
    """An example input (a tensor, or a tuple, list or dict of them) on ``device``.

    The Lightning callback uses Lightning's ``move_data_to_device``; the core does not import
    Lightning, and an example input is one of these shapes.
    """
    if isinstance(example, torch.Tensor):
        return example.detach().to(device)
    if isinstance(example, tuple | list):
        return type(example)(move_to_device(x, device) for x in example)
    if isinstance(example, Mapping):
        return {k: move_to_device(v, device) for k, v in example.items()}
    return example


def _experts_leaf() -> Any:
    """A Torch-Pruning pruner under which an MoE layer is one opaque module of width d_model.

    Without it the tracer walks into the per-expert parameters and index operations and
    couples them to the layers around. qopt never prunes ``d_model`` through the graph (a
    layer whose outputs are an MoE's inputs is not a prunable group); experts are removed
    with :meth:`qopt.moe.MoE.keep_experts`. Built on first use: Torch-Pruning is optional.
    """
    base = torch_pruning().pruner.BasePruningFunc

    class ExpertsLeaf(base):  # type: ignore[misc, valid-type]
        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            raise InvalidProblemError("qopt does not prune the d_model of an MoE layer.")

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: MoE) -> int:
            return layer.d_model

        def get_in_channels(self, layer: MoE) -> int:
            return layer.d_model

    return ExpertsLeaf()


def dependency_graph(model: nn.Module, example_input: Any) -> Any:
    """Torch-Pruning's dependency graph of ``model``, with MoE layers as opaque leaves.

    Tracing runs one forward in evaluation mode (batch-norm statistics stay untouched).
    """
    tp = torch_pruning()
    training = model.training
    try:
        model.eval()
        with torch.enable_grad():  # the graph is traced through autograd, even under no_grad
            return tp.DependencyGraph().build_dependency(
                model,
                example_inputs=example_input,
                customized_pruners={MoE: _experts_leaf()},
                verbose=False,
            )
    finally:
        model.train(training)


def trace_unit_groups(
    model: nn.Module,
    example_input: Any,
    layers: Sequence[str] | None = None,
    *,
    owner: str = "trace_unit_groups",
) -> list[UnitGroup]:
    """The prunable groups of ``model``, in its module order.

    Args:
        model: The network.
        example_input: An input ``model.forward`` accepts, on the model's device.
        layers: Restrict the groups to these module names (Linear/Conv2d whose outputs are
            the units, or MoE layers); a listed layer that cannot be pruned is an error.
        owner: Who is asking, for messages.

    Raises:
        InvalidProblemError: The model cannot be traced, has no prunable group, or a group
            couples a module that cannot be costed; the message names the module.
        SolverConfigurationError: ``layers`` names a module the model does not have.
    """
    names = {module: name for name, module in model.named_modules()}
    try:
        graph = dependency_graph(model, example_input)
    except Exception as error:
        raise InvalidProblemError(
            f"{owner} could not trace {type(model).__name__} with Torch-Pruning's "
            f"dependency graph ({type(error).__name__}: {error}). Pass an example_input the "
            "model's forward accepts, or prune a traceable submodule."
        ) from error
    wanted = None if layers is None else set(layers)
    if wanted is not None:
        unknown = sorted(wanted - set(names.values()))
        if unknown:
            raise SolverConfigurationError(
                f"The 'layers' parameter of {owner} names modules that {type(model).__name__} "
                f"does not have: {unknown}."
            )
    parameter_names = {p: n for n, p in model.named_parameters()}
    groups: list[UnitGroup] = []
    seen: set[str] = set()
    for module in list(graph.module2node):
        if not isinstance(module, COSTED_LAYERS) or module not in names:
            continue
        name = names[module]
        if wanted is not None and name not in wanted:
            continue
        group = _group(
            graph, module, names, parameter_names, explicit=wanted is not None, owner=owner
        )
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
        groups.append(group)
    for module, name in names.items():
        if isinstance(module, MoE) and (wanted is None or name in wanted):
            groups.append(
                UnitGroup(
                    name=f"{name}.experts" if name else "experts",
                    size=module.num_experts,
                    roots=[(name, module)],
                    consumers=[],
                    touched={module.router: ("out", 1)},
                    moe=module,
                )
            )
    # In the model's module order (the trace visits layers last to first).
    order = {name: i for i, name in enumerate(names.values())}
    groups.sort(key=lambda g: order[g.roots[0][0]])
    if not groups:
        raise InvalidProblemError(
            f"{owner} found no prunable group in {type(model).__name__}: no Linear or Conv2d "
            "layer feeds another one, and there is no MoE layer."
        )
    return groups


def _group(
    graph: Any,
    module: nn.Module,
    names: dict[nn.Module, str],
    parameter_names: dict[Any, str],
    *,
    explicit: bool,
    owner: str,
) -> UnitGroup | None:
    size = output_width(module)
    pruner = graph.get_pruner_of_module(module)
    group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(size)))
    roots: list[tuple[str, nn.Module]] = []
    consumers: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
    touched: dict[nn.Module, tuple[str, int]] = {}
    for item in group:
        target = item.dep.target.module
        if isinstance(target, nn.Parameter):
            raise InvalidProblemError(
                f"{owner} cannot cost the bare parameter {parameter_names.get(target)!r} "
                f"coupled to module {names[module]!r}; wrap it in a module or exclude the layer."
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
        if isinstance(target, NORM_LAYERS):
            touched[target] = ("out", per_unit)
        elif isinstance(target, COSTED_LAYERS):
            if isinstance(target, nn.Conv2d) and target.groups != 1:
                raise InvalidProblemError(
                    f"{owner} does not support grouped or depthwise convolution "
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
                f"{owner} cannot cost module {target_name!r} ({type(target).__name__}), "
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
            if isinstance(output.module, NORM_LAYERS) and output.module in touched:
                norms[root_name] = output.module
    return UnitGroup(name, size, sorted(roots, key=lambda r: r[0]), consumers, touched, None, norms)
