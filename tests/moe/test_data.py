"""Tests of qopt.moe.data."""

from __future__ import annotations

import torch

from qopt.moe import MarkovMixture


def test_markov_mixture_is_seeded_and_labels_its_sources() -> None:
    data = MarkovMixture(num_sources=3, vocab_size=10, seed=1)
    a, sa = data.sample(4, 12, seed=5)
    b, sb = data.sample(4, 12, seed=5)
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert a.shape == (4, 12) and sa.shape == (4,)
    assert a.min() >= 0 and a.max() < 10 and sa.max() < 3
    c, _ = data.sample(4, 12, seed=6)
    assert not torch.equal(a, c)
