"""Model-free baselines over the same discrete space as the QUBO search, by ask/tell.

Each works on value indices of a :class:`qopt.encoding.SpaceEncoding` (the same grid
:class:`qopt.search.QuboSearch` searches) and maximizes what it is told.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qopt._validation import check_float, check_int
from qopt.encoding import Parameter, SpaceEncoding

__all__ = ["CrossEntropySearch", "EvolutionStrategy", "RandomSearch"]


class _IndexSearch:
    """Shared plumbing: the space, a seeded generator, and indices <-> parameter values."""

    def __init__(self, parameters: Mapping[str, Parameter], seed: int | None) -> None:
        self.space = SpaceEncoding(parameters)
        self.names = list(self.space.parameters)
        self.sizes = np.array([p.n_values for p in self.space.parameters.values()])
        self.rng = np.random.default_rng(seed)

    def _random(self) -> np.ndarray:
        return (self.rng.random(len(self.sizes)) * self.sizes).astype(np.int64)

    def _values(self, indices: np.ndarray) -> dict[str, Any]:
        return self.space.values_of(dict(zip(self.names, (int(i) for i in indices), strict=True)))

    def _indices(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array(list(self.space.indices_of(params).values()), dtype=np.int64)


class RandomSearch(_IndexSearch):
    """Uniformly random points.

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> search = RandomSearch({"x": IntParameter(0, 9)}, seed=0)
        >>> search.ask()
        {'x': 6}
    """

    def __init__(self, parameters: Mapping[str, Parameter], *, seed: int | None = None) -> None:
        super().__init__(parameters, seed)

    def ask(self) -> dict[str, Any]:
        return self._values(self._random())

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        """Random search learns nothing."""


class CrossEntropySearch(_IndexSearch):
    """The cross-entropy method over independent categorical distributions, one per parameter.

    Each generation samples ``population`` points; the best ``elite_fraction`` of them move
    every distribution toward their value frequencies by ``smoothing`` (Rubinstein, Methodol.
    Comput. Appl. Probab. 1 (1999); for policies: Szita & Lőrincz, Neural Comput. 18 (2006)).

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> search = CrossEntropySearch({"x": IntParameter(0, 9)}, population=10, seed=0)
        >>> for _ in range(60):
        ...     params = search.ask()
        ...     search.tell(params, -abs(params["x"] - 7))
        >>> int(np.argmax(search.probabilities[0]))
        7
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        *,
        population: int = 20,
        elite_fraction: float = 0.2,
        smoothing: float = 0.3,
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        super().__init__(parameters, seed)
        self.population = check_int(population, "population", owner, low=2)
        self.elite_fraction = check_float(
            elite_fraction, "elite_fraction", owner, low=0, high=1, low_inclusive=False
        )
        self.smoothing = check_float(smoothing, "smoothing", owner, low=0, high=1)
        self.probabilities = [np.full(n, 1.0 / n) for n in self.sizes]
        self._told: list[tuple[np.ndarray, float]] = []

    def ask(self) -> dict[str, Any]:
        indices = np.array([self.rng.choice(len(p), p=p) for p in self.probabilities])
        return self._values(indices)

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        self._told.append((self._indices(params), float(value)))
        if len(self._told) < self.population:
            return
        n_elite = max(1, round(self.elite_fraction * self.population))
        # A stable sort keeps ties in the order told, so the update is reproducible.
        order = sorted(range(len(self._told)), key=lambda k: -self._told[k][1])[:n_elite]
        elite = np.array([self._told[k][0] for k in order])
        for j, p in enumerate(self.probabilities):
            frequency = np.bincount(elite[:, j], minlength=len(p)) / n_elite
            self.probabilities[j] = (1 - self.smoothing) * p + self.smoothing * frequency
        self._told = []


class EvolutionStrategy(_IndexSearch):
    """An elitist (1 + λ) evolution strategy: each generation mutates the best point so far.

    A child changes each parameter with probability ``mutation_rate`` (default one over the
    number of parameters; at least one parameter always changes) to a uniformly random other
    value; after ``offspring`` children the best of parent and children, ties going to the
    newest child, becomes the parent (Beyer & Schwefel, Nat. Comput. 1 (2002)).

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> search = EvolutionStrategy({"x": IntParameter(0, 9)}, offspring=4, seed=0)
        >>> for _ in range(40):
        ...     params = search.ask()
        ...     search.tell(params, -abs(params["x"] - 7))
        >>> search.parent_value
        0.0
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        *,
        offspring: int = 8,
        mutation_rate: float | None = None,
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        super().__init__(parameters, seed)
        self.offspring = check_int(offspring, "offspring", owner, low=1)
        self.mutation_rate = (
            1.0 / len(self.sizes)
            if mutation_rate is None
            else check_float(mutation_rate, "mutation_rate", owner, low=0, high=1)
        )
        self.parent: np.ndarray | None = None
        self.parent_value = -np.inf
        self._generation: list[tuple[np.ndarray, float]] = []

    def ask(self) -> dict[str, Any]:
        if self.parent is None:
            return self._values(self._random())
        child = self.parent.copy()
        changed = self.rng.random(len(child)) < self.mutation_rate
        if not changed.any():
            changed[self.rng.integers(len(child))] = True
        for j in np.flatnonzero(changed & (self.sizes > 1)):
            shift = self.rng.integers(1, self.sizes[j])
            child[j] = (child[j] + shift) % self.sizes[j]
        return self._values(child)

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        indices, value = self._indices(params), float(value)
        if self.parent is None:
            self.parent, self.parent_value = indices, value
            return
        self._generation.append((indices, value))
        if len(self._generation) < self.offspring:
            return
        for child, child_value in self._generation:
            if child_value >= self.parent_value:
                self.parent, self.parent_value = child, child_value
        self._generation = []
