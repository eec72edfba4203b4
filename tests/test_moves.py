"""qopt.moves: neighbours, random points, untaken draws and greedy repair over value positions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qopt.moves import (
    descend,
    first_feasible,
    neighbours,
    random_point,
    random_untaken,
    rings,
)


def test_neighbours_step_ordered_parameters_by_one_and_others_to_any_value() -> None:
    sizes = {"depth": 4, "op": 3}
    moves = neighbours({"depth": 0, "op": 1}, sizes, ordered={"depth"})
    assert moves == [{"depth": 1, "op": 1}, {"depth": 0, "op": 0}, {"depth": 0, "op": 2}]
    every = neighbours({"depth": 0, "op": 1}, sizes)
    assert len(every) == 3 + 2
    assert all(sum(m[n] != p for n, p in {"depth": 0, "op": 1}.items()) == 1 for m in every)


def test_random_point_draws_one_integer_per_parameter_in_order() -> None:
    sizes = {"a": 5, "b": 7, "c": 2}
    point = random_point(sizes, np.random.default_rng(3))
    expected = np.random.default_rng(3)
    assert point == {n: int(expected.integers(m)) for n, m in sizes.items()}
    assert all(0 <= point[n] < m for n, m in sizes.items())


def test_random_untaken_redraws_until_free_and_stops_when_the_space_is_full() -> None:
    rng = np.random.default_rng(0)
    draws: list[int] = []

    def draw() -> dict[str, int]:
        point = random_point({"x": 4}, rng)
        draws.append(point["x"])
        return point

    free = random_untaken(draw, lambda p: p["x"], {0, 1, 2})
    assert free == {"x": 3}
    draws.clear()
    random_untaken(draw, lambda p: p["x"], {0, 1, 2, 3}, size=4)
    assert len(draws) == 1  # a full space: no redraws
    draws.clear()
    random_untaken(draw, lambda p: p["x"], {0, 1, 2, 3}, tries=5)
    assert len(draws) == 6  # no size given: every try is spent


def test_descend_reaches_feasibility_with_the_cheapest_change() -> None:
    # cost(a) + cost(b) <= 4, with a's values costing 0, 3, 6 and b's 0, 2, 4.
    sizes = {"a": 3, "b": 3}

    def violation(p: Mapping[str, int]) -> float:
        return max(0.0, 3 * p["a"] + 2 * p["b"] - 4)

    repaired = descend({"a": 2, "b": 2}, sizes, violation)
    assert violation(repaired) == 0.0
    assert repaired == {"a": 0, "b": 2}  # one change (a: 2 -> 0) removes the excess of 6


def test_descend_breaks_ties_with_the_tie_function_and_honours_names() -> None:
    sizes = {"a": 3, "b": 3}

    def violation(p: Mapping[str, int]) -> float:
        return float(p["a"] + p["b"] > 2)

    by_distance = descend({"a": 2, "b": 2}, sizes, violation)
    assert violation(by_distance) == 0.0
    prefer_b = descend(
        {"a": 2, "b": 2}, sizes, violation, tie=lambda trial, name, k: float(name == "a")
    )
    assert prefer_b["a"] == 2 and violation(prefer_b) == 0.0
    only_a = descend({"a": 2, "b": 2}, sizes, violation, names=["a"])
    assert only_a["b"] == 2 and violation(only_a) == 0.0


def test_descend_stops_when_stuck_or_out_of_steps() -> None:
    stuck = descend({"a": 1}, {"a": 3}, lambda p: 1.0)
    assert stuck == {"a": 1}
    cost = [9.0, 6.0, 3.0, 0.0]
    one_step = descend({"a": 0}, {"a": 4}, lambda p: cost[p["a"]], max_steps=1)
    assert one_step == {"a": 3}
    frozen = descend({"a": 0}, {"a": 4}, lambda p: cost[p["a"]], names=[])
    assert frozen == {"a": 0}


def test_rings_walk_outwards_seed_from_the_beam_and_skip_refused_points() -> None:
    sizes = {"a": 4, "b": 4}

    def step(p: dict[str, int]) -> list[dict[str, int]]:
        return neighbours(p, sizes, ordered=sizes)

    def total(p: Mapping[str, int]) -> float:
        return float(p["a"] + p["b"])

    exact = list(rings({"a": 0, "b": 0}, step, total, radius=3, beam=1, exact=100))
    # Without a beam, ring r holds every point at Manhattan distance r, sorted by score.
    assert [sorted(r[1] for r in ring) for ring in exact] == [
        [(a, b) for a in range(4) for b in range(4) if a + b == r] for r in (1, 2, 3)
    ]
    assert all(ring == sorted(ring, key=lambda r: (r[0], r[1])) for ring in exact)
    narrow = list(rings({"a": 0, "b": 0}, step, total, radius=3, beam=1))
    assert [len(ring) for ring in narrow] == [2, 2, 2]  # each ring grows from one seed
    no_b = list(rings({"a": 0, "b": 0}, step, total, radius=3, beam=9, keep=lambda p: p["b"] == 0))
    assert [[r[1] for r in ring] for ring in no_b] == [[(1, 0)], [(2, 0)], [(3, 0)]]
    scored: list[dict[str, int]] = []

    def counted(p: dict[str, int]) -> float:
        scored.append(p)
        return 0.0

    lazy = rings({"a": 0, "b": 0}, step, counted, radius=3, beam=9)
    next(lazy)
    assert len(scored) == 2  # later rings are not scored until asked for


def test_first_feasible_returns_the_first_start_that_descends_within_tolerance() -> None:
    cost = [5.0, 3.0, 1.0]

    def over(p: Mapping[str, int]) -> float:
        return max(0.0, cost[p["w"]] - 2.0)

    assert first_feasible([{"w": 0}], {"w": 3}, over, max_steps=0) is None
    assert first_feasible([{"w": 0}], {"w": 3}, over, tolerance=3.0) == {"w": 0}
    assert first_feasible([{"w": 2}, {"w": 0}], {"w": 3}, over) == {"w": 2}
    assert first_feasible([{"w": 0}], {"w": 3}, over, names=[]) is None
