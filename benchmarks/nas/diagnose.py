"""Why the NAS-Bench-201 optimum is rarely found: where the QUBO sampler's incumbent stands.

For each seed, one run of the QUBO sampler (architecture-search defaults) to ``--evaluations``;
then the incumbent's true rank among the cells within budget, its distance (op changes) to the
optimum, and the rank that the last fitted surrogate gives the optimum, the true top five and
the incumbent among all cells within budget.

    python benchmarks/nas/diagnose.py --seeds 100 101 102 103 104 105 --evaluations 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _run, benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104, 105])
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--sampler", default="qubo")
    args = parser.parse_args()

    import qopt.integrations.optuna._sampler as sampler_module

    from qopt.nas._objectives import nb201_key

    # The last surrogate energy the sampler built (its final model) is kept here.
    last: dict[str, Any] = {}
    build = sampler_module.DenseEnergy.__init__

    def keep(self: Any, bqm: Any, n: int) -> None:
        build(self, bqm, n)
        last["energy"] = self

    sampler_module.DenseEnergy.__init__ = keep
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
        rank = {nb201_key(archs[i]): r for r, i in enumerate(np.argsort(values, kind="stable"))}
        true_rank = next(i for i, a in enumerate(truth) if nb201_key(a) == best)
        changes = sum(incumbent[n] != optimum[n] for n in names)
        print(
            f"| {seed} | {means[nb201_key(optimum)] - means[best]:.3f} | {true_rank} | {changes} "
            f"| {rank[nb201_key(optimum)]} | {[rank[nb201_key(a)] for a in truth[:5]]} "
            f"| {rank[best]} |"
        )


if __name__ == "__main__":
    main()
