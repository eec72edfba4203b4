"""Discrete policy parameterizations: a policy is a point of a search space of discrete values.

A :class:`TabularPolicy` picks one action per discretized state (one categorical parameter per
state); a :class:`LinearPolicy` scores actions with a weight matrix whose every weight takes one
of a few levels (one ordered integer parameter per weight). Both give their
:meth:`~Policy.parameters` to a search (:class:`qopt.search.QuboSearch` or a baseline of
:mod:`qopt.policy_search.baselines`) and act on a batch of observations at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from qopt._validation import check_int
from qopt.encoding import CategoricalParameter, IntParameter, Parameter
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = ["LinearPolicy", "Policy", "TabularPolicy"]


def _space_kind(space: Any) -> str:
    """``"discrete"`` or ``"box"`` for a Gymnasium space, by its public attributes."""
    if hasattr(space, "n") and not hasattr(space, "nvec"):
        return "discrete"
    if hasattr(space, "low") and hasattr(space, "high"):
        return "box"
    return type(space).__name__


def _bounds(
    space: Any,
    low: float | Sequence[float] | None,
    high: float | Sequence[float] | None,
    owner: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension bounds of a Box observation space: the given ones, else the space's own."""
    shape = int(np.prod(space.shape))
    lo = np.broadcast_to(
        np.asarray(space.low if low is None else low, dtype=float).reshape(-1), (shape,)
    ).copy()
    hi = np.broadcast_to(
        np.asarray(space.high if high is None else high, dtype=float).reshape(-1), (shape,)
    ).copy()
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or (hi <= lo).any():
        raise InvalidProblemError(
            f"{owner} needs finite bounds low < high for every observation dimension; the "
            f"observation space is {space} (low {lo.tolist()}, high {hi.tolist()}). Pass "
            "'low' and 'high' (e.g. low=(-2.4, -3, -0.21, -3), high=(2.4, 3, 0.21, 3) for "
            "CartPole)."
        )
    return lo, hi


