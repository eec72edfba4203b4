"""Lightning train-and-evaluate objectives for architecture search, with Optuna pruning.

Imported lazily (by :func:`qopt.nas.resolve_evaluator` for a spec with a ``train`` section);
imports torch, Lightning, Optuna and optuna-integration at top level.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning
import optuna
import torch
from optuna_integration import PyTorchLightningPruningCallback
from torch import nn

from qopt.exceptions import InvalidProblemError
from qopt.nas._spec import SearchSpace, Training

__all__ = ["LightningEvaluator", "measure_model"]

#: Lightning's hints that do not concern a short search on small data.
_QUIET = (
    r".*does not have many workers.*",
    r".*The number of training batches.*",
    r".*GPU available but not used.*",
    r".*LightningModule.example_input_array.*",
    r".*isinstance\(treespec, LeafSpec\).*",
)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit banners (accelerator, tips) and hints, silenced for one trial."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def measure_model(model: nn.Module) -> dict[str, float]:
    """Parameters and MACs (one forward of ``model.example_input_array``) of a built model.

    MACs count the weight multiplications of linear and convolution layers
    (:func:`qopt.model_analysis.count_params_and_macs`); FLOPs are about twice that.

    Examples:
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
        >>> model.example_input_array = torch.zeros(1, 8)
        >>> measure_model(model)
        {'params': 46.0, 'macs': 40.0}
    """
    from qopt.model_analysis import count_params_and_macs

    example = getattr(model, "example_input_array", None)
    if example is None:
        return {"params": float(sum(p.numel() for p in model.parameters()))}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            params, macs = count_params_and_macs(model, example)
    finally:
        model.train(was_training)
    return {"params": float(params), "macs": float(macs)}


class LightningEvaluator:
    """Build, measure, train and validate one architecture; the search's objective.

    ``build(architecture)`` returns a ``LightningModule``. Its parameters and MACs are
    measured first; a model over a ``params`` or ``flops`` budget (FLOPs = 2 x MACs) is
    refused before any training (the spec's cost model was wrong; the error says by how
    much). The module is then trained for ``max_epochs`` (or ``max_time_s``) and its
    ``monitor`` metric reported to the Optuna trial each epoch; a pruned trial raises
    :class:`optuna.TrialPruned`. The metrics are Lightning's final ``callback_metrics``
    plus ``params`` and ``macs``.

    Args:
        space: The search space (its ``train`` section and budgets).
        build: The entry point building a ``LightningModule`` from an architecture dict.
        data: Optional function returning a ``LightningDataModule``.
        seed: Seed of every trial's training (``seed + trial number``).
        weights_dir: Where to save each completed trial's ``state_dict``.

    Examples:
        >>> from qopt.nas import Choice, SearchSpace
        >>> from qopt.nas._spec import Training
        >>> space = SearchSpace([Choice("w", "ordinal", (2, 4))], train=Training(max_epochs=1))
        >>> LightningEvaluator(space, lambda arch: None).takes_trial
        True
    """

    #: The runner passes the Optuna trial (for pruning) as the second argument.
    takes_trial = True

    def __init__(
        self,
        space: SearchSpace,
        build: Callable[[dict[str, Any]], Any],
        *,
        data: Callable[[], Any] | None = None,
        seed: int | None = None,
        weights_dir: str | Path | None = None,
    ) -> None:
        self.space = space
        self.training = space.train or Training()
        self.build = build
        self.data = data
        self.seed = seed
        self.weights_dir = None if weights_dir is None else Path(weights_dir)

    def check_measured(
        self, architecture: Mapping[str, Any], measured: Mapping[str, float]
    ) -> None:
        """Refuse a model whose measured params/FLOPs exceed a budget of that kind."""
        for b in self.space.budgets:
            if b.kind == "params" and "params" in measured:
                real = measured["params"]
            elif b.kind == "flops" and "macs" in measured:
                real = 2.0 * measured["macs"]
            else:
                continue
            if real > b.max * (1 + 1e-9):
                modelled = self.space.cost(architecture, b.name)
                raise InvalidProblemError(
                    f"The built model has {real:g} {b.kind} (measured), over budget "
                    f"'{b.name}' max={b.max:g}; the spec's cost model says {modelled:g}. Fix "
                    f"the costs of budget '{b.name}' so they match the model (it was not "
                    "trained)."
                )

    def __call__(
        self, architecture: dict[str, Any], trial: optuna.trial.Trial | None = None
    ) -> dict[str, float]:
        number = 0 if trial is None else trial.number
        if self.seed is not None:
            # Before build: the initial weights are part of what a trial's seed fixes.
            lightning.seed_everything(self.seed + number, workers=True, verbose=False)
        model = self.build(dict(architecture))
        if not isinstance(model, lightning.LightningModule):
            raise InvalidProblemError(
                f"The entry point '{self.space.evaluate}' returned {type(model).__name__}; with a "
                "'train' section it must return a LightningModule built from the architecture."
            )
        measured = measure_model(model)
        if trial is not None:
            for name, value in measured.items():
                trial.set_user_attr(f"measured:{name}", value)
        self.check_measured(architecture, measured)
        # Optuna cannot prune multi-objective trials: they train to the end.
        pruned_by = trial if trial is not None and len(trial.study.directions) == 1 else None
        with _quiet_lightning():
            return self._fit(model, trial, pruned_by, measured)

    def _fit(
        self,
        model: Any,
        trial: optuna.trial.Trial | None,
        pruned_by: optuna.trial.Trial | None,
        measured: dict[str, float],
    ) -> dict[str, float]:
        """Train ``model``; its final metrics. A pruned trial raises :class:`optuna.TrialPruned`
        from the pruning callback (the median rule, or successive halving: Li et al., "A System
        for Massively Parallel Hyperparameter Tuning", MLSys 2020), which Lightning tears down
        and re-raises."""
        t = self.training
        callbacks: list[lightning.Callback] = []
        if pruned_by is not None:
            callbacks.append(PyTorchLightningPruningCallback(pruned_by, t.monitor))
        trainer = lightning.Trainer(
            max_epochs=t.max_epochs,
            max_time=None if t.max_time_s is None else {"seconds": math.ceil(t.max_time_s)},
            accelerator=t.accelerator,
            devices=1,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic="warn" if self.seed is not None else None,
        )
        datamodule = None if self.data is None else self.data()
        trainer.fit(model, datamodule=datamodule)
        if pruned_by is not None and t.monitor not in trainer.callback_metrics:
            raise InvalidProblemError(
                f"The module logged no '{t.monitor}' to prune on (it logged "
                f"{sorted(trainer.callback_metrics)}); log it in validation_step with "
                f"self.log('{t.monitor}', ...) or set 'train.monitor' in the spec."
            )
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if torch.as_tensor(v).numel() == 1
        }
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        metrics.update(measured)
        metrics["epochs"] = float(trainer.current_epoch)
        if self.weights_dir is not None and t.save_weights and trial is not None:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), self.weights_dir / f"trial-{trial.number}.pt")
        return metrics
