"""Why the NAS-Bench-201 optimum is rarely found: where the QUBO sampler's incumbent stands.

For each seed, one run of the QUBO sampler (architecture-search defaults) to ``--evaluations``;
then the incumbent's true rank among the cells within budget, its distance (op changes) to the
optimum, and the rank that the last fitted surrogate gives the optimum, the true top five and
the incumbent among all cells within budget.

    python benchmarks/nas/diagnose.py --seeds 100 101 102 103 104 105 --evaluations 50

``--local-search-bound`` instead measures how often an *idealized* local search evaluates the
optimum: best-improvement over the one-change neighbourhood with random restarts, evaluating
every untried neighbour within budget (no model), on the noise-free mean table and on noisy
reads; and how many local optima the mean table has and how large each one's basin is.

    python benchmarks/nas/diagnose.py --local-search-bound --reps 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _run, benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104, 105])
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--sampler", default="qubo")
    parser.add_argument("--local-search-bound", action="store_true")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    if args.local_search_bound:
        local_search_bound(args.reps)
        return

    from qopt.encoding import DenseEnergy
    from qopt.nas._tables import nb201_key

    # The last surrogate energy the sampler built (its final model) is kept here.
    last: dict[str, Any] = {}
    build = DenseEnergy.__init__

    def keep(self: Any, bqm: Any, n: int) -> None:
        build(self, bqm, n)
        last["energy"] = self

    DenseEnergy.__init__ = keep  # type: ignore[method-assign]
    space, means, _, _, _ = benchmark("nb201", None, None)
    archs = [a for a in space.iter_architectures() if space.within_budget(a)]
    truth = sorted(archs, key=lambda a: -means[nb201_key(a)])
    optimum = truth[0]
    names = sorted(space.choices)
    # One-hot bits in the sampler's layout: parameters sorted by name, choices in order.
    X = np.array(
        [[float(a[n] == v) for n in names for v in space.choices[n].values] for a in archs]
    )
    print(f"optimum {optimum} ({means[nb201_key(optimum)]:.3f} %)")
    print(
        "| seed | regret | incumbent true rank | op changes to optimum | surrogate rank of optimum "
        "| of true top 5 | of incumbent |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed in args.seeds:
        _, history, _, _ = _run(space, args.sampler, seed, args.evaluations, nb201_key)
        best = max(history, key=lambda h: h[1])[0]
        incumbent = next(a for a in archs if nb201_key(a) == best)
        energy = last["energy"]
        values = X @ energy.h + 0.5 * np.einsum("ij,jk,ik->i", X, energy.J, X)
        ranks = rankdata(values, method="ordinal") - 1  # 0 = lowest energy, ties in order
        rank = {nb201_key(a): int(r) for a, r in zip(archs, ranks, strict=True)}
        true_rank = next(i for i, a in enumerate(truth) if nb201_key(a) == best)
        changes = sum(incumbent[n] != optimum[n] for n in names)
        print(
            f"| {seed} | {means[nb201_key(optimum)] - means[best]:.3f} | {true_rank} | {changes} "
            f"| {rank[nb201_key(optimum)]} | {[rank[nb201_key(a)] for a in truth[:5]]} "
            f"| {rank[best]} |"
        )


def local_search_bound(reps: int) -> None:
    """Local optima and basins of the mean table, and an idealized local search's hit rate."""
    from qopt.nas import nas_bench_201_space
    from qopt.nas._tables import NB201Table, nb201_key

    space = nas_bench_201_space(max_mparams=0.6)
    table = NB201Table("cifar10", 0).val_acc_reads()
    feasible = sorted({nb201_key(a) for a in space.iter_architectures() if space.within_budget(a)})
    inside = set(feasible)
    mean = {k: float(np.mean(table[k])) for k in feasible}
    order = sorted(feasible, key=lambda k: -mean[k])
    optimum = order[0]

    def neighbours(k: str) -> list[str]:
        found = [k[:i] + o + k[i + 1 :] for i in range(6) for o in "01234" if o != k[i]]
        return [n for n in found if n in inside]

    local_optima = [k for k in feasible if all(mean[n] <= mean[k] for n in neighbours(k))]
    print(f"{len(local_optima)} local optima (one change, mean table) of {len(feasible)} cells")

    def climb(k: str) -> str:
        while True:
            best = max(neighbours(k), key=lambda n: mean[n])
            if mean[best] <= mean[k]:
                return k
            k = best

    basins: dict[str, int] = {}
    for k in feasible:
        end = climb(k)
        basins[end] = basins.get(end, 0) + 1
    largest = sorted(basins.items(), key=lambda e: -e[1])[:8]
    print(
        "largest basins (true rank of the local optimum: cells):",
        [(order.index(e), c) for e, c in largest],
    )
    print(f"optimum's basin: {basins.get(optimum, 0)} cells")
    rng = np.random.default_rng(0)

    def run(budget: int, noisy: bool) -> bool:
        seen: dict[str, float] = {}  # evaluated cells and their reads; len(seen) = evaluations

        def evaluate(k: str) -> bool:
            reads = table[k]
            seen[k] = float(reads[rng.integers(len(reads))]) if noisy else mean[k]
            return k == optimum

        while len(seen) < budget:
            k = feasible[rng.integers(len(feasible))]
            if k in seen:
                continue
            if evaluate(k):
                return True
            while len(seen) < budget:
                options = [m for m in neighbours(k) if m not in seen]
                rng.shuffle(options)
                for m in options[: budget - len(seen)]:
                    if evaluate(m):
                        return True
                best = max([*neighbours(k), k], key=lambda m: seen.get(m, -1))
                if best == k:
                    break
                k = best
        return False

    for noisy in (False, True):
        for budget in (50, 100):
            hits = np.mean([run(budget, noisy) for _ in range(reps)])
            print(
                f"idealized local search, {'noisy reads' if noisy else 'mean table'}, {budget} evaluations: optimum found in {hits:.1%} of {reps} runs"
            )


if __name__ == "__main__":
    main()
