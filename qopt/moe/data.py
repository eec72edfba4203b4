"""Synthetic token streams whose sources reward specialised experts."""

from __future__ import annotations

import numpy as np
import torch

from qopt._validation import check_float, check_int

__all__ = [
    "MarkovMixture",
]


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
