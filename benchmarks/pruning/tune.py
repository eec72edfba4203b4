"""Choose the QUBO pruning hyperparameters on a validation split (never the test split).

For each model and seed, the training part of run.py's split (70% of digits) is split again
75/25 into fit and validation sets; the model is trained on the fit set, pruned by every
configuration in the grid (and by the L1 and Taylor baselines for reference) and fine-tuned
exactly as in run.py, and scored on the validation set. Prints the median validation
accuracy change per configuration and speed-up, with wins / ties / losses against the L1 and
Taylor baselines paired by seed (when they run), and writes the runs to
benchmarks/results/pruning-tune-<time>.json.

    python benchmarks/pruning/tune.py                                   # 5 seeds, mlp and cnn
    python benchmarks/pruning/tune.py --models mlp --alphas 0.5 1.0 --importances taylor l1
    python benchmarks/pruning/tune.py --models mlp --importances l1 --alphas 0.5 --balances 0 10
    python benchmarks/pruning/tune.py --models cnn --importances l1 --alphas 0.5 --balances 0 3 --greedy
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import EXAMPLE, MODELS, REPO, accuracy, data, fit, make_model, run_arm

from qopt.bench import results_path, write_results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--speedups", type=float, nargs="+", default=[2.0, 3.0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--importances", nargs="+", default=["taylor", "l1"])
    parser.add_argument("--balances", type=float, nargs="+", default=[0.0])
    parser.add_argument("--polish", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--path-norms",
        nargs="+",
        choices=("on", "off"),
        default=["on"],
        help="QUBO arm's magnitude: times the next layer's norm (on) or incoming norm alone",
    )
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="also run every QUBO configuration with run.py's qubo-greedy arm (no solver)",
    )
    parser.add_argument("--baselines", nargs="*", default=["l1", "taylor"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--solver", default="sa")
    parser.add_argument("--num-reads", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)

    qubo_arms = ["qubo", "qubo-greedy"] if args.greedy else ["qubo"]
    configs = [
        {"arm": arm, "importance": imp, "alpha": alpha, "balance": balance, "path_norm": path}
        for arm, imp, alpha, balance, path in itertools.product(
            qubo_arms, args.importances, args.alphas, args.balances, args.path_norms
        )
    ] + [{"arm": arm} for arm in args.baselines]
    runs: list[dict[str, Any]] = []
    for kind in args.models:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            train, val = data(kind, seed, args.batch, validation=True)
            torch.manual_seed(seed)
            base = make_model(kind)
            fit(base, EXAMPLE[kind], train, args.epochs, args.lr, [], seed)
            base_accuracy = accuracy(base, val)
            for speedup, config in itertools.product(args.speedups, configs):
                arm_args = copy.copy(args)
                arm_args.importance = config.get("importance", "taylor")
                arm_args.alpha = config.get("alpha", 0.5)
                arm_args.balance = config.get("balance", 0.0)
                arm_args.path_norm = config.get("path_norm", "on") == "on"
                run = run_arm(config["arm"], kind, base, train, val, speedup, arm_args, seed)
                label = (
                    f"{config['arm']} {config['importance']} alpha={config['alpha']:g} "
                    f"balance={config['balance']:g} path-norm={config['path_norm']}"
                    if "importance" in config
                    else config["arm"]
                )
                run.update(config=label, delta=run["accuracy"] - base_accuracy)
                runs.append(run)
                print(f"{kind} seed={seed} {speedup:g}x {label:36s} {100 * run['delta']:+.2f}")
                sys.stdout.flush()

    baselines = [b for b in ("l1", "taylor") if b in args.baselines]
    print(
        "\n| model | speed-up | configuration | validation accuracy change, median [min, max] | "
        + "".join(f"vs {b}: wins / ties / losses | " for b in baselines)
    )
    print("| --- | --- | --- | --- |" + " --- |" * len(baselines))
    for kind, speedup in itertools.product(args.models, args.speedups):
        labels = dict.fromkeys(r["config"] for r in runs)

        def per_seed(label: str, kind: str = kind, speedup: float = speedup) -> dict[int, float]:
            return {
                r["seed"]: 100 * r["delta"]
                for r in runs
                if (r["model"], r["speedup"], r["config"]) == (kind, speedup, label)
            }

        for label in labels:
            deltas = per_seed(label)
            values = list(deltas.values())
            paired = ""
            for baseline in baselines:
                theirs = per_seed(baseline)
                diffs = [deltas[s] - theirs[s] for s in deltas if s in theirs]
                wins, losses = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)
                paired += f" {wins} / {len(diffs) - wins - losses} / {losses} |"
            print(
                f"| {kind} | {speedup:g}x | {label} | {statistics.median(values):+.2f} "
                f"[{min(values):+.2f}, {max(values):+.2f}] |{paired}"
            )
    out = write_results(
        results_path(REPO / "benchmarks" / "results", "pruning-tune"),
        {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
    )
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
