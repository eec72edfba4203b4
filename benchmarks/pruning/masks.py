"""Compare pruning masks alone: every mask is pruned and fine-tuned the same way.

run.py's QUBO arm fine-tunes inside the callback (masks on the full-size model, Adam state
from the calibration epoch of the unpruned network); its baselines prune first and then
fine-tune. To tell the selection apart from that, this script builds every candidate mask on
the same trained model and sends each through the same path as run.py's baselines: remove
the units, one calibration epoch at learning rate 0, --finetune-epochs epochs of Adam on the
same batches. Per mask it records which units differ from uniform L1's, the cross-entropy of
the pruned model on the first 256 training samples *before* fine-tuning (the "calibration
loss" a data-driven selection would minimize), and the accuracy change after fine-tuning.

Candidates: ``l1`` (uniform, Li et al. 2017), ``taylor`` (global greedy, Molchanov et al.
2019), and QUBO variants from QuboPruningCallback (selection only, no fine-tuning):
``qubo`` (the callback's defaults), ``qubo-no-path`` (path_norm=False: incoming L1 norm
alone), ``qubo-alpha1-no-path`` (alpha=1, incoming norm: importance only, no redundancy); with --reads N also the N
best distinct SA reads of the default QUBO problem, decoded (repair, fill, polish) as the
callback decodes its best one. The summary adds "min-loss" rows: per seed, the candidate of
a pool with the lowest calibration loss.

By default the data is the validation split of tune.py (the training part split 75/25);
--test uses run.py's test split (for diagnosis only, never for choosing settings).

    python benchmarks/pruning/masks.py --models mlp --seeds 20 --first-seed 100
    python benchmarks/pruning/masks.py --models mlp --seeds 20 --test --speedups 2 --reads 6 \\
        --variants qubo
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qopt.integrations.lightning import QuboPruningCallback
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    EXAMPLE,
    MODELS,
    REPO,
    accuracy,
    count_params_and_macs,
    data,
    fit,
    global_greedy,
    magnitude_importance,
    make_model,
    taylor_scores,
    top_masks,
    uniform_counts,
)

from qopt.bench import read_results, results_path, write_results
from qopt.model_analysis import model_pruning_groups

VARIANTS: dict[str, dict[str, Any]] = {
    "qubo": {},
    "qubo-no-path": {"path_norm": False},
    "qubo-alpha1-no-path": {"alpha": 1.0, "path_norm": False},
}


@torch.no_grad()
def calibration_loss(model: nn.Module, loader: Any, limit: int = 256) -> float:
    """Mean cross-entropy on the first ``limit`` training samples, in evaluation mode."""
    model.eval()
    total, seen = 0.0, 0
    for x, y in loader:
        if seen >= limit:
            break
        total += float(nn.functional.cross_entropy(model(x), y, reduction="sum"))
        seen += len(y)
    return total / seen


def qubo_masks(
    base: nn.Module,
    kind: str,
    train: Any,
    speedup: float,
    seed: int,
    options: dict[str, Any],
    reads: int,
) -> list[dict[str, np.ndarray]]:
    """The callback's selection (no fine-tuning), then up to ``reads`` other decoded reads."""
    model = copy.deepcopy(base)
    callback = QuboPruningCallback(
        target_ratio=1.0 / speedup,
        epochs=[0],
        solver="sa",
        solver_options={"num_reads": 32, "seed": seed},
        remove=False,
        **options,
    )
    fit(model, EXAMPLE[kind], train, 0, 1e-3, [callback], seed)
    # The callback sees the model inside the LightningModule: "net.0" is "0" here.
    masks = [{k.removeprefix("net."): v.numpy().astype(bool) for k, v in callback.masks.items()}]
    assert callback.last_selection is not None
    problem, solution = callback.last_selection.problem, callback.last_selection.solution
    seen = {tuple(np.concatenate(list(masks[0].values())).tolist())}
    for sample in solution.sampleset.data(["sample"], sorted_by="energy"):
        if len(masks) > reads:
            break
        decoded = problem.decode(dict(problem.repair(dict(sample.sample))))
        mask = {k.removeprefix("net."): np.asarray(v, dtype=bool) for k, v in decoded.items()}
        key = tuple(np.concatenate([mask[k] for k in masks[0]]).tolist())
        if key not in seen:
            seen.add(key)
            masks.append(mask)
    return masks


