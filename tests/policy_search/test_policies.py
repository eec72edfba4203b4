from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

gym = pytest.importorskip("gymnasium")

from qopt.encoding import SpaceEncoding  # noqa: E402
from qopt.exceptions import InvalidProblemError, QoptError, SolverConfigurationError  # noqa: E402
from qopt.policy_search import LinearPolicy, TabularPolicy  # noqa: E402

Box, Discrete = gym.spaces.Box, gym.spaces.Discrete


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=16, max_size=16))
def test_tabular_table_round_trips_through_the_search_space(table: list[int]) -> None:
    policy = TabularPolicy(Discrete(16), Discrete(4))
    params = policy.params_of(table)
    space = SpaceEncoding(policy.parameters())
    again = space.values_of(space.decode_indices(space.encode_indices(space.indices_of(params))))
    assert again == params
    assert policy.table(again).tolist() == table


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=10, max_size=10))
def test_linear_weights_round_trip_through_the_search_space(indices: list[int]) -> None:
    policy = LinearPolicy(Box(-1, 1, (4,)), Box(-1, 1, (2,)))  # 2 rows of 5: 10 weights
    params = policy.params_of(np.array(indices))
    space = SpaceEncoding(policy.parameters())
    again = space.values_of(space.decode_indices(space.encode_indices(space.indices_of(params))))
    assert again == params
    assert policy.weights(again).ravel().tolist() == [policy.levels[i] for i in indices]


def test_tabular_box_cells_and_clipping() -> None:
    policy = TabularPolicy(Box(-np.inf, np.inf, (2,)), Discrete(2), bins=(2, 3), low=0, high=1)
    assert policy.n_states == 6
    observations = np.array([[0.1, 0.1], [0.9, 0.9], [-5.0, 0.5], [5.0, 5.0]])
    assert policy.states(observations).tolist() == [0, 5, 1, 5]
    params = policy.params_of([0, 1, 0, 1, 0, 1])
    assert policy.act(params, observations).tolist() == [0, 1, 1, 1]


def test_linear_actions_for_each_action_space() -> None:
    observations = np.array([[1.0, 0.0], [0.0, 1.0]])
    levels = (-1.0, 0.0, 1.0)
    two = LinearPolicy(Box(-1, 1, (2,)), Discrete(2), levels=levels, bias=False)
    assert two.act(two.params_of(np.array([2, 0])), observations).tolist() == [1, 0]
    three = LinearPolicy(Box(-1, 1, (2,)), Discrete(3), levels=levels, bias=False)
    rows = np.array([[0, 0], [2, 0], [0, 2]])  # action 1 scores x, action 2 scores y
    assert three.act(three.params_of(rows), observations).tolist() == [1, 2]
    box = LinearPolicy(Box(-1, 1, (2,)), Box(-0.5, 0.5, (1,)), levels=levels, bias=False)
    actions = box.act(box.params_of(np.array([[2, 1]])), observations)
    assert actions.shape == (2, 1) and actions.ravel().tolist() == [0.5, 0.0]


def test_a_continuous_action_space_is_refused_by_the_tabular_policy() -> None:
    with pytest.raises(InvalidProblemError, match=r"Discrete action space.*LinearPolicy") as error:
        TabularPolicy(Discrete(4), Box(-1, 1, (1,)))
    assert isinstance(error.value, QoptError)


def test_unbounded_observations_need_bounds() -> None:
    with pytest.raises(InvalidProblemError, match="'low' and 'high'"):
        TabularPolicy(Box(-np.inf, np.inf, (2,)), Discrete(2))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: TabularPolicy(Box(0, 1, (2,)), Discrete(2), bins=(2, 2, 2)),
            SolverConfigurationError,
            "'bins'",
        ),
        (
            lambda: TabularPolicy(Box(0, 1, (2,)), Discrete(2), bins=0),
            SolverConfigurationError,
            "'bins'",
        ),
        (
            lambda: TabularPolicy(Discrete(16), Discrete(4), state_map=np.sign),
            SolverConfigurationError,
            "'state_map' and 'n_states'",
        ),
        (
            lambda: TabularPolicy(Discrete(16), Discrete(4), n_states=4),
            SolverConfigurationError,
            "'state_map' and 'n_states'",
        ),
        (lambda: LinearPolicy(Discrete(4), Discrete(2)), InvalidProblemError, "TabularPolicy"),
        (
            lambda: LinearPolicy(Box(0, 1, (2,)), Discrete(2), levels=(1, 0)),
            SolverConfigurationError,
            "'levels'",
        ),
    ],
)
def test_bad_settings(build, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        build()


def quadrant(observations: np.ndarray) -> np.ndarray:
    """The quadrant (0..3) of each point of a batch of 2-d observations."""
    obs = np.asarray(observations)
    return 2 * (obs[:, 0] > 0) + (obs[:, 1] > 0)


def test_a_state_map_gives_the_table_its_states() -> None:
    policy = TabularPolicy(Box(-1, 1, (2,)), Discrete(3), state_map=quadrant, n_states=4)
    assert policy.n_states == 4 and len(policy.parameters()) == 4
    assert SpaceEncoding(policy.parameters()).n_bits == 12  # 4 states x 3 actions, one-hot
    observations = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    params = policy.params_of([2, 0, 1, 2])
    assert policy.act(params, observations).tolist() == [2, 0, 1, 2]
    assert policy.describe()["state_map"].endswith(".quadrant")


def test_a_state_map_out_of_range_is_an_error_at_call_time() -> None:
    policy = TabularPolicy(Box(-1, 1, (2,)), Discrete(2), state_map=quadrant, n_states=3)
    with pytest.raises(InvalidProblemError, match=r"one state in \[0, 3\).*'n_states'"):
        policy.act(policy.params_of([0, 1, 0]), np.array([[0.5, 0.5]]))  # quadrant 3
