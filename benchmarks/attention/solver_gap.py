"""How far the annealer's extra blocks fall from the greedy ones on real statistics.

Trains the benchmark's language model with per-sequence top-k (``TopKSelector``) for --steps
steps, gathers what ``QuboAttentionCallback`` would (the attention mass the top-k blocks leave,
key redundancy; --batches training batches), and selects the extra blocks for the budget top-k
leaves, per layer: greedily and with the QUBO (simulated annealing at several reads x sweeps,
and the exact penalty encoding). Prints the objective (``selection_value``) of each beside
greedy's and how many block pairs differ; writes the rows to --out.

    python benchmarks/attention/solver_gap.py            # seed 100, 25%, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

from qopt.problems.attention import (
    even_share,
    greedy_selection,
    remaining_budget,
    selection_value,
    solve_attention,
)
from qopt.sparse_attention import TopKSelector, block_statistics

SETTINGS = (  # (label, solve_attention options)
    ("sa 4 x 200 (default)", {"solver_options": {"num_reads": 4, "num_sweeps": 200}}),
    ("sa 4 x 1000", {"solver_options": {"num_reads": 4, "num_sweeps": 1000}}),
    ("sa 16 x 1000", {"solver_options": {"num_reads": 16, "num_sweeps": 1000}}),
    ("sa 4 x 200, penalty encoding", {"budget_encoding": "penalty"}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "solver-gap.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    model_args = argparse.Namespace(
        seq_len=256, block_size=8, d_model=64, heads=4, layers=2, batch_size=16, lr=3e-3,
        val_sequences=32, eval_every=0,
    )  # fmt: skip
    corpus = run.stdlib_corpus(2_000_000)
    torch.manual_seed(args.seed)
    model = run.CharLM(model_args)
    blocks = model_args.seq_len // model_args.block_size
    budget = run.budget_of(args.fraction, model_args.heads, blocks)
    share = even_share(model_args.heads, blocks, budget)
    for module in model.attention_modules():
        module.selector = TopKSelector(share, model_args.block_size)
    run.train(model, corpus, model_args, args.seed, args.steps)
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
    rest = remaining_budget(model_args.heads, blocks, budget, spent)
    rows = []
    for layer, (score_sum, redundancy_sum) in sums.items():
        scores = (score_sum / args.batches).double().numpy()
        redundancy = (redundancy_sum / args.batches).double().numpy()
        greedy = greedy_selection(scores, rest, redundancy=redundancy)
        best = selection_value(greedy, scores, redundancy=redundancy)
        for label, options in (("greedy", None), *SETTINGS):
            started = time.perf_counter()
            if options is None:
                chosen = greedy
            else:
                merged = {"solver_options": {"seed": 0}, **options}
                merged["solver_options"] = {"seed": 0, **options.get("solver_options", {})}
                chosen = solve_attention(scores, rest, redundancy=redundancy, **merged).value
            value = selection_value(chosen, scores, redundancy=redundancy)
            rows.append(
                {
                    "layer": layer,
                    "method": label,
                    "objective": value,
                    "vs_greedy": value / best - 1,
                    "pairs": int(chosen.sum()),
                    "differ": int((chosen != greedy).sum()),
                    "seconds": time.perf_counter() - started,
                }
            )
    header = f"{'layer':<6}{'method':<32}{'objective':>10}{'vs greedy':>11}{'pairs':>7}{'differ':>8}{'s':>7}"
    print(
        f"Extra blocks for the {rest - model_args.heads * blocks} pairs top-k leaves at "
        f"{args.fraction:.1%} (seed {args.seed}, top-k model after {args.steps} steps)\n{header}"
    )
    for r in rows:
        print(
            f"{r['layer']:<6}{r['method']:<32}{r['objective']:>10.5f}{r['vs_greedy']:>+11.2%}"
            f"{r['pairs']:>7}{r['differ']:>8}{r['seconds']:>7.2f}"
        )
    args.out.write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1)
    )
    print(f"\nraw results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
