"""The Hamming trust region: distance, its QUBO inequality, enumeration, repair, restarts."""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.encoding import (
    CategoricalParameter,
    DenseEnergy,
    IntParameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.search import HammingBall, History, trust_centre


@st.composite
def spaces_and_points(draw: Any) -> tuple[SpaceEncoding, dict[str, int], dict[str, int], int]:
    """A space of one-hot and domain-wall parameters, a centre, a point and a radius."""
    parameters: dict[str, Any] = {}
    schemes = {}
    for i in range(draw(st.integers(1, 4))):
        n = draw(st.integers(2, 5))
        if draw(st.booleans()):
            parameters[f"c{i}"] = CategoricalParameter(tuple(range(n)))
            schemes[f"c{i}"] = draw(st.sampled_from(["one-hot", "domain-wall"]))
        else:
            parameters[f"i{i}"] = IntParameter(0, n - 1)
            schemes[f"i{i}"] = draw(st.sampled_from(["one-hot", "domain-wall"]))
    space = SpaceEncoding(parameters, schemes=schemes)

    def point() -> dict[str, int]:
        return {n: draw(st.integers(0, p.n_values - 1)) for n, p in space.parameters.items()}

    return space, point(), point(), draw(st.integers(1, 3))


@settings(max_examples=60, deadline=None)
@given(spaces_and_points())
def test_the_ball_is_a_linear_inequality_on_the_bits(
    case: tuple[SpaceEncoding, dict[str, int], dict[str, int], int],
) -> None:
    space, centre, point, radius = case
    ball = HammingBall(space, centre, radius)
    terms, lb, ub = ball.inequality()
    bits = space.encode_indices(point)
    left = sum(c * bits[b] for b, c in terms.items())
    distance = ball.distance(point)
    # One-hot parameters count a change, domain-wall ones their index steps (bit flips).
    expected = sum(
        int(point[n] != centre[n]) if p.scheme == "one-hot" else abs(point[n] - centre[n])
        for n, p in space.parameters.items()
    )
    assert distance == expected
    assert (lb <= left <= ub) == (1 <= distance <= radius)
    # The enumeration walks exactly this ball (no constraints here, so every point counts).
    energy = DenseEnergy(dimod.BinaryQuadraticModel("BINARY"), space.n_bits)
    keys = {key for _, key, _ in ball.points(energy)}
    assert (tuple(point.values()) in keys) == (1 <= distance <= radius)


@settings(max_examples=60, deadline=None)
@given(spaces_and_points(), st.lists(st.integers(0, 1), min_size=32, max_size=32))
def test_ball_repair_lands_every_bit_vector_inside_the_ball(
    case: tuple[SpaceEncoding, dict[str, int], dict[str, int], int], raw: list[int]
) -> None:
    space, centre, _, radius = case
    ball = HammingBall(space, centre, radius)
    energy = DenseEnergy(dimod.BinaryQuadraticModel("BINARY"), space.n_bits)
    anchor = ball.anchor(energy)
    assert anchor is not None
    fixed = ball.repair(np.array(raw[: space.n_bits], dtype=np.int8), energy, anchor)
    assert space.is_valid(fixed)
    assert 1 <= ball.distance(space.decode_indices(fixed)) <= radius


def test_push_out_leaves_the_ball_within_budget() -> None:
    space = SpaceEncoding(
        {"op": CategoricalParameter(("a", "b", "c")), "w": IntParameter(0, 5)},
        constraints=[ParameterConstraint({"w": 1}, ub=4)],
    )
    energy = DenseEnergy(dimod.BinaryQuadraticModel("BINARY"), space.n_bits)
    ball = HammingBall(space, {"op": 0, "w": 2}, 2)
    pushed = ball.push_out(ball.centre, energy)
    assert pushed is not None
    assert ball.distance(pushed) == 3 and pushed["w"] <= 4


def test_best_untried_is_the_lowest_energy_ball_point_not_taken() -> None:
    space = SpaceEncoding({"x": IntParameter(0, 7)})
    # Energy falls with x: the lowest point of the radius-2 ball around 3 is x = 5.
    bqm = dimod.BinaryQuadraticModel({i: -1.0 for i in range(space.n_bits)}, {}, 0.0, "BINARY")
    energy = DenseEnergy(bqm, space.n_bits)
    ball = HammingBall(space, {"x": 3}, 2)
    assert ball.best_untried(energy, set()) == {"x": 5}
    assert ball.best_untried(energy, {(5,)}) == {"x": 4}
    assert ball.best_untried(energy, {(1,), (2,), (4,), (5,)}) is None


def test_trust_centre_restarts_after_patience_trials_without_improvement() -> None:
    history = History()
    values = [3.0, 1.0, 2.0, 4.0, 5.0]
    for x, value in enumerate(values):
        history.add_complete({"x": x}, np.array([x]), (value,), restart=(x == 3))
    y = np.array(values)
    # The region starts at the restart proposal (x=3): its best is x=3 itself.
    centre, restart, stalled = trust_centre(y, history, patience=2)
    assert centre == {"x": 3} and stalled == 1 and not restart
    centre, restart, stalled = trust_centre(y, history, patience=1)
    assert restart
    # A pending restart proposal holds the next one back.
    history.add_pending({"x": 9}, np.array([9]), restart=True)
    assert trust_centre(y, history, patience=1)[1] is False
