"""The protocol a routing optimizer drives: the hook a layer calls, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

__all__ = [
    "Routable",
    "RouterHook",
    "RoutingDecision",
    "distillation_loss",
]


@dataclass
class RoutingDecision:
    """What a router hook hands back to the layer for the current forward.

    Attributes:
        assignment: Long tensor ``(T, k)`` of expert indices to dispatch by, or ``None`` to
            let the layer route itself.
        aux_loss: A scalar added to the layer's auxiliary loss (e.g. a distillation loss), or
            ``None``.
    """

    assignment: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None


class RouterHook(Protocol):
    """Called by a routable layer in ``forward`` with the router logits ``(T, E)``.

    ``hidden`` are the router's inputs ``(T, D)`` (detached) or ``None``; the logits keep their
    graph so a hook can build a loss on them.
    """

    def __call__(
        self, scores: torch.Tensor, hidden: torch.Tensor | None
    ) -> RoutingDecision | None: ...


@runtime_checkable
class Routable(Protocol):
    """A mixture-of-experts module whose routing an outside optimizer can drive.

    See the module documentation for how to adapt a layer that is not :class:`MoE`.

    Examples:
        >>> from qopt.moe import MoE, Routable
        >>> isinstance(MoE(8, 2), Routable)
        True
    """

    num_experts: int
    top_k: int

    def expert_capacity(self, num_tokens: int) -> int:
        """Slots per expert for a batch of ``num_tokens`` tokens."""
        ...

    def router_scores(self) -> torch.Tensor | None:
        """Router logits ``(T, E)`` of the last forward (detached), or ``None`` before any."""
        ...

    def set_router_hook(self, hook: RouterHook | None) -> None:
        """Install (or remove, with ``None``) the hook called on the router logits."""
        ...


def distillation_loss(
    scores: torch.Tensor, assignment: torch.Tensor, weight: float = 1.0
) -> torch.Tensor:
    """Cross-entropy of the router against a solved assignment (uniform over its ``k`` experts).

    Args:
        scores: Router logits, shape ``(T, E)``.
        assignment: The experts each token should go to, int shape ``(T, k)``.
        weight: Scale of the loss.

    Examples:
        >>> import torch
        >>> from qopt.moe import distillation_loss
        >>> scores = torch.tensor([[0.0, 0.0], [5.0, -5.0]])
        >>> round(float(distillation_loss(scores, torch.tensor([[0], [0]]))), 4)
        0.3466
    """
    log_probs = torch.log_softmax(scores.float(), dim=-1)
    return -weight * log_probs.gather(1, assignment).mean()
