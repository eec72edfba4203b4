"""Checkpoints of pruned models: what a checkpoint records, and the model it loads back into.

A pruned model's layers are smaller than the ones its class builds, so the class alone cannot
load its weights; and a model checkpointed while a pruning loop masks its units holds the
full-size weights, which compute the pruned network only with the masks applied. A
checkpoint therefore keeps, beside its ``"state_dict"``, a plain-data record of the
structure (:func:`pruning_record`, under :data:`PRUNING_KEY`), and :func:`load_pruned`
rebuilds the pruned model from the class's model and the checkpoint, whichever of the two
it holds. Lightning checkpoints written with
:class:`~qopt.integrations.lightning.QuboPruningCallback` carry the record; any other loop
can write one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch import nn

from qopt.exceptions import InvalidInputError
from qopt.model_analysis.hooks import is_being_pruned
from qopt.model_analysis.surgery import as_keep_mask, remove_units
from qopt.model_analysis.tracing import move_to_device, trace_unit_groups

__all__ = ["PRUNING_KEY", "load_pruned", "pruning_record"]

#: The checkpoint key under which the pruned structure is recorded.
PRUNING_KEY = "qopt_pruning"


def pruning_record(
    masks: Mapping[str, Any],
    example_input: Any,
    layers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The pruned structure of a model, as plain data to store in a checkpoint.

    Store it under :data:`PRUNING_KEY` beside the model's ``"state_dict"``, whether the
    model was already cut (the state dict is the smaller one) or its units are still masked
    (the state dict is the full one): :func:`load_pruned` tells the two apart by shape.
    Everything in it loads with ``torch.load(..., weights_only=True)``.

    Args:
        masks: Per pruning group name, one keep flag per unit of the original model
            (:func:`~qopt.model_analysis.model_pruning_groups`); a group left out keeps all.
        example_input: An input of the model's ``forward`` (a tensor, or a tuple, list or
            dict of them) for tracing the groups again; stored on the CPU.
        layers: The ``layers`` the groups were found with (``None``: every prunable layer).

    Returns:
        ``{"masks": {name: [bool, ...]}, "example_input": ..., "layers": [...] or None}``.

    Examples:
        >>> import torch
        >>> record = pruning_record({"0": torch.tensor([True, False])}, torch.zeros(1, 4))
        >>> record["masks"], record["layers"]
        ({'0': [True, False]}, None)
    """
    return {
        "masks": {name: as_keep_mask(mask).tolist() for name, mask in masks.items()},
        "example_input": move_to_device(example_input, "cpu"),
        "layers": None if layers is None else list(layers),
    }


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _fits(model: nn.Module, state: Mapping[str, Any]) -> bool:
    """Whether every tensor of ``state`` has the shape of the model's tensor of that name."""
    own = _shapes(model.state_dict())
    return all(own.get(name, shape) == shape for name, shape in _shapes(state).items())


