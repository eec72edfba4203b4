"""Fine-tune a pretrained model with a quantum head: a Lightning ``BaseFinetuning`` callback.

:class:`QuantumHeadFinetuning` freezes the backbone, puts a :class:`qopt.circuits.QuantumHead`
where the classification head was (or trains the one the module already has), and can
unfreeze the backbone at a chosen epoch with its own learning rate, adding it to the
optimizer as a new param group (Lightning's ``BaseFinetuning`` does the bookkeeping, and
restores the param groups when a run resumes). The circuit, its gradients and its limits all
live in :mod:`qopt.circuits`; this module only wires them into Lightning's hooks.

This module imports Lightning at import time; ``qopt`` imports it only when
``qopt.integrations.lightning`` is imported.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from qopt._validation import check_float, check_int
from qopt.circuits import QuantumHead
from qopt.exceptions import InvalidInputError, SolverConfigurationError

__all__ = ["QuantumHeadFinetuning", "restore_quantum_head"]

#: Where the callback writes the head's architecture in a checkpoint.
CHECKPOINT_KEY = "qopt_quantum_head"


def _submodule(pl_module: nn.Module, path: str, what: str) -> nn.Module:
    try:
        module = pl_module.get_submodule(path)
    except AttributeError:
        module = None
    if module is None:
        names = ", ".join(name for name, _ in pl_module.named_children()) or "none"
        raise SolverConfigurationError(
            f"QuantumHeadFinetuning found no {what} '{path}' on {type(pl_module).__name__} "
            f"(its submodules: {names}). Pass {what}_attr= naming the submodule."
        )
    return module


def _last_linear(module: nn.Module) -> nn.Linear | None:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _first_linear(module: nn.Module) -> nn.Linear | None:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[0] if linears else None


def _set_submodule(pl_module: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = pl_module.get_submodule(parent_path) if parent_path else pl_module
    setattr(parent, name, module)


def restore_quantum_head(pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
    """Rebuild the quantum head a :class:`QuantumHeadFinetuning` put in ``pl_module``.

    Call it from your module's ``on_load_checkpoint`` so that plain
    ``Model.load_from_checkpoint(path)`` finds a quantum head where the checkpoint's weights
    expect one (Lightning calls ``on_load_checkpoint`` before loading the state dict). A
    checkpoint without a replaced head leaves the module as it is.

    Examples:
        >>> class Model(LightningModule):  # doctest: +SKIP
        ...     def on_load_checkpoint(self, checkpoint):
        ...         restore_quantum_head(self, checkpoint)
    """
    saved = checkpoint.get(CHECKPOINT_KEY)
    if saved is None:
        return
    if not isinstance(pl_module.get_submodule(saved["head_attr"]), QuantumHead):
        _set_submodule(pl_module, saved["head_attr"], QuantumHead(**saved["config"]))


class QuantumHeadFinetuning(BaseFinetuning):
    """Freeze a backbone and train a quantum head in place of its classification head.

    For any module with a backbone that yields a feature vector per example and a head
    that maps it to class logits (``forward`` computes ``head(backbone(x))``, however it is
    written). In ``setup`` the callback:

    - replaces ``pl_module.<head_attr>`` with a :class:`~qopt.circuits.QuantumHead` of
      ``**head_options`` whose ``in_features`` (and ``num_classes``) are read from the
      module being replaced (a linear layer, or the first and last linear layers of a
      block) or given; a head that is already a ``QuantumHead`` is kept as it is;
    - freezes ``pl_module.<backbone_attr>`` (batch-norm layers too unless ``train_bn``).

    It runs before ``configure_optimizers``, so an optimizer over ``self.parameters()`` (or
    the trainable ones) trains the new head. With ``unfreeze_backbone_at_epoch=k`` the
    backbone is unfrozen at epoch ``k`` and added to the first optimizer as a new param
    group with ``backbone_learning_rate`` (default: the head's rate / 10).

    Checkpoints: the head's architecture is written under ``"qopt_quantum_head"``. Two ways
    to load a run back with plain ``Model.load_from_checkpoint(path)``:

    1. build the ``QuantumHead`` in your module's ``__init__`` from its hyperparameters
       (the callback then only freezes; nothing to rebuild); or
    2. call :func:`restore_quantum_head` from your module's ``on_load_checkpoint``.

    Resuming with ``Trainer.fit(ckpt_path=...)`` needs neither: the callback replaces the
    head before the weights are restored.

    Args:
        head_attr: Dotted name of the head submodule (``"classifier"``, ``"model.fc"``).
        backbone_attr: Dotted name of the backbone submodule to freeze.
        in_features: Width of the backbone's feature vector; read from the head being
            replaced when ``None``.
        num_classes: Logits per example; read from the head being replaced when ``None``.
        unfreeze_backbone_at_epoch: Epoch at which the backbone starts training, or
            ``None`` to keep it frozen.
        backbone_learning_rate: Learning rate of the backbone's param group once unfrozen.
        train_bn: Whether the backbone's batch-norm layers train while it is frozen.
        **head_options: :class:`~qopt.circuits.QuantumHead` options (``num_qubits``,
            ``layers``, ``encoding``, ``gradient``, ``shots``, ``seed``, ...).

    Raises:
        SolverConfigurationError: An option is out of range or not a ``QuantumHead``
            option; at setup, a head or backbone that is not there, or a head whose
            feature width cannot be read and no ``in_features`` given.

    Examples:
        >>> callback = QuantumHeadFinetuning(head_attr="classifier", num_qubits=4, layers=2)
        >>> trainer = Trainer(callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        head_attr: str = "classifier",
        backbone_attr: str = "backbone",
        in_features: int | None = None,
        num_classes: int | None = None,
        unfreeze_backbone_at_epoch: int | None = None,
        backbone_learning_rate: float | None = None,
        train_bn: bool = False,
        **head_options: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (("head_attr", head_attr), ("backbone_attr", backbone_attr)):
            if not isinstance(value, str) or not value:
                raise SolverConfigurationError(
                    f"The '{name}' parameter of {owner} must be a submodule's dotted name. "
                    f"Got {value!r} instead."
                )
        self.head_attr = head_attr
        self.backbone_attr = backbone_attr
        self.in_features = (
            None if in_features is None else check_int(in_features, "in_features", owner, low=1)
        )
        self.num_classes = (
            None if num_classes is None else check_int(num_classes, "num_classes", owner, low=1)
        )
        self.unfreeze_backbone_at_epoch = (
            None
            if unfreeze_backbone_at_epoch is None
            else check_int(unfreeze_backbone_at_epoch, "unfreeze_backbone_at_epoch", owner, low=0)
        )
        self.backbone_learning_rate = (
            None
            if backbone_learning_rate is None
            else check_float(
                backbone_learning_rate,
                "backbone_learning_rate",
                owner,
                low=0.0,
                low_inclusive=False,
            )
        )
        self.train_bn = bool(train_bn)
        accepted = set(inspect.signature(QuantumHead).parameters) - {"in_features", "num_classes"}
        unknown = sorted(set(head_options) - accepted)
        if unknown:
            raise SolverConfigurationError(
                f"{owner} got {unknown} which are not QuantumHead options; the head takes "
                "num_qubits, layers, encoding, projection, entangler, gradient, shots, dtype "
                "and seed (in_features and num_classes are the callback's own arguments)."
            )
        self.head_options = head_options
        self._hook: RemovableHandle | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(head_attr=self.head_attr, backbone_attr=self.backbone_attr)

    def build_head(self, pl_module: LightningModule) -> QuantumHead:
        """The quantum head for ``pl_module``: its existing one, or a new one sized from the
        module it replaces (or from ``in_features`` / ``num_classes``)."""
        current = _submodule(pl_module, self.head_attr, "head")
        if isinstance(current, QuantumHead):
            return current
        first, last = _first_linear(current), _last_linear(current)
        in_features = self.in_features or (first.in_features if first is not None else None)
        num_classes = self.num_classes or (last.out_features if last is not None else None)
        if in_features is None or num_classes is None:
            missing = "in_features" if in_features is None else "num_classes"
            raise InvalidInputError(
                f"QuantumHeadFinetuning cannot read the {missing} of '{self.head_attr}' "
                f"({type(current).__name__} has no linear layer): the quantum head needs the "
                "backbone to yield a feature vector of known width. Pass "
                f"QuantumHeadFinetuning({missing}=...), or end the backbone in a layer that "
                "flattens or pools its output to (batch, width)."
            )
        head = QuantumHead(in_features, num_classes, **self.head_options)
        parameter = next(current.parameters(), None)
        return head if parameter is None else head.to(parameter.device)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        head = self.build_head(pl_module)
        if head is not pl_module.get_submodule(self.head_attr):
            _set_submodule(pl_module, self.head_attr, head)
        _submodule(pl_module, self.backbone_attr, "backbone")
        self._hook = head.register_forward_pre_hook(self._check_feature_vector)
        super().setup(trainer, pl_module, stage)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _check_feature_vector(self, _: nn.Module, inputs: tuple[Any, ...]) -> None:
        features = inputs[0] if inputs else None
        if isinstance(features, torch.Tensor) and features.dim() != 2:
            raise InvalidInputError(
                f"QuantumHeadFinetuning: the backbone '{self.backbone_attr}' gives the head "
                f"'{self.head_attr}' a tensor of shape {tuple(features.shape)}, not one "
                "feature vector per example (batch, width). End the backbone with a pooling "
                "or flattening layer (nn.AdaptiveAvgPool2d(1) then nn.Flatten(), or the "
                "[CLS] token of a transformer) so that it yields (batch, width)."
            )

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        self.freeze(pl_module.get_submodule(self.backbone_attr), train_bn=self.train_bn)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)  # restores the param groups of a resumed run
        # An optimizer over self.parameters() holds the frozen backbone too: take it out, so
        # that unfreezing gives the backbone a param group (and learning rate) of its own.
        frozen = {
            id(p)
            for p in pl_module.get_submodule(self.backbone_attr).parameters()
            if not p.requires_grad
        }
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in frozen]

    def finetune_function(
        self, pl_module: LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        at = self.unfreeze_backbone_at_epoch
        backbone = pl_module.get_submodule(self.backbone_attr)
        # ">=": a run resumed past the unfreezing epoch has its backbone frozen again by setup.
        if (
            at is not None
            and epoch >= at
            and not all(p.requires_grad for p in backbone.parameters())
        ):
            self.unfreeze_and_add_param_group(
                backbone,
                optimizer,
                lr=self.backbone_learning_rate,
                train_bn=True,
            )

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        head = pl_module.get_submodule(self.head_attr)
        if isinstance(head, QuantumHead):
            checkpoint[CHECKPOINT_KEY] = {"head_attr": self.head_attr, "config": head.config()}
