"""A Hamming trust region on an encoded space: the ball, its QUBO inequality, repair into it.

Casmopolitan (Wan et al., "Think Global and Act Local: Bayesian Optimisation over
High-Dimensional Categorical and Mixed Search Spaces", ICML 2021) searches a Hamming ball around
the incumbent; TuRBO (Eriksson et al., "Scalable Global Optimization via Local Bayesian
Optimization", NeurIPS 2019) restarts a region that keeps failing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

from qopt import moves
from qopt.encoding import DenseEnergy, SpaceEncoding
from qopt.search.history import History

__all__ = ["BALL_EXACT", "TRUST_BEAM", "HammingBall", "trust_centre"]

#: Points of each ring of the trust region that seed the next ring when a ring holds more than
#: BALL_EXACT points (below that every point seeds it and the enumeration is exact).
TRUST_BEAM = 64
BALL_EXACT = 4096


class HammingBall:
    """The points at distance ``1 .. radius`` from ``centre`` (value indices) on ``space``.

    The distance counts the one-hot parameters whose value differs plus, for domain-wall
    parameters, the index steps between the values (the Hamming distance of their bits).
    On valid bit patterns it is linear in the bits (:meth:`inequality`), which is what lets
    the trust region live inside the QUBO; :meth:`best_untried` finds the same minimum by
    enumeration.
    """

    def __init__(self, space: SpaceEncoding, centre: Mapping[str, int], radius: int) -> None:
        self.space = space
        self.centre = dict(centre)
        self.radius = radius
        self._one_hot = {n for n, p in space.parameters.items() if p.scheme == "one-hot"}

    def distance(self, indices: Mapping[str, int]) -> int:
        """Distance of a point (value indices) from the centre."""
        return sum(
            int(indices[n] != c) if n in self._one_hot else abs(indices[n] - c)
            for n, c in self.centre.items()
        )

    def inequality(self) -> tuple[dict[Hashable, float], float, float]:
        """``(terms, lb, ub)`` over the bits with ``lb <= terms . x <= ub`` iff the valid
        pattern ``x`` lies in the ball: the distance is ``constant + terms . x``."""
        terms: dict[Hashable, float] = {}
        constant = 0
        centre_bits = self.space.encode_indices(self.centre)
        for name, p in self.space.parameters.items():
            if p.n_bits == 0:
                continue
            if name in self._one_hot:
                # Changed unless the centre's own bit is on: 1 - x[centre].
                constant += 1
                terms[p.offset + self.centre[name]] = -1.0
                continue
            for j in range(p.offset, p.offset + p.n_bits):
                # Bit j differs from the centre's: x_j when it is off there, 1 - x_j when on.
                if centre_bits[j]:
                    constant += 1
                    terms[j] = -1.0
                else:
                    terms[j] = 1.0
        return terms, float(1 - constant), float(self.radius - constant)

    def _neighbours(self, indices: Mapping[str, int]) -> list[dict[str, int]]:
        """Points one step away in this distance (one-hot: any other value; else +-1)."""
        ordered = self.space.sizes.keys() - self._one_hot
        return moves.neighbours(indices, self.space.sizes, ordered=ordered)

    def points(self, energy: DenseEnergy) -> list[tuple[float, tuple[int, ...], dict[str, int]]]:
        """Every feasible ball point as ``(energy, key, indices)``, ring by ring.

        Infeasible points are walked through (a budget may be met again two steps away);
        rings larger than ``BALL_EXACT`` keep their ``TRUST_BEAM`` lowest as seeds.
        """
        space = self.space
        found = []
        for ring in moves.rings(
            self.centre,
            self._neighbours,
            lambda point: energy.of(space.encode_indices(point)),
            radius=self.radius,
            beam=TRUST_BEAM,
            exact=BALL_EXACT,
        ):
            found += [r for r in ring if space.constraint_violation(r[2]) <= 1e-9]
        return found

    def best_untried(
        self, energy: DenseEnergy, taken: set[tuple[int, ...]]
    ) -> dict[str, int] | None:
        """The untried feasible ball point of lowest energy (exact up to ``BALL_EXACT``)."""
        options = [p for p in self.points(energy) if p[1] not in taken]
        return min(options, key=lambda p: (p[0], p[1]))[2] if options else None

    def anchor(self, energy: DenseEnergy) -> dict[str, int] | None:
        """A feasible ball point (the lowest of the nearest ring holding one), or None."""
        space = self.space
        ring = [
            (energy.of(space.encode_indices(n)), tuple(n.values()), n)
            for n in self._neighbours(self.centre)
            if space.constraint_violation(n) <= 1e-9
        ]
        if ring:
            return min(ring, key=lambda r: (r[0], r[1]))[2]
        found = self.points(energy)
        return min(found, key=lambda r: (r[0], r[1]))[2] if found else None

    def push_out(self, indices: Mapping[str, int], energy: DenseEnergy) -> dict[str, int] | None:
        """A feasible point beyond the radius reached from ``indices`` by steps away from the
        centre (each the one of least constraint violation, then surrogate energy), or None.
        """
        space = self.space
        point = dict(indices)
        distance = self.distance(point)
        while distance <= self.radius:
            steps = []
            for name, p in space.parameters.items():
                here, c = point[name], self.centre[name]
                if name in self._one_hot:
                    values = [k for k in range(p.n_values) if k != c] if here == c else []
                else:
                    away = here + (1 if here > c else -1) if here != c else None
                    values = (
                        [away]
                        if away is not None and 0 <= away < p.n_values
                        else [k for k in (c - 1, c + 1) if 0 <= k < p.n_values and here == c]
                    )
                for k in values:
                    step = {**point, name: k}
                    key = (
                        space.constraint_violation(step),
                        energy.of(space.encode_indices(step)),
                        name,
                        k,
                    )
                    steps.append((key, step))
            if not steps:
                return None
            point = min(steps, key=lambda s: s[0])[1]
            distance = self.distance(point)
        return point if space.constraint_violation(point) <= 1e-9 else None

    def repair(
        self, bits: np.ndarray, energy: DenseEnergy, anchor: Mapping[str, int]
    ) -> np.ndarray:
        """Any bit vector -> a valid, feasible pattern inside the ball.

        The encoding's repair first (valid patterns, known constraints); a point beyond the
        radius then steps back towards the centre, each step the one of least constraint
        violation and surrogate energy; the centre itself, or a point still infeasible,
        becomes ``anchor``.
        """
        space = self.space
        row = space.repair(bits, energy=energy)
        indices = space.decode_indices(row)
        distance = self.distance(indices)
        while distance > self.radius:
            steps = []
            for name, c in self.centre.items():
                here = indices[name]
                if here == c:
                    continue
                back = c if name in self._one_hot else here + (1 if c > here else -1)
                step = {**indices, name: back}
                steps.append(
                    (space.constraint_violation(step), energy.of(space.encode_indices(step)), name)
                )
            _, _, name = min(steps)
            c = self.centre[name]
            here = indices[name]
            indices[name] = c if name in self._one_hot else here + (1 if c > here else -1)
            distance -= 1
        if distance == 0 or space.constraint_violation(indices) > 1e-9:
            indices = dict(anchor)
        return space.encode_indices(indices)


def trust_centre(
    y: np.ndarray, history: History, patience: int
) -> tuple[dict[str, int] | None, bool, int]:
    """The trust region's centre, whether to restart it now, and the trials since its best.

    The region's trials are those from the last restart proposal on (all trials before the
    first restart); its centre is the best of them (lowest target ``y``), and it restarts once
    ``patience`` trials in a row have not improved on that centre (TuRBO's failure counter)
    and no restart proposal is still pending.

    Examples:
        >>> import numpy as np
        >>> history = History()
        >>> for x, value in enumerate([3.0, 1.0, 2.0, 4.0]):
        ...     history.add_complete({"x": x}, np.array([x]), (value,))
        >>> trust_centre(np.array([3.0, 1.0, 2.0, 4.0]), history, patience=2)
        ({'x': 1}, True, 2)
    """
    starts = [i for i, flag in enumerate(history.restarts) if flag]
    first = starts[-1] if starts else 0
    region = np.where(np.isfinite(y[first:]), y[first:], np.inf)
    if not np.isfinite(region).any():
        return None, False, 0
    best = first + int(np.argmin(region))
    stalled = len(y) - 1 - best
    restart = stalled >= patience and not history.pending_restart
    return history.points[best], restart, stalled