def summary(runs: list[dict[str, Any]], reads: int, reference: str = "qubo") -> None:
    """Median/mean accuracy change per candidate, paired wins/ties/losses, min-loss rows.

    ``reference`` is the QUBO mask the reads and the min-loss pools start from.
    """
    cells = sorted({(r["model"], r["speedup"]) for r in runs})
    for kind, speedup in cells:
        table: dict[int, dict[str, dict[str, Any]]] = {}
        for r in runs:
            if (r["model"], r["speedup"]) == (kind, speedup):
                table.setdefault(r["seed"], {})[r["mask"]] = r
        pools = {f"min-loss({reference}, l1)": [reference, "l1"]}
        if reads:
            pools[f"min-loss({reference}, reads)"] = [reference] + [
                f"read{i}" for i in range(1, reads + 1)
            ]
        for name, pool in pools.items():
            for row in table.values():
                options = [row[m] for m in pool if m in row]
                if len(options) > 1 and all(r["calibration_loss"] is not None for r in options):
                    row[name] = min(options, key=lambda r: r["calibration_loss"])
        names = list(dict.fromkeys(m for row in table.values() for m in row))
        print(f"\n{kind} {speedup:g}x, {len(table)} seeds")
        print(
            f"| mask | accuracy change, median | mean | vs l1 | vs taylor | vs {reference} | "
            "calibration loss, median |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name in names:
            rows = [row for row in table.values() if name in row]
            change = [100 * row[name]["delta"] for row in rows]
            paired = []
            for other in ("l1", "taylor", reference):
                diffs = [
                    100 * (row[name]["delta"] - row[other]["delta"])
                    for row in rows
                    if other in row and other != name
                ]
                wins, losses = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)
                paired.append(f"{wins}/{len(diffs) - wins - losses}/{losses}" if diffs else "")
            losses = [row[name]["calibration_loss"] for row in rows]
            loss = "" if None in losses else f"{statistics.median(losses):.3f}"
            print(
                f"| {name} | {statistics.median(change):+.2f} | {statistics.mean(change):+.2f} | "
                + " | ".join(paired)
                + f" | {loss} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["mlp"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--speedups", type=float, nargs="+", default=[2.0, 3.0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--reads", type=int, default=0, help="other distinct SA reads to try")
    parser.add_argument("--test", action="store_true", help="run.py's test split (diagnosis)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tables", type=Path, nargs="+", default=None, help="summarize saved runs")
    parser.add_argument(
        "--reference", default="qubo", help="with --tables: the QUBO mask the pools start from"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.tables:
        saved = [read_results(path) for path in args.tables]
        reads = max(int(s["args"]["reads"]) for s in saved)
        summary([r for s in saved for r in s["runs"]], reads, args.reference)
        return
    runs: list[dict[str, Any]] = []
    for kind in args.models:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            train, held_out = data(kind, seed, args.batch, validation=not args.test)
            torch.manual_seed(seed)
            base = make_model(kind)
            example = EXAMPLE[kind]
            fit(base, example, train, args.epochs, args.lr, [], seed)
            base_accuracy = accuracy(base, held_out)
            groups = model_pruning_groups(base, example)
            for speedup in args.speedups:
                budget = count_params_and_macs(base, example)[1] / speedup
                l1: dict[str, np.ndarray] = {
                    g.name: np.sum(
                        [magnitude_importance(base.get_submodule(n).weight) for n in g.layers],
                        axis=0,
                    )
                    for g in groups
                }
                candidates = {"l1": top_masks(l1, uniform_counts(groups, budget))}
                scores = taylor_scores(copy.deepcopy(base), groups, train)
                candidates["taylor"] = global_greedy(groups, scores, budget)
                for variant in args.variants:
                    reads = args.reads if variant == "qubo" else 0
                    found = qubo_masks(base, kind, train, speedup, seed, VARIANTS[variant], reads)
                    candidates[variant] = found[0]
                    candidates.update({f"read{i}": m for i, m in enumerate(found[1:], 1)})
                for name, mask in candidates.items():
                    model = copy.deepcopy(base)
                    groups.prune(model, mask)
                    run = {
                        "model": kind,
                        "seed": seed,
                        "speedup": speedup,
                        "mask": name,
                        "kept": {g: int(m.sum()) for g, m in mask.items()},
                        "not_in_l1": {
                            g: int((m & ~candidates["l1"][g]).sum()) for g, m in mask.items()
                        },
                        "calibration_loss": calibration_loss(model, train),
                    }
                    fit(model, example, train, args.finetune_epochs, args.lr, [], seed)
                    run["delta"] = accuracy(model, held_out) - base_accuracy
                    runs.append(run)
                    print(json.dumps(run), flush=True)
    summary(runs, args.reads)
    out = write_results(
        results_path(REPO / "benchmarks" / "results", "pruning-masks"),
        {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
    )
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
