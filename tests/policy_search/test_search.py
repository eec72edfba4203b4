from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

gym = pytest.importorskip("gymnasium")

from qopt.exceptions import (  # noqa: E402
    InvalidProblemError,
    ProblemTooLargeError,
    SolverConfigurationError,
)
from qopt.policy_search import (  # noqa: E402
    EpisodeEvaluator,
    LinearPolicy,
    Policy,
    TabularPolicy,
    make_proposer,
    search_policy,
)


class CountingEvaluator(EpisodeEvaluator):
    """Real episodes, counted: a replayed evaluation must not run any."""

    calls = 0

    def evaluate(self, policy: Policy, params: Mapping[str, Any]) -> tuple[float, int]:
        self.calls += 1
        return super().evaluate(policy, params)


def cartpole(n_episodes: int = 2) -> tuple[LinearPolicy, CountingEvaluator]:
    episodes = CountingEvaluator("CartPole-v1", n_episodes=n_episodes, seed=0)
    return LinearPolicy(episodes.observation_space, episodes.action_space), episodes


def test_the_qubo_search_balances_cartpole_within_a_small_budget() -> None:
    policy, episodes = cartpole()
    result = search_policy(policy, episodes, budget_steps=20_000, target_return=475, seed=0)
    assert result.best_return >= 475
    assert result.steps_to(475) == result.total_steps <= 20_000
    assert episodes.evaluate(policy, result.best_params)[0] == result.best_return


def test_a_seed_reproduces_the_search() -> None:
    runs = [search_policy(*cartpole(), budget_steps=1500, seed=1) for _ in range(2)]
    assert runs[0].params == runs[1].params and runs[0].returns == runs[1].returns
    assert len(runs[0].returns) >= 10


def test_a_killed_search_resumes_from_its_log_without_running_episodes_again(
    tmp_path: Path,
) -> None:
    log = tmp_path / "search.jsonl"
    policy, episodes = cartpole()
    first = search_policy(policy, episodes, budget_steps=800, seed=2, log=log)
    # A kill in the middle of a write leaves a torn last line.
    with log.open("a") as handle:
        handle.write('{"params": {"w_0_0": ')
    policy, episodes = cartpole()
    resumed = search_policy(policy, episodes, budget_steps=2500, seed=2, log=log)
    assert resumed.replayed == len(first.returns) >= 5
    assert episodes.calls == len(resumed.returns) - resumed.replayed > 0
    whole = search_policy(*cartpole(), budget_steps=2500, seed=2)
    assert resumed.params == whole.params and resumed.returns == whole.returns
    lines = log.read_text().splitlines()
    assert len(lines) == 1 + len(resumed.returns)
    assert json.loads(lines[-1])["return"] == resumed.returns[-1]


def test_a_log_of_another_search_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "search.jsonl"
    search_policy(*cartpole(), budget_steps=200, seed=2, log=log, method="random")
    with pytest.raises(InvalidProblemError, match=r"different search.*\['seed'\]"):
        search_policy(*cartpole(), budget_steps=400, seed=3, log=log, method="random")


@pytest.mark.parametrize("method", ["random", "cem", "es"])
def test_the_baselines_run_on_the_same_budget(method: str) -> None:
    policy, episodes = cartpole()
    result = search_policy(policy, episodes, budget_steps=3000, method=method, seed=0)
    assert 3000 <= result.total_steps < 3000 + 2 * 500
    assert result.total_steps == sum(result.steps) and len(set(map(str, result.params))) > 1


def test_a_discretization_too_large_for_the_solver() -> None:
    episodes = EpisodeEvaluator("CartPole-v1")
    policy = TabularPolicy(
        episodes.observation_space, episodes.action_space, bins=10, low=-3, high=3
    )
    with pytest.raises(
        ProblemTooLargeError, match=r"TabularPolicy .*10000 bits.*max_bits=1024.*fewer bins"
    ):
        make_proposer("qubo", policy)
    coarse = TabularPolicy(
        episodes.observation_space, episodes.action_space, bins=(1, 1, 6, 6), low=-3, high=3
    )
    assert len(coarse.parameters()) == 36
    make_proposer("qubo", coarse)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "ppo"}, "'method'"),
        ({"budget_steps": 0}, "'budget_steps'"),
        ({"method": "cem", "search_options": {"n_startup_trials": 3}}, "'search_options'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    options = {"budget_steps": 100} | kwargs
    with pytest.raises(SolverConfigurationError, match=match):
        search_policy(*cartpole(), **options)


def lake_diagonal(observations: Any) -> Any:
    """Row + column of each square of the 4x4 lake: 7 states."""
    return (observations // 4 + observations % 4).reshape(-1)


def lake_row(observations: Any) -> Any:
    return (observations // 4).reshape(-1)


def test_a_state_mapped_table_is_searched_and_its_log_names_the_map(tmp_path: Path) -> None:
    episodes = EpisodeEvaluator("FrozenLake-v1", env_kwargs={"is_slippery": False})
    space = (episodes.observation_space, episodes.action_space)
    diagonal = TabularPolicy(*space, state_map=lake_diagonal, n_states=7)
    # One action per diagonal: down, down, right, down, right, right reaches the goal.
    assert episodes.evaluate(diagonal, diagonal.params_of([1, 1, 2, 1, 2, 2, 0])) == (1.0, 6)
    log = tmp_path / "lake.jsonl"
    first = search_policy(diagonal, episodes, budget_steps=500, log=log)
    header = json.loads(log.read_text().splitlines()[0])["header"]
    assert header["policy"]["state_map"].endswith(".lake_diagonal")
    again = search_policy(diagonal, episodes, budget_steps=500, log=log)
    assert again.replayed == len(first.returns) and again.returns == first.returns
    by_row = TabularPolicy(*space, state_map=lake_row, n_states=4)
    with pytest.raises(InvalidProblemError, match=r"different search.*\['policy'\]"):
        search_policy(by_row, episodes, budget_steps=500, log=log)
