"""A small causal language model with MoE feed-forward blocks, for routing experiments."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError
from qopt.moe.layer import MoE

__all__ = [
    "MoELanguageModel",
]


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
