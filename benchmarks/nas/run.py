"""NAS-Bench-201 CIFAR-10 under a parameter budget: qopt's QUBO sampler against the baselines.

For each sampler, seed and evaluation budget: the regret of the reported best architecture
(the table's mean val_acc of the optimum within the parameter budget minus that of the
architecture with the best observed value) and whether the optimum was evaluated. Prints
mean, median and quartiles of the regret and the fraction of runs finding the optimum; writes
raw results as JSON to benchmarks/results/nas-<time>.json.

Sampler names: ``qubo``, ``random``, ``evolution``, ``local``, ``tpe``, ``nsga2``; a QUBO
sampler variant is ``qubo:key=value,...`` with QuboSampler options (``surrogate=bocs``,
``target_transform=exp``) or ``startup=N`` (start design length).

    python benchmarks/nas/run.py --seeds 50 --evaluations 25 50 100 150
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from qopt.bench import results_path, write_results


def parse_sampler(spec: str) -> tuple[str, int, dict[str, Any]]:
    """``"qubo:surrogate=bocs,startup=20"`` -> ``("qubo", 20, {"surrogate": "bocs"})``."""
    name, _, rest = spec.partition(":")
    startup, options = 10, {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "startup":
            startup = int(value)
        else:
            options[key] = value
    return name, startup, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--evaluations", type=int, nargs="+", default=[25, 50, 100, 150])
    parser.add_argument(
        "--samplers", nargs="+", default=["qubo", "random", "evolution", "local", "tpe"]
    )
    parser.add_argument("--max-mparams", type=float, default=0.6, help="parameter budget (M)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = parser.parse_args()

    from qopt.nas import nas_bench_201_space
    from qopt.nas._objectives import _NB201Table, nb201_key

    space = nas_bench_201_space(max_mparams=args.max_mparams)
    means = _NB201Table("cifar10", 0).mean_val_acc()
    feasible = {nb201_key(a): a for a in space.iter_architectures() if space.within_budget(a)}
    optimum_key = max(feasible, key=lambda k: means[k])
    optimum = means[optimum_key]
    longest = max(args.evaluations)
    raw: list[dict[str, Any]] = []
    for sampler in args.samplers:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            # One run to the longest budget; shorter budgets read its prefix (same trajectory).
            summary, history = _run(space, sampler, seed, longest)
            wall = time.perf_counter() - start
            for n in args.evaluations:
                prefix = history[:n]
                best = max(prefix, key=lambda h: h[1])
                raw.append(
                    {
                        "sampler": sampler,
                        "seed": seed,
                        "evaluations": n,
                        "regret": optimum - means[best[0]],
                        "found_optimum": any(k == optimum_key for k, _ in prefix),
                        "over_budget_evaluated": summary.n_over_budget_evaluated,
                        "rejected": summary.n_rejected,
                        "wall_s_full_run": wall,
                    }
                )
    print(
        f"NAS-Bench-201 CIFAR-10, params <= {args.max_mparams} M: {len(feasible)} of "
        f"{space.size} architectures fit; optimum mean val_acc {optimum:.3f} %; "
        f"{args.seeds} seeds"
    )
    print(table(raw, args.samplers, args.evaluations))
    path = write_results(
        results_path(args.out, "nas"), {"args": vars(args), "optimum": optimum, "results": raw}
    )
    print(f"raw results written to {path}")


def table(raw: list[dict[str, Any]], samplers: list[str], evaluations: list[int]) -> str:
    """Markdown table: regret mean +- standard error, median [quartiles], found optimum."""
    lines = [
        "| sampler | evals | mean regret (± s.e.) | median [q25, q75] | found optimum | "
        "over budget | rejected |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sampler in samplers:
        for n in evaluations:
            rows = [r for r in raw if r["sampler"] == sampler and r["evaluations"] == n]
            regret = np.array([r["regret"] for r in rows])
            q25, q50, q75 = np.percentile(regret, [25, 50, 75])
            se = regret.std(ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else float("nan")
            lines.append(
                f"| {sampler} | {n} | {regret.mean():.3f} ± {se:.3f} | {q50:.3f} "
                f"[{q25:.3f}, {q75:.3f}] | {np.mean([r['found_optimum'] for r in rows]):.2f} | "
                f"{sum(r['over_budget_evaluated'] for r in rows)} | "
                f"{sum(r['rejected'] for r in rows)} |"
            )
    return "\n".join(lines)


def _run(space: Any, sampler: str, seed: int, n: int) -> tuple[Any, list[tuple[str, float]]]:
    """Run one in-memory search; the (table key, observed val_acc) of each evaluation in order."""
    import optuna

    from qopt.nas._objectives import nb201_key
    from qopt.nas._runner import _Job, _open_study, _summarize, _worker
    from qopt.nas._samplers import trial_architecture

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, startup, options = parse_sampler(sampler)
    study = _open_study(space, optuna.storages.InMemoryStorage(), name, create=True)
    job = _Job(space.to_dict(), None, None, name, seed, n, "sa", startup, options)
    _worker(job, 0, space=space, study=study)
    history = []
    for t in sorted(
        study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number
    ):
        arch = trial_architecture(t)
        assert arch is not None
        history.append((nb201_key(arch), float(t.values[0])))
    return _summarize(study, space, name), history


if __name__ == "__main__":
    main()
