"""Tests of qopt.moe.language_model."""

from __future__ import annotations

import torch

from qopt.moe import MarkovMixture, MoELanguageModel


def test_language_model_is_causal_and_trains_through_its_experts() -> None:
    a, _ = MarkovMixture(num_sources=3, vocab_size=10, seed=1).sample(4, 12, seed=5)
    model = MoELanguageModel(10, d_model=8, num_layers=2, num_heads=2, num_experts=2, top_k=1)
    logits = model(a)
    assert logits.shape == (4, 12, 10) and len(model.moe_layers()) == 2
    (logits.sum() + model.aux_loss).backward()
    dense = MoELanguageModel(10, d_model=8, num_layers=1, num_heads=2, dense=True)
    assert dense.moe_layers() == [] and dense(a).shape == (4, 12, 10)
    # Causal: the first position's logits do not depend on later symbols.
    changed = a.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 10
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(a)[:, :5], model(changed)[:, :5], atol=1e-5)
