"""Moves over value positions: neighbours of a point, a random point, greedy repair.

A point is a dict from parameter name to value position (``0 .. size - 1``). Every search
space in qopt (:class:`qopt.encoding.SpaceEncoding`, :class:`qopt.nas.SearchSpace`, the
trust region's ball) moves through these functions; each says only which parameters are
ordered and how far a point is from its constraints. A leaf module (numpy only), so the
encodings below :mod:`qopt.search` can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

__all__ = ["descend", "first_feasible", "neighbours", "random_point", "random_untaken", "rings"]

P = TypeVar("P")


def neighbours(
    point: Mapping[str, int], sizes: Mapping[str, int], *, ordered: Collection[str] = ()
) -> list[dict[str, int]]:
    """Points one change away: an ``ordered`` parameter +-1, any other to any other value.

    Parameter by parameter in ``sizes`` order, values in increasing order.

    Examples:
        >>> neighbours({"a": 1, "b": 0}, {"a": 3, "b": 3}, ordered={"a"})
        [{'a': 0, 'b': 0}, {'a': 2, 'b': 0}, {'a': 1, 'b': 1}, {'a': 1, 'b': 2}]
    """
    result = []
    for name, size in sizes.items():
        here = point[name]
        if name in ordered:
            steps = [k for k in (here - 1, here + 1) if 0 <= k < size]
        else:
            steps = [k for k in range(size) if k != here]
        result += [{**point, name: k} for k in steps]
    return result


def rings(
    centre: Mapping[str, int],
    step: Callable[[dict[str, int]], list[dict[str, int]]],
    score: Callable[[dict[str, int]], float],
    *,
    radius: int,
    beam: int,
    exact: int = 0,
    keep: Callable[[dict[str, int]], bool] | None = None,
) -> Iterator[list[tuple[float, tuple[int, ...], dict[str, int]]]]:
    """The points 1, 2, ... ``radius`` steps from ``centre``, ring by ring, as sorted lists
    of ``(score, key, point)`` (``key``: the point's positions as a tuple).

    A ring is every point one ``step`` from the previous ring's seeds not met before, less
    those ``keep`` refuses (they are neither scored nor stepped from). The seeds are the whole
    ring while it holds at most ``exact`` points, else its ``beam`` lowest. Lazy: a caller that
    stops early scores nothing further.

    Examples:
        >>> sizes = {"a": 3, "b": 3}
        >>> step = lambda p: neighbours(p, sizes, ordered=sizes)
        >>> total = lambda p: p["a"] + p["b"]
        >>> [[r[1] for r in ring] for ring in rings({"a": 0, "b": 0}, step, total, radius=2, beam=1)]
        [[(0, 1), (1, 0)], [(0, 2), (1, 1)]]
    """
    frontier = [dict(centre)]
    seen = {tuple(centre.values())}
    for _ in range(radius):
        ring = []
        for here in frontier:
            for point in step(here):
                key = tuple(point.values())
                if key in seen:
                    continue
                seen.add(key)
                if keep is None or keep(point):
                    ring.append((score(point), key, point))
        ring.sort(key=lambda r: (r[0], r[1]))
        yield ring
        frontier = [r[2] for r in (ring if len(ring) <= exact else ring[:beam])]


def random_point(sizes: Mapping[str, int], rng: np.random.Generator) -> dict[str, int]:
    """A uniformly random point: one ``rng.integers`` per parameter, in ``sizes`` order.

    Examples:
        >>> random_point({"a": 1, "b": 1}, np.random.default_rng(0))
        {'a': 0, 'b': 0}
    """
    return {name: int(rng.integers(size)) for name, size in sizes.items()}


def random_untaken(
    draw: Callable[[], P],
    key: Callable[[P], Hashable],
    taken: Collection[Hashable],
    *,
    size: float = float("inf"),
    tries: int = 200,
) -> P:
    """A drawn point whose ``key`` is not in ``taken``, redrawn up to ``tries`` times.

    Stops early (keeping the last draw) once ``taken`` holds ``size`` points or more.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> random_untaken(lambda: random_point({"x": 3}, rng), lambda p: p["x"], {0, 1})
        {'x': 2}
    """
    point = draw()
    for _ in range(tries):
        if key(point) not in taken or len(taken) >= size:
            break
        point = draw()
    return point


def descend(
    point: Mapping[str, int],
    sizes: Mapping[str, int],
    violation: Callable[[Mapping[str, int]], float],
    *,
    tie: Callable[[dict[str, int], str, int], float] | None = None,
    names: Iterable[str] | None = None,
    tolerance: float = 0.0,
    min_gain: float = 0.0,
    max_steps: int | None = None,
) -> dict[str, int]:
    """Greedy single-parameter changes that reduce ``violation`` until within ``tolerance``.

    Each step tries every other value of every parameter in ``names`` (default: all of
    ``sizes``) and takes the one of least violation, ties broken by ``tie(candidate, name,
    value)`` (default: the distance moved). It stops when no change lowers the violation
    by more than ``min_gain``, or after ``max_steps`` steps; the caller checks the result.

    Examples:
        >>> cost = {0: 5.0, 1: 3.0, 2: 1.0}
        >>> descend({"w": 0}, {"w": 3}, lambda p: max(0.0, cost[p["w"]] - 3.0))
        {'w': 1}
    """
    point = dict(point)
    names = list(sizes if names is None else names)
    current = violation(point)
    step = 0
    while current > tolerance and (max_steps is None or step < max_steps):
        step += 1
        best: tuple[float, float, str, int] | None = None
        for name in names:
            for k in range(sizes[name]):
                if k == point[name]:
                    continue
                trial = {**point, name: k}
                v = violation(trial)
                t = abs(k - point[name]) if tie is None else tie(trial, name, k)
                if best is None or (v, t) < best[:2]:
                    best = (v, t, name, k)
        if best is None or best[0] >= current - min_gain:
            break
        point[best[2]] = best[3]
        current = best[0]
    return point


def first_feasible(
    starts: Iterable[Mapping[str, int]],
    sizes: Mapping[str, int],
    violation: Callable[[Mapping[str, int]], float],
    *,
    tolerance: float = 0.0,
    **options: Any,
) -> dict[str, int] | None:
    """The first start that :func:`descend` (with these ``options``) brings within
    ``tolerance``, or None.

    Examples:
        >>> cost = {0: 5.0, 1: 3.0, 2: 1.0}
        >>> over = lambda p: max(0.0, cost[p["w"]] - 2.0)
        >>> first_feasible([{"w": 0}], {"w": 3}, over, max_steps=0) is None
        True
        >>> first_feasible([{"w": 0}, {"w": 1}], {"w": 3}, over)
        {'w': 2}
    """
    for start in starts:
        point = descend(start, sizes, violation, tolerance=tolerance, **options)
        if violation(point) <= tolerance:
            return point
    return None
