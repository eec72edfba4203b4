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

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.routing import RoutingStats, exact_assignment, expert_capacity, routing_stats

__all__ = [
    "MarkovMixture",
    "MoE",
    "MoELanguageModel",
    "Routable",
    "RouterHook",
    "RoutingDecision",
    "demo",
    "distillation_loss",
    "print_demo",
]

RoutingMethod = Literal["topk", "sinkhorn", "assignment", "bias", "external"]
_METHODS = ("topk", "sinkhorn", "assignment", "bias", "external")


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


def _topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(scores, k, dim=-1).indices


def _sinkhorn(scores: torch.Tensor, k: int, num_iterations: int) -> torch.Tensor:
    """Log-space Sinkhorn: rows sum to k, columns to the balanced load T k / E (S-BASE)."""
    num_tokens, num_experts = scores.shape
    log_rows = math.log(k)
    log_columns = math.log(num_tokens * k / num_experts)
    log_plan = scores.float()
    for _ in range(num_iterations):
        log_plan = log_plan - (torch.logsumexp(log_plan, dim=1, keepdim=True) - log_rows)
        log_plan = log_plan - (torch.logsumexp(log_plan, dim=0, keepdim=True) - log_columns)
    return log_plan


def _apply_capacity(assignment: torch.Tensor, capacity: int, num_experts: int) -> torch.Tensor:
    """Set to -1 the slots over capacity; first choices before second ones (GShard)."""
    order = assignment.t().reshape(-1)  # choice-major, then token order
    valid = order >= 0
    one_hot = F.one_hot(order.clamp(min=0), num_experts) * valid[:, None]
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1)
    keep = valid & (position <= capacity)
    kept = torch.where(keep, order, torch.full_like(order, -1))
    return kept.reshape(assignment.shape[1], assignment.shape[0]).t()


