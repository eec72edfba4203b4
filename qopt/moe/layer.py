"""The reference mixture-of-experts layer: top-k gating, capacity, five routing methods."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.moe.routable import RouterHook
from qopt.problems.routing import RoutingStats, exact_assignment, expert_capacity, routing_stats

__all__ = [
    "MASKED_EXPERT_LOGIT",
    "MoE",
    "RoutingMethod",
    "bias_step",
]


RoutingMethod = Literal["topk", "sinkhorn", "assignment", "bias", "external"]
_METHODS = ("topk", "sinkhorn", "assignment", "bias", "external")

#: Router logit of a masked expert (:meth:`MoE.mask_experts`): no top-k choice picks it and
#: its softmax probability is exactly 0 in float32 (finite, so log-space Sinkhorn stays finite).
MASKED_EXPERT_LOGIT = -1.0e4


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


def bias_step(load: torch.Tensor, target: torch.Tensor, rate: float) -> torch.Tensor:
    """The auxiliary-loss-free bias update: ``rate`` toward ``target`` for every expert.

    An expert loaded below its target gets ``+rate``, one above it ``-rate``, one on it 0
    (Wang et al., "Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts",
    2024). ``MoE(routing="bias")`` targets the mean load; a routing optimizer can target its
    solved load.

    Examples:
        >>> import torch
        >>> from qopt.moe import bias_step
        >>> bias_step(torch.tensor([6.0, 2.0, 4.0]), torch.tensor(4.0), 0.1).tolist()
        [-0.10000000149011612, 0.10000000149011612, 0.0]
    """
    return rate * torch.sign(target - load)


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

    Experts can be masked without being removed (:meth:`mask_experts`, what structured
    pruning does while it fine-tunes) or removed (:meth:`keep_experts`). A masked expert
    takes no token in any routing method: its router logit is
    :data:`MASKED_EXPERT_LOGIT`, Sinkhorn and the exact assignment balance over the active
    experts only, the capacity is shared among them, and ``"bias"`` routing balances them
    toward their own mean load.

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
        self._active: torch.Tensor | None = None  # None: every expert takes tokens

    # ------------------------------------------------------------------ Routable protocol

    def expert_capacity(self, num_tokens: int) -> int:
        """Slots per active expert for ``num_tokens`` tokens (see the class docstring)."""
        return expert_capacity(num_tokens, self._num_active(), self.top_k, self.capacity_factor)

    @property
    def active_experts(self) -> torch.Tensor:
        """Which experts take tokens: bool ``(num_experts,)``, False where masked."""
        if self._active is None:
            return torch.ones(self.num_experts, dtype=torch.bool)
        return self._active.clone()

    def _num_active(self) -> int:
        return self.num_experts if self._active is None else int(self._active.sum())

    def _active_columns(self, device: torch.device) -> torch.Tensor | None:
        """Indices of the active experts, or ``None`` when none is masked."""
        if self._active is None:
            return None
        return torch.nonzero(self._active, as_tuple=True)[0].to(device)

    def router_scores(self) -> torch.Tensor | None:
        """Router logits ``(T, E)`` of the last forward, detached; ``None`` before any."""
        return self._scores

    def set_router_hook(self, hook: RouterHook | None) -> None:
        """Install (or remove, with ``None``) a hook that may override the routing."""
        self._hook = hook

    def mask_experts(self, keep: torch.Tensor | np.ndarray | Sequence[bool] | None) -> None:
        """Mask experts without removing them: those whose ``keep`` entry is False take no token.

        Until called again, every forward routes over the kept experts only (see the class
        docstring); ``None`` makes every expert active again. The weights stay, so the
        mask can change between steps; :meth:`keep_experts` removes experts for real.

        Raises:
            InvalidProblemError: ``keep`` is not one flag per expert, or keeps fewer than
                ``top_k`` experts.

        Examples:
            >>> import torch
            >>> from qopt.moe import MoE
            >>> layer = MoE(8, 4, capacity_factor=1.0)
            >>> layer.mask_experts([True, False, True, False])
            >>> _ = layer(torch.randn(16, 8))
            >>> layer.last_stats.load[1], layer.last_stats.load[3], layer.expert_capacity(16)
            (0, 0, 8)
        """
        if keep is None:
            self._active = None
            return
        owner = type(self).__name__
        if isinstance(keep, torch.Tensor):
            keep = keep.detach().cpu().numpy()
        flags = np.asarray(keep)
        if flags.shape != (self.num_experts,) or not (
            flags.dtype == bool or np.isin(flags, (0, 1)).all()
        ):
            raise InvalidProblemError(
                f"{owner}.mask_experts needs one bool per expert, shape ({self.num_experts},). "
                f"Got {keep!r} instead."
            )
        active = torch.as_tensor(flags.astype(bool))
        if int(active.sum()) < self.top_k:
            raise InvalidProblemError(
                f"{owner}.mask_experts must keep at least top_k={self.top_k} experts. "
                f"Got {int(active.sum())} instead."
            )
        self._active = None if bool(active.all()) else active

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
        if self._active is not None:
            chosen = assignment[assignment >= 0]
            masked = chosen[~self._active.to(chosen.device)[chosen]]
            if masked.numel():
                raise InvalidProblemError(
                    f"An assignment sent tokens to masked expert(s) "
                    f"{sorted(set(masked.tolist()))}; route over the active experts "
                    f"(MoE.active_experts) only."
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
        if self.routing in ("sinkhorn", "assignment"):
            # Batch-wide balancing over the active experts only: a masked column would
            # otherwise be handed its share of the batch.
            columns = self._active_columns(scores.device)
            active = scores if columns is None else scores[:, columns]
            if self.routing == "sinkhorn":
                plan = _sinkhorn(active, self.top_k, self.sinkhorn_iterations)
                chosen = _topk(plan, self.top_k)
            else:
                exact = exact_assignment(active.cpu().double().numpy(), self.top_k, capacity)
                chosen = torch.as_tensor(exact, device=scores.device)
            return chosen if columns is None else columns[chosen]
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
        if self._active is not None:
            logits = logits.masked_fill(~self._active.to(logits.device), MASKED_EXPERT_LOGIT)
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
            aux = aux + self.aux_loss_weight * self._num_active() * (share * probs.mean(0)).sum()
        if decision is not None and decision.aux_loss is not None:
            aux = aux + decision.aux_loss
        self.aux_loss = aux

        self.last_stats = self._stats(requested, assignment, capacity)
        if self.routing == "bias" and self.training and self.bias_update_rate > 0:
            with torch.no_grad():
                load = torch.tensor(self.last_stats.load, dtype=torch.float32)
                if self._active is None:
                    step = bias_step(load, load.mean(), self.bias_update_rate)
                else:  # the active experts toward their own mean; masked biases stay
                    active = self._active.to(load.device)
                    step = bias_step(load, load[active].mean(), self.bias_update_rate) * active
                self.expert_bias += step.to(self.expert_bias.device)
        return out.reshape(x.shape)

    def _stats(
        self, requested: torch.Tensor, assignment: torch.Tensor, capacity: int
    ) -> RoutingStats:
        """Balance of what the router asked for (before capacity), drops of what was kept.

        Over the active experts: a masked expert is neither dead nor part of the balanced
        load, and shows a load of 0.
        """
        asked_np, kept_np = requested.cpu().numpy(), assignment.cpu().numpy()
        num_active = self._num_active()
        if self._active is not None:  # expert index -> position among the active experts
            position = np.cumsum(self._active.numpy()) - 1
            asked_np, kept_np = (np.where(a >= 0, position[a], -1) for a in (asked_np, kept_np))
        capacity_arr = np.full(num_active, capacity)
        asked = routing_stats(asked_np, num_active, capacity_arr)
        kept_stats = routing_stats(kept_np, num_active, capacity_arr)
        load = asked.load
        if self._active is not None:
            full = np.zeros(self.num_experts, dtype=np.int64)
            full[self._active.numpy()] = load
            load = tuple(int(v) for v in full)
        return dataclasses.replace(
            asked, load=load, dropped=kept_stats.dropped, dropped_tokens=kept_stats.dropped_tokens
        )

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_experts={self.num_experts}, top_k={self.top_k}, "
            f"capacity_factor={self.capacity_factor}, routing={self.routing!r}"
        )

    # ------------------------------------------------------------------ pruning

    def keep_experts(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Keep only the experts ``indices`` (in that order) and remove the others, in place.

        The removed experts' weights, router rows, selection biases and masks go and
        :attr:`num_experts` becomes ``len(indices)``; the kept experts compute exactly what
        they did. A routing callback notices the new expert count at its next forward. Parameters are replaced by smaller ones, so build the optimizer afterwards.
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
        if self._active is not None:
            active = self._active[index]
            self._active = None if bool(active.all()) else active
        self.num_experts = int(index.numel())
        self._scores = None
        self._pending = None
