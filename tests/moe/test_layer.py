"""Tests of qopt.moe.layer: the reference MoE layer and its routing methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.moe import MoE, Routable, RoutingDecision


def _layer(**options: object) -> MoE:
    torch.manual_seed(0)
    return MoE(8, 4, d_hidden=16, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("routing", ["topk", "sinkhorn", "assignment", "bias"])
@pytest.mark.parametrize("top_k", [1, 2])
def test_every_routing_trains(routing: str, top_k: int) -> None:
    layer = _layer(top_k=top_k, routing=routing)
    x = torch.randn(3, 8, 8)
    y = layer(x)
    assert y.shape == x.shape
    (y.pow(2).mean() + layer.aux_loss).backward()
    assert layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0
    stats = layer.last_stats
    assert stats is not None and stats.num_tokens == 24 and stats.top_k == top_k


def test_assignment_routing_is_balanced_and_optimal() -> None:
    layer = _layer(routing="assignment", capacity_factor=1.0)
    layer(torch.randn(32, 8))
    assert layer.last_stats is not None
    assert layer.last_stats.load == (8, 8, 8, 8) and layer.last_stats.dropped == 0


def test_capacity_drops_are_counted_and_zero_the_output() -> None:
    layer = _layer(capacity_factor=1.0)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0] = 1.0  # every token prefers expert 0 (for positive inputs)
    x = torch.rand(16, 8) + 0.1
    y = layer(x)
    stats = layer.last_stats
    assert stats is not None
    assert stats.load[0] == 16 and stats.max_violation == pytest.approx(3.0)
    assert stats.dropped == 12 and stats.dropped_tokens == 12
    assert (y.abs().sum(dim=1) == 0).sum() == 12


def test_switch_aux_loss_only_in_training_topk() -> None:
    layer = _layer()
    layer(torch.randn(16, 8))
    assert float(layer.aux_loss.detach()) > 0
    layer.eval()
    layer(torch.randn(16, 8))
    assert float(layer.aux_loss) == 0
    off = _layer(aux_loss_weight=0.0)
    off(torch.randn(16, 8))
    assert float(off.aux_loss) == 0


def test_batch_wide_routing_is_greedy_at_eval() -> None:
    x = torch.randn(24, 8)
    greedy = _layer().eval()
    for routing in ("sinkhorn", "assignment", "external"):
        other = _layer(routing=routing).eval()
        other.load_state_dict(greedy.state_dict())
        assert torch.allclose(other(x), greedy(x))


def test_bias_routing_moves_toward_balance() -> None:
    layer = _layer(routing="bias", bias_update_rate=0.1)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0] = 1.0
    x = torch.rand(32, 8) + 0.1
    first = None
    for _ in range(25):
        layer(x)
        assert layer.last_stats is not None
        first = first if first is not None else layer.last_stats.max_violation
    assert layer.expert_bias[0] < 0 < layer.expert_bias[1]
    assert layer.last_stats.max_violation < first


def test_external_assignment_is_used_once_and_checked() -> None:
    layer = _layer(routing="external", capacity_factor=4.0)
    layer.set_assignment(np.full((6, 1), 2))
    layer(torch.randn(6, 8))
    assert layer.last_stats is not None and layer.last_stats.load == (0, 0, 6, 0)
    with pytest.raises(InvalidProblemError, match="set_assignment"):
        layer(torch.randn(6, 8))
    layer.set_assignment(np.zeros((5, 1), dtype=np.int64))
    with pytest.raises(InvalidProblemError, match=r"shape \(5, 1\).*\(6, 1\)"):
        layer(torch.randn(6, 8))
    layer.set_assignment(np.zeros((6, 1)))
    with pytest.raises(InvalidProblemError, match="integer"):
        layer(torch.randn(6, 8))
    layer.set_assignment(np.full((6, 1), 7))
    with pytest.raises(InvalidProblemError, match="expert indices"):
        layer(torch.randn(6, 8))
    two = _layer(routing="external", top_k=2)
    two.set_assignment(np.array([[1, 1]] * 4))
    with pytest.raises(InvalidProblemError, match="same expert twice"):
        two(torch.randn(4, 8))


def test_router_hook_overrides_routing_and_adds_loss() -> None:
    layer = _layer(capacity_factor=4.0)
    assert isinstance(layer, Routable)
    seen = {}

    def hook(scores: torch.Tensor, hidden: torch.Tensor | None) -> RoutingDecision:
        seen["shape"] = tuple(scores.shape)
        seen["grad"] = scores.requires_grad
        return RoutingDecision(
            assignment=torch.full((scores.shape[0], 1), 3, dtype=torch.long),
            aux_loss=scores.sum() * 0 + 1.5,
        )

    layer.set_router_hook(hook)
    layer.eval()
    layer(torch.randn(5, 8))
    assert seen == {"shape": (5, 4), "grad": True}
    assert layer.last_stats is not None and layer.last_stats.load == (0, 0, 0, 5)
    assert float(layer.aux_loss) == pytest.approx(1.5)
    scores = layer.router_scores()
    assert scores is not None and scores.shape == (5, 4) and not scores.requires_grad
    layer.set_router_hook(None)
    layer(torch.randn(5, 8))
    assert layer.last_stats is not None and layer.last_stats.load != (0, 0, 0, 5)


def test_configuration_errors() -> None:
    with pytest.raises(SolverConfigurationError, match="'routing' parameter"):
        MoE(8, 4, routing="random")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match="'top_k' parameter"):
        MoE(8, 4, top_k=5)
    with pytest.raises(SolverConfigurationError, match="'capacity_factor' parameter"):
        MoE(8, 4, capacity_factor=0.0)
    with pytest.raises(InvalidProblemError, match="d_model=8"):
        MoE(8, 4)(torch.randn(3, 7))


def test_nonfinite_scores_in_assignment_routing_raise_clearly() -> None:
    layer = _layer(routing="assignment")
    with torch.no_grad():
        layer.router.weight.fill_(float("nan"))
    with pytest.raises(InvalidProblemError, match="non-finite"):
        layer(torch.randn(4, 8))


# -- masked experts ---------------------------------------------------------------------------

KEEP = [True, False, True, True, False, True]


@pytest.mark.parametrize("routing", ["topk", "sinkhorn", "assignment", "bias"])
@pytest.mark.parametrize("top_k", [1, 2])
def test_masked_experts_take_no_token_in_any_routing(routing: str, top_k: int) -> None:
    torch.manual_seed(0)
    layer = MoE(8, 6, d_hidden=16, top_k=top_k, routing=routing, capacity_factor=1.0)  # type: ignore[arg-type]
    layer.mask_experts(torch.tensor(KEEP))
    assert layer.active_experts.tolist() == KEEP
    # Capacity is shared among the four active experts: 48 tokens x k over 4, not over 6.
    assert layer.expert_capacity(48) == 12 * top_k
    y = layer(torch.randn(48, 8))
    (y.pow(2).mean() + layer.aux_loss).backward()
    stats = layer.last_stats
    assert stats is not None
    load = np.array(stats.load)
    assert load.shape == (6,) and load[~np.array(KEEP)].sum() == 0
    assert load.sum() == 48 * top_k  # what the router asked for, all on active experts
    # Masked router rows get no gradient: their logits are a constant.
    assert layer.router.weight.grad is not None
    assert layer.router.weight.grad[~torch.tensor(KEEP)].abs().sum() == 0
    if routing == "assignment":  # balanced over the active experts: nothing dropped
        assert stats.dropped == 0 and stats.max_violation == 0.0 and stats.dead_experts == 0


def test_bias_routing_with_a_mask_balances_the_active_experts_only() -> None:
    layer = _layer(routing="bias", bias_update_rate=0.1)
    layer.mask_experts([True, True, False, True])
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0] = 1.0
    x = torch.rand(30, 8) + 0.1
    for _ in range(25):
        layer(x)
    # The masked expert's bias stays; without the mask the active experts would all sit
    # above a mean that counts the masked expert's zero load, and fall together.
    assert float(layer.expert_bias[2]) == 0.0
    assert layer.expert_bias[0] < 0 < layer.expert_bias[1]
    assert layer.last_stats is not None and layer.last_stats.load[2] == 0
    assert layer.last_stats.max_violation < 1.0


def test_masked_layer_refuses_an_assignment_to_a_masked_expert_and_unmasks() -> None:
    layer = _layer(routing="external", capacity_factor=4.0)
    layer.mask_experts([True, False, True, True])
    layer.set_assignment(np.full((6, 1), 1))
    with pytest.raises(InvalidProblemError, match=r"masked expert\(s\) \[1\]"):
        layer(torch.randn(6, 8))
    layer.mask_experts(None)
    assert layer.active_experts.all()
    layer.set_assignment(np.full((6, 1), 1))
    layer(torch.randn(6, 8))
    assert layer.last_stats is not None and layer.last_stats.load == (0, 6, 0, 0)


def test_mask_experts_checks_its_argument() -> None:
    layer = _layer(top_k=2)
    with pytest.raises(InvalidProblemError, match=r"one bool per expert, shape \(4,\)"):
        layer.mask_experts([True, False])
    with pytest.raises(InvalidProblemError, match="at least top_k=2"):
        layer.mask_experts([True, False, False, False])
    layer.mask_experts([True, True, True, True])  # nothing masked: the plain layer
    assert layer.active_experts.all()


def test_keep_experts_keeps_the_mask_of_the_kept_experts() -> None:
    layer = _layer()
    layer.mask_experts([True, False, True, True])
    layer.keep_experts([1, 2, 3])
    assert layer.num_experts == 3 and layer.active_experts.tolist() == [False, True, True]
    layer(torch.randn(9, 8))
    assert layer.last_stats is not None and layer.last_stats.load[0] == 0
    layer.keep_experts([1, 2])
    assert layer.active_experts.all()


def test_an_all_true_mask_computes_what_the_plain_layer_does() -> None:
    x = torch.randn(24, 8)
    for routing in ("topk", "sinkhorn", "assignment", "bias"):
        plain, masked = _layer(routing=routing), _layer(routing=routing)
        masked.mask_experts(torch.ones(4, dtype=torch.bool))
        torch.testing.assert_close(masked(x), plain(x))
        assert masked.last_stats == plain.last_stats
