"""Policy search: reinforcement learning as a search over discrete policy parameterizations.

A policy family (:class:`TabularPolicy`: one action per discretized state;
:class:`LinearPolicy`: a weight matrix with quantized weights) turns into the parameters of a
search space; :func:`search_policy` proposes policies with the QUBO surrogate search of
:mod:`qopt.search` (or a baseline: random search, the cross-entropy method, an evolution
strategy), scores them by seeded, vectorized Gymnasium episodes (:class:`EpisodeEvaluator`)
and stops at a budget of environment steps. Needs the ``rl`` extra (Gymnasium).
"""

from __future__ import annotations

from qopt.policy_search.baselines import CrossEntropySearch, EvolutionStrategy, RandomSearch
from qopt.policy_search.episodes import EpisodeEvaluator
from qopt.policy_search.policies import LinearPolicy, Policy, TabularPolicy
from qopt.policy_search.search import (
    MAX_BITS,
    METHODS,
    PolicySearchResult,
    make_proposer,
    search_policy,
)

__all__ = [
    "MAX_BITS",
    "METHODS",
    "CrossEntropySearch",
    "EpisodeEvaluator",
    "EvolutionStrategy",
    "LinearPolicy",
    "Policy",
    "PolicySearchResult",
    "RandomSearch",
    "TabularPolicy",
    "make_proposer",
    "search_policy",
]
