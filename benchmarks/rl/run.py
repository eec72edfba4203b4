"""Policy search: environment steps to a solved return, QUBO search against CEM, an evolution
strategy, random search and PPO.

Every core method (``qubo``: :class:`qopt.search.QuboSearch` through
:func:`qopt.policy_search.search_policy`; ``cem``, ``es``, ``random``) searches the same
discrete policy parameterization of each task, scored by the same seeded episodes, with the
same budget of environment steps, and stops at the task's threshold. ``ppo`` is
Stable-Baselines3's PPO (default hyperparameters, ``MlpPolicy``) on the raw environment, its
deterministic policy scored on the same episodes every ``--ppo-eval-every`` training steps;
only its training steps are counted (its scoring episodes are free, which favours it).

Per task and method the table gives how many seeds reached the threshold, the median steps to
it with the [25 %, 75 %] spread (a seed that did not reach it counts as never: ``>budget``),
the median wall and CPU seconds and joules per run (estimated unless a RAPL counter was read),
the evaluations (policies tried) to the threshold likewise, the median best return at the
end, the median steps per evaluation (what one policy tried
costs: a policy that balances longer costs more), and one-sided tests that ``qubo`` (``--reference``) needs fewer steps than each other method: Mann-Whitney U
over seeds, and the paired Wilcoxon signed-rank test (seed k of one method against seed k of
the other, same episodes; a run that never reached the threshold counts the steps it spent,
which understates its cost). Raw runs, with each run's best-so-far return against steps, are
written with :func:`qopt.bench.write_results`.

    python benchmarks/rl/run.py --seeds 3                               # quick
    python benchmarks/rl/run.py --seeds 10 --methods qubo cem es random  # the full protocol
    python benchmarks/rl/run.py --tasks cartpole-linear --methods qubo ppo --seeds 3 --plot rl.png
    python benchmarks/rl/run.py --report benchmarks/results/rl-*.json --methods qubo-bocs \
        qubo cem es random ppo --reference qubo-bocs         # pool saved runs into one table

``--methods`` takes ``qubo-bocs`` too (the sparse Bayesian surrogate); ``--qubo-options`` adds
QuboSearch options (JSON) to the QUBO arms.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from qopt.bench import machine_info, read_results, results_path, write_results
from qopt.metering import Meter
from qopt.policy_search import (
    EpisodeEvaluator,
    LinearPolicy,
    Policy,
    TabularPolicy,
    search_policy,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Task:
    """An environment, a policy parameterization of it, the threshold and the budget."""

    env: str
    make_policy: Callable[[EpisodeEvaluator], Policy]
    target: float
    budget: int
    n_episodes: int = 2
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)


TASKS = {
    # 5 weights (4 + bias) at 5 levels: 3125 policies.
    "cartpole-linear": Task(
        "CartPole-v1", lambda e: LinearPolicy(e.observation_space, e.action_space), 475, 50_000
    ),
    # One action per cell of the pole angle x angular velocity grid (6 x 6): 36 bits.
    "cartpole-tabular": Task(
        "CartPole-v1",
        lambda e: TabularPolicy(
            e.observation_space,
            e.action_space,
            bins=(1, 1, 6, 6),
            low=(-2.4, -3, -0.21, -2),
            high=(2.4, 3, 0.21, 2),
        ),
        475,
        50_000,
    ),
    # 16 states x 4 actions (64 bits), reward 1 only at the goal; a failed episode is short,
    # so 20k steps are ~1000 evaluations (the QUBO search's cost grows with them).
    "frozenlake": Task(
        "FrozenLake-v1",
        lambda e: TabularPolicy(e.observation_space, e.action_space),
        1.0,
        20_000,
        n_episodes=1,
        env_kwargs={"is_slippery": False},
    ),
    # 3 actions x (2 + bias) weights at 5 levels.
    "mountaincar-linear": Task(
        "MountainCar-v0",
        lambda e: LinearPolicy(e.observation_space, e.action_space),
        -110,
        100_000,
    ),
    # 3 actions x (6 + bias) weights at 5 levels.
    "acrobot-linear": Task(
        "Acrobot-v1",
        lambda e: LinearPolicy(e.observation_space, e.action_space),
        -100,
        100_000,
    ),
}
#: Taxi's pick-up and drop-off squares (R, G, Y, B) as (row, column).
TAXI_STOPS = np.array([(0, 0), (0, 4), (4, 0), (4, 3)])


def taxi_states(observations: np.ndarray) -> np.ndarray:
    """A state abstraction of Taxi's 500 states into 108 that lose nothing a policy needs.

    Taxi's state is ``((row * 5 + column) * 5 + passenger) * 4 + destination`` (passenger 4:
    in the taxi). The taxi heads for one stop, the passenger's or (carrying) the
    destination: away from it the state is the square and that stop (25 x 4); on it, the
    stop and whether the passenger is aboard (4 x 2), which decides pick-up or drop-off.
    """
    s = np.asarray(observations, dtype=np.int64).reshape(-1)
    destination, passenger = s % 4, (s // 4) % 5
    column, row = (s // 20) % 5, s // 100
    carrying = passenger == 4
    stop = np.where(carrying, destination, passenger)
    on_stop = (row == TAXI_STOPS[stop, 0]) & (column == TAXI_STOPS[stop, 1])
    return np.where(on_stop, 100 + 2 * stop + carrying, (row * 5 + column) * 4 + stop)


TASKS["taxi"] = Task(
    # 108 abstract states x 6 actions (648 bits; the raw 500-state table is 3000).
    "Taxi-v4",
    lambda e: TabularPolicy(
        e.observation_space, e.action_space, state_map=taxi_states, n_states=108
    ),
    8,
    20_000,
    n_episodes=1,
)
#: The core arms: a search_policy method and its options. ``qubo-bocs``: the sparse Bayesian
#: surrogate with Thompson sampling, which explores more than the factorization machine.
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "qubo": ("qubo", {}),
    "qubo-bocs": ("qubo", {"surrogate": "bocs"}),
    "cem": ("cem", {}),
    "es": ("es", {}),
    "random": ("random", {}),
}
CORE_METHODS = ("qubo", "cem", "es", "random")


class ModelPolicy(Policy):
    """A trained Stable-Baselines3 model, acting deterministically, scored like the others."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.action_kind = "discrete"

    def parameters(self) -> dict[str, Any]:
        return {}

    def act(self, params: Mapping[str, Any], observations: np.ndarray) -> np.ndarray:
        actions, _ = self.model.predict(observations, deterministic=True)
        return np.asarray(actions)

    def describe(self) -> dict[str, Any]:
        return {"policy": "sb3"}


