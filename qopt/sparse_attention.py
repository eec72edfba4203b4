"""A reference block-sparse causal attention layer, and the protocol a selection callback drives.

:class:`BlockSparseAttention` is multi-head causal self-attention in which each query block of
``block_size`` tokens attends only the key blocks its **selection** names (a boolean
``(H, N, N)`` or ``(B, H, N, N)`` array, see :mod:`qopt.problems.attention`). The selection is
pluggable:

- a fixed tensor, set with :meth:`BlockSparseAttention.set_selection` (what
  :class:`~qopt.integrations.lightning.QuboAttentionCallback` installs);
- a callable ``selector(queries, keys) -> selection`` called at every forward on the layer's
  queries and keys ``(B, H, T, d)``, such as :class:`TopKSelector` (each sequence's own top-k
  of pooled scores, MoBA-style);
- both: each sequence attends the union, its selector's blocks and the fixed ones (how the
  callback adds the budget a per-sequence top-k cannot spend);
- neither: dense causal attention. ``forward(x, dense=True)`` takes the dense path whatever is
  set, for comparison.

The sparse path gathers the selected key and value blocks of each query block
(:func:`block_sparse_attention`): its memory grows with ``T x (selected blocks x block_size)``,
never with ``T x T``, and no dense mask is built.

Driving a layer that is not ours
--------------------------------
The callback drives any module that satisfies :class:`BlockSelectable`: ``num_heads`` and
``block_size`` (ints), ``pooled_statistics()`` returning the block-pooled queries and keys
``(B, H, N, d)`` of the last training forward (or ``None``), and ``set_selection(selection)``.
A module whose own selector picks blocks per sequence may also have ``covered_blocks()``,
returning that selector's boolean ``(B, H, N, N)`` choice of the last training forward: the
callback then places only the rest of the budget, on the attention mass those blocks leave.

Examples:
    >>> import torch
    >>> from qopt.sparse_attention import BlockSparseAttention, BlockSelectable
    >>> _ = torch.manual_seed(0)
    >>> layer = BlockSparseAttention(16, num_heads=2, block_size=4)
    >>> x = torch.randn(3, 16, 16)
    >>> everything = torch.ones(2, 4, 4, dtype=torch.bool).tril()
    >>> layer.set_selection(everything)
    >>> bool(torch.allclose(layer(x), layer(x, dense=True), atol=1e-6))
    True
    >>> isinstance(layer, BlockSelectable)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = [
    "BlockSelectable",
    "BlockSparseAttention",
    "Selector",
    "TopKSelector",
    "block_sparse_attention",
    "block_statistics",
    "dense_causal_attention",
]

#: ``selector(queries, keys) -> selection``: queries and keys ``(B, H, T, d)``, detached.
Selector = Callable[[torch.Tensor, torch.Tensor], Any]


@runtime_checkable
class BlockSelectable(Protocol):
    """A block-sparse attention module whose block selection an outside optimizer can set.

    Examples:
        >>> from qopt.sparse_attention import BlockSparseAttention, BlockSelectable
        >>> isinstance(BlockSparseAttention(8, 2, 4), BlockSelectable)
        True
    """

    num_heads: int
    block_size: int

    def pooled_statistics(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Block-pooled queries and keys ``(B, H, N, d)`` of the last training forward."""
        ...

    def set_selection(self, selection: Any) -> None:
        """Attend by this boolean ``(H, N, N)`` or ``(B, H, N, N)`` selection (``None``: dense)."""
        ...


