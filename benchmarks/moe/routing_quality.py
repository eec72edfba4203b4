"""Routing quality: the QUBO route against exact assignment and Sinkhorn, and what polishes it.

Log-softmax of N(0, 4) router logits, 8 experts, top-k, capacity = the capacity factor's
share (1.0: perfectly balanced), token groups of the callback's size (32). For each size and k:

- the gap of each method's affinity to the exact assignment's (BASE), median with [min, max]
  over seeds, and on how many seeds it is the optimum (gap <= 1e-9); the largest max load
  violation; capacity violations and dropped slots summed
  over seeds (the script asserts both are 0); CPU time (median; take it on a quiet machine);
- with ``--pairwise``: the routing energy with token-similarity terms (cosine similarity of
  random hidden states to the 4 nearest tokens of each group, weight 0.1, as the callback's
  ``pairwise="similarity"``), as the improvement over the Sinkhorn warm start's energy (a
  positive number is better, negative would be worse than the warm start).

The rows separate who does the work: "sinkhorn + polish" is the classical cycle-canceling
polish alone on the warm start (no QUBO); "no polish" is the annealer alone; "polish groups"
polishes inside each group's capacity share; "polish global" (the default) then across groups.

    python benchmarks/moe/routing_quality.py --seeds 5 --tokens 32 64 128 256 1024 --top-k 1 2
    python benchmarks/moe/routing_quality.py --seeds 5 --tokens 64 256 1024 --top-k 1 2 --pairwise
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
    PairwiseTerms,
    affinity,
    exact_assignment,
    expert_capacity,
    knn_similarity,
    polish_assignment,
    routing_energy,
    routing_stats,
    sinkhorn_assignment,
    solve_routing,
)

#: (scores, k, capacity, seed, pairwise, group size) -> assignment
Method = Callable[[np.ndarray, int, int, int, PairwiseTerms | None, int], np.ndarray]


def _qubo(**options: Any) -> Method:
    def route(
        scores: np.ndarray, k: int, capacity: int, seed: int, terms: PairwiseTerms | None, size: int
    ) -> np.ndarray:
        return solve_routing(
            scores, k, capacity, pairwise=terms, group_size=size, seed=seed, **options
        ).assignment

    return route


def _sinkhorn(
    scores: np.ndarray, k: int, capacity: int, seed: int, terms: PairwiseTerms | None, size: int
) -> np.ndarray:
    return sinkhorn_assignment(scores, k, capacity, repair=True)


def _sinkhorn_polished(
    scores: np.ndarray, k: int, capacity: int, seed: int, terms: PairwiseTerms | None, size: int
) -> np.ndarray:
    warm = sinkhorn_assignment(scores, k, capacity, repair=True)
    return polish_assignment(warm, scores, k, capacity, pairwise=terms)


FAST = {"solver": "sa", "num_reads": 1, "num_sweeps": 20}
METHODS: dict[str, Method] = {
    "sinkhorn (S-BASE)": _sinkhorn,
    "sinkhorn + polish (no QUBO)": _sinkhorn_polished,
    # The callback's solver effort: one read of 20 sweeps from the Sinkhorn warm start (cold
    # end of the schedule only), without polish, polishing each group, then across groups.
    "qubo sa 1x20, no polish": _qubo(**FAST, polish=None),
    "qubo sa 1x20, polish groups": _qubo(**FAST, polish="groups"),
    "qubo sa 1x20, polish global": _qubo(**FAST, polish="global"),
    "qubo sa 1x100, no polish": _qubo(solver="sa", num_reads=1, num_sweeps=100, polish=None),
    "qubo sa, no warm start, no polish": _qubo(solver="sa", warm_start=None, polish=None),
    "qubo sa, no warm start, polish global": _qubo(solver="sa", warm_start=None),
    "qubo tabu from sinkhorn, no polish": _qubo(solver="tabu", polish=None),
    "qubo sa, 'auto' penalty, no polish": _qubo(
        solver="sa", warm_start=None, penalty="auto", polish=None
    ),
}


def _pairwise(tokens: int, size: int, seed: int) -> PairwiseTerms:
    hidden = np.random.default_rng(1000 + seed).normal(size=(tokens, 16))
    similarity = knn_similarity(hidden, num_neighbors=4, block_size=size)
    return PairwiseTerms(token_similarity=similarity, similarity_weight=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, nargs="+", default=[1])
    parser.add_argument("--capacity-factor", type=float, default=1.0)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--pairwise", action="store_true", help="token-similarity terms")
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
        f"{args.experts} experts, capacity factor {args.capacity_factor}, groups of "
        f"{args.group_size} tokens, {args.seeds} seeds, "
        + ("token-similarity terms (weight 0.1)" if args.pairwise else "linear objective")
        + "\n"
    )
    metric = "gain on warm" if args.pairwise else "gap to exact"
    print(
        f"{'k':>2} {'tokens':>6} {'method':<38} {metric:>12} {'[min, max]':>17} "
        f"{'at opt':>6} {'max viol':>8} {'cap viol':>8} {'dropped':>7} {'CPU ms':>7}"
    )
    for k in args.top_k:
        for tokens in args.tokens:
            capacity = expert_capacity(tokens, args.experts, k, args.capacity_factor)
            rows: dict[str, dict[str, list[float]]] = {
                name: {"gap": [], "time": [], "viol": [], "cap": [], "drop": []} for name in methods
            }
            for seed in range(args.seeds):
                logits = np.random.default_rng(seed).normal(scale=2.0, size=(tokens, args.experts))
                scores = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
                terms = _pairwise(tokens, args.group_size, seed) if args.pairwise else None
                if terms is None:
                    reference = affinity(exact_assignment(scores, k, capacity), scores)
                else:
                    warm = sinkhorn_assignment(scores, k, capacity, repair=True)
                    reference = routing_energy(warm, scores, terms)
                for name, method in methods.items():
                    start = time.process_time()
                    assignment = method(scores, k, capacity, seed, terms, args.group_size)
                    elapsed = time.process_time() - start
                    stats = routing_stats(assignment, args.experts, capacity)
                    assert stats.capacity_violation == 0 and stats.dropped == 0, (name, stats)
                    if terms is None:
                        gap = (reference - affinity(assignment, scores)) / abs(reference)
                    else:
                        energy = routing_energy(assignment, scores, terms)
                        gap = (reference - energy) / abs(reference)
                    row = rows[name]
                    row["gap"].append(gap)
                    row["time"].append(elapsed)
                    row["viol"].append(stats.max_violation)
                    row["cap"].append(stats.capacity_violation)
                    row["drop"].append(stats.dropped)
            for name, row in rows.items():
                gaps = row["gap"]
                spread = f"[{100 * min(gaps):.2f}, {100 * max(gaps):.2f}]%"
                optimal = "-" if args.pairwise else f"{sum(g <= 1e-9 for g in gaps)}/{len(gaps)}"
                print(
                    f"{k:>2} {tokens:>6} {name:<38} {100 * statistics.median(gaps):>11.2f}% "
                    f"{spread:>17} {optimal:>6} {max(row['viol']):>8.3f} {int(sum(row['cap'])):>8d} "
                    f"{int(sum(row['drop'])):>7d} {1e3 * statistics.median(row['time']):>7.0f}"
                )
    if args.pairwise:
        print(
            "\ngain on warm = (warm-start energy - method energy) / |warm-start energy|, with the "
            "pairwise terms; positive is better than the Sinkhorn warm start."
        )
    else:
        print(
            "\ngap = (exact affinity - method affinity) / |exact affinity|; exact assignment "
            "(BASE) is 0 by definition; at opt = seeds whose gap is at most 1e-9."
        )


if __name__ == "__main__":
    main()