def curve(returns: list[float], steps: list[int]) -> list[tuple[int, float]]:
    """Best-so-far return against cumulative environment steps."""
    points, spent, best = [], 0, -math.inf
    for value, n in zip(returns, steps, strict=True):
        spent += n
        best = max(best, value)
        points.append((spent, best))
    return points


def arm_of(name: str, qubo_options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The search_policy method and options of an arm (``--qubo-options`` for QUBO arms)."""
    method, options = ARMS[name]
    return method, options | dict(qubo_options) if method == "qubo" else options


def run_core(task: Task, method: str, options: Mapping[str, Any], seed: int) -> dict[str, Any]:
    episodes = EpisodeEvaluator(
        task.env, n_episodes=task.n_episodes, seed=1000 * seed, env_kwargs=task.env_kwargs
    )
    policy = task.make_policy(episodes)
    with Meter() as meter:
        result = search_policy(
            policy,
            episodes,
            budget_steps=task.budget,
            method=method,
            seed=seed,
            target_return=task.target,
            search_options=options,
        )
    return {
        "steps_to_target": result.steps_to(task.target),
        "steps_spent": result.total_steps,
        "best_return": result.best_return,
        "evaluations": len(result.returns),
        "curve": curve(result.returns, result.steps),
        **reading(meter),
    }


def run_ppo(task: Task, seed: int, eval_every: int) -> dict[str, Any]:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    episodes = EpisodeEvaluator(
        task.env, n_episodes=task.n_episodes, seed=1000 * seed, env_kwargs=task.env_kwargs
    )
    points: list[tuple[int, float]] = []

    class Score(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every:
                return True
            value, _ = episodes.evaluate(ModelPolicy(self.model), {})
            best = max(value, points[-1][1]) if points else value
            points.append((self.num_timesteps, best))
            return value < task.target

    env = gym.make(task.env, **task.env_kwargs)
    with Meter() as meter:
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
        model.learn(total_timesteps=task.budget, callback=Score())
    reached = next((s for s, v in points if v >= task.target), None)
    return {
        "steps_to_target": reached,
        "steps_spent": points[-1][0] if points else task.budget,
        "best_return": points[-1][1] if points else None,
        "evaluations": len(points),
        "curve": points,
        **reading(meter),
    }


def reading(meter: Meter) -> dict[str, Any]:
    r = meter.reading
    return {
        "wall_s": r.wall_s,
        "cpu_s": r.cpu_s,
        "joules": r.energy.joules,
        "energy_provenance": r.energy.provenance,
    }


def steps_or_inf(row: Mapping[str, Any]) -> float:
    value = row["steps_to_target"]
    return math.inf if value is None else float(value)


def spread(values: list[float], never_label: str) -> str:
    """Median [25 %, 75 %] of values where inf means never; a quantile that touches a never
    shows ``never_label``."""
    never = 1e18

    def show(v: float) -> str:
        return never_label if v > never / 10 else f"{v:.0f}"

    finite = np.minimum(np.asarray(values, dtype=float), never)
    q25, q50, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
    return f"{show(q50)} [{show(q25)}, {show(q75)}]"


COLUMNS = (
    ("task", 20),
    ("method", 10),
    ("solved", 8),
    ("steps to threshold", 30),
    ("evaluations to it", 22),
    ("best return", 13),
    ("steps/eval", 12),
    ("wall s", 9),
    ("CPU s", 9),
    ("joules", 10),
    ("MWU p", 9),
    ("Wilcoxon p", 10),
)


def table(rows: list[dict[str, Any]], reference: str = "qubo", markdown: bool = False) -> str:
    """The steps-to-threshold table, as aligned text or (``markdown``) a Markdown table."""
    cells = []
    order = [*ARMS, "ppo"]
    for task_name in [t for t in TASKS if any(r["task"] == t for r in rows)]:
        task = TASKS[task_name]
        by_method: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(rows, key=lambda r: order.index(r["method"])):
            if r["task"] == task_name:
                by_method.setdefault(r["method"], []).append(r)
        qubo = sorted(by_method.get(reference, []), key=lambda r: r["seed"])
        for method, runs in by_method.items():
            runs = sorted(runs, key=lambda r: r["seed"])
            steps = [steps_or_inf(r) for r in runs]
            solved = sum(math.isfinite(s) for s in steps)
            evaluations = [
                r["evaluations"] if math.isfinite(s) else math.inf
                for r, s in zip(runs, steps, strict=True)
            ]
            mwu = wil = "-"
            if method != reference and qubo:
                p = test_mwu(qubo, runs)
                mwu = "n/a" if math.isnan(p) else f"{p:.3g}"
                wil = test_wilcoxon(qubo, runs)
            joules = [r["joules"] for r in runs if r["joules"] is not None]
            cells.append(
                [
                    task_name,
                    method,
                    f"{solved}/{len(runs)}",
                    spread(steps, f">{task.budget}"),
                    spread(evaluations, "never"),
                    f"{statistics.median(r['best_return'] for r in runs):.4g}",
                    f"{statistics.median(r['steps_spent'] / r['evaluations'] for r in runs):.0f}",
                    f"{statistics.median(r['wall_s'] for r in runs):.2f}",
                    f"{statistics.median(r['cpu_s'] for r in runs):.2f}",
                    f"{(statistics.median(joules) if joules else math.nan):.0f}",
                    mwu,
                    wil,
                ]
            )
    names = [name for name, _ in COLUMNS]
    if markdown:
        lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    header = "".join(f"{name:<{width}}" for name, width in COLUMNS)
    body = ["".join(f"{c:<{w}}" for c, (_, w) in zip(row, COLUMNS, strict=True)) for row in cells]
    return "\n".join([header, "-" * len(header), *body])


def test_mwu(qubo: list[dict[str, Any]], other: list[dict[str, Any]]) -> float:
    """One-sided Mann-Whitney U: qubo's steps to the threshold are smaller."""
    a, b = [steps_or_inf(r) for r in qubo], [steps_or_inf(r) for r in other]
    if all(math.isinf(v) for v in a + b):
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="less").pvalue)


