"""Routing overhead from CPU seconds: one training step against one QUBO routing solve.

The goal is routing overhead <= 10% of step time at 1024 tokens x 8 experts on 2 CPU
cores. Wall-clock step times (``benchmarks/moe/run.py``) are only meaningful on a quiet
machine; this script measures process CPU seconds instead, single-threaded, which a busy
machine disturbs far less:

- ``step``: one training step (forward, backward, AdamW) of the benchmark model (2-layer
  causal LM, d=128, 8 experts, ``--tokens`` tokens) with plain top-k routing;
- ``solve``: what QuboRoutingCallback does on a solving step for every MoE layer, on that
  step's router logits (its core, :class:`qopt.problems.routing.BatchRouter`: log-softmax,
  Sinkhorn warm start, the QUBO solve, repair, polish, statistics), with the callback's
  solver defaults unless ``--solver-options`` says otherwise, ``compare_exact`` off.

Then, for a schedule that solves every N steps, overhead = (solve / N) / (step + solve / N):
the share of CPU work the routing adds. With ``asynchronous=True`` the solve runs in a second
thread, so on an otherwise idle second core the wall-clock share is lower still; that part
needs a quiet machine to measure (``run.py``). Medians over ``--repeats``.

    python benchmarks/moe/overhead.py                      # top-1, capacity factor 1.0
    python benchmarks/moe/overhead.py --top-k 2 --capacity-factor 1.25
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qopt.bench import machine_info
from qopt.moe import MarkovMixture, MoELanguageModel
from qopt.problems.routing import ROUTING_SOLVER_DEFAULTS, BatchRouter
from qopt.solvers import resolve_solver


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--capacity-factor", type=float, default=1.0)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--solver", default="sa")
    parser.add_argument(
        "--solver-options",
        default="{}",
        help="JSON options for get_solver (default: the callback's, 1 read x 20 sweeps for sa)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # CPU seconds of one thread: no spinning OpenMP workers
    torch.manual_seed(0)
    model = MoELanguageModel(
        64,
        num_experts=8,
        top_k=args.top_k,
        capacity_factor=args.capacity_factor,
        aux_loss_weight=0.0,
        max_length=args.seq_len,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = args.tokens // args.seq_len
    tokens, _ = MarkovMixture(seed=1234).sample(batch * (args.repeats + 1), args.seq_len + 1)
    # The routing callback's core, as QuboRoutingCallback builds it.
    options = json.loads(args.solver_options)
    router = BatchRouter(
        solver=resolve_solver(
            args.solver, options, defaults=ROUTING_SOLVER_DEFAULTS, owner="overhead.py"
        ),
        group_size=args.group_size,
        compare_exact=False,
    )

    step_s: list[float] = []
    solve_s: list[float] = []
    records: list[dict[str, float]] = []
    for i in range(args.repeats + 1):  # the first round warms up
        chunk = tokens[i * batch : (i + 1) * batch]
        start = time.process_time()
        logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step = time.process_time() - start
        start = time.process_time()
        for layer in model.moe_layers():
            scores = layer.router_scores()
            assert scores is not None
            routed = router.route(
                scores.numpy(), layer.top_k, layer.expert_capacity(scores.shape[0])
            )
            records.append(routed.record)
        solve = time.process_time() - start
        if i > 0:
            step_s.append(step)
            solve_s.append(solve)
    step, solve = statistics.median(step_s), statistics.median(solve_s)
    solver = statistics.median(r["solver_s"] for r in records)
    print(f"machine: {machine_info()}")
    print(
        f"{args.tokens} tokens x 8 experts, top-{args.top_k}, capacity factor "
        f"{args.capacity_factor}, groups of {args.group_size}, solver {args.solver} "
        f"{ {**ROUTING_SOLVER_DEFAULTS, **options} }; CPU seconds, one thread, median of {args.repeats}"
    )
    print(
        f"training step (top-k): {1e3 * step:.0f} ms   routing solve, "
        f"{len(model.moe_layers())} layers: {1e3 * solve:.0f} ms (annealer wall per layer "
        f"{1e3 * solver:.0f} ms; warm start kept in "
        f"{statistics.median(r['warm_start_kept'] for r in records):.0f} groups)"
    )
    print(f"{'solve every':>12} {'overhead':>9}")
    for n in args.every:
        share = (solve / n) / (step + solve / n)
        print(f"{n:>12} {100 * share:>8.1f}%")
    _ = np, Any


if __name__ == "__main__":
    main()
