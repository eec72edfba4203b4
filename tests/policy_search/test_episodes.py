from __future__ import annotations

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from qopt.exceptions import InvalidProblemError, QoptError  # noqa: E402
from qopt.policy_search import EpisodeEvaluator, LinearPolicy, TabularPolicy  # noqa: E402

RIGHT_THEN_DOWN = [2, 2, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0]


def test_a_known_path_solves_deterministic_frozen_lake_in_six_steps() -> None:
    episodes = EpisodeEvaluator("FrozenLake-v1", n_episodes=3, env_kwargs={"is_slippery": False})
    policy = TabularPolicy(episodes.observation_space, episodes.action_space)
    assert episodes.evaluate(policy, policy.params_of(RIGHT_THEN_DOWN)) == (1.0, 18)
    always_left = policy.params_of([0] * 16)  # walks into the wall until the time limit
    assert episodes.evaluate(policy, always_left) == (0.0, 300)


def test_episodes_are_seeded_and_counted_until_each_ends() -> None:
    episodes = EpisodeEvaluator("CartPole-v1", n_episodes=4, seed=3)
    policy = LinearPolicy(episodes.observation_space, episodes.action_space, levels=(-1, 0, 1))
    lean = policy.params_of(np.array([1, 1, 2, 1, 1]))  # follows the pole angle: falls soon
    first = episodes.evaluate(policy, lean)
    assert first == episodes.evaluate(policy, lean)
    # CartPole pays 1 per step, so the mean return is the steps per episode.
    assert first[0] == first[1] / 4 and 5 < first[0] < 50
    other_seed = EpisodeEvaluator("CartPole-v1", n_episodes=4, seed=4)
    assert other_seed.evaluate(policy, lean) != first


@pytest.mark.parametrize(
    ("env", "kwargs", "match"),
    [
        ("NoSuchEnv-v0", {}, r"NoSuchEnv-v0.*pprint_registry"),
        ("CartPole-v1", {"is_slippery": False}, "is_slippery"),
    ],
)
def test_an_environment_that_cannot_be_made(env: str, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidProblemError, match=match) as error:
        EpisodeEvaluator(env, env_kwargs=kwargs)
    assert isinstance(error.value, QoptError)


def test_an_environment_without_a_time_limit_needs_one() -> None:
    from gymnasium.envs.toy_text import FrozenLakeEnv

    with pytest.raises(InvalidProblemError, match="max_episode_steps"):
        EpisodeEvaluator(FrozenLakeEnv)
    episodes = EpisodeEvaluator(FrozenLakeEnv, max_episode_steps=7)
    policy = TabularPolicy(episodes.observation_space, episodes.action_space)
    assert episodes.evaluate(policy, policy.params_of([0] * 16)) == (0.0, 7)
