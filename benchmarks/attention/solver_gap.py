"""How the annealer's extra blocks compare with greedy's and with the proven optimum.

Trains the benchmark's language model with per-sequence top-k (``TopKSelector``) for --steps
steps, gathers what ``QuboAttentionCallback`` would (the attention mass the top-k blocks leave,
key redundancy; --batches training batches), and selects the extra blocks for the budget top-k
leaves, per layer: greedily; with the QUBO on simulated annealing, warm-started from greedy
(``solve_attention``'s default) and alone (``warm_start=None``) at several reads x sweeps,
and in the penalty encoding; and exactly (``optimal_selection``: a mixed-integer program on
scipy's HiGHS, which proves the optimum). Prints the objective
(``selection_value``) of each beside greedy's and the optimum, and how many block pairs
differ from greedy's; writes the rows to --out.

    python benchmarks/attention/solver_gap.py     # seeds 100-102, 12.5% and 25%, ~15 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

from qopt.problems.attention import (
    even_share,
    greedy_selection,
    optimal_selection,
    remaining_budget,
    selection_value,
    solve_attention,
)
from qopt.sparse_attention import TopKSelector, block_statistics

SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (  # (label, solve_attention options)
    ("sa 4 x 200, warm start (default)", {}),
    ("sa 4 x 200 alone", {"warm_start": None}),
    ("sa 16 x 1000 alone", {"warm_start": None, "num_reads": 16, "num_sweeps": 1000}),
    ("sa 4 x 200 alone, penalty encoding", {"warm_start": None, "budget_encoding": "penalty"}),
)


def statistics(seed: int, fraction: float, args: argparse.Namespace) -> tuple[list[Any], int]:
    """Per layer, the mean (scores, redundancy) the callback would see; the budget left."""
    model_args = argparse.Namespace(
        seq_len=256, block_size=8, d_model=64, heads=4, layers=2, batch_size=16, lr=3e-3,
        val_sequences=32, eval_every=0,
    )  # fmt: skip
    corpus = run.stdlib_corpus(2_000_000)
    torch.manual_seed(seed)
    model = run.CharLM(model_args)
    blocks = model_args.seq_len // model_args.block_size
    budget = run.budget_of(fraction, model_args.heads, blocks)
    share = even_share(model_args.heads, blocks, budget)
    for module in model.attention_modules():
        module.selector = TopKSelector(share, model_args.block_size)
    run.train(model, corpus, model_args, seed, args.steps)
    model.train()  # record statistics, as in training
    data = run.batches(corpus, model_args.seq_len, 16 * args.batches, 7, held_out=False)
    sums: dict[int, list[torch.Tensor]] = {}
    spent = 0
    with torch.no_grad():
        for start in range(0, len(data), 16):
            model(data[start : start + 16, :-1])
            for layer, module in enumerate(model.attention_modules()):
                covered = module.covered_blocks()
                assert covered is not None
                stats = block_statistics(*module.pooled_statistics(), covered)  # type: ignore[misc]
                spent = max(spent, int(covered.sum(dim=(1, 2, 3)).max()))
                sums[layer] = (
                    [a + b for a, b in zip(sums[layer], stats, strict=True)]
                    if layer in sums
                    else list(stats)
                )
    layers = [
        tuple((s / args.batches).double().numpy() for s in sums[layer]) for layer in sorted(sums)
    ]
    return layers, remaining_budget(model_args.heads, blocks, budget, spent)


def compare(
    seed: int, fraction: float, layer: int, scores: np.ndarray, redundancy: np.ndarray, rest: int
) -> list[dict[str, Any]]:
    """One row per method on one layer's statistics."""
    greedy = greedy_selection(scores, rest, redundancy=redundancy)
    started = time.perf_counter()
    exact = optimal_selection(scores, rest, redundancy=redundancy, time_limit=600)
    exact_s = time.perf_counter() - started
    best = selection_value(greedy, scores, redundancy=redundancy)
    optimum = selection_value(exact, scores, redundancy=redundancy)
    candidates: list[tuple[str, np.ndarray, float]] = [
        ("greedy", greedy, 0.0),
        ("exact (MILP, HiGHS)", exact, exact_s),
    ]
    for label, options in SETTINGS:
        options = dict(options)
        solver_options = {"seed": 0}
        for name in ("num_reads", "num_sweeps"):
            if name in options:
                solver_options[name] = options.pop(name)
        started = time.perf_counter()
        chosen = solve_attention(
            scores, rest, redundancy=redundancy, solver_options=solver_options, **options
        ).value
        candidates.append((label, chosen, time.perf_counter() - started))
    rows = []
    for label, chosen, seconds in candidates:
        value = selection_value(chosen, scores, redundancy=redundancy)
        rows.append(
            {
                "seed": seed,
                "fraction": fraction,
                "layer": layer,
                "method": label,
                "objective": value,
                "vs_greedy": value / best - 1,
                "vs_optimum": value / optimum - 1,
                "proven_optimum": True,  # optimal_selection raises without a proof
                "pairs": int(chosen.sum()),
                "differ": int((chosen != greedy).sum()),
                "seconds": seconds,
            }
        )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    instances = {(r["seed"], r["fraction"], r["layer"]) for r in rows}
    proven = sum(r["proven_optimum"] for r in rows if r["method"] == "greedy")
    lines = [
        f"{len(instances)} instances (seed x fraction x layer), optimum proven on {proven}. "
        "Objective against greedy's and the optimum: median [min, max]; instances where the "
        "method reached the optimum, and where it scored above and below greedy (within 1e-9)",
        f"{'method':<38}{'vs greedy':>32}{'vs optimum':>32}{'optimal':>9}{'above':>7}"
        f"{'below':>7}{'differ':>8}{'s':>7}",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]

        def summary(key: str, mine: list[dict[str, Any]] = mine) -> str:
            v = np.array([r[key] for r in mine])
            return f"{np.median(v):+.3%} [{v.min():+.3%}, {v.max():+.3%}]"

        optimal = sum(abs(r["vs_optimum"]) <= 1e-9 for r in mine)
        above = sum(r["vs_greedy"] > 1e-9 for r in mine)
        below = sum(r["vs_greedy"] < -1e-9 for r in mine)
        lines.append(
            f"{method:<38}{summary('vs_greedy'):>32}{summary('vs_optimum'):>32}"
            f"{optimal:>5}/{len(mine):<3}{above:>7}{below:>7}"
            f"{np.median([r['differ'] for r in mine]):>8.0f}"
            f"{np.median([r['seconds'] for r in mine]):>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.125, 0.25])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--from-results", type=Path, default=None, help="print a saved run")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "solver-gap.json"
    )
    args = parser.parse_args(argv)
    if args.from_results is not None:
        print(report(json.loads(args.from_results.read_text())["rows"]))
        return 0
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for fraction in args.fractions:
            layers, rest = statistics(seed, fraction, args)
            for layer, (scores, redundancy) in enumerate(layers):
                rows += compare(seed, fraction, layer, scores, redundancy, rest)
            print(f"  seed {seed} fraction {fraction} done", flush=True)
            settings = {k: str(v) for k, v in vars(args).items()}
            args.out.write_text(json.dumps({"args": settings, "rows": rows}, indent=1))
    print(
        f"Extra blocks for the budget top-k leaves (top-k model after {args.steps} steps, "
        f"seeds {args.seeds}, fractions {args.fractions})\n{report(rows)}"
    )
    print(f"\nraw results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