def dense_causal_attention(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Causal softmax attention over ``(..., T, d)`` tensors (the reference path)."""
    return F.scaled_dot_product_attention(queries, keys, values, is_causal=True)


def block_statistics(
    pooled_queries: torch.Tensor,
    pooled_keys: torch.Tensor,
    covered: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block scores and key redundancy of block-pooled queries and keys, averaged over sequences.

    The torch counterpart of :func:`qopt.problems.attention.block_scores` and
    :func:`~qopt.problems.attention.block_redundancy` on pooled inputs (blocks of one), computed
    where the tensors live (float32, no copy to the host): what a selection callback gathers
    after every training step, at a fraction of the numpy route's cost.

    Args:
        pooled_queries: ``(B, H, N, d)``, finite.
        pooled_keys: ``(B, H, N, d)``, finite.
        covered: Boolean ``(B, H, N, N)`` or None: blocks each sequence attends already (its
            own selector's choice); their mass counts 0, so the scores are the mass those
            blocks leave (the residual).

    Returns:
        ``(scores, redundancy)``, each ``(H, N, N)``: the pooled attention mass of each causal
        key block per query block (outside ``covered``), and the cosine similarity of centred
        pooled keys clipped to [0, 1] with a unit diagonal, both means over the ``B``
        sequences.

    Raises:
        InvalidProblemError: Queries and keys not of one ``(B, H, N, d)`` shape, or
            ``covered`` not ``(B, H, N, N)``.

    Examples:
        >>> import numpy as np, torch
        >>> from qopt.problems.attention import block_redundancy, block_scores
        >>> q, k = torch.randn(2, 3, 2, 8, 4)  # pooled: 3 sequences, 2 heads, 8 blocks, d=4
        >>> scores, redundancy = block_statistics(q, k)
        >>> bool(np.allclose(scores, block_scores(q.numpy(), k.numpy(), 1).mean(0), atol=1e-6))
        True
        >>> bool(np.allclose(redundancy, block_redundancy(k.numpy(), 1).mean(0), atol=1e-6))
        True
    """
    if pooled_queries.dim() != 4 or pooled_queries.shape != pooled_keys.shape:
        raise InvalidProblemError(
            "block_statistics needs block-pooled queries and keys of one shape (B, H, N, d). Got "
            f"{tuple(pooled_queries.shape)} and {tuple(pooled_keys.shape)}; pool them with "
            "BlockSparseAttention.pooled_statistics() or a mean over each block's tokens."
        )
    batch, heads, blocks, _ = pooled_queries.shape
    if covered is not None and tuple(covered.shape) != (batch, heads, blocks, blocks):
        raise InvalidProblemError(
            f"The 'covered' blocks of block_statistics must have shape ({batch}, {heads}, "
            f"{blocks}, {blocks}), one boolean per sequence, head and block pair. Got "
            f"{tuple(covered.shape)} instead."
        )
    with torch.no_grad():
        queries, keys = pooled_queries.float(), pooled_keys.float()
        logits = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])
        causal = torch.ones(blocks, blocks, dtype=torch.bool, device=logits.device).tril()
        scores = torch.softmax(logits.masked_fill(~causal, float("-inf")), dim=-1)
        if covered is not None:
            scores = scores.masked_fill(covered.to(scores.device), 0.0)
        centred = keys - keys.mean(dim=-2, keepdim=True)
        unit = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        redundancy = (unit @ unit.transpose(-1, -2)).clamp(0.0, 1.0)
        redundancy.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        return scores.mean(dim=0), redundancy.mean(dim=0)


