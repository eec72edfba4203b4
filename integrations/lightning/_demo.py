"""The MoE routing demo: the same small model trained with Sinkhorn and with QUBO routing."""

from __future__ import annotations

import time
from typing import Any, TextIO

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from qopt.integrations.lightning._routing import QuboRoutingCallback

from qopt._validation import check_int
from qopt.moe import MarkovMixture, MoELanguageModel
from qopt.solvers import resolve_solver

__all__ = ["print_routing_demo", "routing_demo"]


class _LanguageModule(pl.LightningModule):
    """A language model as a LightningModule that records its routing statistics."""

    def __init__(self, model: MoELanguageModel, lr: float) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.history: list[dict[str, float]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        tokens = batch[0]
        logits = self.model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        stats = [layer.last_stats for layer in self.model.moe_layers()]
        self.history.append(
            {
                "loss": float(loss.detach()),
                "max_violation": max(s.max_violation for s in stats if s is not None),
                "dropped_fraction": float(
                    np.mean([s.dropped_fraction for s in stats if s is not None])
                ),
            }
        )
        total: torch.Tensor = loss + self.model.aux_loss
        return total

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def _validation_loss(model: MoELanguageModel, tokens: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    model.train()
    return float(loss)


def routing_demo(
    *,
    steps: int = 30,
    seed: int = 0,
    solver: str = "sa",
    batch_size: int = 8,
    length: int = 33,
    num_experts: int = 4,
) -> dict[str, dict[str, float]]:
    """Train the same small MoE model with Sinkhorn routing and with QUBO routing; compare.

    Both arms train a one-block :class:`MoELanguageModel` on a :class:`MarkovMixture` for
    ``steps`` steps with capacity factor 1.0. ``"sinkhorn"`` routes with S-BASE;
    ``"qubo"`` routes each training batch with
    :class:`~qopt.integrations.lightning.QuboRoutingCallback` (``mode="assign"``, linear
    objective, Sinkhorn warm start) on ``solver``. Needs ``qopt-loop[lightning]``.

    Returns:
        Per arm: ``val_loss`` (greedy routing, held-out sequences), ``train_loss`` (mean of
        the last five steps), ``max_violation`` and ``dropped_fraction`` (means over training
        steps) and ``seconds`` (wall clock of the whole run).

    Examples:
        >>> from qopt.integrations.lightning import routing_demo
        >>> results = routing_demo(steps=2, batch_size=2, length=9)
        >>> sorted(results), results["qubo"]["dropped_fraction"]
        (['qubo', 'sinkhorn'], 0.0)
    """
    owner = "routing_demo()"
    steps = check_int(steps, "steps", owner, low=1)
    data = MarkovMixture(num_sources=4, vocab_size=32, seed=seed)
    train, _ = data.sample(batch_size * steps, length, seed=seed + 1)
    held_out, _ = data.sample(64, length, seed=seed + 2)
    results: dict[str, dict[str, float]] = {}
    for arm in ("sinkhorn", "qubo"):
        torch.manual_seed(seed)
        model = MoELanguageModel(
            data.vocab_size,
            d_model=32,
            num_layers=1,
            num_heads=2,
            num_experts=num_experts,
            max_length=length,
            capacity_factor=1.0,
            routing="sinkhorn" if arm == "sinkhorn" else "topk",
            aux_loss_weight=0.0,
        )
        callbacks = []
        if arm == "qubo":
            # A light schedule: routing runs every step, and 32-token groups anneal quickly.
            # Preferences, not requirements: each applies where the backend has the option.
            sampler = resolve_solver(
                solver, defaults={"num_reads": 4, "num_sweeps": 200, "seed": seed}, owner=owner
            )
            callbacks.append(
                QuboRoutingCallback(solver=sampler, group_size=32, compare_exact=False)
            )
        module = _LanguageModule(model, lr=3e-3)
        trainer = pl.Trainer(
            max_steps=steps,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
        )
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(train), batch_size=batch_size, shuffle=False
        )
        started = time.perf_counter()
        trainer.fit(module, loader)
        seconds = time.perf_counter() - started
        history = module.history
        results[arm] = {
            "val_loss": _validation_loss(model, held_out),
            "train_loss": float(np.mean([h["loss"] for h in history[-5:]])),
            "max_violation": float(np.mean([h["max_violation"] for h in history])),
            "dropped_fraction": float(np.mean([h["dropped_fraction"] for h in history])),
            "seconds": seconds,
        }
    return results


def print_routing_demo(out: TextIO, *, quick: bool = False, seed: int = 0) -> None:
    """Run :func:`routing_demo` and print its comparison as a table (a ``qopt demo`` section)."""
    steps = 10 if quick else 40
    results = routing_demo(steps=steps, seed=seed)
    out.write(
        f"MoE routing: 1-block causal LM, 4 experts, top-1, capacity factor 1.0, {steps} steps "
        "of 256 tokens on a mixture of 4 Markov sources\n"
    )
    out.write(
        f"  {'routing':<22} {'val loss':>8} {'train loss':>10} {'max load viol.':>14} "
        f"{'dropped':>8} {'time':>8}\n"
    )
    labels = {"sinkhorn": "Sinkhorn (S-BASE)", "qubo": "QUBO (sa, callback)"}
    for arm, r in results.items():
        out.write(
            f"  {labels[arm]:<22} {r['val_loss']:>8.3f} {r['train_loss']:>10.3f} "
            f"{r['max_violation']:>14.3f} {100 * r['dropped_fraction']:>7.1f}% "
            f"{r['seconds']:>7.1f}s\n"
        )
    out.write(
        "  Linear routing: Sinkhorn or exact assignment is optimal or near it and much faster;\n"
        "  the QUBO path earns its time only with pairwise terms or annealing hardware.\n"
    )