class MoE(nn.Module):
    """Mixture of feed-forward experts with pluggable, capacity-limited top-k routing.

    Tokens are all leading positions of the input (``(..., d_model)`` is flattened to
    ``(T, d_model)``). Each expert holds ``expert_capacity(T) = ceil(capacity_factor * T * k /
    E)`` slots; a token's slot past that is dropped (contributes zero, as in Switch: the
    surrounding residual connection carries the token on); at evaluation nothing is dropped,
    so a token's output never depends on later tokens. Gates are the router softmax
    probabilities of the chosen experts, renormalized over the ``k`` choices when ``k > 1``.

    After every forward, :attr:`aux_loss` holds the auxiliary loss to add to the training loss
    (Switch loss in ``"topk"`` routing, plus whatever a router hook adds) and
    :attr:`last_stats` the load balance of the batch (:class:`~qopt.problems.routing.RoutingStats`).

    Args:
        d_model: Token width.
        num_experts: Number of experts ``E``.
        d_hidden: Hidden width of each expert (default ``4 * d_model``).
        top_k: Experts per token ``k``.
        capacity_factor: Expert capacity relative to the balanced load ``T k / E``.
        routing: ``"topk"``, ``"sinkhorn"``, ``"assignment"``, ``"bias"`` or ``"external"``.
        aux_loss_weight: Weight of the Switch load-balancing loss (``"topk"`` only); 0 turns
            balancing off.
        bias_update_rate: Step of the per-expert bias update (``"bias"`` routing).
        sinkhorn_iterations: Sinkhorn iterations (``"sinkhorn"`` routing).

    Examples:
        >>> import torch
        >>> from qopt.moe import MoE
        >>> layer = MoE(8, 4, routing="assignment", capacity_factor=1.0)
        >>> _ = layer(torch.randn(32, 8))
        >>> layer.last_stats.load, layer.last_stats.dropped
        ((8, 8, 8, 8), 0)
    """

    def __init__(
        self,
        d_model: int,
        num_experts: int,
        *,
        d_hidden: int | None = None,
        top_k: int = 1,
        capacity_factor: float = 1.25,
        routing: RoutingMethod = "topk",
        aux_loss_weight: float = 0.01,
        bias_update_rate: float = 1e-3,
        sinkhorn_iterations: int = 20,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.d_model = check_int(d_model, "d_model", owner, low=1)
        self.num_experts = check_int(num_experts, "num_experts", owner, low=1)
        self.d_hidden = check_int(
            4 * self.d_model if d_hidden is None else d_hidden, "d_hidden", owner, low=1
        )
        self.top_k = check_int(top_k, "top_k", owner, low=1, high=self.num_experts)
        self.capacity_factor = check_float(
            capacity_factor, "capacity_factor", owner, low=0.0, low_inclusive=False
        )
        if routing not in _METHODS:
            raise SolverConfigurationError(
                f"The 'routing' parameter of {owner} must be one of {', '.join(_METHODS)}. "
                f"Got {routing!r} instead."
            )
        self.routing: RoutingMethod = routing
        self.aux_loss_weight = check_float(aux_loss_weight, "aux_loss_weight", owner, low=0.0)
        self.bias_update_rate = check_float(bias_update_rate, "bias_update_rate", owner, low=0.0)
        self.sinkhorn_iterations = check_int(
            sinkhorn_iterations, "sinkhorn_iterations", owner, low=1
        )

        self.router = nn.Linear(self.d_model, self.num_experts, bias=False)
        scale_in, scale_out = 1 / math.sqrt(self.d_model), 1 / math.sqrt(self.d_hidden)
        self.w_in = nn.Parameter(torch.empty(self.num_experts, self.d_model, self.d_hidden))
        self.b_in = nn.Parameter(torch.zeros(self.num_experts, self.d_hidden))
        self.w_out = nn.Parameter(torch.empty(self.num_experts, self.d_hidden, self.d_model))
        self.b_out = nn.Parameter(torch.zeros(self.num_experts, self.d_model))
        nn.init.uniform_(self.w_in, -scale_in, scale_in)
        nn.init.uniform_(self.w_out, -scale_out, scale_out)
        #: Per-expert selection biases of ``"bias"`` routing (never used for the gates).
        self.register_buffer("expert_bias", torch.zeros(self.num_experts))
        self.expert_bias: torch.Tensor

        #: Auxiliary loss of the last forward: add it to the training loss.
        self.aux_loss: torch.Tensor = torch.zeros(())
        #: Load balance of the last forward.
        self.last_stats: RoutingStats | None = None
        #: Seconds the last forward spent choosing experts (routing only, not the experts).
        self.last_routing_s: float = 0.0
        self._scores: torch.Tensor | None = None
        self._hook: RouterHook | None = None
        self._pending: torch.Tensor | None = None

    # ------------------------------------------------------------------ Routable protocol

    def expert_capacity(self, num_tokens: int) -> int:
        """Slots per expert for ``num_tokens`` tokens (see the class docstring)."""
        return expert_capacity(num_tokens, self.num_experts, self.top_k, self.capacity_factor)

    def router_scores(self) -> torch.Tensor | None:
        """Router logits ``(T, E)`` of the last forward, detached; ``None`` before any."""
        return self._scores

    def set_router_hook(self, hook: RouterHook | None) -> None:
        """Install (or remove, with ``None``) a hook that may override the routing."""
        self._hook = hook

    def set_assignment(self, assignment: torch.Tensor | np.ndarray | Sequence[Any]) -> None:
        """Supply the assignment ``(T, k)`` for the next forward (``"external"`` routing).

        It is checked against the batch in that forward and used once.
        """
        self._pending = torch.as_tensor(np.asarray(assignment))

    # ------------------------------------------------------------------ routing

    def _check_assignment(self, assignment: torch.Tensor, num_tokens: int) -> torch.Tensor:
        shape = (num_tokens, self.top_k)
        if tuple(assignment.shape) != shape:
            raise InvalidProblemError(
                f"{type(self).__name__} was given an assignment of shape "
                f"{tuple(assignment.shape)}; this batch needs shape {shape} (tokens, top_k)."
            )
        if assignment.dtype.is_floating_point or assignment.dtype == torch.bool:
            raise InvalidProblemError(
                f"An assignment holds expert indices and must be an integer tensor. "
                f"Got dtype {assignment.dtype} instead."
            )
        assignment = assignment.long()
        if ((assignment < -1) | (assignment >= self.num_experts)).any():
            raise InvalidProblemError(
                f"Assignment entries must be expert indices in [0, {self.num_experts - 1}] "
                "(or -1 for a dropped slot)."
            )
        if self.top_k > 1:
            ordered = assignment.sort(dim=1).values
            if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
                raise InvalidProblemError("An assignment gave some token the same expert twice.")
        return assignment

    def _route(self, logits: torch.Tensor, capacity: int) -> torch.Tensor:
        scores = logits.detach()
        if self.routing == "bias":
            return _topk(scores + self.expert_bias, self.top_k)
        if not self.training or self.routing == "topk":
            return _topk(scores, self.top_k)
        if self.routing == "sinkhorn":
            return _topk(_sinkhorn(scores, self.top_k, self.sinkhorn_iterations), self.top_k)
        if self.routing == "assignment":
            chosen = exact_assignment(scores.cpu().double().numpy(), self.top_k, capacity)
            return torch.as_tensor(chosen, device=scores.device)
        pending, self._pending = self._pending, None
        if pending is None:
            raise InvalidProblemError(
                "MoE(routing='external') needs set_assignment(...) before each training "
                "forward (or a router hook that returns an assignment)."
            )
        return self._check_assignment(pending.to(scores.device), scores.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Route each token to its experts and sum their gated outputs; same shape as ``x``."""
        if x.shape[-1] != self.d_model:
            raise InvalidProblemError(
                f"MoE expects inputs whose last dimension is d_model={self.d_model}. "
                f"Got shape {tuple(x.shape)} instead."
            )
        flat = x.reshape(-1, self.d_model)
        num_tokens = flat.shape[0]
        logits = self.router(flat)
        self._scores = logits.detach()
        capacity = self.expert_capacity(num_tokens)

        started = time.perf_counter()
        decision = self._hook(logits, flat.detach()) if self._hook is not None else None
        if decision is not None and decision.assignment is not None:
            assignment = self._check_assignment(decision.assignment.to(logits.device), num_tokens)
        else:
            assignment = self._route(logits, capacity)
        requested = assignment
        if self.training:
            assignment = _apply_capacity(assignment, capacity, self.num_experts)
        else:
            # Dropping by position at evaluation would let later tokens evict earlier ones:
            # inference would no longer be causal.
            capacity = num_tokens
        self.last_routing_s = time.perf_counter() - started

        probs = torch.softmax(logits.float(), dim=-1)
        kept = assignment >= 0
        gates = probs.gather(1, assignment.clamp(min=0))
        if self.top_k > 1:
            gates = gates / gates.sum(dim=1, keepdim=True).clamp(min=1e-9)
        gates = gates * kept

        out = torch.zeros_like(flat)
        for e in range(self.num_experts):
            tokens, slots = torch.nonzero(assignment == e, as_tuple=True)
            if tokens.numel() == 0:
                continue
            hidden = F.gelu(flat[tokens] @ self.w_in[e] + self.b_in[e])
            y = hidden @ self.w_out[e] + self.b_out[e]
            out.index_add_(0, tokens, y * gates[tokens, slots, None].to(y.dtype))

        aux = logits.new_zeros(())
        if self.routing == "topk" and self.aux_loss_weight > 0 and self.training:
            # Switch loss: E * sum_e f_e * P_e, f_e the share of choices, P_e the mean prob.
            choices = _topk(logits.detach(), self.top_k).reshape(-1)
            share = torch.bincount(choices, minlength=self.num_experts).float() / choices.numel()
            aux = aux + self.aux_loss_weight * self.num_experts * (share * probs.mean(0)).sum()
        if decision is not None and decision.aux_loss is not None:
            aux = aux + decision.aux_loss
        self.aux_loss = aux

        # Balance of what the router asked for (before capacity), drops of what was kept.
        capacity_arr = np.full(self.num_experts, capacity)
        asked = routing_stats(requested.cpu().numpy(), self.num_experts, capacity_arr)
        kept_stats = routing_stats(assignment.cpu().numpy(), self.num_experts, capacity_arr)
        self.last_stats = dataclasses.replace(
            asked, dropped=kept_stats.dropped, dropped_tokens=kept_stats.dropped_tokens
        )
        if self.routing == "bias" and self.training and self.bias_update_rate > 0:
            with torch.no_grad():
                load = torch.tensor(self.last_stats.load, dtype=torch.float32)
                error = load.mean() - load  # under-loaded experts get a higher bias
                self.expert_bias += self.bias_update_rate * torch.sign(error).to(
                    self.expert_bias.device
                )
        return out.reshape(x.shape)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_experts={self.num_experts}, top_k={self.top_k}, "
            f"capacity_factor={self.capacity_factor}, routing={self.routing!r}"
        )

    # ------------------------------------------------------------------ pruning

    def keep_experts(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Keep only the experts ``indices`` (in that order) and remove the others, in place.

        The removed experts' weights, router rows and selection biases go and
        :attr:`num_experts` becomes ``len(indices)``; the kept experts compute exactly what
        they did. Parameters are replaced by smaller ones, so build the optimizer afterwards.
        Structured pruning calls this
        (:class:`~qopt.integrations.lightning.QuboPruningCallback`).

        Raises:
            InvalidProblemError: Fewer than ``top_k`` indices, a repeated index, or one out of
                range.

        Examples:
            >>> import torch
            >>> from qopt.moe import MoE
            >>> layer = MoE(8, 4, top_k=2)
            >>> layer.keep_experts([0, 2])
            >>> layer.num_experts, tuple(layer.router.weight.shape), layer(torch.randn(5, 8)).shape
            (2, (2, 8), torch.Size([5, 8]))
        """
        owner = type(self).__name__
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        if index.numel() < self.top_k:
            raise InvalidProblemError(
                f"{owner}.keep_experts must keep at least top_k={self.top_k} experts. "
                f"Got {index.numel()} instead."
            )
        if ((index < 0) | (index >= self.num_experts)).any() or index.unique().numel() != len(
            index
        ):
            raise InvalidProblemError(
                f"{owner}.keep_experts needs distinct expert indices in [0, "
                f"{self.num_experts - 1}]. Got {index.tolist()} instead."
            )
        with torch.no_grad():
            for name in ("w_in", "b_in", "w_out", "b_out"):
                old = getattr(self, name)
                kept = old.detach()[index.to(old.device)].clone()
                setattr(self, name, nn.Parameter(kept, requires_grad=old.requires_grad))
            router = self.router
            rows = index.to(router.weight.device)
            router.weight = nn.Parameter(router.weight.detach()[rows].clone())
            if router.bias is not None:
                router.bias = nn.Parameter(router.bias.detach()[rows].clone())
            router.out_features = int(index.numel())
            self.expert_bias = self.expert_bias[index.to(self.expert_bias.device)].clone()
        self.num_experts = int(index.numel())
        self._scores = None
        self._pending = None


# ---------------------------------------------------------------------------- reference model


class MarkovMixture:
    """Sequences from a mixture of first-order Markov sources (a benchmark with known labels).

    Each source has its own sparse transition matrix over ``vocab_size`` symbols (rows drawn
    from a Dirichlet with a small concentration, so sources are easy to tell apart from a few
    transitions). Each sequence comes from one source, so how well experts specialize by source
    can be measured (normalized mutual information between expert and source).

    Args:
        num_sources: Number of Markov sources.
        vocab_size: Symbols.
        concentration: Dirichlet concentration of each transition row; smaller is sparser.
        seed: Seed of the sources (not of the sampled sequences).

    Examples:
        >>> from qopt.moe import MarkovMixture
        >>> tokens, sources = MarkovMixture(num_sources=4, vocab_size=16).sample(3, 10, seed=0)
        >>> tokens.shape, sources.tolist()
        (torch.Size([3, 10]), [3, 2, 2])
    """

    def __init__(
        self,
        *,
        num_sources: int = 8,
        vocab_size: int = 64,
        concentration: float = 0.05,
        seed: int = 0,
    ) -> None:
        owner = type(self).__name__
        self.num_sources = check_int(num_sources, "num_sources", owner, low=1)
        self.vocab_size = check_int(vocab_size, "vocab_size", owner, low=2)
        self.concentration = check_float(
            concentration, "concentration", owner, low=0.0, low_inclusive=False
        )
        rng = np.random.default_rng(seed)
        self.transitions = rng.dirichlet(
            np.full(self.vocab_size, self.concentration),
            size=(self.num_sources, self.vocab_size),
        )

    def sample(
        self, num_sequences: int, length: int, *, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num_sequences`` sequences of ``length`` symbols and the source of each."""
        rng = np.random.default_rng(seed)
        sources = rng.integers(self.num_sources, size=num_sequences)
        tokens = np.empty((num_sequences, length), dtype=np.int64)
        tokens[:, 0] = rng.integers(self.vocab_size, size=num_sequences)
        cumulative = self.transitions.cumsum(axis=2)
        for i in range(1, length):
            rows = cumulative[sources, tokens[:, i - 1]]
            draws = rng.random(num_sequences)[:, None]
            tokens[:, i] = np.minimum((rows < draws).sum(axis=1), self.vocab_size - 1)
        return torch.from_numpy(tokens), torch.from_numpy(sources)


class _Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = ffn

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        out: torch.Tensor = x + self.ffn(self.norm2(x))
        return out


class MoELanguageModel(nn.Module):
    """A small pre-norm causal transformer whose feed-forward layers are :class:`MoE` layers.

    Args:
        vocab_size: Symbols.
        d_model: Width.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        num_experts: Experts per MoE layer.
        max_length: Longest sequence (learned positions).
        dense: Use a dense feed-forward layer (the dense baseline) instead of MoE.
        **moe_options: Passed to every :class:`MoE` (``top_k``, ``capacity_factor``,
            ``routing``, ...).

    Examples:
        >>> import torch
        >>> from qopt.moe import MoELanguageModel
        >>> model = MoELanguageModel(16, d_model=8, num_layers=1, num_heads=2, num_experts=2)
        >>> model(torch.zeros(2, 5, dtype=torch.long)).shape, len(model.moe_layers())
        (torch.Size([2, 5, 16]), 1)
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        num_experts: int = 8,
        max_length: int = 512,
        dense: bool = False,
        **moe_options: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.vocab_size = check_int(vocab_size, "vocab_size", owner, low=1)
        d_model = check_int(d_model, "d_model", owner, low=1)
        self.max_length = check_int(max_length, "max_length", owner, low=1)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(self.max_length, d_model)
        blocks = []
        for _ in range(check_int(num_layers, "num_layers", owner, low=1)):
            ffn: nn.Module
            if dense:
                hidden = moe_options.get("d_hidden", 4 * d_model)
                ffn = nn.Sequential(
                    nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model)
                )
            else:
                ffn = MoE(d_model, num_experts, **moe_options)
            blocks.append(_Block(d_model, num_heads, ffn))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def moe_layers(self) -> list[MoE]:
        """The MoE layers, first block first (empty for the dense model)."""
        return [m for m in self.modules() if isinstance(m, MoE)]

    @property
    def aux_loss(self) -> torch.Tensor:
        """Sum of the MoE layers' auxiliary losses from the last forward."""
        total = self.head.weight.new_zeros(())
        for layer in self.moe_layers():
            total = total + layer.aux_loss
        return total

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-symbol logits ``(B, L, vocab_size)`` for symbols ``(B, L)``."""
        length = tokens.shape[1]
        if length > self.max_length:
            raise InvalidProblemError(
                f"Sequences of {length} symbols exceed max_length={self.max_length}."
            )
        positions = torch.arange(length, device=tokens.device)
        x = self.embed(tokens) + self.position(positions)[None]
        mask = torch.triu(
            torch.full((length, length), float("-inf"), device=tokens.device), diagonal=1
        )
        for block in self.blocks:
            x = block(x, mask)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits


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


# ---------------------------------------------------------------------------- demo


def _lightning_model(model: MoELanguageModel, lr: float) -> Any:
    """Wrap a language model in a LightningModule (Lightning imported only here)."""
    from qopt._optional import import_optional

    pl = import_optional("lightning.pytorch", "lightning", "qopt.moe.demo")

    class LanguageModule(pl.LightningModule):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = model
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
            return torch.optim.AdamW(self.parameters(), lr=lr)

    return LanguageModule()


def _validation_loss(model: MoELanguageModel, tokens: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    model.train()
    return float(loss)


def demo(
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
    objective, Sinkhorn warm start) on ``solver``. Needs ``qopt[lightning]``.

    Returns:
        Per arm: ``val_loss`` (greedy routing, held-out sequences), ``train_loss`` (mean of
        the last five steps), ``max_violation`` and ``dropped_fraction`` (means over training
        steps) and ``seconds`` (wall clock of the whole run).

    Examples:
        >>> from qopt.moe import demo
        >>> results = demo(steps=2, batch_size=2, length=9)
        >>> sorted(results), results["qubo"]["dropped_fraction"]
        (['qubo', 'sinkhorn'], 0.0)
    """
    from qopt._optional import import_optional

    pl = import_optional("lightning.pytorch", "lightning", "qopt.moe.demo")
    from qopt.integrations.lightning import QuboRoutingCallback

    owner = "demo"
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
        # A light schedule: routing runs every step, and 32-token groups anneal quickly.
        sample_params = {"num_reads": 4, "num_sweeps": 200} if solver == "sa" else {}
        if arm == "qubo":
            callbacks.append(
                QuboRoutingCallback(
                    solver=solver,
                    solver_options={"seed": seed} if solver in ("sa", "tabu", "steepest") else {},
                    group_size=32,
                    compare_exact=False,
                    sample_params=sample_params,
                )
            )
        module = _lightning_model(model, lr=3e-3)
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


def print_demo(out: TextIO, *, quick: bool = False, seed: int = 0) -> None:
    """Run :func:`demo` and print its comparison as a table (the ``qopt demo`` section)."""
    steps = 10 if quick else 40
    results = demo(steps=steps, seed=seed)
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
