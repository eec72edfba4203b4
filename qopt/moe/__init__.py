"""A reference mixture-of-experts layer, and the protocol a routing callback drives.

:class:`MoE` is a token-level mixture of feed-forward experts with top-k gating, an expert
capacity set by a capacity factor, dropped-token accounting and five routing methods:

==================  =========================================================================
``"topk"``          greedy top-k with capacity, plus the Switch auxiliary load-balancing loss
                    (Fedus, Zoph & Shazeer, "Switch Transformers", JMLR 2022)
``"sinkhorn"``      S-BASE: top-k of a Sinkhorn-balanced plan (Clark et al., "Unified Scaling
                    Laws for Routed Language Models", ICML 2022)
``"assignment"``    BASE: the exact balanced linear assignment (Lewis et al., "BASE Layers",
                    ICML 2021), with scipy's ``linear_sum_assignment`` over replicated slots
``"bias"``          auxiliary-loss-free balancing: per-expert biases added for selection only,
                    nudged after each step toward the mean load (Wang et al., "Auxiliary-Loss-
                    Free Load Balancing Strategy for Mixture-of-Experts", 2024; DeepSeek-V3)
``"external"``      an assignment supplied before the forward with :meth:`MoE.set_assignment`
==================  =========================================================================

Batch-wide methods (Sinkhorn, assignment, external) are not causal, so at evaluation every
method except ``"bias"`` routes greedily by top-k.

Driving a model that is not ours
--------------------------------
:class:`~qopt.integrations.lightning.QuboRoutingCallback` drives any ``torch.nn.Module`` that
satisfies :class:`Routable`. To adapt a foreign MoE layer, give it these members (a subclass
or a thin wrapper is enough):

1. ``num_experts`` and ``top_k`` (ints);
2. ``expert_capacity(num_tokens) -> int``, slots per expert for a batch of that many tokens;
3. ``router_scores() -> Tensor | None``, the router logits of the last forward, ``(T, E)``;
4. ``set_router_hook(hook)``; in ``forward``, right after computing the router logits
   ``(T, E)``, call ``decision = hook(logits, hidden)`` when a hook is set (``hidden`` are the
   router's inputs ``(T, D)`` or ``None``). If ``decision.assignment`` (int ``(T, k)``) is not
   ``None``, dispatch token ``t`` to experts ``assignment[t]`` instead of your own top-k (keep
   your gating weights); if ``decision.aux_loss`` is not ``None``, add it to the loss your
   ``training_step`` optimizes (``distill`` mode relies on it).

Two more members are optional; the callback uses them where they exist:

5. ``last_stats``, a :class:`~qopt.problems.routing.RoutingStats` of what the last forward
   dispatched (after capacity): the callback's ``routing/max_violation``, ``routing/dropped``
   and ``routing/dead_experts`` then describe your layer; without it they are not logged;
6. ``active_experts``, a bool tensor ``(E,)``, False for experts that must take no token
   (e.g. masked by structured pruning): the callback then routes over the active experts
   only.

Examples:
    >>> import torch
    >>> from qopt.moe import MoE, Routable
    >>> _ = torch.manual_seed(0)
    >>> layer = MoE(16, 4, top_k=2, routing="sinkhorn")
    >>> y = layer(torch.randn(2, 8, 16))
    >>> y.shape, isinstance(layer, Routable), layer.last_stats.dropped
    (torch.Size([2, 8, 16]), True, 0)
"""

from __future__ import annotations

from qopt.moe.data import MarkovMixture
from qopt.moe.language_model import MoELanguageModel
from qopt.moe.layer import MASKED_EXPERT_LOGIT, MoE, RoutingMethod, bias_step
from qopt.moe.routable import Routable, RouterHook, RoutingDecision, distillation_loss

__all__ = [
    "MASKED_EXPERT_LOGIT",
    "MarkovMixture",
    "MoE",
    "MoELanguageModel",
    "Routable",
    "RouterHook",
    "RoutingDecision",
    "RoutingMethod",
    "bias_step",
    "distillation_loss",
]
