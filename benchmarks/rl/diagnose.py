"""Where the QUBO policy search spends its environment steps, and how common solutions are.

``phases``: runs the QUBO search of a task of ``run.py`` (same episodes and seeds) and splits
the steps by how each policy was proposed (``QuboSearch.last_info``: the space-filling start,
the surrogate's optimum, its next-best reads, a neighbour of an optimum already tried).
``enumerate``: evaluates every policy of CartPole's linear task and reports the fraction that
solves it and what an unsolved one costs, which is what random search pays per miss.

    python benchmarks/rl/diagnose.py phases --task cartpole-linear --seeds 100-109
    python benchmarks/rl/diagnose.py phases --task cartpole-linear --seeds 100-109 \
        --qubo-options '{"target_transform": "exp"}'
    python benchmarks/rl/diagnose.py enumerate --seeds 100-102
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from typing import Any

import numpy as np
from run import TASKS

from qopt.policy_search import EpisodeEvaluator, LinearPolicy, make_proposer


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def phases(task_name: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """One QUBO search, as in run.py, with the steps and policies per proposal source."""
    task = TASKS[task_name]
    episodes = EpisodeEvaluator(
        task.env, n_episodes=task.n_episodes, seed=1000 * seed, env_kwargs=task.env_kwargs
    )
    policy = task.make_policy(episodes)
    proposer = make_proposer("qubo", policy, seed=seed, options=options)
    spent, best, by_source = 0, -np.inf, {}
    while spent < task.budget and best < task.target:
        params = proposer.ask()
        info = proposer.last_info  # type: ignore[attr-defined]
        source = info["phase"] if info["phase"] != "model" else info["candidate"]
        value, steps = episodes.evaluate(policy, params)
        proposer.tell(params, value)
        spent, best = spent + steps, max(best, value)
        n, total = by_source.get(source, (0, 0))
        by_source[source] = (n + 1, total + steps)
    solved = best >= task.target
    return {"seed": seed, "solved": solved, "steps": spent, "by_source": by_source}


def enumerate_linear(seed: int) -> dict[str, float]:
    """Every policy of the cartpole-linear task (its default LinearPolicy) on one seed's
    episodes."""
    task = TASKS["cartpole-linear"]
    episodes = EpisodeEvaluator(task.env, n_episodes=task.n_episodes, seed=1000 * seed)
    policy = LinearPolicy(episodes.observation_space, episodes.action_space)
    values, steps = [], []
    for indices in itertools.product(range(len(policy.levels)), repeat=len(policy.names)):
        value, n = episodes.evaluate(policy, policy.params_of(np.array(indices)))
        values.append(value)
        steps.append(n)
    solved = np.array(values) >= task.target
    return {
        "policies": len(values),
        "solved_fraction": float(solved.mean()),
        "unsolved_mean_steps": float(np.array(steps)[~solved].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["phases", "enumerate"])
    parser.add_argument("--task", choices=sorted(TASKS), default="cartpole-linear")
    parser.add_argument("--seeds", type=seed_range, default=seed_range("100-109"))
    parser.add_argument("--qubo-options", type=json.loads, default={})
    args = parser.parse_args()
    if args.mode == "enumerate":
        for seed in args.seeds:
            print(f"seed {seed}: {enumerate_linear(seed)}", flush=True)
        return
    runs = [phases(args.task, seed, args.qubo_options) for seed in args.seeds]
    for run in runs:
        print(
            f"seed {run['seed']}: {'solved' if run['solved'] else 'not solved'} "
            f"in {run['steps']} steps; policies, steps by source: {run['by_source']}"
        )
    # The runs the start design did not solve: steps per policy of each source.
    totals: dict[str, list[int]] = {}
    for run in runs:
        if set(run["by_source"]) == {"start"}:
            continue
        for source, (n, steps) in run["by_source"].items():
            pair = totals.setdefault(source, [0, 0])
            pair[0] += n
            pair[1] += steps
    print(f"median steps: {statistics.median(r['steps'] for r in runs):.0f}")
    for source, (n, steps) in totals.items():
        print(f"{source:<24}{n:>5} policies {steps:>8} steps {steps / n:>7.0f} per policy")


if __name__ == "__main__":
    main()