def load_pruned(
    model: nn.Module,
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    *,
    example_input: Any = None,
    strict: bool = True,
    weights_only: bool = True,
) -> nn.Module:
    """Cut ``model`` to a checkpoint's pruned structure and load its weights, in place.

    ``model`` is the network as its class builds it, before any pruning (for a
    LightningModule, ``Model(...)`` with the arguments it was trained with). The checkpoint
    may hold the weights of the cut model (written after a pruning loop removed the units,
    e.g. ``trainer.save_checkpoint`` after ``fit``) or the full-size weights of a model whose
    units were masked (written while pruning, e.g. by ``ModelCheckpoint``): in both cases
    the model returned is the cut one, with the checkpoint's weights, computing what the
    masked network computed. A checkpoint written before any unit was dropped, or with no
    record (of a model never pruned), loads as is.

    In a LightningModule, ``on_load_checkpoint`` can call it, so that
    ``Model.load_from_checkpoint(path)`` returns the pruned model: given the dictionary,
    it replaces its ``"state_dict"`` with the cut model's, which Lightning then loads. A model
    that a pruning loop is masking now (:func:`~qopt.model_analysis.hooks.is_being_pruned`:
    a fit resumed from the checkpoint) keeps its full size: its weights load as they are.

    Args:
        model: The unpruned model, of the class and arguments the checkpoint was trained
            with; it is changed in place.
        checkpoint: A path to a file saved with ``torch.save`` (a Lightning ``.ckpt``), or
            the loaded dictionary: its ``"state_dict"`` and its :data:`PRUNING_KEY` record.
        example_input: An input of ``model.forward`` for tracing its groups (default: the
            one in the record).
        strict: As ``nn.Module.load_state_dict``'s.
        weights_only: As ``torch.load``'s, for a path; pass ``False`` only for a file you
            trust whose extra entries (e.g. hyper-parameters) are custom objects.

    Returns:
        ``model``, cut and loaded.

    Raises:
        InvalidInputError: The checkpoint has no ``"state_dict"``, or its weights do not fit
            ``model`` cut to its structure (a different class or different arguments; or a
            cut model's checkpoint without its record, or resumed into a pruning loop): the
            message says which.

    Examples:
        >>> import torch
        >>> from qopt.model_analysis import model_pruning_groups
        >>> def build():
        ...     return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(),
        ...                                torch.nn.Linear(6, 2))
        >>> trained, example = build(), torch.zeros(1, 8)
        >>> masks = {"0": [True, False, True, True, False, True]}
        >>> model_pruning_groups(trained, example).prune(trained, masks)
        >>> checkpoint = {"state_dict": trained.state_dict(),
        ...               PRUNING_KEY: pruning_record(masks, example)}
        >>> loaded = load_pruned(build(), checkpoint)
        >>> loaded[0].out_features, torch.equal(loaded[2].weight, trained[2].weight)
        (4, True)
    """
    if isinstance(checkpoint, str | os.PathLike):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=weights_only)
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise InvalidInputError(
            "The 'checkpoint' parameter of load_pruned must be a path to, or the dictionary "
            "of, a checkpoint with a 'state_dict' (as Lightning and QuboPruningCallback "
            f"write). Got {type(checkpoint).__name__} without one instead."
        )
    state = checkpoint["state_dict"]
    record = checkpoint.get(PRUNING_KEY)
    if not isinstance(record, Mapping):
        _load(model, state, strict, _NO_RECORD)
        return model
    if is_being_pruned(model):
        # A pruning loop (a fit resumed from this checkpoint) masks the units and cuts the
        # model when it ends: the full-size weights load as they are.
        _load(model, state, strict, _RESUMING_A_CUT_MODEL)
        return model
    masks = {name: as_keep_mask(mask) for name, mask in record["masks"].items()}
    if all(mask.all() for mask in masks.values()):
        _load(model, state, strict, _NOT_THE_BUILD)
        return model
    if _fits(model, state):  # a model checkpointed while masked: load, then cut
        _load(model, state, strict, _NOT_THE_BUILD)
        _cut(model, masks, record, example_input)
        if isinstance(checkpoint, MutableMapping):
            checkpoint["state_dict"] = model.state_dict()
    else:  # a cut model: cut, then load
        _cut(model, masks, record, example_input)
        _load(model, state, strict, _NOT_THE_BUILD)
    return model


_NOT_THE_BUILD = (
    "Pass load_pruned a new model as it was built for training: the same class and "
    "arguments, before pruning (not one already cut, such as the model a fit pruned)."
)
_NO_RECORD = (
    f"The checkpoint has no {PRUNING_KEY!r} record of a pruned structure to rebuild: it was "
    "written without QuboPruningCallback in the Trainer's callbacks, or with "
    "weights_only=True (which leaves the callbacks out)."
)
_RESUMING_A_CUT_MODEL = (
    "The model is being pruned (PruningHooks are installed on it, e.g. by QuboPruningCallback "
    "in a fit resumed from this checkpoint) and keeps its full size until pruning ends, but "
    "the checkpoint holds a cut model: pruning cannot resume from a checkpoint written after "
    "the units were removed. Load it with load_pruned(Model(...), path) and train it without "
    "the pruning callback."
)


def _cut(
    model: nn.Module, masks: dict[str, Any], record: Mapping[str, Any], example_input: Any
) -> None:
    if example_input is None:
        example_input = record["example_input"]
    example = move_to_device(example_input, next(model.parameters()).device)
    groups = trace_unit_groups(model, example, record.get("layers"), owner="load_pruned")
    names = [g.name for g in groups]
    unknown = sorted(set(masks) - set(names))
    if unknown:
        raise InvalidInputError(
            f"The checkpoint prunes groups {unknown} that {type(model).__name__} does not "
            f"have (its groups: {names}). {_NOT_THE_BUILD}"
        )
    full = {g.name: masks.get(g.name, [True] * g.size) for g in groups}
    try:
        remove_units(model, example, groups, full)
    except ValueError as error:
        raise InvalidInputError(
            f"The checkpoint's pruned structure does not fit {type(model).__name__}: {error} "
            f"{_NOT_THE_BUILD}"
        ) from error


def _load(model: nn.Module, state: Mapping[str, Any], strict: bool, advice: str) -> None:
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as error:
        raise InvalidInputError(
            f"The checkpoint's weights do not fit {type(model).__name__}. {advice} ({error})"
        ) from error
