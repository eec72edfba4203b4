"""Tests of qopt.sparse_attention: the gathered sparse path against dense references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.attention import (
    bigbird_selection,
    block_redundancy,
    block_scores,
    topk_selection,
)
from qopt.sparse_attention import (
    BlockSelectable,
    BlockSparseAttention,
    TopKSelector,
    block_sparse_attention,
    block_statistics,
    dense_causal_attention,
)


def qkv(
    batch: int = 2, heads: int = 3, length: int = 24, dim: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(3, batch, heads, length, dim, generator=generator, dtype=torch.float64)
    return q, k, v


def masked_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, selection: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Attention under the dense token mask the selection implies (small sizes only)."""
    length = q.shape[-2]
    token_mask = selection.repeat_interleave(block_size, -1).repeat_interleave(block_size, -2)
    token_mask = token_mask & torch.ones(length, length, dtype=torch.bool).tril()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~token_mask, float("-inf")), dim=-1)
    return weights @ v


def test_all_blocks_selected_equals_dense_causal_attention() -> None:
    q, k, v = qkv()
    everything = torch.ones(3, 6, 6, dtype=torch.bool).tril()
    sparse = block_sparse_attention(q, k, v, everything, 4)
    assert torch.allclose(sparse, dense_causal_attention(q, k, v), atol=1e-6)
    # float32, as in training, and a per-sequence selection
    q32, k32, v32 = q.float(), k.float(), v.float()
    per_sequence = everything.expand(2, 3, 6, 6)
    sparse32 = block_sparse_attention(q32, k32, v32, per_sequence, 4)
    assert torch.allclose(sparse32, dense_causal_attention(q32, k32, v32), atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_partial_selection_equals_the_masked_dense_reference(seed: int) -> None:
    q, k, v = qkv(seed=seed)
    scores = block_scores(q.numpy(), k.numpy(), 4).reshape(-1, 6, 6)
    per_sequence = torch.from_numpy(topk_selection(scores, 2).reshape(2, 3, 6, 6))
    sparse = block_sparse_attention(q, k, v, per_sequence, 4)
    assert torch.allclose(sparse, masked_reference(q, k, v, per_sequence, 4), atol=1e-10)
    fixed = torch.from_numpy(bigbird_selection(3, 6, window=2, num_global=1, seed=seed))
    sparse = block_sparse_attention(q, k, v, fixed, 4)
    assert torch.allclose(sparse, masked_reference(q, k, v, fixed, 4), atol=1e-10)
    # A real selection changes the output: the test above is not vacuous.
    assert not torch.allclose(sparse, dense_causal_attention(q, k, v), atol=1e-3)


def test_module_gradients_flow_through_the_sparse_path() -> None:
    torch.manual_seed(0)
    layer = BlockSparseAttention(16, 2, 4, selector=bigbird_selection(2, 4, window=1, seed=0))
    x = torch.randn(2, 16, 16, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_module_paths_shapes_and_statistics() -> None:
    torch.manual_seed(0)
    layer = BlockSparseAttention(16, 2, 4)
    assert isinstance(layer, BlockSelectable)
    x = torch.randn(3, 16, 16)
    dense = layer(x)
    assert dense.shape == (3, 16, 16) and layer.last_attended_fraction == 1.0
    pooled = layer.pooled_statistics()
    assert (
        pooled is not None and pooled[0].shape == (3, 2, 4, 8) and pooled[1].shape == (3, 2, 4, 8)
    )
    diagonal = torch.eye(4, dtype=torch.bool).expand(2, 4, 4)
    layer.set_selection(diagonal.numpy())
    sparse = layer(x)
    assert layer.last_attended_fraction == pytest.approx(4 / 10)
    assert not torch.allclose(sparse, dense)
    assert torch.allclose(layer(x, dense=True), dense)
    fresh = BlockSparseAttention(16, 2, 4).eval()
    fresh(x)
    assert fresh.pooled_statistics() is None  # statistics are for training steps only
    layer.set_selection(None)
    assert torch.allclose(layer(x), dense)


def test_callable_selector_sees_queries_and_keys() -> None:
    seen: list[tuple[int, ...]] = []

    def selector(queries: torch.Tensor, keys: torch.Tensor) -> np.ndarray:
        seen.append(tuple(queries.shape))
        assert not queries.requires_grad and not keys.requires_grad
        return np.broadcast_to(np.eye(2, dtype=bool), (2, 2, 2))

    layer = BlockSparseAttention(8, 2, 4, selector=selector)
    layer(torch.randn(1, 8, 8))
    assert seen == [(1, 2, 8, 4)]


def test_bad_input_is_refused_with_what_to_do() -> None:
    layer = BlockSparseAttention(8, 2, 4)
    with pytest.raises(InvalidProblemError, match=r"not a multiple of block_size=4.*Pad"):
        layer(torch.randn(1, 10, 8))
    with pytest.raises(InvalidProblemError, match="future"):
        layer.set_selection(torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(InvalidProblemError, match="diagonal"):
        layer.set_selection(torch.zeros(2, 3, 3, dtype=torch.bool))
    with pytest.raises(InvalidProblemError, match="boolean"):
        layer.set_selection(torch.eye(3))
    layer.set_selection(torch.eye(3, dtype=torch.bool).expand(2, 3, 3))
    with pytest.raises(InvalidProblemError, match="another length"):
        layer(torch.randn(1, 8, 8))  # 2 blocks, the selection has 3
    with pytest.raises(SolverConfigurationError, match="must divide d_model=8"):
        BlockSparseAttention(8, 3, 4)


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_topk_selector_matches_the_numpy_ranking_for_every_sequence_and_head(k: int) -> None:
    q, keys, _ = qkv(batch=3, heads=2, length=32, dim=4, seed=k)
    chosen = TopKSelector(k, block_size=4)(q, keys)
    assert chosen.shape == (3, 2, 8, 8) and chosen.dtype == torch.bool
    for b in range(3):
        expected = topk_selection(block_scores(q[b].numpy(), keys[b].numpy(), 4), k)
        assert np.array_equal(chosen[b].numpy(), expected)


def test_selector_and_fixed_selection_attend_their_union_and_record_the_selectors_part() -> None:
    torch.manual_seed(0)
    layer = BlockSparseAttention(8, num_heads=2, block_size=4, selector=TopKSelector(2, 4))
    x = torch.randn(3, 32, 8)
    fixed = torch.eye(8, dtype=torch.bool).repeat(2, 1, 1)
    fixed[:, 7, 0] = True  # one far block, for every sequence
    layer.set_selection(fixed)
    layer(x)
    covered = layer.covered_blocks()
    assert covered is not None and covered.shape == (3, 2, 8, 8)
    q, k, v = (
        t.reshape(3, 32, 2, 4).transpose(1, 2) for t in layer.qkv(x).detach().chunk(3, dim=-1)
    )
    assert torch.equal(covered, TopKSelector(2, 4)(q, k))
    union = covered | fixed
    expected = layer.out(
        block_sparse_attention(q, k, v, union, 4).transpose(1, 2).reshape(3, 32, 8)
    )
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert "selector+fixed" in repr(layer)
    layer.eval()
    layer(x)  # evaluation forwards leave the recorded choice alone
    assert torch.equal(layer.covered_blocks(), covered)


def test_block_statistics_equal_the_numpy_scores_and_redundancy_and_leave_covered_mass_out() -> (
    None
):
    q, k, _ = qkv(batch=4, heads=2, length=40, dim=6, seed=3)
    pooled_q, pooled_k = (t.reshape(4, 2, 10, 4, 6).mean(dim=3) for t in (q, k))
    scores, redundancy = block_statistics(pooled_q, pooled_k)
    assert np.allclose(scores, block_scores(q.numpy(), k.numpy(), 4).mean(0), atol=1e-6)
    assert np.allclose(redundancy, block_redundancy(k.numpy(), 4).mean(0), atol=1e-6)
    covered = TopKSelector(2, 4)(q, k)
    residual, same = block_statistics(pooled_q, pooled_k, covered)
    per_sequence = block_scores(q.numpy(), k.numpy(), 4) * ~covered.numpy()
    assert np.allclose(residual, per_sequence.mean(0), atol=1e-6)
    assert torch.equal(same, redundancy)
    assert float(residual.diagonal(dim1=-2, dim2=-1).abs().max()) == 0.0  # own blocks covered


def test_topk_selector_refuses_bad_settings_and_lengths() -> None:
    with pytest.raises(SolverConfigurationError, match="'k' parameter"):
        TopKSelector(0, block_size=4)
    with pytest.raises(SolverConfigurationError, match="'block_size' parameter"):
        TopKSelector(2, block_size=0)
    q, k, _ = qkv(length=30)
    with pytest.raises(InvalidProblemError, match="not a multiple of block_size=4"):
        TopKSelector(2, block_size=4)(q, k)
    layer = BlockSparseAttention(8, num_heads=2, block_size=8, selector=TopKSelector(2, 4))
    with pytest.raises(InvalidProblemError, match="must have shape"):
        layer(torch.randn(1, 32, 8))  # the selector's blocks are not the layer's


def test_block_statistics_refuses_mismatched_shapes_with_what_to_pass() -> None:
    q, k = torch.randn(2, 3, 2, 8, 4)
    with pytest.raises(InvalidProblemError, match=r"one shape \(B, H, N, d\)"):
        block_statistics(q, k[:, :, :4])
    with pytest.raises(InvalidProblemError, match=r"one shape"):
        block_statistics(q[0], k[0])
    with pytest.raises(InvalidProblemError, match=r"'covered' blocks .* \(3, 2, 8, 8\)"):
        block_statistics(q, k, torch.ones(2, 8, 8, dtype=torch.bool))