class TopKSelector:
    """Per-sequence top-k selection (MoBA), vectorized in torch: a ``selector`` for the layer.

    Each query block keeps its own block and the ``k - 1`` earlier key blocks whose mean key
    scores highest against its mean query (the ranking of
    :func:`qopt.problems.attention.topk_selection`, for every sequence and head at once).
    Query blocks with fewer than ``k`` causal blocks keep all of them.

    Args:
        k: Key blocks per query block, own block included, >= 1.
        block_size: Tokens per block, as the layer's.

    Raises:
        SolverConfigurationError: ``k`` or ``block_size`` below 1.
        InvalidProblemError: At a call, a sequence length that is not a multiple of
            ``block_size``.

    Examples:
        >>> import torch
        >>> selector = TopKSelector(2, block_size=4)
        >>> layer = BlockSparseAttention(16, 2, 4, selector=selector)
        >>> layer(torch.randn(3, 32, 16)).shape
        torch.Size([3, 32, 16])
        >>> round(layer.last_attended_fraction, 4)  # 15 of 36 causal pairs per head
        0.4167
    """

    def __init__(self, k: int, block_size: int) -> None:
        owner = type(self).__name__
        self.k = check_int(k, "k", owner, low=1)
        self.block_size = check_int(block_size, "block_size", owner, low=1)

    def __call__(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Boolean ``(B, H, N, N)`` selection of ``(B, H, T, d)`` queries and keys."""
        batch, heads, length, dim = queries.shape
        if length % self.block_size:
            raise InvalidProblemError(
                f"{type(self).__name__}: the sequence length {length} is not a multiple of "
                f"block_size={self.block_size}. Pad the sequence to "
                f"{math.ceil(length / self.block_size) * self.block_size} tokens, or give the "
                "selector the block_size of its layer."
            )
        blocks = length // self.block_size
        shape = (batch, heads, blocks, self.block_size, dim)
        with torch.no_grad():
            logits = queries.reshape(shape).mean(dim=3) @ keys.reshape(shape).mean(dim=3).mT
            own = torch.eye(blocks, dtype=torch.bool, device=logits.device)
            earlier = torch.ones_like(own).tril(-1)
            chosen = own.expand(batch, heads, blocks, blocks).clone()
            others = min(self.k - 1, blocks - 1)
            if others > 0:
                best = logits.masked_fill(~earlier, float("-inf")).topk(others, dim=-1).indices
                chosen.scatter_(-1, best, True)
                chosen &= earlier | own  # rows with fewer earlier blocks picked future ones
        return chosen

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, block_size={self.block_size})"


def _as_tensor(selection: Any) -> torch.Tensor:
    if isinstance(selection, np.ndarray):  # a copy: the array may be a read-only view
        return torch.from_numpy(np.array(selection))
    return torch.as_tensor(selection)


def _check_selection(selection: torch.Tensor, batch: int, heads: int, blocks: int) -> torch.Tensor:
    """``selection`` as bool ``(B or 1, H, N, N)``, causal with every diagonal kept."""
    if selection.dtype != torch.bool:
        raise InvalidProblemError(
            f"A block selection must be a boolean tensor. Got dtype {selection.dtype} instead."
        )
    if selection.dim() == 3:
        selection = selection.unsqueeze(0)
    if (
        selection.dim() != 4
        or selection.shape[1:] != (heads, blocks, blocks)
        or selection.shape[0] not in (1, batch)
    ):
        raise InvalidProblemError(
            f"The block selection must have shape ({heads}, {blocks}, {blocks}) or ({batch}, "
            f"{heads}, {blocks}, {blocks}) for {heads} heads and {blocks} blocks. Got "
            f"{tuple(selection.shape)} instead; a sequence of another length needs its own "
            "selection."
        )
    causal = torch.ones(blocks, blocks, dtype=torch.bool, device=selection.device).tril()
    if (selection & ~causal).any():
        raise InvalidProblemError(
            "The block selection attends future blocks (j > i); causal attention allows key "
            "blocks j <= i only."
        )
    if not selection.diagonal(dim1=-2, dim2=-1).all():
        raise InvalidProblemError(
            "The block selection drops a diagonal block; every query block must attend its own "
            "block."
        )
    return selection


def block_sparse_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    selection: torch.Tensor,
    block_size: int,
) -> torch.Tensor:
    """Causal attention of each query block over its selected key blocks only.

    Each query block gathers its selected key and value blocks (padded to the most any query
    block selects), so the work and memory grow with ``T x selected blocks x block_size``,
    never with ``T x T``. Within the own (diagonal) block, attention is causal token by token.

    Args:
        queries: ``(B, H, T, d)``; ``T`` a multiple of ``block_size``.
        keys: ``(B, H, T, d)``, as ``queries``.
        values: ``(B, H, T, d)``, as ``queries``.
        selection: Boolean ``(H, N, N)`` or ``(B, H, N, N)``, causal, every diagonal kept.
        block_size: Tokens per block.

    Returns:
        ``(B, H, T, d)``; equal to :func:`dense_causal_attention` when every causal block is
        selected.

    Raises:
        InvalidProblemError: ``T`` is not a multiple of ``block_size`` or the selection is not
            causal, drops a diagonal block, or has the wrong shape.
    """
    batch, heads, length, dim = queries.shape
    if length % block_size:
        raise InvalidProblemError(
            f"The sequence length {length} is not a multiple of block_size={block_size}. Pad "
            f"the sequence to {math.ceil(length / block_size) * block_size} tokens or choose a "
            f"block_size that divides {length}."
        )
    blocks = length // block_size
    chosen = _check_selection(selection.to(queries.device), batch, heads, blocks)
    chosen = chosen.expand(batch, heads, blocks, blocks)
    width = int(chosen.sum(dim=-1).max())
    # Selected blocks first, in increasing order (a stable sort of "not selected").
    order = torch.sort((~chosen).to(torch.uint8), dim=-1, stable=True).indices[..., :width]
    valid = chosen.gather(-1, order)  # (B, H, N, W)
    b = torch.arange(batch, device=queries.device)[:, None, None, None]
    h = torch.arange(heads, device=queries.device)[None, :, None, None]
    shape = (batch, heads, blocks, block_size, dim)
    gathered_keys = keys.reshape(shape)[b, h, order].reshape(batch, heads, blocks, -1, dim)
    gathered_values = values.reshape(shape)[b, h, order].reshape(batch, heads, blocks, -1, dim)
    query_blocks = queries.reshape(shape)
    scores = query_blocks @ gathered_keys.transpose(-1, -2) / math.sqrt(dim)  # (B,H,N,bs,W*bs)
    offsets = torch.arange(block_size, device=queries.device)
    key_position = (order[..., None] * block_size + offsets).flatten(-2)  # (B, H, N, W*bs)
    query_position = torch.arange(length, device=queries.device).reshape(blocks, block_size)
    allowed = valid.repeat_interleave(block_size, dim=-1)[..., None, :] & (
        key_position[..., None, :] <= query_position[..., :, None]
    )
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    output = weights @ gathered_values  # (B, H, N, bs, d)
    return output.reshape(batch, heads, length, dim)


class BlockSparseAttention(nn.Module):
    """Multi-head causal self-attention over selected key blocks, with a dense path beside it.

    Args:
        d_model: Width of the input and output.
        num_heads: Attention heads; must divide ``d_model``.
        block_size: Tokens per block; sequence lengths must be multiples of it.
        selector: ``None`` (dense until a selection is set), a fixed boolean selection
            ``(H, N, N)`` or ``(B, H, N, N)`` (tensor or array), or a callable
            ``selector(queries, keys) -> selection`` on ``(B, H, T, d)`` tensors (detached),
            such as :class:`TopKSelector`. A selection set later with :meth:`set_selection`
            adds its blocks to the selector's.
        record_statistics: Keep the block-pooled queries and keys of each training forward
            (detached) for :meth:`pooled_statistics`, and the selector's choice for
            :meth:`covered_blocks` (what the selection callback reads).

    Raises:
        SolverConfigurationError: ``num_heads`` does not divide ``d_model``, or an argument is
            out of range.

    Examples:
        >>> import torch
        >>> from qopt.problems.attention import block_scores, topk_selection
        >>> def moba(queries, keys):
        ...     scores = block_scores(queries.numpy(), keys.numpy(), 4)  # (B, H, N, N)
        ...     return torch.from_numpy(
        ...         topk_selection(scores.reshape(-1, *scores.shape[-2:]), 2).reshape(scores.shape))
        >>> layer = BlockSparseAttention(16, 2, 4, selector=moba)
        >>> layer(torch.randn(3, 16, 16)).shape
        torch.Size([3, 16, 16])
        >>> layer.last_attended_fraction
        0.7
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        block_size: int,
        *,
        selector: Selector | torch.Tensor | np.ndarray | None = None,
        record_statistics: bool = True,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        d_model = check_int(d_model, "d_model", owner, low=1)
        self.num_heads = check_int(num_heads, "num_heads", owner, low=1)
        if d_model % self.num_heads:
            raise SolverConfigurationError(
                f"The 'num_heads' parameter of {owner} must divide d_model={d_model}. Got "
                f"{num_heads} instead."
            )
        self.block_size = check_int(block_size, "block_size", owner, low=1)
        self.d_model = d_model
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.record_statistics = bool(record_statistics)
        self.selector: Selector | None = None
        self.selection: torch.Tensor | None = None
        #: Attended block pairs over causal block pairs in the last forward (1.0: dense).
        self.last_attended_fraction = 1.0
        self._pooled: tuple[torch.Tensor, torch.Tensor] | None = None
        self._covered: torch.Tensor | None = None
        self._last_chosen: torch.Tensor | None = None
        if callable(selector):
            self.selector = selector
        elif selector is not None:
            self.set_selection(selector)

    def set_selection(self, selection: Any) -> None:
        """Attend by this fixed selection from the next forward on (``None``: none).

        With a ``selector``, each sequence attends the union of the selector's blocks and
        these; without one, these alone (``None``: dense).

        Checked now where it can be (boolean, causal, every diagonal kept); its number of
        blocks is checked against each input.
        """
        if selection is None:
            self.selection = None
            return
        tensor = _as_tensor(selection)
        blocks = tensor.shape[-1]
        batch = tensor.shape[0] if tensor.dim() == 4 else 1
        _check_selection(tensor, batch, self.num_heads, blocks)
        self.selection = tensor.clone()  # as given: (H, N, N) or (B, H, N, N)

    def pooled_statistics(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Block-pooled queries and keys ``(B, H, N, d)`` of the last training forward."""
        return self._pooled

    def covered_blocks(self) -> torch.Tensor | None:
        """The selector's boolean ``(B, H, N, N)`` choice in the last training forward, or None."""
        return self._covered

    def forward(self, x: torch.Tensor, *, dense: bool = False) -> torch.Tensor:
        """Attend; ``x`` is ``(B, T, d_model)`` with ``T`` a multiple of ``block_size``."""
        batch, length, _ = x.shape
        heads = self.num_heads
        q, k, v = (
            part.reshape(batch, length, heads, -1).transpose(1, 2)
            for part in self.qkv(x).chunk(3, dim=-1)
        )
        if length % self.block_size:
            raise InvalidProblemError(
                f"{type(self).__name__}: the sequence length {length} is not a multiple of "
                f"block_size={self.block_size}. Pad the input to "
                f"{math.ceil(length / self.block_size) * self.block_size} tokens."
            )
        blocks = length // self.block_size
        if self.training and self.record_statistics:
            pooled = (
                t.detach().reshape(batch, heads, blocks, self.block_size, -1).mean(dim=3)
                for t in (q, k)
            )
            self._pooled = (next(pooled), next(pooled))
        selection = None if dense else self._current_selection(q, k)
        if self.training and self.record_statistics and not dense:
            self._covered = self._last_chosen
        if selection is None:
            attended = dense_causal_attention(q, k, v)
            self.last_attended_fraction = 1.0
        else:
            attended = block_sparse_attention(q, k, v, selection, self.block_size)
            full = selection.expand(batch, heads, blocks, blocks)
            self.last_attended_fraction = float(full.sum()) / (
                batch * heads * blocks * (blocks + 1) / 2
            )
        return self.out(attended.transpose(1, 2).reshape(batch, length, self.d_model))

    def _current_selection(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor | None:
        self._last_chosen = None
        if self.selector is None:
            return self.selection
        chosen = _as_tensor(self.selector(q.detach(), k.detach())).to(q.device)
        if chosen.dim() == 3:
            chosen = chosen.unsqueeze(0)
        self._last_chosen = chosen.expand(q.shape[0], *chosen.shape[1:])
        if self.selection is None:
            return chosen
        return chosen | self.selection.to(q.device)

    def extra_repr(self) -> str:
        parts = [
            name
            for name, present in (("selector", self.selector), ("fixed", self.selection))
            if present is not None
        ]
        mode = "+".join(parts) or "dense"
        return f"d_model={self.d_model}, num_heads={self.num_heads}, block_size={self.block_size}, selection={mode}"