class Policy(ABC):
    """A policy family whose members are points of a discrete search space."""

    #: The action space's kind: ``"discrete"`` or ``"box"``.
    action_kind: str

    @abstractmethod
    def parameters(self) -> dict[str, Parameter]:
        """The search space: parameter name to :mod:`qopt.encoding` parameter."""

    @abstractmethod
    def act(self, params: Mapping[str, Any], observations: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations (first axis: the batch) under ``params``."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The policy family as JSON-able settings (written into a search log)."""


class TabularPolicy(Policy):
    """One discrete action per state of a discretized observation space.

    A ``Discrete(n)`` observation space has ``n`` states; a ``Box`` is cut into ``bins``
    equal intervals per dimension between ``low`` and ``high`` (values outside fall into the
    end bins), and its states are the cells of that grid. A ``state_map`` (a state
    abstraction) replaces both: it sends a batch of observations to states ``0 ..
    n_states - 1``, so a space too large to search as one table (Taxi's 500 states) can be
    searched over the distinctions that matter. Each state is a categorical parameter
    ``state_<k>`` over the actions, encoded one-hot (one bit for two actions).

    Args:
        observation_space: The environment's (single) observation space.
        action_space: The environment's action space; must be ``Discrete``.
        bins: Intervals per Box dimension (an int for all, or one per dimension; 1 ignores
            that dimension). Not used for a ``Discrete`` observation space.
        low: Lower bounds of a Box's dimensions (default: the space's own, which must then
            be finite).
        high: Upper bounds, likewise.
        state_map: A function from a batch of observations (first axis: the batch) to their
            states, integers in ``[0, n_states)``; ``bins``, ``low`` and ``high`` are then
            not used. Give a named function: its name goes into a search log.
        n_states: The number of states of ``state_map`` (required with it).

    Raises:
        InvalidProblemError: The action space is not discrete, or a Box has infinite bounds
            and none were given; at call time, a ``state_map`` state out of range.
        SolverConfigurationError: ``state_map`` without ``n_states`` (or the reverse).

    Examples:
        >>> import gymnasium as gym
        >>> env = gym.make("FrozenLake-v1", is_slippery=False)
        >>> policy = TabularPolicy(env.observation_space, env.action_space)
        >>> policy.n_states, len(policy.parameters())
        (16, 16)
        >>> params = policy.params_of(np.full(16, 2))
        >>> policy.act(params, np.array([0, 5])).tolist()
        [2, 2]
        >>> def row(observations):  # one state per row of the 4 x 4 lake
        ...     return np.asarray(observations) // 4
        >>> by_row = TabularPolicy(env.observation_space, env.action_space, state_map=row,
        ...                        n_states=4)
        >>> by_row.act(by_row.params_of([1, 2, 1, 2]), np.array([0, 5, 15])).tolist()
        [1, 2, 2]
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        *,
        bins: int | Sequence[int] = 6,
        low: float | Sequence[float] | None = None,
        high: float | Sequence[float] | None = None,
        state_map: Callable[[np.ndarray], np.ndarray] | None = None,
        n_states: int | None = None,
    ) -> None:
        owner = type(self).__name__
        if (state_map is None) != (n_states is None):
            raise SolverConfigurationError(
                f"The 'state_map' and 'n_states' parameters of {owner} go together: give both "
                f"(the function and how many states it returns) or neither. Got "
                f"state_map={state_map!r}, n_states={n_states!r}."
            )
        if _space_kind(action_space) != "discrete":
            raise InvalidProblemError(
                f"{owner} needs a Discrete action space; got {action_space}. Use LinearPolicy, "
                "which outputs continuous actions, or wrap the environment so that its actions "
                "are discrete (e.g. a gymnasium.ActionWrapper over a few fixed actions)."
            )
        self.n_actions = int(action_space.n)
        self.action_kind = "discrete"
        kind = _space_kind(observation_space)
        self.state_map = state_map
        self.observation_kind = kind
        self.bins: tuple[int, ...]
        if state_map is not None:
            self.observation_kind = "mapped"
            self.n_states = check_int(n_states, "n_states", owner, low=1)
            self.bins = (self.n_states,)
            self.low = self.high = None
        elif kind == "discrete":
            self.n_states = int(observation_space.n)
            self.bins = (self.n_states,)
            self.low = self.high = None
        elif kind == "box":
            dims = int(np.prod(observation_space.shape))
            per_dim = [bins] * dims if isinstance(bins, int) else list(bins)
            if len(per_dim) != dims:
                raise SolverConfigurationError(
                    f"The 'bins' parameter of {owner} must be an int or {dims} ints (one per "
                    f"observation dimension). Got {bins!r} instead."
                )
            self.bins = tuple(check_int(b, "bins", owner, low=1) for b in per_dim)
            self.low, self.high = _bounds(observation_space, low, high, owner)
            self.n_states = math.prod(self.bins)
        else:
            raise InvalidProblemError(
                f"{owner} takes a Discrete or Box observation space; got {observation_space}. "
                "Flatten it with gymnasium.wrappers.FlattenObservation."
            )
        self.names = [f"state_{k}" for k in range(self.n_states)]

    def parameters(self) -> dict[str, Parameter]:
        choices = CategoricalParameter(tuple(range(self.n_actions)))
        return dict.fromkeys(self.names, choices)

    def states(self, observations: np.ndarray) -> np.ndarray:
        """The state index of each observation of a batch."""
        if self.state_map is not None:
            states = np.asarray(self.state_map(observations), dtype=np.int64).reshape(-1)
            outside = (states < 0) | (states >= self.n_states)
            if outside.any() or len(states) != len(observations):
                raise InvalidProblemError(
                    f"The state_map of {type(self).__name__} must give one state in [0, "
                    f"{self.n_states}) per observation; for {len(observations)} observations "
                    f"it gave {states.tolist()[:10]}. Fix the function or 'n_states'."
                )
            return states
        if self.observation_kind == "discrete":
            return np.asarray(observations, dtype=np.int64).reshape(-1)
        assert self.low is not None and self.high is not None
        obs = np.asarray(observations, dtype=float).reshape(len(observations), -1)
        bins = np.asarray(self.bins)
        cells = np.floor((obs - self.low) / (self.high - self.low) * bins).astype(np.int64)
        cells = np.clip(cells, 0, bins - 1)
        return np.ravel_multi_index(tuple(cells.T), self.bins)

    def table(self, params: Mapping[str, Any]) -> np.ndarray:
        """The action of every state under ``params``."""
        return np.array([int(params[name]) for name in self.names], dtype=np.int64)

    def params_of(self, table: Sequence[int] | np.ndarray) -> dict[str, int]:
        """The parameters of an action table (the inverse of :meth:`table`)."""
        return {name: int(a) for name, a in zip(self.names, table, strict=True)}

    def act(self, params: Mapping[str, Any], observations: np.ndarray) -> np.ndarray:
        return self.table(params)[self.states(observations)]

    def describe(self) -> dict[str, Any]:
        if self.state_map is not None:
            name = getattr(self.state_map, "__qualname__", repr(self.state_map))
            return {
                "policy": "tabular",
                "n_states": self.n_states,
                "n_actions": self.n_actions,
                "state_map": f"{getattr(self.state_map, '__module__', '')}.{name}",
            }
        return {
            "policy": "tabular",
            "n_states": self.n_states,
            "n_actions": self.n_actions,
            "bins": list(self.bins),
            "low": None if self.low is None else self.low.tolist(),
            "high": None if self.high is None else self.high.tolist(),
        }


class LinearPolicy(Policy):
    """Actions from a linear function of the observation, each weight one of a few levels.

    Features are the observation divided by ``scale`` (per dimension) plus a constant 1 when
    ``bias``. A ``Discrete(2)`` action is 1 where one row of weights scores above 0; a
    ``Discrete(n)`` action is the argmax of ``n`` rows; a ``Box`` action is ``W @ features``
    clipped to the space's bounds. Each weight is an ordered integer parameter ``w_<row>_<col>``
    indexing ``levels`` (encoded domain-wall, so neighbouring levels are one bit apart).

    Args:
        observation_space: The environment's (single) observation space; must be a ``Box``.
        action_space: ``Discrete`` or ``Box``.
        levels: The values a weight may take, in increasing order.
        scale: Per-dimension divisor of the observation (default: half the range of finite
            bounds, 1 elsewhere).
        bias: Whether a constant feature is added.

    Raises:
        InvalidProblemError: The observation space is not a Box (use :class:`TabularPolicy`).

    Examples:
        >>> import gymnasium as gym
        >>> env = gym.make("CartPole-v1")
        >>> policy = LinearPolicy(env.observation_space, env.action_space, levels=(-1, 0, 1))
        >>> len(policy.parameters())
        5
        >>> params = policy.params_of(np.array([[1, 1, 2, 2, 1]]))  # weights 0, 0, 1, 1, 0
        >>> policy.act(params, np.array([[0.0, 0.0, 0.05, 0.1], [0.0, 0.0, -0.05, -0.1]])).tolist()
        [1, 0]
    """

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        *,
        levels: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
        scale: float | Sequence[float] | None = None,
        bias: bool = True,
    ) -> None:
        owner = type(self).__name__
        if _space_kind(observation_space) != "box":
            raise InvalidProblemError(
                f"{owner} needs a Box observation space; got {observation_space}. Use "
                "TabularPolicy for a Discrete one."
            )
        levels = tuple(float(v) for v in levels)
        if len(levels) < 2 or np.any(np.diff(levels) <= 0):
            raise SolverConfigurationError(
                f"The 'levels' parameter of {owner} must hold at least two increasing numbers. "
                f"Got {levels!r} instead."
            )
        self.levels = np.asarray(levels)
        self.n_features = int(np.prod(observation_space.shape))
        if scale is None:
            low = np.asarray(observation_space.low, dtype=float).reshape(-1)
            high = np.asarray(observation_space.high, dtype=float).reshape(-1)
            finite = np.isfinite(low) & np.isfinite(high) & (high > low)
            self.scale = np.where(finite, (high - low) / 2, 1.0)
        else:
            self.scale = np.broadcast_to(
                np.asarray(scale, dtype=float).reshape(-1), (self.n_features,)
            ).copy()
        self.bias = bool(bias)
        kind = _space_kind(action_space)
        self.action_kind = kind
        if kind == "discrete":
            n = int(action_space.n)
            self.n_rows = 1 if n == 2 else n
            self.action_low = self.action_high = None
        elif kind == "box":
            self.n_rows = int(np.prod(action_space.shape))
            self.action_shape = tuple(action_space.shape)
            self.action_low = np.asarray(action_space.low, dtype=float).reshape(-1)
            self.action_high = np.asarray(action_space.high, dtype=float).reshape(-1)
        else:
            raise InvalidProblemError(
                f"{owner} takes a Discrete or Box action space; got {action_space}."
            )
        self.n_cols = self.n_features + int(self.bias)
        self.names = [f"w_{r}_{c}" for r in range(self.n_rows) for c in range(self.n_cols)]

    def parameters(self) -> dict[str, Parameter]:
        weight = IntParameter(0, len(self.levels) - 1)
        return dict.fromkeys(self.names, weight)

    def weights(self, params: Mapping[str, Any]) -> np.ndarray:
        """The ``(rows, features [+ 1])`` weight matrix under ``params``."""
        indices = np.array([int(params[name]) for name in self.names])
        return self.levels[indices].reshape(self.n_rows, self.n_cols)

    def params_of(self, level_indices: np.ndarray) -> dict[str, int]:
        """The parameters of a matrix of level indices (the inverse of :meth:`weights` up to
        the levels)."""
        flat = np.asarray(level_indices).reshape(-1)
        return {name: int(i) for name, i in zip(self.names, flat, strict=True)}

    def act(self, params: Mapping[str, Any], observations: np.ndarray) -> np.ndarray:
        features = np.asarray(observations, dtype=float).reshape(len(observations), -1)
        features = features / self.scale
        if self.bias:
            features = np.hstack([features, np.ones((len(features), 1))])
        scores = features @ self.weights(params).T
        if self.action_kind == "box":
            actions = np.clip(scores, self.action_low, self.action_high)
            return actions.reshape(len(features), *self.action_shape).astype(np.float32)
        if self.n_rows == 1:
            return (scores[:, 0] > 0).astype(np.int64)
        return np.argmax(scores, axis=1).astype(np.int64)

    def describe(self) -> dict[str, Any]:
        return {
            "policy": "linear",
            "levels": self.levels.tolist(),
            "scale": self.scale.tolist(),
            "bias": self.bias,
            "rows": self.n_rows,
            "action": self.action_kind,
        }
