from __future__ import annotations

import pytest

from qopt.encoding import CategoricalParameter, IntParameter
from qopt.exceptions import SolverConfigurationError
from qopt.policy_search import CrossEntropySearch, EvolutionStrategy, RandomSearch

SPACE = {f"x{i}": IntParameter(0, 4) for i in range(6)} | {"op": CategoricalParameter("abc")}
BEST = {f"x{i}": 3 for i in range(6)} | {"op": "b"}


def score(params: dict) -> float:
    return -sum(abs(params[f"x{i}"] - 3) for i in range(6)) - (params["op"] != "b")


def run(search, n: int) -> tuple[list[dict], float]:  # type: ignore[no-untyped-def]
    asked, best = [], -float("inf")
    for _ in range(n):
        params = search.ask()
        search.tell(params, score(params))
        asked.append(params)
        best = max(best, score(params))
    return asked, best


@pytest.mark.parametrize(
    "make",
    [
        lambda: CrossEntropySearch(SPACE, population=20, seed=1),
        lambda: EvolutionStrategy(SPACE, offspring=4, seed=1),
    ],
)
def test_the_learning_baselines_find_the_optimum_random_search_misses(make) -> None:  # type: ignore[no-untyped-def]
    _, best = run(make(), 300)
    assert best == 0.0  # one point of 5**6 * 3 = 46875
    _, random_best = run(RandomSearch(SPACE, seed=1), 300)
    assert random_best < 0


def test_the_evolution_strategy_keeps_its_best_parent() -> None:
    search = EvolutionStrategy(SPACE, offspring=4, seed=0)
    run(search, 300)
    assert search.parent is not None
    assert search.parent_value == 0.0 and search._values(search.parent) == BEST


@pytest.mark.parametrize("cls", [RandomSearch, CrossEntropySearch, EvolutionStrategy])
def test_a_seed_reproduces_the_proposals(cls) -> None:  # type: ignore[no-untyped-def]
    assert run(cls(SPACE, seed=5), 50)[0] == run(cls(SPACE, seed=5), 50)[0]
    assert run(cls(SPACE, seed=5), 50)[0] != run(cls(SPACE, seed=6), 50)[0]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CrossEntropySearch(SPACE, population=1), "'population'"),
        (lambda: CrossEntropySearch(SPACE, elite_fraction=0), "'elite_fraction'"),
        (lambda: EvolutionStrategy(SPACE, mutation_rate=2.0), "'mutation_rate'"),
    ],
)
def test_bad_options(build, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SolverConfigurationError, match=match):
        build()
