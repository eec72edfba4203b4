"""Fit a :class:`~qopt.circuits.head.QuantumHead` on precomputed features: no Lightning needed.

The plain path for embeddings already computed by a frozen model (sentence embeddings, image
features): mini-batch Adam on the cross-entropy, metered like every solve in qopt (wall and
CPU time, joules measured from a counter where one is readable, otherwise estimated with the
model named; :class:`qopt.metering.MeterReading`). Any other torch head (a linear probe, an
MLP) trains by the same loop, so a classical head can be compared on equal terms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from qopt._validation import check_float, check_int
from qopt.circuits.head import QuantumHead
from qopt.circuits.statevector import cpu_threads, default_threads
from qopt.exceptions import InvalidInputError, SolverConfigurationError
from qopt.metering import EnergyReading, Meter, MeterReading

__all__ = ["HeadFitRecord", "accuracy", "fit_head"]


@dataclass(frozen=True)
class HeadFitRecord:
    """What one :func:`fit_head` run did and cost.

    Attributes:
        train_accuracy: Accuracy on the training features after the last epoch.
        validation_accuracy: Accuracy on the validation features, when they were given.
        epochs: Passes over the training features.
        losses: Mean training cross-entropy of each epoch.
        meter: Wall time, CPU time and energy of the whole fit, with the energy's
            provenance (``"measured"`` from NVML or RAPL, or ``"estimated"`` with the model
            named in ``meter.energy.method``).
        device: Where the head was trained.
        num_parameters: Trainable parameters of the head.
        validation_curve: With ``target_accuracy`` or ``restore_best_weights``: the
            validation accuracy after each epoch.
        time_to_target_s: Wall seconds of the epochs (training and scoring) until the
            validation accuracy first reached ``target_accuracy``; ``None`` if it never did
            or no target was set.
        energy_to_target: Joules of those same epochs, summed from one reading per epoch,
            with their provenance; ``None`` like ``time_to_target_s``.
        best_epoch: With ``restore_best_weights``: the epoch (0-based) whose weights the head
            was given back, the first with the highest validation accuracy.
    """

    train_accuracy: float
    validation_accuracy: float | None
    epochs: int
    losses: list[float] = field(repr=False)
    meter: MeterReading
    device: str
    num_parameters: int
    validation_curve: list[float] = field(default_factory=list, repr=False)
    time_to_target_s: float | None = None
    energy_to_target: EnergyReading | None = None
    best_epoch: int | None = None


def _as_tensors(
    features: Any, labels: Any, what: str, dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
    if x.dim() != 2:
        raise InvalidInputError(
            f"fit_head needs {what} features as a 2-D array (examples, width). "
            f"Got shape {tuple(x.shape)}."
        )
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"fit_head needs one integer label per example: {x.shape[0]} {what} examples, "
            f"labels of shape {tuple(y.shape)}."
        )
    if y.dtype.is_floating_point and not bool(torch.all(y == torch.round(y))):
        raise InvalidInputError(
            f"fit_head needs integer class labels (0, 1, ...); the {what} labels are not."
        )
    if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise InvalidInputError(
            f"fit_head got non-finite {what} features (NaN or infinity); clean or impute "
            "them before fitting."
        )
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=torch.long)


def _summed(readings: list[MeterReading]) -> EnergyReading:
    """The energy of consecutive readings: joules summed, provenance and method of the first
    (one device and one method for a whole fit), or ``None`` joules if any is unmeasured."""
    first = readings[0].energy
    values = [r.energy.joules for r in readings]
    joules = None if any(v is None for v in values) else float(sum(v for v in values if v))
    return EnergyReading(
        joules, first.provenance, f"sum of {len(readings)} per-epoch readings; {first.method}"
    )


def accuracy(
    head: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024
) -> float:
    """Fraction of ``features`` whose largest logit is the label (no gradients kept),
    scored ``batch_size`` examples at a time so a large test set fits in memory."""
    correct = 0
    with torch.no_grad():
        for start in range(0, features.shape[0], batch_size):
            logits = head(features[start : start + batch_size])
            correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    return correct / max(1, features.shape[0])


def _head_dtype(head: nn.Module) -> torch.dtype:
    if isinstance(head, QuantumHead):
        return {"float32": torch.float32, "float64": torch.float64}[head.dtype_name]
    floating = [p.dtype for p in head.parameters() if p.dtype.is_floating_point]
    return floating[0] if floating else torch.float32


def _head_classes(head: nn.Module) -> int | None:
    """The logits a head gives: ``num_classes``, or ``out_features`` of a linear layer."""
    for name in ("num_classes", "out_features"):
        value = getattr(head, name, None)
        if isinstance(value, int):
            return value
    return None


def fit_head(
    features: Any,
    labels: Any,
    *,
    head: nn.Module | None = None,
    validation: tuple[Any, Any] | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    seed: int = 0,
    device: str = "cpu",
    num_threads: int | None = None,
    target_accuracy: float | None = None,
    restore_best_weights: bool = False,
    **head_options: Any,
) -> tuple[nn.Module, HeadFitRecord]:
    """Train a quantum head on precomputed features with Adam and the cross-entropy.

    For angle encoding, standardize the features (zero mean, unit variance per column, from
    the training split): the projection starts at the scale of unit-variance inputs, so each
    angle starts within about one radian. Amplitude encoding keeps only each vector's
    direction: pass features whose direction carries the information (pixel intensities,
    embeddings as the model gives them), not standardized columns.

    Args:
        features: ``(examples, width)`` array or tensor.
        labels: ``(examples,)`` integer classes ``0 .. num_classes - 1``.
        head: A head to train further: a :class:`QuantumHead`, or any torch module mapping
            ``(examples, width)`` to ``(examples, classes)`` logits (an ``nn.Linear`` probe,
            an MLP), trained by the same loop for a like-for-like comparison. ``None``
            builds a :class:`QuantumHead` with ``in_features`` the width, ``num_classes`` the
            largest label + 1, and ``**head_options``.
        validation: Optional ``(features, labels)`` scored after training.
        epochs: Passes over the training features.
        batch_size: Examples per optimizer step (one batched simulation each).
        learning_rate: Adam's step size.
        seed: Seeds the head (when built here) and the shuffling.
        device: ``"cpu"`` or ``"cuda[:N]"``; the head and the features move there.
        num_threads: CPU threads torch may use while training. ``None`` (default): one
            below 16 qubits, where more threads slow the small matrix products down,
            torch's setting from 16 up. Process-wide while the fit runs, then restored.
        target_accuracy: A validation accuracy in (0, 1]: the validation features are scored
            after every epoch, and the record gives the time and energy to first reach it
            (time-to-solution, energy-to-solution). Needs ``validation``.
        restore_best_weights: Score the validation features after every epoch and give the
            head back the weights of its best epoch (early stopping's model selection, as
            Keras' ``EarlyStopping(restore_best_weights=True)``). Needs ``validation``.
        **head_options: :class:`QuantumHead` options (``num_qubits``, ``layers``,
            ``encoding``, ``gradient``, ``shots``, ...).

    Returns:
        The trained head and its :class:`HeadFitRecord`.

    Raises:
        InvalidInputError: Features or labels of the wrong shape, non-integer or
            out-of-range labels, non-finite features.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 4))
        >>> y = (x[:, 0] + x[:, 1] > 0).astype(int)
        >>> head, record = fit_head(x, y, num_qubits=2, layers=1, epochs=15, seed=0)
        >>> record.train_accuracy > 0.9, record.meter.energy.provenance in ("measured", "estimated")
        (True, True)
    """
    owner = "fit_head"
    epochs = check_int(epochs, "epochs", owner, low=1)
    batch_size = check_int(batch_size, "batch_size", owner, low=1)
    learning_rate = check_float(learning_rate, "learning_rate", owner, low=0.0, low_inclusive=False)
    seed = check_int(seed, "seed", owner, low=0)
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads", owner, low=1)
    dtype = (
        _head_dtype(head)
        if head is not None
        else {"float64": torch.float64}.get(head_options.get("dtype", "float32"), torch.float32)
    )
    x, y = _as_tensors(features, labels, "training", dtype, device)
    if y.numel() == 0:
        raise InvalidInputError("fit_head was given no training examples.")
    if int(y.min()) < 0:
        raise InvalidInputError(f"fit_head needs labels 0, 1, ...; got {int(y.min())}.")
    if head is None:
        head = QuantumHead(x.shape[1], max(2, int(y.max()) + 1), seed=seed, **head_options)
    elif head_options:
        raise InvalidInputError(
            f"fit_head got head options {sorted(head_options)} and a head: set them on the "
            "head, or pass no head and let fit_head build it."
        )
    classes = _head_classes(head)
    if classes is not None and int(y.max()) >= classes:
        raise InvalidInputError(
            f"fit_head got label {int(y.max())} for a head of {classes} classes "
            f"(labels 0 .. {classes - 1})."
        )
    if target_accuracy is not None:
        target_accuracy = check_float(
            target_accuracy, "target_accuracy", owner, low=0.0, high=1.0, low_inclusive=False
        )
        if validation is None:
            raise SolverConfigurationError(
                "fit_head was given target_accuracy but no validation=(features, labels) to "
                "measure it on."
            )
    if restore_best_weights and validation is None:
        raise SolverConfigurationError(
            "fit_head was given restore_best_weights=True but no validation=(features, "
            "labels) to choose the best epoch on."
        )
    score_every_epoch = target_accuracy is not None or restore_best_weights
    validation_tensors = None
    if validation is not None:
        validation_tensors = _as_tensors(*validation, "validation", dtype, device)
    head = head.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    head.train()
    qubits = head.num_qubits if isinstance(head, QuantumHead) else 0
    threads = default_threads(qubits, device) if num_threads is None else num_threads
    curve: list[float] = []
    epoch_readings: list[MeterReading] = []
    reached: int | None = None
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    with cpu_threads(threads), Meter(device) as meter:
        for epoch in range(epochs):
            with Meter(device) as epoch_meter:
                head.train()
                order = torch.randperm(x.shape[0], generator=generator).to(device)
                total = 0.0
                for start in range(0, x.shape[0], batch_size):
                    batch = order[start : start + batch_size]
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(head(x[batch]), y[batch])
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * batch.numel()
                losses.append(total / x.shape[0])
                if score_every_epoch:
                    assert validation_tensors is not None
                    head.eval()
                    curve.append(accuracy(head, *validation_tensors))
                    if restore_best_weights and (best is None or curve[-1] > best[0]):
                        best = (curve[-1], epoch, copy.deepcopy(head.state_dict()))
            epoch_readings.append(epoch_meter.reading)
            if reached is None and target_accuracy is not None and curve[-1] >= target_accuracy:
                reached = epoch
        if best is not None:
            head.load_state_dict(best[2])
        head.eval()
        train_accuracy = accuracy(head, x, y)
        validation_accuracy = (
            None if validation_tensors is None else accuracy(head, *validation_tensors)
        )
    record = HeadFitRecord(
        train_accuracy=train_accuracy,
        validation_accuracy=validation_accuracy,
        epochs=epochs,
        losses=losses,
        meter=meter.reading,
        device=str(device),
        num_parameters=sum(p.numel() for p in head.parameters() if p.requires_grad),
        validation_curve=curve,
        time_to_target_s=None
        if reached is None
        else sum(r.wall_s for r in epoch_readings[: reached + 1]),
        energy_to_target=None if reached is None else _summed(epoch_readings[: reached + 1]),
        best_epoch=None if best is None else best[1],
    )
    return head, record
