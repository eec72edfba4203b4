"""Seeded, vectorized episode returns of a policy on a Gymnasium environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from qopt._optional import import_optional
from qopt._validation import check_int
from qopt.exceptions import InvalidProblemError
from qopt.policy_search.policies import Policy

__all__ = ["EpisodeEvaluator"]


class EpisodeEvaluator:
    """Mean return of a policy over a fixed set of seeded episodes, run side by side.

    The ``n_episodes`` episodes run in a :class:`gymnasium.vector.SyncVectorEnv`, episode
    ``i`` reset with seed ``seed + i`` every time, so every policy meets the same starts
    (common random numbers: two evaluations of one policy give the same return). The steps
    counted are those of the episodes themselves (an environment that finished early waits).

    Args:
        env: A registered environment id (``"CartPole-v1"``) or a function that returns a
            fresh environment.
        n_episodes: Episodes per evaluation.
        seed: Seed of the first episode.
        max_episode_steps: Truncate episodes at this length (default: the registered limit).
        env_kwargs: Keyword arguments of :func:`gymnasium.make` for a registered id
            (``{"is_slippery": False}``).

    Attributes:
        observation_space: One environment's observation space.
        action_space: One environment's action space.
        reward_threshold: The registered return at which the task counts as solved, or None.

    Raises:
        InvalidProblemError: Gymnasium cannot make the environment (the message says why).
        MissingDependencyError: Gymnasium is not installed (``pip install 'qopt-loop[rl]'``).

    Examples:
        >>> from qopt.policy_search import EpisodeEvaluator, TabularPolicy
        >>> episodes = EpisodeEvaluator("FrozenLake-v1", env_kwargs={"is_slippery": False})
        >>> policy = TabularPolicy(episodes.observation_space, episodes.action_space)
        >>> right_then_down = [2, 2, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0]
        >>> episodes.evaluate(policy, policy.params_of(right_then_down))
        (1.0, 6)
    """

    def __init__(
        self,
        env: str | Callable[[], Any],
        *,
        n_episodes: int = 1,
        seed: int = 0,
        max_episode_steps: int | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        owner = type(self).__name__
        gym = import_optional("gymnasium", "rl", "Policy search")
        self.n_episodes = check_int(n_episodes, "n_episodes", owner, low=1)
        self.seed = check_int(seed, "seed", owner, low=0)
        if max_episode_steps is not None:
            max_episode_steps = check_int(max_episode_steps, "max_episode_steps", owner, low=1)
        self.max_episode_steps = max_episode_steps
        self.env_kwargs = dict(env_kwargs or {})
        self.env_name = env if isinstance(env, str) else getattr(env, "__name__", repr(env))

        def make() -> Any:
            if isinstance(env, str):
                return gym.make(env, max_episode_steps=max_episode_steps, **self.env_kwargs)
            made = env()
            if max_episode_steps is not None:
                made = gym.wrappers.TimeLimit(made, max_episode_steps)
            return made

        try:
            first = make()
        except (gym.error.Error, TypeError, ValueError, ImportError, AttributeError) as error:
            raise InvalidProblemError(
                f"{owner} cannot make the environment {self.env_name!r}: {error}. Check the id "
                "against gymnasium.pprint_registry() (e.g. 'CartPole-v1'), its env_kwargs, and "
                "that the package registering it is installed; or pass a function that returns "
                "an environment."
            ) from error
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        spec = getattr(first, "spec", None)
        self.reward_threshold: float | None = getattr(spec, "reward_threshold", None)
        if max_episode_steps is None and getattr(spec, "max_episode_steps", None) is None:
            raise InvalidProblemError(
                f"The environment {self.env_name!r} has no time limit, so an episode may never "
                f"end; pass max_episode_steps to {owner}."
            )
        first.close()
        self._envs = gym.vector.SyncVectorEnv([make] * self.n_episodes)

    def evaluate(self, policy: Policy, params: Mapping[str, Any]) -> tuple[float, int]:
        """The mean return of ``policy`` at ``params`` over the episodes, and the steps taken."""
        observations, _ = self._envs.reset(seed=[self.seed + i for i in range(self.n_episodes)])
        returns = np.zeros(self.n_episodes)
        running = np.ones(self.n_episodes, dtype=bool)
        steps = 0
        while running.any():
            actions = policy.act(params, observations)
            observations, rewards, terminated, truncated, _ = self._envs.step(actions)
            returns += np.where(running, rewards, 0.0)
            steps += int(running.sum())
            running &= ~(np.asarray(terminated) | np.asarray(truncated))
        return float(returns.mean()), steps

    def describe(self) -> dict[str, Any]:
        """The evaluation settings as JSON-able values (written into a search log)."""
        return {
            "env": self.env_name,
            "env_kwargs": {k: v for k, v in sorted(self.env_kwargs.items())},
            "n_episodes": self.n_episodes,
            "seed": self.seed,
            "max_episode_steps": self.max_episode_steps,
        }

    def close(self) -> None:
        """Close the environments."""
        self._envs.close()
