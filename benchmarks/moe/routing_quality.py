"""Linear routing quality: the QUBO route against exact assignment and Sinkhorn.

Log-softmax of N(0, 4) router logits, top-1, capacity = tokens / experts (perfectly balanced).
For each size, the gap of each method's affinity to the exact assignment's (BASE), median with
[min, max] over seeds, and the time each took. Every assignment is complete and within capacity.

    python benchmarks/moe/routing_quality.py        # the figures in docs/moe.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qopt.bench import machine_info
from qopt.problems.routing import (
    affinity,
    exact_assignment,
    routing_stats,
    sinkhorn_assignment,
    solve_routing,
)

Method = Callable[[np.ndarray, int, int, int], np.ndarray]


def _qubo(**options: Any) -> Method:
    def route(scores: np.ndarray, k: int, capacity: int, seed: int) -> np.ndarray:
        return solve_routing(scores, k, capacity, group_size=64, seed=seed, **options).assignment

    return route


METHODS: dict[str, Method] = {
    "sinkhorn (S-BASE)": lambda s, k, c, seed: sinkhorn_assignment(s, k, c, repair=True),
    # The callback's default: one read of 20 sweeps from the Sinkhorn warm start (cold end
    # of the schedule only); the previous default, 100 sweeps, beside it.
    "qubo sa 1x20 from sinkhorn": _qubo(solver="sa", num_reads=1, num_sweeps=20),
    "qubo sa 1x100 from sinkhorn": _qubo(solver="sa", num_reads=1, num_sweeps=100),
    "qubo sa, no warm start": _qubo(solver="sa", warm_start=None),
    "qubo tabu from sinkhorn": _qubo(solver="tabu", warm_start="sinkhorn"),
    "qubo sa, 'auto' penalty": _qubo(solver="sa", warm_start=None, penalty="auto"),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument(
        "--methods", nargs="+", default=None, help="run only methods whose name contains one"
    )
    args = parser.parse_args()
    methods = {
        name: method
        for name, method in METHODS.items()
        if args.methods is None or any(part in name for part in args.methods)
    }

    print(f"machine: {machine_info()}")
    print(
        f"top-1, {args.experts} experts, capacity = tokens / experts, groups of 64 tokens, {args.seeds} seeds\n"
    )
    print(f"{'tokens':>6} {'method':<28} {'gap to exact':>13} {'[min, max]':>17} {'time':>9}")
    for tokens in args.tokens:
        capacity = tokens // args.experts
        rows: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in methods}
        for seed in range(args.seeds):
            logits = np.random.default_rng(seed).normal(scale=2.0, size=(tokens, args.experts))
            scores = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            best = affinity(exact_assignment(scores, 1, capacity), scores)
            for name, method in methods.items():
                start = time.perf_counter()
                assignment = method(scores, 1, capacity, seed)
                elapsed = time.perf_counter() - start
                stats = routing_stats(assignment, args.experts, capacity)
                assert stats.capacity_violation == 0 and stats.dropped == 0, (name, stats)
                rows[name][0].append((best - affinity(assignment, scores)) / abs(best))
                rows[name][1].append(elapsed)
        for name, (gaps, times) in rows.items():
            spread = f"[{100 * min(gaps):.1f}, {100 * max(gaps):.1f}]%"
            print(
                f"{tokens:>6} {name:<28} {100 * statistics.median(gaps):>12.1f}% {spread:>17} "
                f"{1e3 * statistics.median(times):>7.0f}ms"
            )
    print(
        "\ngap = (exact affinity - method affinity) / |exact affinity|; exact assignment (BASE) is 0 by definition."
    )


if __name__ == "__main__":
    main()
