"""Tests of qopt.moe.routable: the protocol and the distillation loss."""

from __future__ import annotations

import math

import pytest
import torch

from qopt.moe import MoE, Routable, distillation_loss


def test_a_foreign_layer_with_the_members_is_routable() -> None:
    class Foreign(torch.nn.Module):
        num_experts, top_k = 4, 1

        def expert_capacity(self, num_tokens: int) -> int:
            return num_tokens

        def router_scores(self) -> torch.Tensor | None:
            return None

        def set_router_hook(self, hook: object) -> None:
            pass

    assert isinstance(Foreign(), Routable) and isinstance(MoE(8, 2), Routable)
    assert not isinstance(torch.nn.Linear(2, 2), Routable)


def test_distillation_loss_pulls_the_router_toward_the_solved_experts() -> None:
    scores = torch.zeros(6, 4, requires_grad=True)
    target = torch.tensor([[1, 2]] * 6)
    loss = distillation_loss(scores, target, weight=0.5)
    assert float(loss) == pytest.approx(0.5 * math.log(4.0))
    loss.backward()
    assert scores.grad is not None
    # Descent raises the solved experts' logits and lowers the others'.
    assert (scores.grad[:, [1, 2]] < 0).all() and (scores.grad[:, [0, 3]] > 0).all()
