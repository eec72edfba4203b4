"""Where one routing solve spends its time: BQM construction, then the whole solve.

One layer's batch of router log-probabilities (N(0, 4) logits, 8 experts, top-k, capacity
factor 1.0 by default), cut into groups as QuboRoutingCallback does. Prints, median over
repeats:

- building every group's BQM term by term through ConstrainedQUBO (``routing_problem(...)
  .model.to_bqm``, the path before the numpy builder) against ``routing_bqm`` (numpy, one shot);
- ``solve_routing`` end to end for a few solver settings, with its solver share, with and
  without the classical polish (``polish=``), beside the classical routers and the polish
  alone on the Sinkhorn warm start.

Times are process CPU seconds (the solve is single-threaded), which a busy machine disturbs
less than wall time; still, take them on a quiet machine.

    python benchmarks/moe/routing_time.py --repeats 5      # 1024 tokens, groups of 32
    python benchmarks/moe/routing_time.py --repeats 5 --top-k 2 --capacity-factor 1.25
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qopt.bench import machine_info
from qopt.problems.routing import (
    affinity,
    exact_assignment,
    expert_capacity,
    polish_assignment,
    routing_bqm,
    routing_problem,
    sinkhorn_assignment,
    solve_routing,
)

SETTINGS: dict[str, dict[str, Any]] = {
    "sa 4 x 200, no polish (before)": {"num_reads": 4, "num_sweeps": 200, "polish": None},
    "sa 1 x 100, no polish (before)": {"num_reads": 1, "num_sweeps": 100, "polish": None},
    "sa 1 x 20, no polish (before)": {"num_reads": 1, "num_sweeps": 20, "polish": None},
    "sa 1 x 20, polish groups": {"num_reads": 1, "num_sweeps": 20, "polish": "groups"},
    "sa 1 x 20, polish global (default)": {"num_reads": 1, "num_sweeps": 20},
    "steepest descent, 1 read": {"solver": "steepest", "num_reads": 1},
}


def _time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.process_time()
        out = function()
        times.append(time.process_time() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--capacity-factor", type=float, default=1.0)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(args.tokens, args.experts))
    scores = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    k, size = args.top_k, args.group_size
    capacity = expert_capacity(args.tokens, args.experts, k, args.capacity_factor)
    share = expert_capacity(size, args.experts, k, args.capacity_factor)
    groups = [scores[s : s + size] for s in range(0, args.tokens, size)]
    print(f"machine: {machine_info()}")
    print(
        f"{args.tokens} tokens x {args.experts} experts, top-{k}, capacity factor "
        f"{args.capacity_factor}, groups of {size}; median of {args.repeats}\n"
    )

    def old() -> None:
        for g in groups:
            formulation = routing_problem(g, k, share)
            formulation.model.to_bqm(formulation.penalty)

    def new() -> None:
        for g in groups:
            routing_bqm(g, k, share)

    old_s, _ = _time(old, args.repeats)
    new_s, _ = _time(new, args.repeats)
    print(f"BQM construction, all groups: ConstrainedQUBO.to_bqm {1e3 * old_s:.0f} ms, ", end="")
    print(f"routing_bqm {1e3 * new_s:.1f} ms ({old_s / new_s:.0f}x)\n")

    best = affinity(exact_assignment(scores, k, capacity), scores)
    exact_s, _ = _time(lambda: exact_assignment(scores, k, capacity), args.repeats)
    sink_s, sink = _time(
        lambda: sinkhorn_assignment(scores, k, capacity, repair=True), args.repeats
    )
    print(f"{'method':<38} {'CPU ms':>9} {'solver wall ms':>14} {'gap to exact':>13}")
    print(f"{'exact assignment (BASE)':<38} {1e3 * exact_s:>9.0f} {'-':>14} {0.0:>12.2f}%")
    gap = (best - affinity(sink, scores)) / abs(best)
    print(f"{'sinkhorn (S-BASE), repaired':<38} {1e3 * sink_s:>9.0f} {'-':>14} {100 * gap:>12.2f}%")
    polish_s, polished = _time(
        lambda: polish_assignment(
            sinkhorn_assignment(scores, k, capacity, repair=True), scores, k, capacity
        ),
        args.repeats,
    )
    gap = (best - affinity(polished, scores)) / abs(best)
    print(
        f"{'sinkhorn + polish (no QUBO)':<38} {1e3 * polish_s:>9.0f} {'-':>14} {100 * gap:>12.2f}%"
    )
    for name, options in SETTINGS.items():
        params = {"solver": "sa", **options}
        total_s, result = _time(
            functools.partial(
                solve_routing, scores, k, capacity, group_size=size, seed=0, **params
            ),
            args.repeats,
        )
        gap = (best - result.affinity) / abs(best)
        print(
            f"{'qubo ' + name:<38} {1e3 * total_s:>9.0f} {1e3 * result.solver_wall_s:>14.0f} "
            f"{100 * gap:>12.2f}%"
        )


if __name__ == "__main__":
    main()
