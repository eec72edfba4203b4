"""Moves on an encoded space: the best untried neighbour of a point, a random untried point."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qopt import moves
from qopt.encoding import DenseEnergy, SpaceEncoding
from qopt.search.history import point_key

__all__ = ["best_neighbour", "random_untaken"]


def random_untaken(
    space: SpaceEncoding, taken: set[tuple[int, ...]], rng: np.random.Generator
) -> dict[str, int]:
    """A random feasible point (value indices) not in ``taken``, within 200 draws.

    Examples:
        >>> import numpy as np
        >>> from qopt.encoding import IntParameter, SpaceEncoding
        >>> space = SpaceEncoding({"x": IntParameter(0, 2)})
        >>> random_untaken(space, {(0,), (1,)}, np.random.default_rng(0))
        {'x': 2}
    """
    return moves.random_untaken(lambda: space.random_point(rng), point_key, taken, size=space.size)


def best_neighbour(
    space: SpaceEncoding,
    energy: DenseEnergy,
    centre: Mapping[str, int],
    taken: set[tuple[int, ...]],
    radius: int = 2,
    beam: int = 8,
) -> dict[str, int] | None:
    """The untaken feasible point of lowest ``energy`` within ``radius`` steps of ``centre``.

    Ring by ring (:meth:`qopt.encoding.SpaceEncoding.neighbours`): the nearest ring holding an
    untaken point wins; the ``beam`` points of lowest energy of each ring seed the next.

    Examples:
        >>> import dimod, numpy as np
        >>> from qopt.encoding import DenseEnergy, IntParameter, SpaceEncoding
        >>> space = SpaceEncoding({"x": IntParameter(0, 3)})
        >>> energy = DenseEnergy(dimod.BQM({0: 1.0, 1: 1.0, 2: -5.0}, {}, 0.0, "BINARY"), 3)
        >>> best_neighbour(space, energy, {"x": 0}, taken={(0,), (1,)})
        {'x': 2}
    """
    for ring in moves.rings(
        centre,
        space.neighbours,
        lambda point: energy.of(space.encode_indices(point)),
        radius=radius,
        beam=beam,
        keep=lambda point: space.constraint_violation(point) <= 1e-9,
    ):
        for _, key, neighbour in ring:
            if key not in taken:
                return neighbour
    return None