def test_wilcoxon(qubo: list[dict[str, Any]], other: list[dict[str, Any]]) -> str:
    """One-sided paired Wilcoxon signed-rank on the seeds both ran (unsolved: steps spent)."""
    other_by_seed = {r["seed"]: r for r in other}
    pairs = [(q, other_by_seed[q["seed"]]) for q in qubo if q["seed"] in other_by_seed]

    def cost(r: Mapping[str, Any]) -> float:
        return float(r["steps_to_target"] or r["steps_spent"])

    differences = [cost(q) - cost(o) for q, o in pairs]
    if len(differences) < 2 or not any(differences):
        return "n/a"
    return f"{stats.wilcoxon(differences, alternative='less').pvalue:.3g}"


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a saved results file (``.json``, or ``.json.gz`` as committed)."""
    return list(read_results(path)["runs"])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    n_cols = min(3, len(tasks))
    n_rows = -(-len(tasks) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.5 * n_cols, 3.5 * n_rows), squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task_name in zip(axes.flat, tasks, strict=False):
        budget = TASKS[task_name].budget
        grid = np.linspace(0, budget, 101)
        present = {r["method"] for r in rows if r["task"] == task_name}
        for method in [m for m in [*ARMS, "ppo"] if m in present]:
            curves = []
            for r in rows:
                if r["task"] == task_name and r["method"] == method and r["curve"]:
                    s, v = np.array(r["curve"], dtype=float).T
                    index = np.searchsorted(s, grid, side="right") - 1
                    curves.append(np.where(index >= 0, v[np.maximum(index, 0)], np.nan))
            if curves:
                # Once a run stops at the threshold its best return stays there.
                colour = f"C{[*ARMS, 'ppo'].index(method)}"
                ax.plot(grid, np.nanmedian(np.array(curves), axis=0), label=method, color=colour)
        ax.axhline(TASKS[task_name].target, color="grey", lw=0.8, ls="--")
        ax.set(title=task_name, xlabel="environment steps", ylabel="best return (median)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument(
        "--methods", nargs="+", choices=[*ARMS, "ppo"], default=[*CORE_METHODS, "ppo"]
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds first .. first + N - 1")
    parser.add_argument("--first-seed", type=int, default=0, help="100 and up: tuning seeds")
    parser.add_argument("--ppo-seeds", type=int, default=None, help="PPO's seeds (default --seeds)")
    parser.add_argument("--ppo-eval-every", type=int, default=2048)
    parser.add_argument(
        "--qubo-options", type=json.loads, default={}, help="QuboSearch options, as JSON"
    )
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--plot", type=Path, default=None, help="return-vs-steps figure (PNG)")
    parser.add_argument("--reference", default="qubo", help="the arm the tests compare with")
    parser.add_argument(
        "--report", nargs="+", type=Path, default=None, help="pool saved runs; run nothing"
    )
    parser.add_argument("--markdown", action="store_true", help="--report: a Markdown table")
    args = parser.parse_args()
    if args.report:
        rows = [r for f in args.report for r in read_runs(f)]
        rows = [r for r in rows if r["task"] in args.tasks and r["method"] in args.methods]
        print(table(rows, args.reference, markdown=args.markdown))
        if args.plot is not None:
            plot(rows, args.plot)
        return

    for name, task in TASKS.items():
        TASKS[name] = replace(task, budget=int(task.budget * args.budget_scale))
    path = results_path(args.out, "rl")
    rows: list[dict[str, Any]] = []
    for task_name in args.tasks:
        task = TASKS[task_name]
        for method in args.methods:
            n_seeds = (
                args.ppo_seeds if method == "ppo" and args.ppo_seeds is not None else args.seeds
            )
            for seed in range(args.first_seed, args.first_seed + n_seeds):
                if method == "ppo":
                    row = run_ppo(task, seed, args.ppo_eval_every)
                else:
                    row = run_core(task, *arm_of(method, args.qubo_options), seed)
                row = {"task": task_name, "method": method, "seed": seed, **row}
                rows.append(row)
                print(
                    f"{task_name:<20}{method:<8}seed {seed}: steps to {task.target:g} "
                    f"{row['steps_to_target']}, best {row['best_return']}, "
                    f"{row['evaluations']} evaluations, {row['wall_s']:.1f} s",
                    flush=True,
                )
            payload = {
                "machine": machine_info(),
                "config": {
                    **vars(args),
                    "out": str(args.out),
                    "plot": str(args.plot),
                    "tasks_config": {
                        n: {
                            "env": t.env,
                            "target": t.target,
                            "budget": t.budget,
                            "n_episodes": t.n_episodes,
                            "env_kwargs": dict(t.env_kwargs),
                        }
                        for n, t in TASKS.items()
                    },
                },
                "runs": rows,
            }
            write_results(path, payload)
    print()
    print(table(rows, args.reference))
    provenance = sorted({r["energy_provenance"] for r in rows})
    print(f"joules: {', '.join(provenance)} (qopt.metering.Meter); raw results: {path}")
    if args.plot is not None:
        plot(rows, args.plot)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
