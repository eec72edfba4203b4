"""qopt.search.neighbourhood: the best untried neighbour and random untried points."""

from __future__ import annotations

import dimod
import numpy as np

from qopt.encoding import (
    CategoricalParameter,
    DenseEnergy,
    IntParameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.search import best_neighbour, random_untaken


def test_best_neighbour_takes_the_nearest_ring_with_an_untried_feasible_point() -> None:
    space = SpaceEncoding(
        {"x": IntParameter(0, 5), "c": CategoricalParameter(("a", "b", "c"))},
        constraints=[ParameterConstraint({"x": 1}, ub=4)],
    )
    # Energy falls as x grows: x = 5 would be best but is over the budget.
    bqm = dimod.BinaryQuadraticModel({i: -1.0 for i in range(5)}, {}, 0.0, "BINARY")
    energy = DenseEnergy(bqm, space.n_bits)
    centre = {"x": 3, "c": 0}
    assert best_neighbour(space, energy, centre, taken=set()) == {"x": 4, "c": 0}
    ring_one = {(2, 0), (4, 0), (3, 1), (3, 2)}
    second = best_neighbour(space, energy, centre, taken=ring_one)
    assert second is not None and abs(second["x"] - 3) + (second["c"] != 0) == 2
    assert second["x"] <= 4


def test_random_untaken_avoids_taken_points_until_the_space_is_full() -> None:
    space = SpaceEncoding({"x": IntParameter(0, 3)})
    rng = np.random.default_rng(0)
    assert random_untaken(space, {(0,), (1,), (3,)}, rng) == {"x": 2}
    everything = {(0,), (1,), (2,), (3,)}
    assert (random_untaken(space, everything, rng)["x"],) in everything
